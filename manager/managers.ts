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
  private stopped = false;

  constructor(
    private readonly etcd: Etcd3,
    private readonly record: ManagerRecord,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.etcd.put(`${recordPrefix}${this.record.id}`).value(JSON.stringify(this.record)).exec();
    await this.announce();
  }

  private async announce(): Promise<void> {
    if (this.stopped) return;
    const lease = this.etcd.lease(this.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    lease.on('lost', (error) => {
      this.log.warn('manager presence lease lost; announcing again', { error: String(error) });
      setTimeout(() => void this.announce().catch((e) => this.log.error('announce failed', { error: String(e) })), 1000);
    });
    await lease.put(`${presencePrefix}${this.record.id}`).value(JSON.stringify(this.record.startedAt)).exec();
  }

  async stop(): Promise<void> {
    this.stopped = true;
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
