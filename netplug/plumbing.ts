/**
 * An agent's network data plane: the drivers (from the registry), which sandbox interface each
 * attachment gets (eth0, eth1, ...), the endpoints this host holds per network, and what the
 * drivers with abilities need: peers for peer-aware drivers (from the leader's tables and
 * what the other agents announce) and routes for route-aware ones (one shared route loop).
 * Every change to one network takes its turn in that network's queue, so a leave that finds no
 * endpoint left never tears the network down under a join that is making it.
 */
import type { NetworkAttachment } from '../shared/containers.ts';
import { inBackground } from '../shared/concurrency.ts';
import { errors } from '../shared/errors.ts';
import type { EndpointAnnouncement, NetworkMember } from '../shared/p2p/protocol.ts';
import { type Endpoint, endpointOf, type Network, type Sandbox } from './cnm.ts';
import { type DriverDiagnosis, isDiagnosable, isPeerAware, isRouteAware, isVxlanProbeable, type NetworkDriver, type RouteEntry } from './driver.ts';
import { EgressGuard } from './egress-guard.ts';
import { HostNamespace } from './host.ts';
import { macFor, gatewayBridge } from './model.ts';
import { type HeardFrom, type IgnoredFrom, type LeaderTable, PeerView } from './peer-view.ts';
import { type AgentContext, type DriverRegistry } from './registry.ts';
import { type RouteState, routeStateProblems, RouteSync } from './route-sync.ts';
import { type ProbeEnd, type ProbePath, type ProbeSighting, type ProbeStage, VxlanProber } from './vxlan/prober.ts';

/** What a host reports of one network: its driver's kernel state, and what is wrong with it. */
export interface HostNetworkState {
  driver: string;
  /** The driver's own account (VTEP and FDB, bridge, parent, routes ...). */
  detail?: DriverDiagnosis;
  /** Endpoints of the network on this host. */
  endpoints: number;
  /** What the driver's check and the route loop found missing or wrong; empty when healthy. */
  problems: string[];
  /** Peer-aware drivers: what the network's other member hosts last announced. */
  heard?: HeardFrom[];
  ignored?: IgnoredFrom[];
  /** Route-aware drivers: each route the network wants here. */
  routes?: RouteState[];
  /**
   * The sizes that matter for the path MTU (asked for by `network trace` only): the underlay
   * interface's MTU now, the MTU the network's sandboxes were given, and what the driver's
   * encapsulation adds on the underlay.
   */
  mtu?: { underlay: number; endpoint?: number; overhead: number };
}

/** Where the plumbing tells the network's other hosts about this host's endpoints (gossip). */
export interface EndpointAnnouncer {
  /** This host's endpoints on the network now, the whole list (empty when it has left). */
  announce(networkId: string, endpoints: EndpointAnnouncement['endpoints']): void;
  /** The network's other member hosts, to stay connected to. */
  meet(members: readonly NetworkMember[]): void;
}

interface Joined {
  network: Network;
  /** Per sandbox: its endpoint and namespace. */
  endpoints: Map<string, { endpoint: Endpoint; sandbox: Sandbox }>;
}

export class NetworkPlumbing {
  private readonly drivers = new Map<string, NetworkDriver>();
  private readonly joined = new Map<string, Joined>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly view = new PeerView();
  private readonly routes: RouteSync;
  private readonly guard: EgressGuard;
  private announcer: EndpointAnnouncer | undefined;
  private prober: VxlanProber | undefined;
  /** Per network: the route entries the leader last sent. */
  private readonly routeEntries = new Map<string, RouteEntry[]>();

  /** `guardedPorts`: control-plane ports of this deployment beyond the defaults (the agent's own, its managers'). */
  constructor(
    private readonly context: AgentContext,
    private readonly registry: DriverRegistry,
    guardedPorts: readonly number[] = [],
  ) {
    this.guard = new EgressGuard(guardedPorts);
    this.routes = new RouteSync(context.host);
  }

  /** Starts announcing this host's endpoints (those already there first). */
  announceThrough(announcer: EndpointAnnouncer): void {
    this.announcer = announcer;
    for (const [networkId, joined] of this.joined) if (isPeerAware(this.driver(joined.network.driver))) this.announceLocal(networkId);
  }

  private driver(type: string): NetworkDriver {
    let driver = this.drivers.get(type);
    if (driver) return driver;
    const definition = this.registry.get(type);
    if (!definition?.agent) throw errors.invalid(`this agent has no data plane for network driver "${type}"`);
    driver = definition.agent(this.context);
    this.drivers.set(type, driver);
    return driver;
  }

  private serially<T>(networkId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(networkId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    const tail = next.catch(() => undefined);
    this.queues.set(networkId, tail);
    inBackground(
      tail.then(() => {
        if (this.queues.get(networkId) === tail) this.queues.delete(networkId);
      }),
      () => undefined,
    );
    return next;
  }

  /** Networks whose endpoints get their address from this host: local ones, which the manager leaves unaddressed. */
  private takesHostAddress(attachment: NetworkAttachment): boolean {
    const definition = this.registry.get(attachment.driver);
    if (!definition?.addressed || attachment.address) return false;
    if (!definition.scopes.includes('local')) throw errors.invalid(`network ${attachment.networkName} came with no address for this endpoint; its driver takes addresses from the cluster`);
    return true;
  }

  /**
   * Joins the sandbox to each network in order: eth0, eth1, ... Returns the attachments as
   * plumbed: local networks get their address here, from host-local IPAM. A failure undoes
   * every join made, and gives back the addresses taken here.
   */
  async attach(requestedAttachments: readonly NetworkAttachment[], netns: string, options: { firstIndex?: number; gateway?: boolean } = {}): Promise<NetworkAttachment[]> {
    const done: NetworkAttachment[] = [];
    const attachments = [...requestedAttachments];
    // No task gets a way out before the control plane is shut to it.
    if (attachments.length > 0) await this.guard.ensure();
    // Egress through the hosts' gateway bridge (Docker's docker_gwbridge) for networks with no
    // way out of their own, unless another network already gives one, or all are internal.
    const egress = (a: NetworkAttachment) => (a.internal ? undefined : this.registry.get(a.driver)?.egress);
    const needsGateway = options.gateway !== false && attachments.some((a) => egress(a) === 'gateway-bridge') && !attachments.some((a) => egress(a) === 'own');
    if (needsGateway && attachments[0]) {
      attachments.push({
        networkId: gatewayBridge.networkId, networkName: gatewayBridge.name, driver: gatewayBridge.driver, scope: 'local', subnet: gatewayBridge.subnet, gateway: gatewayBridge.gateway,
        address: '', mac: '', internal: false, options: { icc: 'false' }, data: {}, owner: attachments[0].owner,
      });
    }
    try {
      for (const [index, requested] of attachments.entries()) {
        const hostAddress = this.takesHostAddress(requested);
        let attachment = requested;
        if (hostAddress) {
          const address = await this.context.hostIpam.allocate(requested.networkId, requested.subnet, requested.gateway, requested.owner);
          attachment = { ...requested, address, mac: macFor(address) };
        }
        try {
          await this.join(attachment, { id: attachment.owner, netns }, `eth${(options.firstIndex ?? 0) + index}`);
        } catch (error) {
          if (hostAddress) await this.context.hostIpam.release(attachment.networkId, attachment.owner).catch(() => undefined);
          throw error;
        }
        done.push(attachment);
      }
    } catch (error) {
      await this.detach(done, netns);
      throw error;
    }
    return done;
  }

  /** One endpoint: the network made on this host with its first endpoint, then the join; a network left empty by a failure is removed. */
  private async join(attachment: NetworkAttachment, sandbox: Sandbox, ifname: string): Promise<void> {
    const driver = this.driver(attachment.driver);
    const endpoint = endpointOf(attachment, ifname);
    await this.serially(attachment.networkId, async () => {
      let joined = this.joined.get(attachment.networkId);
      if (!joined) {
        joined = { network: endpoint.network, endpoints: new Map() };
        this.joined.set(attachment.networkId, joined);
      }
      try {
        if (joined.endpoints.size === 0) await driver.createNetwork(endpoint.network);
        await driver.join(endpoint, sandbox);
        joined.endpoints.set(sandbox.id, { endpoint, sandbox });
      } catch (error) {
        if (joined.endpoints.size === 0) {
          await driver.deleteNetwork(endpoint.network).catch(() => undefined);
          this.joined.delete(attachment.networkId);
        }
        throw error;
      }
    });
    this.afterChange(attachment.networkId, driver);
    if (isPeerAware(driver)) await this.reconcile([attachment.networkId], true);
    if (isRouteAware(driver)) await this.applyRoutes(attachment.networkId);
  }

  /** Leaves each network; the last endpoint on a network takes the network's state on this host with it. */
  async detach(attachments: readonly NetworkAttachment[], netns: string): Promise<void> {
    for (const attachment of attachments) {
      const definition = this.registry.get(attachment.driver);
      if (!definition?.agent) continue;
      const driver = this.driver(attachment.driver);
      await this.serially(attachment.networkId, async () => {
        const joined = this.joined.get(attachment.networkId);
        const held = joined?.endpoints.get(attachment.owner);
        const endpoint = held?.endpoint ?? endpointOf(attachment, '');
        await driver.leave(endpoint, held?.sandbox ?? { id: attachment.owner, netns }).catch(() => undefined);
        if (definition.addressed && definition.scopes.includes('local')) await this.context.hostIpam.release(attachment.networkId, attachment.owner).catch(() => undefined);
        if (!joined) return;
        joined.endpoints.delete(attachment.owner);
        if (joined.endpoints.size > 0) return;
        this.joined.delete(attachment.networkId);
        await driver.deleteNetwork(joined.network).catch(() => undefined);
      }).catch(() => undefined);
      this.afterChange(attachment.networkId, driver);
      if (isRouteAware(driver)) await this.applyRoutes(attachment.networkId).catch(() => undefined);
    }
  }

  /** After a restart: the endpoints of sandboxes still there, so tables apply to them and their networks stay. */
  adopt(attachments: readonly NetworkAttachment[], netns: string): void {
    for (const [index, attachment] of attachments.entries()) {
      if (!this.registry.get(attachment.driver)?.agent) continue;
      const endpoint = endpointOf(attachment, `eth${index}`);
      let joined = this.joined.get(attachment.networkId);
      if (!joined) this.joined.set(attachment.networkId, (joined = { network: endpoint.network, endpoints: new Map() }));
      joined.endpoints.set(attachment.owner, { endpoint, sandbox: { id: attachment.owner, netns } });
      this.afterChange(attachment.networkId, this.driver(attachment.driver));
    }
  }

  /**
   * After a join or leave: a peer-aware network's other hosts hear of this host's endpoints
   * (gossip); a network this host has left is forgotten.
   */
  private afterChange(networkId: string, driver: NetworkDriver): void {
    if (isPeerAware(driver)) this.announceLocal(networkId);
    if (this.joined.has(networkId)) return;
    this.view.forget(networkId);
    this.applied.delete(networkId);
    this.routeEntries.delete(networkId);
  }

  private announceLocal(networkId: string): void {
    const joined = this.joined.get(networkId);
    const endpoints = [...(joined?.endpoints.values() ?? [])].map(({ endpoint }) => ({ address: endpoint.address, mac: endpoint.mac }));
    this.announcer?.announce(networkId, endpoints);
  }

  /** Per network: a change to apply, and whether to read the kernel even if the peers look unchanged. */
  private readonly dirty = new Map<string, boolean>();
  /** Per network: the peers last applied, so a repeated announcement costs nothing. */
  private readonly applied = new Map<string, string>();
  private applying: Promise<void> | undefined;

  /**
   * Brings the peer-aware networks' kernel state to what the view holds. Every change goes
   * through this one queue: two appliers reading the kernel at once could each delete what the
   * other just added. Resolves once the networks asked for are applied.
   */
  private reconcile(networkIds: Iterable<string>, force: boolean): Promise<void> {
    for (const networkId of networkIds) this.dirty.set(networkId, force || (this.dirty.get(networkId) ?? false));
    this.applying ??= (async () => {
      while (this.dirty.size > 0) {
        const batch = [...this.dirty];
        this.dirty.clear();
        for (const [networkId, forced] of batch) {
          const joined = this.joined.get(networkId);
          const driver = joined ? this.driver(joined.network.driver) : undefined;
          if (!joined || !driver || !isPeerAware(driver)) continue;
          const peers = this.view.peers(networkId, Date.now());
          const key = JSON.stringify(peers);
          if (!forced && this.applied.get(networkId) === key) continue;
          await driver.setPeers(joined.network, peers).catch(() => undefined);
          this.applied.set(networkId, key);
        }
      }
    })().finally(() => (this.applying = undefined));
    return this.applying;
  }

  /** Tells the shared route loop what one network wants now (nothing once the host left it, or for a driver with no routes). */
  private wantRoutes(networkId: string): void {
    const joined = this.joined.get(networkId);
    const driver = joined ? this.driver(joined.network.driver) : undefined;
    this.routes.set(networkId, joined && driver && isRouteAware(driver) ? driver.routes(joined.network, this.routeEntries.get(networkId) ?? []) : []);
  }

  private applyRoutes(networkId: string): Promise<void> {
    this.wantRoutes(networkId);
    return this.routes.sync();
  }

  /**
   * Takes the leader's full tables and applies them, reading each driver's kernel state afresh
   * (the anti-entropy: whatever was lost or deleted by hand comes back).
   */
  async setPeers(tables: ReadonlyArray<LeaderTable & { routes?: RouteEntry[] }>): Promise<void> {
    this.view.setLeaderTables(tables);
    this.announcer?.meet(tables.flatMap((t) => t.members));
    this.routeEntries.clear();
    for (const table of tables) if (table.routes?.length) this.routeEntries.set(table.networkId, table.routes);
    for (const networkId of this.joined.keys()) this.wantRoutes(networkId);
    await Promise.all([this.reconcile(this.joined.keys(), true), this.routes.sync()]);
  }

  /** Takes another agent's announcement (already known to come from that node). */
  hear(nodeId: string, announcement: EndpointAnnouncement): Promise<void> {
    if (!this.view.hear(nodeId, announcement, Date.now())) return Promise.resolve();
    return this.reconcile([announcement.networkId], false);
  }

  /**
   * `network check --repair`: the network's peer entries and routes programmed again from the
   * tables this host holds, whatever was applied before (the drivers compare with the kernel).
   */
  async repair(networkId: string): Promise<boolean> {
    if (!this.joined.has(networkId)) return false;
    this.wantRoutes(networkId);
    await Promise.all([this.reconcile([networkId], true), this.routes.sync()]);
    return true;
  }

  /** The underlay's MTU read now (a host's MTU can change under the agent), and a local sandbox's. */
  private async mtuFacts(joined: Joined): Promise<NonNullable<HostNetworkState['mtu']>> {
    const linkMtu = async (host: HostNamespace, device: string) => (JSON.parse(await host.ip(['-j', 'link', 'show', 'dev', device]).catch(() => '[]')) as Array<{ mtu?: number }>)[0]?.mtu;
    const [first] = joined.endpoints.values();
    const [underlay, endpoint] = await Promise.all([
      linkMtu(this.context.host, this.context.underlay.device),
      first ? linkMtu(new HostNamespace(first.sandbox.netns), first.endpoint.ifname) : Promise.resolve(undefined),
    ]);
    return { underlay: underlay ?? this.context.underlay.mtu, ...(endpoint ? { endpoint } : {}), overhead: this.registry.get(joined.network.driver)?.overhead ?? 0 };
  }

  /** What this host holds for a network, and what is wrong with it (undefined: no endpoint here). */
  async diagnose(networkId: string, options: { mtu?: boolean } = {}): Promise<HostNetworkState | undefined> {
    const joined = this.joined.get(networkId);
    if (!joined) return undefined;
    const driver = this.driver(joined.network.driver);
    const [detail, problems, routes] = await Promise.all([
      isDiagnosable(driver) ? driver.diagnose(joined.network) : Promise.resolve(undefined),
      driver.check(joined.network).catch((error: unknown) => [`check failed: ${String(error)}`]),
      isRouteAware(driver) ? this.routes.state(networkId) : Promise.resolve(undefined),
    ]);
    const routeProblems = routes ? routeStateProblems(routes) : [];
    const now = Date.now();
    const mtu = options.mtu ? await this.mtuFacts(joined) : undefined;
    return {
      ...(mtu ? { mtu } : {}),
      driver: joined.network.driver,
      ...(detail ? { detail } : {}),
      endpoints: joined.endpoints.size,
      problems: [...problems, ...routeProblems],
      ...(isPeerAware(driver) ? { heard: this.view.heardFrom(networkId, now), ignored: this.view.ignoredFrom(networkId, now) } : {}),
      ...(routes ? { routes } : {}),
    };
  }

  /** The path a VXLAN probe takes on this host to a local endpoint of the network. */
  private probePath(networkId: string, address: string): ProbePath {
    const joined = this.joined.get(networkId);
    if (!joined) throw errors.notFound('network endpoint', address, 'this host has no endpoint on the network');
    const driver = this.driver(joined.network.driver);
    if (!isVxlanProbeable(driver)) throw errors.invalid(`network ${joined.network.name} (${joined.network.driver}) does not carry its traffic over VXLAN`);
    const local = [...joined.endpoints.values()].find((e) => e.endpoint.address === address);
    if (!local) throw errors.notFound('network endpoint', address, 'it is not on this host (any more)');
    return driver.probePath(joined.network, local.endpoint, local.sandbox);
  }

  private vxlanProber(): VxlanProber {
    this.prober ??= new VxlanProber(this.context.host, this.context.underlay.address);
    return this.prober;
  }

  /** `network trace`: watches for a probe frame on its way to or from a local endpoint; says which stages cannot be watched. */
  watchProbe(networkId: string, address: string, nonce: number): Promise<Partial<Record<ProbeStage, string>>> {
    return this.vxlanProber().watch(this.probePath(networkId, address), nonce);
  }

  /** Sends a probe frame from a local endpoint's addresses to a remote one's VTEP; resolves with its size. */
  sendProbe(networkId: string, from: ProbeEnd, to: ProbeEnd, vtep: string, nonce: number, size?: number): Promise<number> {
    return this.vxlanProber().send(this.probePath(networkId, from.address).vni, from, to, vtep, nonce, size);
  }

  readProbe(nonce: number, last: ProbeStage, waitMs: number): Promise<ProbeSighting> {
    return this.vxlanProber().read(nonce, last, waitMs);
  }

  /** Removes the probe watches in flight and closes the prober's socket. */
  close(): void {
    this.prober?.close();
  }
}
