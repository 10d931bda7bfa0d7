import { errors } from '../errors.ts';
import type { Store, Versioned, WriteOp } from './store.ts';

/** Whether a leader's fence still holds: every key it names exists. */
export async function fenceHolds(store: Store, fence: readonly WriteOp[]): Promise<boolean> {
  for (const op of fence) if (op.op === 'exists' && !(await store.get(op.key))) return false;
  return true;
}

/**
 * Read-modify-write under optimistic concurrency: reads the key, applies `change`, and commits
 * only if nobody wrote in between; on a conflict it reads again, up to `attempts` times.
 * `change` returns undefined to leave the object as it is. With a leader's `fence`, the write
 * also needs the fence to hold, and a fence that no longer holds ends it with `deposed`.
 */
export async function updateObject<T>(
  store: Store,
  key: string,
  change: (current: T) => T | undefined,
  attempts = 5,
  fence: readonly WriteOp[] = [],
): Promise<Versioned<T> | undefined> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const current = await store.get<T>(key);
    if (!current) return undefined;
    const next = change(current.value);
    if (next === undefined) return current;
    const result = await store.commit([...fence, { op: 'update', key, value: next, version: current.version }]);
    if (result.ok) return { key, value: next, version: result.revision };
    if (fence.length > 0 && !(await fenceHolds(store, fence))) throw errors.deposed();
  }
  throw errors.versionConflict(key);
}

export function now(): string {
  return new Date().toISOString();
}
