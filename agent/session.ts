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
  dispatcherProtocol,
  type HostUsage,
  type JoinRequest,
  JoinResponse,
  joinProtocol,
  type TaskStatusReport,
} from '../shared/p2p/protocol.ts';
import type { TaskAssignment } from '../shared/services.ts';
import type { Labels, ManagerRecord, NodeDescription } from '../shared/schemas.ts';

interface AgentState {
  nodeId: string;
  clusterId?: string;
  /** Managers last heard of, leader first: where to look for the leader after a restart. */
  managers: string[][];
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
  /** A session with the leader has just opened. */
  onSessionOpen?: () => void;
  /** How busy the host is, sent with each heartbeat. */
  usage?: () => HostUsage;
  log: Logger;
}

// Short: a dial to a host whose link just came back waits out TCP's SYN backoff, where a new
// dial connects at once (measured: the partition-heal time was dominated by this wait).
const dialTimeoutMs = 2_500;

/** Drops empty and repeated address lists, keeping the first occurrence's place. */
function uniqueAddressLists(lists: string[][]): string[][] {
  const seen = new Set<string>();
  return lists.filter((addrs) => {
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

  constructor(private readonly options: AgentSessionOptions) {
    this.ready = new Promise((resolve, reject) => (this.settleReady = { resolve, reject }));
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
    if (!this.state || this.state.nodeId !== this.options.p2p.peerId.toString()) await this.joinCluster();
    this.running = this.keepSession();
  }

  private async saveState(): Promise<void> {
    await writeFile(this.statePath, `${JSON.stringify(this.state, null, 2)}\n`);
  }

  private async joinCluster(): Promise<void> {
    const token = this.options.token;
    if (!token) throw new ShoalError('invalid', 'join_token_missing', 'this agent has not joined a cluster yet', { hint: 'pass --token TOKEN' });
    if (this.options.join.length === 0) throw new ShoalError('invalid', 'join_address_missing', 'no manager to join', { hint: 'pass --join MULTIADDR' });
    const request: JoinRequest = { token, description: await this.options.describe(), labels: this.options.labels };
    let lastError: unknown;
    const queue = this.options.join.map((address) => [address]);
    for (let attempt = 0; attempt < queue.length && attempt < 10; attempt++) {
      const addrs = queue[attempt]!;
      try {
        const stream = await this.options.p2p.dialProtocol(addrs.map((a) => multiaddr(a)), joinProtocol, { signal: AbortSignal.timeout(dialTimeoutMs) });
        const channel = new FramedChannel<typeof JoinResponse, JoinRequest>(stream, JoinResponse);
        await channel.send(request);
        const response = await channel.receive(AbortSignal.timeout(15_000));
        await channel.close();
        if (!response.ok && response.code === 'not_leader') {
          // Try the leader next, or this manager again once a leader is elected.
          queue.splice(attempt + 1, 0, response.leader?.p2pAddrs ?? addrs);
          if (!response.leader) await new Promise((resolve) => setTimeout(resolve, 1000));
          continue;
        }
        if (!response.ok) throw new ShoalError('forbidden', response.code, response.message, { hint: response.hint });
        this.state = { nodeId: response.nodeId, managers: uniqueAddressLists([...response.managers.map((m) => m.p2pAddrs), this.options.join]) };
        await this.saveState();
        this.options.log.info('joined the cluster', { nodeId: response.nodeId, role: response.role });
        return;
      } catch (error) {
        if (error instanceof ShoalError) throw error;
        lastError = error;
        this.options.log.warn('could not reach manager to join', { manager: addrs[0], error: String(error) });
      }
    }
    throw new ShoalError('temporary', 'managers_unreachable', `no manager registered this node (tried ${this.options.join.join(', ')})`, { cause: lastError });
  }

  /** Peer ids of the managers this agent knows: the only peers allowed to call its engine. */
  isManager(peerId: string): boolean {
    return (this.state?.managers ?? []).some((addrs) => addrs.some((address) => address.endsWith(`/p2p/${peerId}`)));
  }

  /** Candidate managers: the last known leader first, then the rest, then the --join addresses. */
  private candidates(): string[][] {
    return uniqueAddressLists([...(this.state?.managers ?? []), this.options.join]);
  }

  /** Remembers managers to try, leader first; a redirect names only the leader, so the rest are kept. */
  private rememberManagers(managers: ManagerRecord[], leaderFirst?: ManagerRecord): void {
    if (!this.state) return;
    const addresses = [...(leaderFirst ? [leaderFirst.p2pAddrs] : []), ...managers.map((m) => m.p2pAddrs), ...this.state.managers];
    const next = uniqueAddressLists(addresses);
    if (JSON.stringify(next) === JSON.stringify(this.state.managers)) return;
    this.state.managers = next;
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
    const stream = await this.dial(addrs);
    const channel = new FramedChannel<typeof DispatcherMessage, AgentMessage>(stream, DispatcherMessage);
    try {
      await channel.send({ type: 'hello', description: await this.options.describe() });
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
        this.settleReady.reject(new ShoalError('forbidden', first.code, first.message));
        return 'refused';
      }
      if (first.type !== 'welcome') return 'lost';
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
          if (message.type === 'assignments') this.options.onAssignments?.(message.tasks);
          if (message.type === 'network-peers') this.options.onPeerTables?.(message.tables);
          if (message.type === 'refused') {
            this.settleReady.reject(new ShoalError('forbidden', message.code, message.message));
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

  /** Sends task reports to the leader; false when no session is open (the runner reports again on the next). */
  sendStatuses(statuses: TaskStatusReport[]): boolean {
    const channel = this.channel;
    if (!channel || statuses.length === 0) return false;
    void channel.send({ type: 'task-status', statuses }).catch(() => undefined);
    return true;
  }

  private async dial(addrs: string[]) {
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(dialTimeoutMs)]);
    return this.options.p2p.dialProtocol(addrs.map((a) => multiaddr(a)), dispatcherProtocol, { signal });
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }
}
