import { PassThrough, type Readable } from 'node:stream';
import { ConstantBackoff, handleWhen, noop, retry } from 'cockatiel';
import { Etcd3, type ICompare, type IKeyValue, isRecoverableError } from 'etcd3';
import type { CommitResult, Store, StoreWatch, Versioned, WatchEvent, WriteOp } from './store.ts';

function toVersioned<T>(kv: IKeyValue): Versioned<T> {
  return { key: kv.key.toString(), value: JSON.parse(kv.value.toString()) as T, version: Number(kv.mod_revision) };
}

/** etcd refuses a transaction of more than 128 operations (its --max-txn-ops default). */
const maxTxnOps = 128;
const pageSize = 1_000;
const callDeadlineMs = 3_000;

/** The first key after every key that starts with `prefix`. */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1]! += 1;
  return end;
}

/** A client certificate for etcd's --client-cert-auth, and the CA its server certificate is checked against. */
export interface EtcdCredentials {
  rootCertificate: Buffer;
  certChain: Buffer;
  privateKey: Buffer;
}

/** The store on etcd v3: each commit is one transaction comparing the revisions it read. */
export class EtcdStore implements Store {
  readonly client: Etcd3;
  private readonly ownsClient: boolean;
  /** Told how long each transaction took and how it ended (committed, conflict, error): the manager's metrics. */
  onCommit: ((seconds: number, outcome: string) => void) | undefined;

  constructor(endpoints: string[] | Etcd3, credentials?: EtcdCredentials) {
    if (endpoints instanceof Etcd3) {
      this.client = endpoints;
      this.ownsClient = false;
    } else {
      this.client = new Etcd3({
        hosts: endpoints,
        ...(credentials ? { credentials } : {}),
        dialTimeout: 3000,
        // A watcher that falls behind gets up to a thousand revisions in one answer: 30,000
        // tasks written in batches of 100 made answers past gRPC's 4 MiB default, which broke
        // the stream that all of a process's watches share (measured: 5 MB, every manager
        // watch resubscribing, services missed).
        grpcOptions: { 'grpc.max_receive_message_length': -1 },
        // A call that gets no answer in 3 s fails instead of hanging (three tries: under 10 s),
        // so a manager cut off from etcd answers 503 store_unavailable and the CLI tries the
        // next one. Streams (watches, lease keep-alives) have no deadline.
        defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callDeadlineMs }),
        // No per-host circuit breaker (the client's default): with every member down it kept
        // failing calls with "circuit breaker is open" for a while after etcd was back. A call
        // is retried on the next member, three times, and then fails: a 503 at the API.
        faultHandling: { host: () => noop, global: retry(handleWhen(isRecoverableError), { maxAttempts: 3, backoff: new ConstantBackoff(100) }) },
      });
      this.ownsClient = true;
    }
  }

  async get<T>(key: string): Promise<Versioned<T> | undefined> {
    const response = await this.client.kv.range({ key: Buffer.from(key) });
    const kv = response.kvs[0];
    return kv ? toVersioned<T>(kv) : undefined;
  }

  async getMany<T>(keys: readonly string[]): Promise<Versioned<T>[]> {
    const found: Versioned<T>[] = [];
    for (let i = 0; i < keys.length; i += maxTxnOps) {
      const request_ops = keys.slice(i, i + maxTxnOps).map((key) => ({ request_range: { key: Buffer.from(key) } }));
      const response = await this.client.kv.txn({ compare: [], success: request_ops, failure: [] });
      for (const op of response.responses) for (const kv of op.response_range?.kvs ?? []) found.push(toVersioned<T>(kv));
    }
    return found;
  }

  /**
   * Pages through the prefix at one revision: a single response is capped (4 MiB by the gRPC
   * client), and 30,000 tasks are several times that.
   */
  async list<T>(prefix: string): Promise<Versioned<T>[]> {
    const end = prefixEnd(prefix);
    const found: Versioned<T>[] = [];
    let key = Buffer.from(prefix);
    let revision: string | undefined;
    for (;;) {
      const response = await this.client.kv.range({ key, range_end: end, limit: pageSize, sort_order: 'Ascend', sort_target: 'Key', ...(revision ? { revision } : {}) });
      revision ??= response.header.revision;
      for (const kv of response.kvs) found.push(toVersioned<T>(kv));
      const last = response.kvs.at(-1);
      if (!response.more || !last) return found;
      key = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  async commit(ops: readonly WriteOp[]): Promise<CommitResult> {
    const compare = ops.flatMap((op): ICompare[] => {
      const key = Buffer.from(op.key);
      if (op.op === 'create') return [{ key, target: 'Create', create_revision: '0', result: 'Equal' }];
      if (op.op === 'exists') return [{ key, target: 'Create', create_revision: '0', result: 'Greater' }];
      if (op.version === undefined) return [];
      return [{ key, target: 'Mod', mod_revision: String(op.version), result: 'Equal' }];
    });
    const success = ops.flatMap((op) =>
      op.op === 'exists'
        ? []
        : op.op === 'delete'
        ? { request_delete_range: { key: Buffer.from(op.key) } }
        : { request_put: { key: Buffer.from(op.key), value: Buffer.from(JSON.stringify(op.value)) } },
    );
    const startedAt = performance.now();
    const response = await this.client.kv.txn({ compare, success, failure: [] }).catch((error: unknown) => {
      this.onCommit?.((performance.now() - startedAt) / 1000, 'error');
      throw error;
    });
    this.onCommit?.((performance.now() - startedAt) / 1000, response.succeeded ? 'committed' : 'conflict');
    return response.succeeded ? { ok: true, revision: Number(response.header.revision) } : { ok: false };
  }

  /** The prefix of each open watch, once per watch: how many watchers will ask for an event's value. */
  private readonly watchedPrefixes: string[] = [];
  /** Values of recent watch events, by key and revision, until every watcher of the key has taken its own. */
  private readonly recentlyParsed = new Map<string, { value: unknown; untaken: number }>();

  /**
   * A manager watches tasks from several loops, and each watcher gets every event: the value is
   * parsed once for all of them (consumers never mutate it). Measured: JSON.parse of task events
   * was the manager's largest cost in a 30,000-task start. A value is let go as soon as the
   * last watcher has it: kept for the next 8,192 events, each one outlived young collections
   * and was copied out of the young generation (the manager's largest pauses).
   */
  private parsedOnce(key: string, kv: IKeyValue): unknown {
    const id = `${kv.mod_revision} ${key}`;
    const kept = this.recentlyParsed.get(id);
    if (kept) {
      if (--kept.untaken <= 0) this.recentlyParsed.delete(id);
      return kept.value;
    }
    const value: unknown = JSON.parse(kv.value.toString());
    let watchers = 0;
    for (const prefix of this.watchedPrefixes) if (key.startsWith(prefix)) watchers += 1;
    if (watchers > 1) {
      // A watcher closed before taking its copy would leave its entry: the oldest go past a bound.
      if (this.recentlyParsed.size >= 8_192) this.recentlyParsed.delete(this.recentlyParsed.keys().next().value!);
      this.recentlyParsed.set(id, { value, untaken: watchers - 1 });
    }
    return value;
  }

  async watch(prefix: string, onEvent: (event: WatchEvent) => void): Promise<StoreWatch> {
    const watcher = await this.client.watch().prefix(prefix).create();
    this.watchedPrefixes.push(prefix);
    let lastSeen = 0;
    watcher.on('put', (kv) => {
      lastSeen = Math.max(lastSeen, Number(kv.mod_revision));
      const key = kv.key.toString();
      onEvent({ type: 'put', key, value: this.parsedOnce(key, kv), version: Number(kv.mod_revision) });
    });
    watcher.on('delete', (kv) => {
      lastSeen = Math.max(lastSeen, Number(kv.mod_revision));
      onEvent({ type: 'delete', key: kv.key.toString(), version: Number(kv.mod_revision) });
    });
    // The client resubscribes after a broken stream from the revision of the last answer's
    // header, which can lie past events not yet delivered (a watcher catching up gets them in
    // batches): events were lost that way. Resuming after the last event seen replays some
    // instead: the mirror takes an event it has already seen as a no-op (the event log may
    // show one twice).
    watcher.on('disconnected', () => {
      if (lastSeen > 0) watcher.request.start_revision = String(lastSeen + 1);
    });
    let closing: Promise<void> | undefined;
    return {
      close: () => {
        if (!closing) {
          this.watchedPrefixes.splice(this.watchedPrefixes.indexOf(prefix), 1);
          closing = watcher.cancel();
        }
        return closing;
      },
    };
  }

  /**
   * etcd's own snapshot of the whole keyspace (the Maintenance API), as a byte stream: what
   * `etcdctl snapshot restore` takes, with etcd's checksum at its end.
   */
  async snapshot(): Promise<Readable> {
    const stream = await this.client.maintenance.snapshot();
    const out = new PassThrough();
    stream.on('data', (message: { blob: Buffer }) => {
      // The snapshot is read once, at etcd's pace; a slow reader only grows this buffer.
      out.write(message.blob);
    });
    stream.on('end', () => out.end());
    stream.on('error', (error: Error) => out.destroy(error));
    return out;
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client.close();
  }
}
