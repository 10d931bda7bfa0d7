import { EventEmitter } from 'node:events';
import type { Campaign, Etcd3 } from 'etcd3';
import { keys } from '../shared/keys.ts';
import type { Logger } from '../shared/log.ts';
import type { WriteOp } from '../shared/store/store.ts';
import { inBackground } from '../shared/concurrency.ts';

/**
 * One leader among managers, elected through an etcd election on a lease. The lease's TTL
 * bounds how long a dead leader keeps the role. 'elected' and 'deposed' fire on changes;
 * a leader whose campaign fails (lease lost) is deposed at once, before anything else runs.
 */
export class Leadership extends EventEmitter<{ elected: []; deposed: []; leaderChanged: [string | undefined] }> {
  private campaign: Campaign | undefined;
  private stopped = false;
  private leading = false;
  private observedLeader: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private observeTimer: NodeJS.Timeout | undefined;
  private observer: { cancel(): Promise<void> } | undefined;
  /** This manager's election key while it leads: it exists exactly as long as the lease. */
  private campaignKey: string | undefined;

  constructor(
    private readonly etcd: Etcd3,
    private readonly managerId: string,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {
    super();
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * A condition for this term's writes: they land only while this term's election key exists.
   * A leader whose lease ran out while it was busy (a long pass) cannot write after a new
   * leader has taken over. Taken once, when elected, by the loops of that term.
   */
  fence(): WriteOp[] {
    // A manager that does not lead gets a fence that never holds: nothing it observes is written.
    if (!this.leading) return [{ op: 'exists', key: `${keys.leaderElection}/not-leading/${this.managerId}` }];
    return this.campaignKey ? [{ op: 'exists', key: this.campaignKey }] : [];
  }

  /** The id of the manager that leads, as last observed. */
  get leaderId(): string | undefined {
    if (this.leading) return this.managerId;
    // This manager does not lead, whatever a stale observation says (one cut off from etcd
    // keeps its last view until the observer's watch is back).
    return this.observedLeader === this.managerId ? undefined : this.observedLeader;
  }

  /**
   * Who leads, read from etcd now: the oldest key of the election. What the API reports, so
   * a follower whose observer is behind (after an outage) does not name a deposed leader.
   */
  async readLeader(): Promise<string | undefined> {
    if (this.leading) return this.managerId;
    const keysNow = await this.etcd.getAll().prefix(`election/${keys.leaderElection}/`).sort('Create', 'Ascend').limit(1).strings();
    const leader = Object.values(keysNow)[0];
    return leader === this.managerId ? undefined : leader;
  }

  async start(): Promise<void> {
    await this.observe();
    this.campaignNow();
  }

  /**
   * Follows who leads. The observer stops for good on its first error (etcd gone for a while),
   * so a new one is made a second later, until one works: without it a follower kept naming
   * the leader it saw before an outage.
   */
  private async observe(): Promise<void> {
    if (this.stopped) return;
    const observer = await this.etcd.election(keys.leaderElection, this.ttlSeconds).observe();
    this.observer = observer;
    this.observedLeader = observer.leader();
    observer.on('change', (leader) => {
      this.observedLeader = leader;
      this.emit('leaderChanged', leader);
    });
    observer.on('error', (error) => {
      if (this.observer !== observer) return;
      this.log.warn('leader observer failed; observing again', { error: String(error) });
      this.observer = undefined;
      this.observedLeader = undefined;
      inBackground(observer.cancel(), () => undefined);
      clearTimeout(this.observeTimer);
      this.observeTimer = setTimeout(() => this.observeAgain(), 1000);
    });
  }

  private observeAgain(): void {
    inBackground(this.observe(), (error) => {
      this.log.warn('leader observer could not start; trying again', { error: String(error) });
      clearTimeout(this.observeTimer);
      this.observeTimer = setTimeout(() => this.observeAgain(), 1000);
    });
  }

  private campaignNow(): void {
    if (this.stopped) return;
    const campaign = this.etcd.election(keys.leaderElection, this.ttlSeconds).campaign(this.managerId);
    this.campaign = campaign;
    const onElected = async () => {
      const campaignKey = await campaign.getCampaignKey().catch(() => undefined);
      if (this.stopped || this.campaign !== campaign) {
        // Elected for a campaign this manager has given up: let the next one win.
        await campaign.resign().catch(() => undefined);
        return;
      }
      this.campaignKey = campaignKey;
      this.leading = true;
      this.log.info('elected leader');
      this.emit('elected');
      this.emit('leaderChanged', this.managerId);
    };
    campaign.on('elected', () => inBackground(onElected(), (error) => this.log.error('taking up leadership failed', { error: String(error) })));
    // A failed campaign can report more than once (its lease lost, then its start failing).
    // Only the first report of the current campaign retries: a second retry would leave an
    // orphan campaign that still holds a key, and once etcd is back it could win the election
    // for a campaign nobody listens to, so that no manager leads (measured after an outage).
    campaign.on('error', (error) => {
      if (this.campaign !== campaign) return;
      this.log.warn('leader campaign failed', { error: String(error) });
      this.abandon(campaign);
    });
  }

  /**
   * Gives up this term (a loop of it could not start) and campaigns again a second later, so
   * that a leader without working loops does not keep the role.
   */
  stepDown(reason: string): void {
    if (!this.campaign || !this.leading) return;
    this.log.warn('stepping down', { reason });
    this.abandon(this.campaign);
  }

  /** Ends a campaign (and the term it won, if any) and starts a new one a second later. */
  private abandon(campaign: Campaign): void {
    this.campaign = undefined;
    this.depose();
    inBackground(campaign.resign(), () => undefined);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.campaignNow(), 1000);
  }

  private depose(): void {
    if (!this.leading) return;
    this.leading = false;
    this.campaignKey = undefined;
    this.log.warn('deposed: no longer the leader');
    this.emit('deposed');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.observeTimer);
    const campaign = this.campaign;
    this.campaign = undefined;
    this.depose();
    await campaign?.resign().catch(() => undefined);
    await this.observer?.cancel().catch(() => undefined);
  }
}
