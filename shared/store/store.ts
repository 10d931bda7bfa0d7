/**
 * The store: desired and observed state behind a handful of verbs. Values are JSON; every
 * read carries the key's version (etcd's mod revision) so writes can compare it.
 */

export interface Versioned<T> {
  key: string;
  value: T;
  /** The revision at which this key was last written; 0 never occurs for a stored key. */
  version: number;
}

export type WriteOp =
  /** Fails the commit if the key exists. */
  | { op: 'create'; key: string; value: unknown }
  /** Fails the commit unless the key is still at `version`. */
  | { op: 'update'; key: string; value: unknown; version: number }
  /** Fails the commit unless the key is still at `version` (when given). */
  | { op: 'delete'; key: string; version?: number }
  /** Writes nothing; fails the commit unless the key exists (a leader fences its writes with its election key). */
  | { op: 'exists'; key: string };

export type CommitResult = { ok: true; revision: number } | { ok: false };

export type WatchEvent<T = unknown> =
  | { type: 'put'; key: string; value: T; version: number }
  | { type: 'delete'; key: string; version: number };

export interface StoreWatch {
  close(): Promise<void>;
}

export interface Store {
  get<T>(key: string): Promise<Versioned<T> | undefined>;
  /** Several keys read at one revision; absent keys are left out. */
  getMany<T>(keys: readonly string[]): Promise<Versioned<T>[]>;
  /** Every key under the prefix, sorted by key. */
  list<T>(prefix: string): Promise<Versioned<T>[]>;
  /** Applies all operations or none, in one transaction. */
  commit(ops: readonly WriteOp[]): Promise<CommitResult>;
  /** Calls `onEvent` for every change under the prefix after the watch is set up. */
  watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<StoreWatch>;
  close(): Promise<void>;
}
