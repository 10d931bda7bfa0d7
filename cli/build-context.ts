/**
 * `image build`'s context: the directory as a tar, less what .dockerignore leaves out (matched
 * as Docker matches it, by @balena/dockerignore), the Dockerfile and .dockerignore always in.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import dockerignore from '@balena/dockerignore';
import { create } from 'tar';

export interface BuildContext {
  dir: string;
  /** The Dockerfile's path inside the context, with forward slashes. */
  dockerfile: string;
}

/** Checks the context and the Dockerfile's place in it (a Dockerfile outside the context is refused). */
export function buildContext(dir: string, dockerfile?: string): BuildContext {
  const root = resolve(dir);
  if (!existsSync(root)) throw new Error(`${dir}: no such directory for the build context`);
  const file = dockerfile ? resolve(dockerfile) : join(root, 'Dockerfile');
  const inside = relative(root, file);
  if (inside.startsWith('..') || inside === '') throw new Error(`the Dockerfile ${dockerfile ?? file} must be inside the build context ${dir}`);
  if (!existsSync(file)) throw new Error(`${dockerfile ?? 'Dockerfile'}: no such file${dockerfile ? '' : ` in ${dir}; name one with -f`}`);
  return { dir: root, dockerfile: inside.split(sep).join('/') };
}

export function contextArchive(context: BuildContext): Readable {
  const ignoreFile = join(context.dir, '.dockerignore');
  const ignore = dockerignore.default({ ignorecase: false }).add(existsSync(ignoreFile) ? readFileSync(ignoreFile, 'utf8').split(/\r?\n/) : []);
  const always = new Set([context.dockerfile, '.dockerignore']);
  return create(
    {
      cwd: context.dir,
      portable: false,
      filter: (path) => {
        const name = path.replace(/^\.\//, '');
        return name === '' || name === '.' || always.has(name) || !ignore.ignores(name);
      },
    },
    ['.'],
  ) as unknown as Readable;
}
