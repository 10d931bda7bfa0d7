import { Etcd3, type ICompare, type IKeyValue } from 'etcd3';
import type { CommitResult, Store, StoreWatch, Versioned, WatchEvent, WriteOp } from './store.ts';

function toVersioned<T>(kv: IKeyValue): Versioned<T> {
  return { key: kv.key.toString(), value: JSON.parse(kv.value.toString()) as T, version: Number(kv.mod_revision) };
}

/** The store on etcd v3: each commit is one transaction comparing the revisions it read. */
export class EtcdStore implements Store {
  readonly client: Etcd3;
  private readonly ownsClient: boolean;

  constructor(endpoints: string[] | Etcd3) {
    if (endpoints instanceof Etcd3) {
      this.client = endpoints;
      this.ownsClient = false;
    } else {
      this.client = new Etcd3({ hosts: endpoints, dialTimeout: 3000 });
      this.ownsClient = true;
    }
  }

  async get<T>(key: string): Promise<Versioned<T> | undefined> {
    const response = await this.client.kv.range({ key: Buffer.from(key) });
    const kv = response.kvs[0];
    return kv ? toVersioned<T>(kv) : undefined;
  }

  async list<T>(prefix: string): Promise<Versioned<T>[]> {
    const response = await this.client.getAll().prefix(prefix).sort('Key', 'Ascend').exec();
    return response.kvs.map((kv) => toVersioned<T>(kv));
  }

  async commit(ops: readonly WriteOp[]): Promise<CommitResult> {
    const compare = ops.flatMap((op): ICompare[] => {
      const key = Buffer.from(op.key);
      if (op.op === 'create') return [{ key, target: 'Create', create_revision: '0', result: 'Equal' }];
      if (op.version === undefined) return [];
      return [{ key, target: 'Mod', mod_revision: String(op.version), result: 'Equal' }];
    });
    const success = ops.map((op) =>
      op.op === 'delete'
        ? { request_delete_range: { key: Buffer.from(op.key) } }
        : { request_put: { key: Buffer.from(op.key), value: Buffer.from(JSON.stringify(op.value)) } },
    );
    const response = await this.client.kv.txn({ compare, success, failure: [] });
    return response.succeeded ? { ok: true, revision: Number(response.header.revision) } : { ok: false };
  }

  async watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<StoreWatch> {
    const watcher = await this.client.watch().prefix(prefix).create();
    watcher.on('put', (kv) => onEvent({ type: 'put', ...toVersioned(kv) }));
    watcher.on('delete', (kv) => onEvent({ type: 'delete', key: kv.key.toString(), version: Number(kv.mod_revision) }));
    return { close: () => watcher.cancel() };
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client.close();
  }
}
