import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Libp2p } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { ShoalError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { FramedChannel } from '../shared/p2p/framed.ts';
import {
  type AgentMessage,
  DispatcherMessage,
  assignmentChangesFeature,
  dispatcherProtocol,
  type HostUsage,
  type JoinRequest,
  joinProtocol,
  JoinServerMessage,
  type TaskStatusReport,
} from '../shared/p2p/protocol.ts';
import type { TaskAssignment } from '../shared/services.ts';
import type { PolicyTable } from '../netplug/policy/model.ts';
import type { Labels, ManagerRecord, NodeDescription } from '../shared/schemas.ts';
import { caDigest, identityProblem } from '../shared/pki/certificates.ts';
import { parseJoinToken } from '../shared/tokens.ts';

interface AgentState {
  nodeId: string;
  clusterId?: string;
  /** Managers last heard of, leader first: where to look for the leader after a restart. */
  managers: string[][];
  /** The cluster CA, as the join token's digest vouched for it: every manager is checked against it. */
  caCertificate: string;
  /** Peer ids of managers whose certificates of that CA were checked: the only peers this agent serves. */
  trusted: string[];
}

export interface AgentSessionOptions {
  p2p: Libp2p;
  stateDir: string;
  /** Manager multiaddrs given on the command line (each with /p2p/<peer id>). */
  join: string[];
  token?: string;
  labels: Labels;
  describe: () => Promise<NodeDescription>;
  /** The leader's full set of tasks for this node, each time it changes. */
  onAssignments?: (tasks: TaskAssignment[]) => void;
  /** The leader's peer tables for the networks this node has endpoints on, each time they change. */
  onPeerTables?: (tables: Extract<DispatcherMessage, { type: 'network-peers' }>['tables']) => void;
  /** The leader's names, VIPs and routing-mesh ports for this node. */
  onPolicyTable?: (table: PolicyTable) => void;
  onServiceTables?: (tables: Extract<DispatcherMessage, { type: 'service-tables' }>['tables'], ingress: Extract<DispatcherMessage, { type: 'service-tables' }>['ingress'], revision: number | undefined) => void;
  onTablesSettled?: (revision: number) => void;
  /** A session with the leader has just opened. */
  onSessionOpen?: () => void;
  /** How busy the host is, sent with each heartbeat. */
  usage?: () => HostUsage;
  log: Logger;
}

// Short: a dial to a host whose link just came back waits out TCP's SYN backoff, where a new
// dial connects at once (measured: the partition-heal time was dominated by this wait).
const dialTimeoutMs = 2_500;
/** How long a first start keeps trying to reach a manager that will register it. */
const joinPatienceMs = 60_000;

/** Drops empty and repeated address lists, keeping the first occurrence's place. */
function uniqueAddressLists(lists: string[][]): string[][] {
  const seen = new Set<string>();
  // A list naming several peers (a state file from before join addresses were kept apart) is one candidate per address.
  const peerOf = (address: string) => /\/p2p\/([^/]+)$/.exec(address)?.[1] ?? address;
  const split = lists.flatMap((addrs) => (new Set(addrs.map(peerOf)).size > 1 ? addrs.map((a) => [a]) : [addrs]));
  return split.filter((addrs) => {
    const key = addrs.join(',');
    if (addrs.length === 0 || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}

/**
 * Joins the cluster once (remembered in the state dir), then keeps one dispatcher session
 * with the leader: heartbeats at the period the leader sets, and on a lost session or a
 * redirect, finds the leader again among the managers it knows, without joining again.
 */
export class AgentSession {
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private state: AgentState | undefined;
  private channel: FramedChannel<typeof DispatcherMessage, AgentMessage> | undefined;
  /** Resolves once the first session is open, or rejects on a fatal refusal. */
  readonly ready: Promise<void>;
  private settleReady!: { resolve: () => void; reject: (error: Error) => void };
  /** Resolves when the leader refuses this node, at the first session or any later one (a removal): the agent then stops. */
  readonly refused: Promise<ShoalError>;
  private settleRefused!: (error: ShoalError) => void;

  constructor(private readonly options: AgentSessionOptions) {
    this.ready = new Promise((resolve, reject) => (this.settleReady = { resolve, reject }));
    this.refused = new Promise((resolve) => (this.settleRefused = resolve));
    this.ready.catch(() => undefined);
  }

  private get statePath(): string {
    return join(this.options.stateDir, 'node.json');
  }

  /** Joins if needed; throws a ShoalError the CLI can print when the token is refused. */
  async start(): Promise<void> {
    await mkdir(this.options.stateDir, { recursive: true });
    this.state = await readFile(this.statePath, 'utf8')
      .then((text) => JSON.parse(text) as AgentState)
      .catch(() => undefined);
    if (!this.state || this.state.nodeId !== this.options.p2p.peerId.toString() || !this.state.caCertificate) await this.joinCluster();
    this.running = this.keepSession();
  }

  private async saveState(): Promise<void> {
    await writeFile(this.statePath, `${JSON.stringify(this.state, null, 2)}\n`);
  }

  private async joinCluster(): Promise<void> {
    const token = this.options.token;
    if (!token) throw new ShoalError('invalid', 'join_token_missing', 'this agent has not joined a cluster yet', { hint: 'pass --token TOKEN' });
    const parsed = parseJoinToken(token);
    if (!parsed) throw new ShoalError('invalid', 'bad_join_token', 'this is not a Shoal join token (SHOAL-2-...)', { hint: 'get the current one with `shoal join-token worker` on a manager' });
    if (this.options.join.length === 0) throw new ShoalError('invalid', 'join_address_missing', 'no manager to join', { hint: 'pass --join MULTIADDR' });
    const request: JoinRequest = { token, description: await this.options.describe(), labels: this.options.labels };
    let lastError: unknown;
    const signal = this.abort.signal;
    const startedAt = Date.now();
    const giveUpAt = startedAt + joinPatienceMs;
    for (let round = 0; !signal.aborted; round++) {
      if (round > 0) {
        // A manager that reset the connection or did not answer may be busy (a thousand nodes
        // starting together fill its handshake slots): try again for a while, with jittered
        // backoff, rather than fail the agent's start on the first refusal.
        const delay = Math.min(8_000, 500 * 2 ** (round - 1)) * (0.5 + Math.random());
        if (Date.now() + delay > giveUpAt) break;
        this.options.log.warn('no manager registered this node yet; trying again', { inMs: Math.round(delay), error: String(lastError) });
        await sleep(delay, signal);
      }
      if (await this.joinRound(request, parsed.caDigest, (error) => (lastError = error))) return;
      if (lastError instanceof ShoalError) throw lastError;
    }
    throw new ShoalError('temporary', 'managers_unreachable', `no manager registered this node (tried ${this.options.join.join(', ')} for ${Math.round((Date.now() - startedAt) / 1000)} s)`, { cause: lastError });
  }

  /** One try of every candidate manager in turn; whether one registered this node. A refusal (bad token) throws. */
  private async joinRound(request: JoinRequest, expectedCaDigest: string, failed: (error: unknown) => void): Promise<boolean> {
    const queue = this.joinCandidates();
    for (let attempt = 0; attempt < queue.length && attempt < 10; attempt++) {
      const addrs = queue[attempt]!;
      try {
        const { stream, remotePeer } = await this.open(addrs, joinProtocol, AbortSignal.timeout(dialTimeoutMs));
        const channel = new FramedChannel<typeof JoinServerMessage, JoinRequest>(stream, JoinServerMessage);
        const greeting = await channel.receive(AbortSignal.timeout(15_000));
        const identity = 'type' in greeting ? greeting.identity : undefined;
        // The token's secret goes only to a manager with a certificate of the CA it names.
        const problem = !identity
          ? 'it did not say who it is'
          : caDigest(identity.caCertificate) !== expectedCaDigest
            ? 'its CA is not the one the join token names'
            : identityProblem(identity.certificate, identity.caCertificate, remotePeer);
        if (problem || !identity) {
          await channel.close();
          failed(new ShoalError('forbidden', 'untrusted_manager', `the manager at ${addrs[0]} is not one of this token's cluster: ${problem}; the token was not sent`, {
            hint: 'check the --join address and the token: both come from the same cluster (`shoal manager ls`, `shoal join-token`)',
          }));
          this.options.log.error('refused to join through a manager the token does not vouch for', { manager: addrs[0], problem });
          continue;
        }
        await channel.send(request);
        const response = await channel.receive(AbortSignal.timeout(15_000));
        await channel.close();
        if ('type' in response) throw new Error('the manager sent its identity twice');
        if (!response.ok && response.code === 'not_leader') {
          // Try the leader next, or this manager again once a leader is elected.
          queue.splice(attempt + 1, 0, response.leader?.p2pAddrs ?? addrs);
          if (!response.leader) await new Promise((resolve) => setTimeout(resolve, 1000));
          continue;
        }
        if (!response.ok) throw new ShoalError('forbidden', response.code, response.message, { hint: response.hint });
        this.state = { nodeId: response.nodeId, managers: [], caCertificate: identity.caCertificate, trusted: [remotePeer] };
        this.rememberManagers(response.managers);
        this.state.managers = uniqueAddressLists([...this.state.managers, ...this.joinCandidates()]);
        await this.saveState();
        this.options.log.info('joined the cluster', { nodeId: response.nodeId, role: response.role });
        return true;
      } catch (error) {
        if (error instanceof ShoalError) throw error;
        failed(error);
        this.options.log.warn('could not reach manager to join', { manager: addrs[0], error: String(error) });
      }
    }
    return false;
  }

  /** Whether a manager's record carries a certificate of the cluster CA for its peer id. */
  private vouchedFor(record: ManagerRecord): boolean {
    if (!this.state || !record.certificate) return false;
    // Every heartbeat ack lists the managers again: each certificate is checked once.
    const key = `${record.peerId} ${record.certificate}`;
    let vouched = this.checked.get(key);
    if (vouched === undefined) this.checked.set(key, (vouched = identityProblem(record.certificate, this.state.caCertificate, record.peerId) === undefined));
    return vouched;
  }

  private readonly checked = new Map<string, boolean>();

  /** Managers whose certificates were checked: the only peers allowed to call its engine. */
  isManager(peerId: string): boolean {
    return this.state?.trusted.includes(peerId) ?? false;
  }

  /** Candidate managers: the last known leader first, then the rest, then the --join addresses. */
  private candidates(): string[][] {
    return uniqueAddressLists([...(this.state?.managers ?? []), ...this.joinCandidates()]);
  }

  /**
   * Each --join address is a manager of its own: dialled together, addresses of different
   * peers make libp2p refuse the dial ("Multiaddrs must all have the same peer id").
   */
  private joinCandidates(): string[][] {
    return this.options.join.map((address) => [address]);
  }

  /** Remembers managers to try, leader first; a redirect names only the leader, so the rest are kept. */
  private rememberManagers(managers: ManagerRecord[], leaderFirst?: ManagerRecord): void {
    if (!this.state) return;
    // A record without a certificate of the cluster CA is not believed, whoever passed it on.
    const vouched = [...(leaderFirst ? [leaderFirst] : []), ...managers].filter((m) => this.vouchedFor(m));
    const addresses = [...vouched.map((m) => m.p2pAddrs), ...this.state.managers];
    const next = uniqueAddressLists(addresses);
    const trusted = [...new Set([...this.state.trusted, ...vouched.map((m) => m.peerId)])];
    if (JSON.stringify(next) === JSON.stringify(this.state.managers) && trusted.length === this.state.trusted.length) return;
    this.state.managers = next;
    this.state.trusted = trusted;
    void this.saveState().catch(() => undefined);
  }

  private async keepSession(): Promise<void> {
    const signal = this.abort.signal;
    let failures = 0;
    while (!signal.aborted) {
      let redirected = false;
      for (const addrs of this.candidates()) {
        if (signal.aborted) return;
        const outcome = await this.holdSession(addrs).catch((error: unknown) => {
          if (!signal.aborted) this.options.log.warn('session lost', { manager: addrs[0], error: String(error) });
          return 'lost' as const;
        });
        if (outcome === 'redirected') {
          redirected = true;
          break;
        }
        if (outcome === 'refused') return;
      }
      failures = redirected ? 0 : failures + 1;
      await sleep(redirected ? 200 : Math.min(500 * failures, 3_000), signal);
    }
  }

  private async holdSession(addrs: string[]): Promise<'redirected' | 'lost' | 'refused'> {
    const signal = this.abort.signal;
    const { stream, remotePeer } = await this.open(addrs, dispatcherProtocol, AbortSignal.any([signal, AbortSignal.timeout(dialTimeoutMs)]));
    const channel = new FramedChannel<typeof DispatcherMessage, AgentMessage>(stream, DispatcherMessage);
    /** The tasks this session has been given, kept to apply `assignment-changes` to. */
    let assigned = new Map<string, TaskAssignment>();
    try {
      await channel.send({ type: 'hello', description: await this.options.describe(), features: [assignmentChangesFeature] });
      const first = await channel.receive(AbortSignal.any([signal, AbortSignal.timeout(15_000)]));
      if (first.type === 'redirect') {
        // A manager back from a partition can name itself for a moment, from a stale view of
        // the election: going back to it would loop, so the next candidate is tried instead.
        const toItself = first.leader !== undefined && addrs.some((address) => address.endsWith(`/p2p/${first.leader!.peerId}`));
        if (first.leader && !toItself) this.rememberManagers([], first.leader);
        this.options.log.info('redirected to the leader', { leader: first.leader?.hostname ?? 'none elected yet', ...(toItself ? { ignored: 'it named itself' } : {}) });
        return toItself || !first.leader ? 'lost' : 'redirected';
      }
      if (first.type === 'refused') {
        this.options.log.error('the leader refused this node', { code: first.code, message: first.message });
        this.refuse(new ShoalError('forbidden', first.code, first.message));
        return 'refused';
      }
      if (first.type !== 'welcome') return 'lost';
      const problem = identityProblem(first.certificate, this.state!.caCertificate, remotePeer);
      if (problem) {
        this.options.log.error('a manager that is not of this cluster opened a session; leaving it', { manager: addrs[0], problem });
        return 'lost';
      }
      if (!this.state!.trusted.includes(remotePeer)) this.state!.trusted.push(remotePeer);
      this.rememberManagers(first.managers);
      this.options.log.info('session open', { manager: addrs[0], heartbeatPeriodMs: first.heartbeatPeriodMs });
      this.settleReady.resolve();
      let period = first.heartbeatPeriodMs;
      const session = new AbortController();
      const sessionSignal = AbortSignal.any([signal, session.signal]);
      // Heartbeats go out on a timer; everything the leader sends is read by the loop below.
      const heartbeats = (async () => {
        while (!sessionSignal.aborted) {
          await sleep(period, sessionSignal);
          if (!sessionSignal.aborted) await channel.send({ type: 'heartbeat', ...(this.options.usage ? { usage: this.options.usage() } : {}) }).catch(() => session.abort());
        }
      })();
      this.channel = channel;
      this.options.onSessionOpen?.();
      try {
        while (!signal.aborted) {
          const message = await channel.receive(AbortSignal.any([sessionSignal, AbortSignal.timeout(2 * period + 2_000)]));
          if (message.type === 'redirect') {
            if (message.leader) this.rememberManagers([], message.leader);
            return 'redirected';
          }
          if (message.type === 'heartbeat-ack') {
            period = message.heartbeatPeriodMs;
            this.rememberManagers(message.managers);
          }
          if (message.type === 'assignments') {
            assigned = new Map(message.tasks.map((task) => [task.id, task]));
            this.options.onAssignments?.(message.tasks);
          }
          if (message.type === 'assignment-changes') {
            for (const id of message.removed) assigned.delete(id);
            for (const task of message.set) assigned.set(task.id, task);
            this.options.onAssignments?.([...assigned.values()]);
          }
          if (message.type === 'network-peers') this.options.onPeerTables?.(message.tables);
          if (message.type === 'service-tables') this.options.onServiceTables?.(message.tables, message.ingress, message.revision);
          if (message.type === 'policy-table') this.options.onPolicyTable?.(message.table);
          if (message.type === 'tables-settled') this.options.onTablesSettled?.(message.revision);
          if (message.type === 'refused') {
            this.refuse(new ShoalError('forbidden', message.code, message.message));
            return 'refused';
          }
        }
        return 'lost';
      } finally {
        this.channel = undefined;
        session.abort();
        await heartbeats;
      }
    } finally {
      await channel.close();
    }
  }

  private refuse(error: ShoalError): void {
    this.settleReady.reject(error);
    this.settleRefused(error);
  }

  /** Sends task reports to the leader; false when no session is open (the runner reports again on the next). */
  sendStatuses(statuses: TaskStatusReport[]): boolean {
    const channel = this.channel;
    if (!channel || statuses.length === 0) return false;
    void channel.send({ type: 'task-status', statuses }).catch(() => undefined);
    return true;
  }

  /** Tells the leader this node applied the service tables of a revision; false when no session is open. */
  sendTablesApplied(revision: number): boolean {
    const channel = this.channel;
    if (!channel) return false;
    void channel.send({ type: 'tables-applied', revision }).catch(() => undefined);
    return true;
  }

  /** A stream to a manager, with the peer id noise proved on its connection. */
  private async open(addrs: string[], protocol: string, signal: AbortSignal) {
    const connection = await this.options.p2p.dial(addrs.map((a) => multiaddr(a)), { signal });
    return { stream: await connection.newStream(protocol, { signal }), remotePeer: connection.remotePeer.toString() };
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }
}
