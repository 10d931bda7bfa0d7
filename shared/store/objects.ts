import { errors } from '../errors.ts';
import type { Store, Versioned } from './store.ts';

/**
 * Read-modify-write under optimistic concurrency: reads the key, applies `change`, and commits
 * only if nobody wrote in between; on a conflict it reads again, up to `attempts` times.
 * `change` returns undefined to leave the object as it is.
 */
export async function updateObject<T>(
  store: Store,
  key: string,
  change: (current: T) => T | undefined,
  attempts = 5,
): Promise<Versioned<T> | undefined> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const current = await store.get<T>(key);
    if (!current) return undefined;
    const next = change(current.value);
    if (next === undefined) return current;
    const result = await store.commit([{ op: 'update', key, value: next, version: current.version }]);
    if (result.ok) return { key, value: next, version: result.revision };
  }
  throw errors.versionConflict(key);
}

export function now(): string {
  return new Date().toISOString();
}
