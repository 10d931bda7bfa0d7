import { keys } from '../../shared/keys.ts';
import type { Logger } from '../../shared/log.ts';
import type { NetworkMember } from '../../shared/p2p/protocol.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { isTerminal, keepTaskSpec, type TaskObject } from '../../shared/services.ts';
import { StoreMirror } from '../../shared/store/mirror.ts';
import { SerialPasses } from '../../shared/concurrency.ts';
import type { Store } from '../../shared/store/store.ts';
import type { Peer } from '../../netplug/driver.ts';
import { type AddressLease, macFor, type NodeSubnetLease } from '../../netplug/model.ts';
import { parseIpv4, parsePrefix } from '../../netplug/ipam/ipv4.ts';
import type { Dispatcher, PeerTables } from '../dispatcher/dispatcher.ts';
import type { NetworkObject } from '../../netplug/model.ts';
import type { ServiceObject } from '../../shared/services.ts';
import { allocateAddress, releaseAddress } from '../networks.ts';
import { ingressSandboxOwner, leaseHolder } from './lease-owners.ts';
import { meshWanted, serviceTablesFrom } from './service-tables.ts';
import { policyTableFrom } from './policy-table.ts';
import type { PolicyObject, PolicyTable } from '../../netplug/policy/model.ts';

interface MirrorState {
  tasks: TaskObject[];
  /** Address leases, those of ended tasks left out. */
  leases: AddressLease[];
  services: ServiceObject[];
  nodes: NodeObject[];
  networks: NetworkObject[];
  shares: NodeSubnetLease[];
  policies: PolicyObject[];
}

/** Every node gets its full tables again this often, whatever changed: a lost message heals. */
const resendPeriodMs = 10_000;
/**
 * The periodic resend's ticks per period, each for its share of the nodes: a tick every 50 ms.
 * Each tick holds the event loop while it sends (about half a millisecond a message); 40 ticks
 * held it for 30-50 ms each with 1,000 nodes, a wait that fell on whatever API call or placement
 * came in meanwhile.
 */
const resendSlices = 200;

/**
 * The leader's network tables. Peer tables: for each node, every remote endpoint of each network the node has
 * an endpoint on, from the address leases in etcd. Sent through the dispatcher when they
 * change, when a session opens, and periodically (anti-entropy). Endpoints on a node that is
 * not ready are left out, so they are withdrawn everywhere once node health marks it down.
 * Service tables (names and VIPs, `service-tables.ts`) go the same way, with the same triggers;
 * and while any service publishes in ingress mode, every node holds an ingress sandbox address.
 */
export class PeerTableLoop {
  private mirror: StoreMirror | undefined;
  private timer: NodeJS.Timeout | undefined;
  private resend: NodeJS.Timeout | undefined;
  private stopListening: () => void = () => undefined;
  /** Each node's service tables as last computed (JSON), to tell a change from a new node. */
  private serviceTablesHeld = new Map<string, string>();
  /** Starts from the clock, so a new leader's revisions follow its predecessor's. */
  private serviceTablesRevision = Date.now();

  constructor(
    private readonly store: Store,
    private readonly dispatcher: Dispatcher,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.mirror = await StoreMirror.open(this.store, [keys.addresses, keys.nodes, keys.tasks, keys.services, keys.networks, keys.nodeSubnets, keys.policies], (key, value, previous) => {
      // A task on no network is in no table: its reports (30,000 of them in a large start)
      // need no computation of every node's tables; nor does a service on none.
      if (key.startsWith(keys.tasks) && !onNetwork(value) && !onNetwork(previous)) return;
      if (key.startsWith(keys.services) && !servesOnNetwork(value) && !servesOnNetwork(previous)) return;
      if (key.startsWith(keys.nodes)) return this.nodeChanged((value ?? previous) as NodeObject | undefined, value !== undefined);
      this.soon();
    }, keepTaskSpec);
    this.stopListening = this.dispatcher.onSessionOpen((nodeId) => this.nodeChanged(this.mirror?.get<NodeObject>(keys.node(nodeId))?.value, true));
    this.resend = setInterval(() => {
      try {
        this.resendSlice();
      } catch (error) {
        this.log.warn('tables not resent', { error: String(error) });
      }
    }, resendPeriodMs / resendSlices);
    this.refresh();
    for (const { value } of this.mirror.values<NodeObject>(keys.nodes)) this.dispatcher.resendTables(value.id);
  }

  /** Addresses held per network, by network name (for the metrics' gauge); undefined before the mirror is open. */
  endpointsByNetwork(): Map<string, number> | undefined {
    const mirror = this.mirror;
    if (!mirror) return undefined;
    const names = new Map(mirror.values<NetworkObject>(keys.networks).map(({ value }) => [value.id, value.spec.name]));
    const counts = new Map<string, number>();
    for (const { value } of mirror.values<AddressLease>(keys.addresses)) {
      const name = names.get(value.networkId) ?? value.networkId;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    return counts;
  }

  /** How long the last computation of every node's tables took. */
  private lastSendMs = 0;

  /**
   * Changes come in bursts (a service's tasks); one computation follows each burst. The wait is
   * short, since a task that stops or fails its health check leaves the VIPs through here, but
   * at least three times the last computation: with a thousand nodes each one costs tens of
   * milliseconds, and a join storm must leave the event loop to the joins.
   */
  private soon(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      const startedAt = performance.now();
      this.send();
      this.lastSendMs = performance.now() - startedAt;
    }, Math.max(10, 3 * this.lastSendMs));
  }

  /**
   * Nodes that held an address, a host subnet or a task on a network at the last computation.
   * Any other node is in no table but its own, so a change to it (a join, a session opening, its
   * state) changes no other node's tables: it gets its own, and nothing is computed for the
   * rest. A thousand nodes joining used to compute every node's tables for each burst of
   * session openings (1.2 s of the leader's 14.5 s busy in 1,000 joins).
   */
  private inTables = new Set<string>();
  /** The policy table as last computed, and its key: every node gets the same one. */
  private policy: { table: PolicyTable; key: string } | undefined;

  private nodeChanged(node: NodeObject | undefined, present: boolean): void {
    // A computation pending may hold changes (a first address for this node) that the set does
    // not know of yet: then the node waits for it like everyone else.
    if (!node || this.timer || !this.policy || this.inTables.has(node.id)) return this.soon();
    if (present) this.sendOwn(node, this.policy);
  }

  /** A node in no table gets its own tables alone, computed as the whole computation would. */
  private sendOwn(node: NodeObject, policy: { table: PolicyTable; key: string }): void {
    const alone: MirrorState = { tasks: [], leases: [], services: [], nodes: [node], networks: [], shares: [], policies: [] };
    try {
      this.dispatcher.sendPeerTables(node.id, peerTablesFrom(alone.leases, alone.nodes).get(node.id)!);
      const tables = serviceTablesFrom(alone).get(node.id)!;
      const json = JSON.stringify(tables);
      this.serviceTablesHeld.set(node.id, json);
      this.dispatcher.sendServiceTables(node.id, { ...tables, revision: this.serviceTablesRevision }, `${this.serviceTablesRevision}:${json}`);
      this.dispatcher.sendPolicyTable(node.id, policy.table, policy.key);
    } catch (error) {
      this.log.warn('tables not sent', { node: node.id, error: String(error) });
    }
    // While the routing mesh is wanted, a new node needs its ingress sandbox address.
    this.ingressSandboxes.request();
  }

  /** What the mirror holds now, read once for every table a pass computes (the live leases among it). */
  private state(mirror: StoreMirror): MirrorState {
    const tasks = mirror.values<TaskObject>(keys.tasks).map((t) => t.value);
    return {
      tasks,
      leases: liveLeases(mirror.values<AddressLease>(keys.addresses).map((l) => l.value), tasks),
      services: mirror.values<ServiceObject>(keys.services).map((s) => s.value),
      nodes: mirror.values<NodeObject>(keys.nodes).map((n) => n.value),
      networks: mirror.values<NetworkObject>(keys.networks).map((n) => n.value),
      shares: mirror.values<NodeSubnetLease>(keys.nodeSubnets).map((l) => l.value),
      policies: mirror.values<PolicyObject>(keys.policies).map((p) => p.value),
    };
  }

  private readonly ingressSandboxes = new SerialPasses(() => this.ensureIngressSandboxes(), (error) => this.log.warn('ingress sandbox addresses not taken', { error: String(error) }));

  /**
   * The routing mesh needs an endpoint on the ingress network on every node, whether it runs a
   * task or not (Docker's ingress-sbox): one lease per node while any service publishes in
   * ingress mode, given back when none does (so the ingress network can be replaced).
   */
  private async ensureIngressSandboxes(): Promise<void> {
    const mirror = this.mirror;
    if (!mirror) return;
    const network = mirror.values<NetworkObject>(keys.networks).map((n) => n.value).find((n) => n.spec.ingress);
    if (!network) return;
    const wanted = meshWanted(mirror.values<ServiceObject>(keys.services).map((s) => s.value));
    const nodes = mirror.values<NodeObject>(keys.nodes).map((n) => n.value);
    const held = mirror
      .values<AddressLease>(keys.addresses)
      .map((l) => l.value)
      .filter((l) => l.networkId === network.id && leaseHolder(l.owner).kind === 'ingress-sandbox');
    for (const node of wanted ? nodes : []) {
      if (held.some((l) => l.owner === ingressSandboxOwner(node.id))) continue;
      await allocateAddress(this.store, network, ingressSandboxOwner(node.id), { nodeId: node.id });
    }
    for (const lease of held) {
      if (!wanted || !nodes.some((n) => lease.owner === ingressSandboxOwner(n.id))) await releaseAddress(this.store, network.id, lease.address, lease.owner);
    }
  }

  /** Which tick of the period the periodic resend is at. */
  private resendTick = 0;

  /**
   * Every node gets its tables again each period (the heal for whatever an agent could not
   * apply), spread over the period's ticks rather than all at once: with 1,000 nodes the 3,000
   * messages of one resend held the leader's event loop for 400-600 ms, and every placement and
   * API call waiting behind it (measured: a stall every 10 s in a steady run of creations, the
   * p99 of its delays). A node's tick is its place in the list modulo the ticks, so each node
   * hears once a period however few nodes there are. Each period starts by computing the
   * tables afresh.
   */
  private resendSlice(): void {
    const mirror = this.mirror;
    if (!mirror) return;
    const tick = this.resendTick;
    this.resendTick = (tick + 1) % resendSlices;
    if (tick === 0) this.refresh();
    const nodes = mirror.values<NodeObject>(keys.nodes);
    for (let i = tick; i < nodes.length; i += resendSlices) this.dispatcher.resendTables(nodes[i]!.value.id);
  }

  /** The tables computed afresh and the nodes' subnet leases renewed: each period, and at the start. */
  private refresh(): void {
    this.send();
    this.nodeSubnets.request();
  }

  private send(): void {
    const mirror = this.mirror;
    if (!mirror) return;
    let state: MirrorState;
    try {
      state = this.state(mirror);
    } catch (error) {
      return void this.log.warn('tables not computed', { error: String(error) });
    }
    this.inTables = nodesInTables(state);
    try {
      for (const [nodeId, tables] of peerTablesFrom(state.leases, state.nodes, state.shares, Date.now())) this.dispatcher.sendPeerTables(nodeId, tables);
    } catch (error) {
      this.log.warn('peer tables not sent', { error: String(error) });
    }
    try {
      const all = serviceTablesFrom(state);
      // One revision for the whole cluster's tables: it moves when tables a node already holds
      // change, and every node gets (and acknowledges) it, so the leader can tell when all of
      // them hold a change. A node that joins gets the current revision: counting it as a change
      // would resend every node's tables on each join (measured: a 500-node join spent most of
      // its time there).
      const current = new Map<string, string>();
      for (const [nodeId, tables] of all) current.set(nodeId, JSON.stringify(tables));
      let changed = false;
      for (const [nodeId, json] of current) {
        const held = this.serviceTablesHeld.get(nodeId);
        if (held !== undefined && held !== json) changed = true;
      }
      if (changed) this.serviceTablesRevision += 1;
      this.serviceTablesHeld = current;
      for (const [nodeId, tables] of all) {
        this.dispatcher.sendServiceTables(nodeId, { ...tables, revision: this.serviceTablesRevision }, `${this.serviceTablesRevision}:${current.get(nodeId)}`);
      }
    } catch (error) {
      this.log.warn('service tables not sent', { error: String(error) });
    }
    try {
      const table = policyTableFrom(state);
      const key = JSON.stringify(table);
      this.policy = { table, key };
      for (const node of state.nodes) this.dispatcher.sendPolicyTable(node.id, table, key);
    } catch (error) {
      this.log.warn('policy tables not sent', { error: String(error) });
    }
    this.ingressSandboxes.request();
  }

  private readonly nodeSubnets = new SerialPasses(() => this.keepNodeSubnets(), (error) => this.log.warn('host subnet leases not renewed', { error: String(error) }));

  /**
   * Renews the subnet lease of every ready node that has endpoints in it (the lease's keep-alive,
   * on the node's behalf: agents do not reach etcd); gives back a lease that has expired with no
   * endpoint left in it, or whose node was removed. A lease whose node is down expires, and its
   * routes leave every host.
   */
  private async keepNodeSubnets(): Promise<void> {
    const mirror = this.mirror;
    if (!mirror) return;
    const leases = mirror.values<NodeSubnetLease>(keys.nodeSubnets);
    if (leases.length === 0) return;
    const nodes = new Map(mirror.values<NodeObject>(keys.nodes).map((n) => [n.value.id, n.value]));
    const live = liveLeases(mirror.values<AddressLease>(keys.addresses).map((l) => l.value), mirror.values<TaskObject>(keys.tasks).map((t) => t.value));
    // A node's addresses on a network split per host lie in its shares (calico may hold several
    // blocks): a share is used while a live address of its node lies in it. VIPs have no node.
    const span = new Map(leases.map((l) => [l.value.networkId, 2 ** (32 - parsePrefix(l.value.subnet).length)]));
    const holders = new Set(live.flatMap((a) => {
      const size = span.get(a.networkId);
      return size === undefined || !a.nodeId ? [] : [`${a.networkId}/${a.nodeId}/${Math.floor(parseIpv4(a.address) / size)}`];
    }));
    const now = Date.now();
    const ops = [];
    for (const { key, value: lease, version } of leases) {
      const used = holders.has(`${lease.networkId}/${lease.nodeId}/${Math.floor(parsePrefix(lease.subnet).base / span.get(lease.networkId)!)}`);
      if (used && nodes.get(lease.nodeId)?.status.state === 'ready') {
        if (now - lease.renewedAt > lease.ttlMs / 3) ops.push({ op: 'update' as const, key, version, value: { ...lease, renewedAt: now } });
      } else if (!used && (now - lease.renewedAt > lease.ttlMs || !nodes.has(lease.nodeId))) {
        // An empty share whose lease ran out, or of a node removed from the cluster, goes back to the pool.
        ops.push({ op: 'delete' as const, key, version });
      }
    }
    // Each on its own: one lease changed meanwhile must not hold the others back.
    for (const op of ops) await this.store.commit([op]);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    clearInterval(this.resend);
    this.stopListening();
    await this.ingressSandboxes.settled();
    await this.mirror?.close();
    this.mirror = undefined;
  }
}

/** The nodes whose state can change another node's tables: those with an address, a host subnet or a task on a network. */
function nodesInTables(state: MirrorState): Set<string> {
  const nodes = new Set<string>();
  for (const lease of state.leases) if (lease.nodeId) nodes.add(lease.nodeId);
  for (const share of state.shares) nodes.add(share.nodeId);
  for (const task of state.tasks) if (task.nodeId && onNetwork(task)) nodes.add(task.nodeId);
  return nodes;
}

/** Whether a task has an endpoint on any network (only then is it in a table). */
function onNetwork(task: unknown): boolean {
  return ((task as TaskObject | undefined)?.attachments?.length ?? 0) > 0;
}

/** Whether a service is reached on any network (its names, VIPs or published ports are in the tables). */
function servesOnNetwork(service: unknown): boolean {
  return ((service as ServiceObject | undefined)?.endpoint?.networks?.length ?? 0) > 0;
}

/**
 * The leases whose endpoint may still be live. A task keeps its address until its history is
 * dropped (so a copy still running on a cut-off host never shares it), but once the task has
 * ended its endpoint is gone, and the hosts must forget it (measured: FDB and neighbour entries
 * of ended tasks stayed on every host for as long as their history did).
 */
export function liveLeases(leases: readonly AddressLease[], tasks: readonly TaskObject[]): AddressLease[] {
  const ended = new Set(tasks.filter((t) => isTerminal(t.status.state)).map((t) => t.id));
  return leases.filter((lease) => !ended.has(lease.owner));
}

/**
 * Every node's peer tables from the address leases: the remote endpoints of each network the
 * node has an endpoint on, and the network's other member hosts (whose announcements the node
 * may trust). Endpoints and members on nodes that are not ready are left out (withdrawn).
 */
export function peerTablesFrom(leases: readonly AddressLease[], nodeList: readonly NodeObject[], nodeSubnets: readonly NodeSubnetLease[] = [], now = Date.now()): Map<string, PeerTables> {
  const nodes = new Map(nodeList.map((n) => [n.id, n]));
  const result = new Map<string, PeerTables>();
  const peersOf = new Map<string, Peer[]>();
  const membersOf = new Map<string, Map<string, NetworkMember>>();
  const networksOf = new Map<string, Set<string>>();
  for (const lease of leases) {
    const node = lease.nodeId ? nodes.get(lease.nodeId) : undefined;
    if (!node) continue;
    if (!networksOf.has(node.id)) networksOf.set(node.id, new Set());
    networksOf.get(node.id)!.add(lease.networkId);
    if (node.status.state !== 'ready') continue;
    if (!peersOf.has(lease.networkId)) peersOf.set(lease.networkId, []);
    peersOf.get(lease.networkId)!.push({ address: lease.address, mac: macFor(lease.address), host: node.description.address });
    if (!membersOf.has(lease.networkId)) membersOf.set(lease.networkId, new Map());
    membersOf.get(lease.networkId)!.set(node.id, { nodeId: node.id, host: node.description.address, p2pAddrs: node.description.p2pAddrs });
  }
  // Networks split per host: each ready node's unexpired subnet, routed to through that node.
  const routesOf = new Map<string, Array<{ subnet: string; host: string }>>();
  for (const lease of nodeSubnets) {
    const node = nodes.get(lease.nodeId);
    if (!node || node.status.state !== 'ready' || now - lease.renewedAt > lease.ttlMs) continue;
    if (!routesOf.has(lease.networkId)) routesOf.set(lease.networkId, []);
    routesOf.get(lease.networkId)!.push({ subnet: lease.subnet, host: node.description.address });
  }
  for (const node of nodes.values()) {
    const own = [...(networksOf.get(node.id) ?? [])].sort();
    result.set(
      node.id,
      own.map((networkId) => ({
        networkId,
        peers: (peersOf.get(networkId) ?? []).filter((p) => p.host !== node.description.address).sort((a, b) => a.address.localeCompare(b.address)),
        members: [...(membersOf.get(networkId)?.values() ?? [])].filter((m) => m.nodeId !== node.id).sort((a, b) => a.nodeId.localeCompare(b.nodeId)),
        routes: (routesOf.get(networkId) ?? []).filter((r) => r.host !== node.description.address).sort((a, b) => a.subnet.localeCompare(b.subnet)),
      })),
    );
  }
  return result;
}
