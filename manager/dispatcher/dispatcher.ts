import type { Connection, Libp2p, Stream } from '@libp2p/interface';
import { isShoalError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { FramedChannel } from '../../shared/p2p/framed.ts';
import {
  AgentMessage,
  type DispatcherMessage,
  dispatcherProtocol,
  type HostUsage,
  JoinRequest,
  joinProtocol,
  type JoinServerMessage,
  assignmentChangesFeature,
  type ManagerIdentity,
} from '../../shared/p2p/protocol.ts';
import type { RevokedPeers } from '../revocations.ts';
import type { ClusterRecord, ManagerRecord, NodeDescription, NodeObject, NodeRole } from '../../shared/schemas.ts';
import type { TaskAssignment } from '../../shared/services.ts';
import type { PolicyTable } from '../../netplug/policy/model.ts';

type PushedMessage = Extract<DispatcherMessage, { type: 'assignments' | 'network-peers' | 'service-tables' | 'policy-table' }>;
export type PeerTables = Extract<DispatcherMessage, { type: 'network-peers' }>['tables'];
import type { Store } from '../../shared/store/store.ts';
import { heartbeatsBeforeDown } from '../../shared/version.ts';
import { roleForJoinToken } from '../../shared/tokens.ts';
import { readCluster } from '../cluster.ts';
import type { Leadership } from '../leadership.ts';
import { listManagers } from '../managers.ts';
import { markSessionsOpen, type NodeJoin, registerNodes, setNodeState } from '../nodes.ts';
import { StatusWriter } from './status-writer.ts';
import { Batches } from '../../shared/concurrency.ts';

interface Session {
  channel: FramedChannel<typeof AgentMessage, DispatcherMessage>;
  /** Whether the agent takes `assignment-changes` (its hello said so). */
  takesChanges: boolean;
  /** Per task, what this session's agent was last sent of it; none before the first list. */
  held?: Map<string, string>;
}

/** What of an assignment a resend must follow: its desired state, and whether it carries files. */
function assignmentKey(task: TaskAssignment): string {
  return `${task.desiredState}${task.files ? '+files' : ''}`;
}

const helloTimeoutMs = 10_000;
const managersCacheMs = 2_000;

/**
 * The agents' door into the cluster. Any manager takes joins (checking the join token); the
 * leader alone holds dispatcher sessions, through which agents heartbeat. A follower answers
 * a session with a redirect to the leader; a leader that is deposed redirects all of its own.
 */
export class Dispatcher {
  private readonly sessions = new Map<string, Session>();
  /** Last heartbeat per node in this term; kept after a session ends so the grace period runs from it. */
  private readonly lastHeard = new Map<string, number>();
  /** What the leader wants each node to have (its tasks, its peer tables), and what was last sent. */
  private readonly desired = new Map<string, Map<PushedMessage['type'], { message: PushedMessage; key: string; sent?: string }>>();
  /** Exposed so the leader can hand it its store mirror. */
  readonly statuses: StatusWriter;
  /**
   * Joins and session openings arriving together share their store round trips: one read of
   * the cluster record and one transaction per batch (a thousand nodes starting at once).
   */
  private readonly joins = new Batches<{ nodeId: string; request: JoinRequest }, NodeRole | undefined>(async (batch) => {
    const cluster = await readCluster(this.store);
    const roles = batch.map(({ request }) => roleForJoinToken(request.token, cluster.joinTokens));
    const accepted: NodeJoin[] = batch.flatMap(({ nodeId, request }, i) => (roles[i] ? [{ nodeId, role: roles[i], description: request.description, labels: request.labels }] : []));
    if (accepted.length > 0) await registerNodes(this.store, accepted);
    return roles;
  });

  private readonly sessionOpens = new Batches<{ nodeId: string; description: NodeDescription }, { node: NodeObject | undefined; cluster: ClusterRecord }>(async (batch) => {
    const [cluster, nodes] = await Promise.all([readCluster(this.store), markSessionsOpen(this.store, batch, this.leadership.fence())]);
    return nodes.map((node) => ({ node, cluster }));
  });

  /** Nodes node health marked down; a heartbeat from one marks it ready again. */
  private readonly markedDown = new Set<string>();

  nodeMarkedDown(nodeId: string): void {
    this.markedDown.add(nodeId);
  }

  private readonly sessionListeners = new Set<(nodeId: string) => void>();

  /** Calls `listener` when a session opens (so the leader's loops can send that node its state); returns how to stop. */
  onSessionOpen(listener: (nodeId: string) => void): () => void {
    this.sessionListeners.add(listener);
    return () => this.sessionListeners.delete(listener);
  }

  constructor(
    private readonly p2p: Libp2p,
    private readonly store: Store,
    private readonly leadership: Leadership,
    private readonly log: Logger,
    /** What this manager shows agents: the cluster CA and its certificate for this peer id. */
    private readonly identity: ManagerIdentity,
    private readonly revoked: Pick<RevokedPeers, 'has'>,
  ) {
    this.statuses = new StatusWriter(store, log, () => leadership.fence());
  }

  async start(): Promise<void> {
    await this.p2p.handle(joinProtocol, (stream, connection) => this.handleJoin(stream, connection));
    await this.p2p.handle(dispatcherProtocol, (stream, connection) => this.handleSession(stream, connection), {
      maxInboundStreams: 4,
    });
  }

  private readonly usages = new Map<string, HostUsage>();

  /** How busy a node said it was in its last heartbeat to this leader (kept in memory only). */
  usageOf(nodeId: string): HostUsage | undefined {
    return this.usages.get(nodeId);
  }

  /** When the leader last heard from a node in this term. */
  lastSeen(nodeId: string): number | undefined {
    return this.lastHeard.get(nodeId);
  }

  /** Records a node's assignments and sends them if its session is open and they changed. */
  assign(nodeId: string, tasks: TaskAssignment[]): void {
    let key = '';
    for (const task of tasks) key += `${task.id}:${assignmentKey(task)},`;
    this.push(nodeId, { type: 'assignments', tasks }, key);
  }

  /** Sends a node's latest tables again, changed or not (the agent re-applies them: the periodic heal). */
  resendTables(nodeId: string): void {
    const perNode = this.desired.get(nodeId);
    if (!perNode) return;
    for (const type of ['network-peers', 'service-tables', 'policy-table'] as const) {
      const entry = perNode.get(type);
      if (entry) entry.sent = undefined;
    }
    this.flush(nodeId);
  }

  /** Records a node's peer tables and sends them if its session is open and they changed. */
  sendPeerTables(nodeId: string, tables: PeerTables): void {
    this.push(nodeId, { type: 'network-peers', tables }, JSON.stringify(tables));
  }

  /** Records a node's service tables (names, VIPs, the routing mesh) and sends them if its session is open and their key changed. */
  sendServiceTables(nodeId: string, tables: Omit<Extract<DispatcherMessage, { type: 'service-tables' }>, 'type'>, key: string): void {
    this.push(nodeId, { type: 'service-tables', ...tables }, key);
  }

  /** Records a node's policy table and sends it if its session is open and it changed. */
  sendPolicyTable(nodeId: string, table: PolicyTable, key: string): void {
    this.push(nodeId, { type: 'policy-table', table }, key);
  }

  private push(nodeId: string, message: PushedMessage, key: string): void {
    let perNode = this.desired.get(nodeId);
    if (!perNode) this.desired.set(nodeId, (perNode = new Map()));
    const entry = perNode.get(message.type);
    perNode.set(message.type, { message, key, sent: entry?.sent });
    this.flush(nodeId);
  }

  /** The service-table revision each node in session said it holds. */
  private readonly tablesApplied = new Map<string, number>();
  private settledRevision = -1;

  /**
   * Tells every node when all nodes in session hold a newer revision of the service tables: an
   * agent stops a withdrawn task only then (drain first), whatever each host took to apply it.
   */
  private announceSettled(): void {
    let settled = Infinity;
    for (const nodeId of this.sessions.keys()) settled = Math.min(settled, this.tablesApplied.get(nodeId) ?? -1);
    if (!Number.isFinite(settled) || settled <= this.settledRevision) return;
    this.settledRevision = settled;
    for (const session of this.sessions.values()) void session.channel.send({ type: 'tables-settled', revision: settled }).catch(() => undefined);
  }

  /** Sends whatever changed since it was last sent, if the node's session is open. */
  private flush(nodeId: string): void {
    const session = this.sessions.get(nodeId);
    if (!session) return;
    for (const entry of this.desired.get(nodeId)?.values() ?? []) {
      if (entry.sent === entry.key) continue;
      entry.sent = entry.key;
      const message = entry.message.type === 'assignments' ? this.assignmentMessage(session, entry.message.tasks) : entry.message;
      if (!message) continue;
      void session.channel.send(message).catch(() => {
        entry.sent = undefined;
        session.held = undefined;
      });
    }
  }

  /**
   * The whole list for a session's first, or for an agent that takes no changes; after that,
   * only what changed (undefined when nothing did).
   */
  private assignmentMessage(session: Session, tasks: TaskAssignment[]): DispatcherMessage | undefined {
    const held = session.held;
    const next = new Map(tasks.map((task) => [task.id, assignmentKey(task)]));
    session.held = next;
    if (!held || !session.takesChanges) return { type: 'assignments', tasks };
    const set = tasks.filter((task) => held.get(task.id) !== next.get(task.id));
    const removed = [...held.keys()].filter((id) => !next.has(id));
    return set.length > 0 || removed.length > 0 ? { type: 'assignment-changes', set, removed } : undefined;
  }

  /** Ends every session, pointing agents at whoever leads now. */
  async redirectAll(): Promise<void> {
    const leader = await this.leaderRecord().catch(() => undefined);
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    this.lastHeard.clear();
    this.usages.clear();
    this.desired.clear();
    await Promise.all(
      sessions.map(async ({ channel }) => {
        await channel.send({ type: 'redirect', leader }).catch(() => undefined);
        await channel.close();
      }),
    );
  }

  private managersCache: { at: number; leaderId: string | undefined; records: ManagerRecord[] } | undefined;

  /** Reachable managers, leader first; cached briefly since every heartbeat ack carries them. */
  private async managerRecords(): Promise<ManagerRecord[]> {
    const leaderId = this.leadership.leaderId;
    const cached = this.managersCache;
    if (cached && cached.leaderId === leaderId && Date.now() - cached.at < managersCacheMs) return cached.records;
    const managers = await listManagers(this.store, leaderId);
    // The leader first: agents try managers in this order when they lose their session.
    const records = managers
      .filter((m) => m.reachable)
      .sort((a, b) => Number(b.leader) - Number(a.leader))
      .map(({ leader: _leader, reachable: _reachable, ...record }) => record);
    this.managersCache = { at: Date.now(), leaderId, records };
    return records;
  }

  private async leaderRecord(): Promise<ManagerRecord | undefined> {
    // Read from etcd, not the observer, which can lag after an outage; the observer's view
    // when etcd cannot answer.
    const leaderId = await this.leadership.readLeader().catch(() => this.leadership.leaderId);
    if (!leaderId) return undefined;
    return (await this.managerRecords()).find((m) => m.id === leaderId);
  }

  private async handleJoin(stream: Stream, connection: Connection): Promise<void> {
    const channel = new FramedChannel<typeof JoinRequest, JoinServerMessage>(stream, JoinRequest);
    const nodeId = connection.remotePeer.toString();
    try {
      // Who this manager is, first: the agent checks it against its token's CA digest before
      // it sends the token.
      await channel.send({ type: 'identity', identity: this.identity });
      const request = await channel.receive(AbortSignal.timeout(helloTimeoutMs));
      if (this.revoked.has(nodeId)) {
        this.log.warn('join refused: the node was removed', { node: nodeId, hostname: request.description.hostname });
        await channel.send({ ok: false, code: 'node_revoked', message: 'this node was removed from the cluster and may not join again under the same identity', hint: 'empty the agent\'s state directory so it joins with a new identity' });
        return;
      }
      if (!this.leadership.isLeader) {
        // The leader registers nodes; a follower sends the agent there.
        const leader = await this.leaderRecord();
        await channel.send({ ok: false, code: 'not_leader', message: 'this manager does not lead; join through the leader', leader });
        return;
      }
      const role = await this.joins.add({ nodeId, request });
      if (!role) {
        this.log.warn('join refused: bad token', { node: nodeId, hostname: request.description.hostname });
        await channel.send({
          ok: false,
          code: 'bad_join_token',
          message: 'the join token is not valid for this cluster (wrong, or rotated)',
          hint: 'get the current one with `shoal join-token worker` on a manager',
        });
        return;
      }
      this.log.info('node joined', { node: nodeId, hostname: request.description.hostname, role });
      await channel.send({ ok: true, nodeId, role, managers: await this.managerRecords() });
    } catch (error) {
      this.log.warn('join failed', { node: nodeId, error: String(error) });
      const message = isShoalError(error) ? error.message : 'the manager could not register the node';
      await channel.send({ ok: false, code: 'join_failed', message }).catch(() => undefined);
    } finally {
      await channel.close();
    }
  }

  private async handleSession(stream: Stream, connection: Connection): Promise<void> {
    const channel = new FramedChannel<typeof AgentMessage, DispatcherMessage>(stream, AgentMessage);
    const nodeId = connection.remotePeer.toString();
    let session: Session | undefined;
    try {
      const hello = await channel.receive(AbortSignal.timeout(helloTimeoutMs));
      if (hello.type !== 'hello') throw new Error(`expected hello, got ${hello.type}`);
      if (this.revoked.has(nodeId)) {
        await channel.send({ type: 'refused', code: 'node_revoked', message: 'this node was removed from the cluster; it may not connect again under the same identity' });
        return;
      }
      if (!this.leadership.isLeader) {
        await channel.send({ type: 'redirect', leader: await this.leaderRecord() });
        return;
      }
      // A store that cannot answer is not a verdict: the error ends this session and the agent
      // tries again, where a refusal would make it give up for good (measured after an outage).
      const { node: known, cluster } = await this.sessionOpens.add({ nodeId, description: hello.description });
      if (!known) {
        await channel.send({ type: 'refused', code: 'node_unknown', message: 'this node is not part of the cluster (removed?); join it again' });
        return;
      }
      session = { channel, takesChanges: hello.features?.includes(assignmentChangesFeature) ?? false };
      this.lastHeard.set(nodeId, Date.now());
      this.markedDown.delete(nodeId);
      const previous = this.sessions.get(nodeId);
      this.sessions.set(nodeId, session);
      if (previous) await previous.channel.close();
      this.log.info('session opened', { node: nodeId, hostname: hello.description.hostname });
      await channel.send({ type: 'welcome', heartbeatPeriodMs: cluster.heartbeatPeriodMs, managers: await this.managerRecords(), certificate: this.identity.certificate });
      for (const entry of this.desired.get(nodeId)?.values() ?? []) entry.sent = undefined;
      this.flush(nodeId);
      if (this.settledRevision >= 0) await channel.send({ type: 'tables-settled', revision: this.settledRevision });
      for (const listener of this.sessionListeners) listener(nodeId);
      for (;;) {
        const message = await channel.receive();
        if (this.sessions.get(nodeId) !== session) return;
        if (message.type === 'task-status') {
          this.lastHeard.set(nodeId, Date.now());
          this.statuses.enqueue(nodeId, message.statuses);
          continue;
        }
        if (message.type === 'tables-applied') {
          this.tablesApplied.set(nodeId, message.revision);
          this.announceSettled();
          continue;
        }
        if (message.type !== 'heartbeat') continue;
        // A gap past the grace period means node health has marked it down meanwhile, and
        // it may also have done so in a race with this session's opening.
        const flagged = this.markedDown.delete(nodeId);
        const wasDown = flagged || Date.now() - (this.lastHeard.get(nodeId) ?? 0) > heartbeatsBeforeDown * cluster.heartbeatPeriodMs;
        this.lastHeard.set(nodeId, Date.now());
        if (message.usage) this.usages.set(nodeId, message.usage);
        if (wasDown && this.leadership.isLeader) {
          await setNodeState(this.store, nodeId, 'ready', 'heartbeats resumed', { fence: this.leadership.fence() }).catch((error: unknown) =>
            this.log.warn('node not marked ready', { node: nodeId, error: String(error) }),
          );
        }
        await channel.send({ type: 'heartbeat-ack', heartbeatPeriodMs: cluster.heartbeatPeriodMs, managers: await this.managerRecords() });
      }
    } catch (error) {
      if (session) this.log.info('session ended', { node: nodeId, reason: String(error) });
      else this.log.warn('session not opened', { node: nodeId, reason: String(error) });
    } finally {
      if (session && this.sessions.get(nodeId) === session) {
        this.sessions.delete(nodeId);
        this.tablesApplied.delete(nodeId);
        // The nodes left may all hold a revision the one gone had not.
        this.announceSettled();
      }
      await channel.close();
    }
  }

  async stop(): Promise<void> {
    await this.p2p.unhandle([joinProtocol, dispatcherProtocol]).catch(() => undefined);
    await this.redirectAll();
    await this.statuses.stop();
  }
}
