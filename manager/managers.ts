import { inBackground } from '../shared/concurrency.ts';
import type { Etcd3, Lease } from 'etcd3';
import { keys } from '../shared/keys.ts';
import type { Logger } from '../shared/log.ts';
import { ManagerRecord, type ManagerView } from '../shared/schemas.ts';
import type { Store } from '../shared/store/store.ts';

const presencePrefix = `${keys.managers}presence/`;
const recordPrefix = `${keys.managers}record/`;

/**
 * Each manager keeps a permanent record (so a dead one still shows, as unreachable) and a
 * presence key on a lease that vanishes within the TTL once the manager stops renewing it.
 */
export class ManagerPresence {
  private lease: Lease | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private announced = false;

  constructor(
    private readonly etcd: Etcd3,
    private readonly record: ManagerRecord,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {}

  /**
   * Whether this manager holds its presence lease: false from the moment the lease is lost
   * (etcd unreachable for a TTL) until an announcement lands again. The API answers 503 at
   * once meanwhile, instead of making each caller wait out its calls' deadlines.
   */
  get reachesStore(): boolean {
    return this.announced;
  }

  async start(): Promise<void> {
    await this.etcd.put(`${recordPrefix}${this.record.id}`).value(JSON.stringify(this.record)).exec();
    await this.announce();
  }

  private async announce(): Promise<void> {
    if (this.stopped) return;
    const lease = this.etcd.lease(this.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    // A lost lease and a failed put can both report one failure: announce again once.
    let retried = false;
    const again = (error: unknown) => {
      if (retried || this.stopped || this.lease !== lease) return;
      retried = true;
      this.announced = false;
      this.log.warn('manager presence lease lost; announcing again', { error: String(error) });
      inBackground(lease.revoke(), () => undefined);
      this.retryTimer = setTimeout(() => inBackground(this.announce(), (e) => this.log.error('announce failed', { error: String(e) })), 1000);
    };
    lease.on('lost', again);
    try {
      await lease.put(`${presencePrefix}${this.record.id}`).value(JSON.stringify(this.record.startedAt)).exec();
      if (this.lease === lease && !retried) this.announced = true;
    } catch (error) {
      again(error);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.lease?.revoke().catch(() => undefined);
  }
}

/** All managers ever started in this cluster, with who leads and who is reachable now. */
export async function listManagers(store: Store, leaderId: string | undefined): Promise<ManagerView[]> {
  const [records, presence] = await Promise.all([store.list<unknown>(recordPrefix), store.list<string>(presencePrefix)]);
  const present = new Set(presence.map((p) => p.key.slice(presencePrefix.length)));
  return records.map(({ value }) => {
    const record = ManagerRecord.parse(value);
    return { ...record, leader: record.id === leaderId, reachable: present.has(record.id) };
  });
}

export async function removeManagerRecord(store: Store, id: string): Promise<void> {
  await store.commit([{ op: 'delete', key: `${recordPrefix}${id}` }]);
}
