import { readFileSync } from 'node:fs';

/** Shoal's version, from package.json (two levels above this module once compiled into dist/). */
export const shoalVersion: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0-unknown';
  }
})();

/** How many missed heartbeat periods make a node down. */
export const heartbeatsBeforeDown = 3;
