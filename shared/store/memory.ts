import type { CommitResult, Store, StoreWatch, Versioned, WatchEvent, WriteOp } from './store.ts';

/** An in-memory store with etcd's revision semantics, for unit tests and simulations. */
export class MemoryStore implements Store {
  private revision = 0;
  private readonly entries = new Map<string, { json: string; version: number }>();
  private readonly watchers = new Set<{ prefix: string; onEvent: (event: WatchEvent) => void }>();

  async get<T>(key: string): Promise<Versioned<T> | undefined> {
    const entry = this.entries.get(key);
    return entry ? { key, value: JSON.parse(entry.json) as T, version: entry.version } : undefined;
  }

  async getMany<T>(keys: readonly string[]): Promise<Versioned<T>[]> {
    const found = await Promise.all(keys.map((key) => this.get<T>(key)));
    return found.filter((entry) => entry !== undefined);
  }

  async list<T>(prefix: string): Promise<Versioned<T>[]> {
    return [...this.entries.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, entry]) => ({ key, value: JSON.parse(entry.json) as T, version: entry.version }));
  }

  async commit(ops: readonly WriteOp[]): Promise<CommitResult> {
    for (const op of ops) {
      const current = this.entries.get(op.key);
      if (op.op === 'create' && current) return { ok: false };
      if (op.op === 'update' && current?.version !== op.version) return { ok: false };
      if (op.op === 'delete' && op.version !== undefined && current?.version !== op.version) return { ok: false };
      if (op.op === 'exists' && !current) return { ok: false };
    }
    this.revision += 1;
    const events: WatchEvent[] = [];
    for (const op of ops) {
      if (op.op === 'exists') continue;
      if (op.op === 'delete') {
        if (this.entries.delete(op.key)) events.push({ type: 'delete', key: op.key, version: this.revision });
      } else {
        const json = JSON.stringify(op.value);
        this.entries.set(op.key, { json, version: this.revision });
        events.push({ type: 'put', key: op.key, value: JSON.parse(json), version: this.revision });
      }
    }
    for (const event of events) {
      for (const watcher of this.watchers) if (event.key.startsWith(watcher.prefix)) watcher.onEvent(event);
    }
    return { ok: true, revision: this.revision };
  }

  async watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<StoreWatch> {
    const watcher = { prefix, onEvent };
    this.watchers.add(watcher);
    return { close: async () => void this.watchers.delete(watcher) };
  }

  async close(): Promise<void> {
    this.watchers.clear();
  }
}
