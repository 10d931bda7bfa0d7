import type { Store, StoreWatch, Versioned, WatchEvent, WriteOp } from './store.ts';

/** Told of each change the mirror takes in: the key, its new value (none once deleted) and the one before (none if new). */
export type ChangeListener = (key: string, value: unknown, previous: unknown) => void;

/**
 * A new version of a key, given the one it replaces: may return it with parts that never
 * change taken from the old one, so that the versions share them and a parsed copy dies young.
 */
export type Keeper = (key: string, value: unknown, previous: unknown) => unknown;

/**
 * An in-memory copy of some prefixes of the store, kept current by watches: the leader's loops
 * read it instead of listing tens of thousands of tasks from etcd on every pass. Writes still
 * go to the store, revision-checked against what the mirror holds; a stale mirror only makes
 * such a write fail, never land wrong. The writer folds its own successful commits in at once
 * (`applyCommit`), so the next pass does not act on a state it has already changed.
 */
export class StoreMirror {
  private readonly entries = new Map<string, Map<string, Versioned<unknown>>>();
  /**
   * Keys this process deleted, with the delete's revision, until the watch delivers it. A put
   * the watch delivers after the delete was folded in (an agent's report written just before
   * it) is older than the delete and must not bring the key back: a resurrected task made
   * every pass that tried to delete it again lose its race, for as long as 30,000 deletes took
   * to come back through the watch (measured: passes stalled 18 s).
   */
  private readonly deleted = new Map<string, number>();
  private watches: StoreWatch[] = [];

  private constructor(
    private readonly prefixes: readonly string[],
    private readonly onChange: ChangeListener,
    private readonly keep?: Keeper,
  ) {
    for (const prefix of prefixes) this.entries.set(prefix, new Map());
  }

  /** Watches first, then lists, then replays what the watches saw meanwhile: nothing is missed. */
  static async open(store: Store, prefixes: readonly string[], onChange: ChangeListener = () => undefined, keep?: Keeper): Promise<StoreMirror> {
    const mirror = new StoreMirror(prefixes, onChange, keep);
    let buffered: WatchEvent[] | undefined = [];
    const receive = (event: WatchEvent) => (buffered ? buffered.push(event) : mirror.apply(event));
    try {
      for (const prefix of prefixes) mirror.watches.push(await store.watch(prefix, receive));
      for (const prefix of prefixes) {
        for (const entry of await store.list(prefix)) mirror.apply({ type: 'put', ...entry });
      }
    } catch (error) {
      await mirror.close();
      throw error;
    }
    const replay = buffered;
    buffered = undefined;
    for (const event of replay) mirror.apply(event);
    return mirror;
  }

  private mapFor(key: string): Map<string, Versioned<unknown>> | undefined {
    const prefix = this.prefixes.find((p) => key.startsWith(p));
    return prefix === undefined ? undefined : this.entries.get(prefix);
  }

  /** Applies a change unless the mirror already holds a newer version of the key. */
  private apply(event: WatchEvent): void {
    const map = this.mapFor(event.key);
    if (!map) return;
    const deletedAt = this.deleted.get(event.key);
    if (deletedAt !== undefined) {
      if (event.version < deletedAt) return;
      this.deleted.delete(event.key);
    }
    const current = map.get(event.key);
    if (current && current.version >= event.version) return;
    // The echo of a delete this process folded in already: nothing changes.
    if (!current && event.type === 'delete') return;
    let value: unknown;
    if (event.type === 'put') {
      value = current && this.keep ? this.keep(event.key, event.value, current.value) : event.value;
      map.set(event.key, { key: event.key, value, version: event.version });
    } else map.delete(event.key);
    this.onChange(event.key, value, current?.value);
  }

  /** Folds in a commit this process made, at the revision the store gave it. Values are kept, not copied: nobody mutates them. */
  applyCommit(ops: readonly WriteOp[], revision: number): void {
    for (const op of ops) {
      const map = this.mapFor(op.key);
      if (!map || op.op === 'exists') continue;
      const previous = map.get(op.key)?.value;
      if (op.op === 'delete') {
        map.delete(op.key);
        this.deleted.set(op.key, revision);
      } else {
        map.set(op.key, { key: op.key, value: op.value, version: revision });
        this.deleted.delete(op.key);
      }
      // The watch's echo of this write will find nothing new, so the change is told now.
      this.onChange(op.key, op.op === 'delete' ? undefined : op.value, previous);
    }
  }

  /** Every entry under one of the mirrored prefixes, in no particular order. */
  values<T>(prefix: string): Versioned<T>[] {
    const map = this.entries.get(prefix);
    if (!map) throw new Error(`${prefix} is not mirrored`);
    return [...map.values()] as Versioned<T>[];
  }

  get<T>(key: string): Versioned<T> | undefined {
    return this.mapFor(key)?.get(key) as Versioned<T> | undefined;
  }

  async close(): Promise<void> {
    const watches = this.watches;
    this.watches = [];
    await Promise.all(watches.map((w) => w.close()));
  }
}
