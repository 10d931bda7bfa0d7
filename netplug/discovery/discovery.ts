/**
 * Service discovery on one agent: the embedded DNS of every sandbox, the VIP rules in each, the
 * ports published on the host, and the routing mesh's ingress sandbox, all following the
 * leader's service tables. Every kernel change of one sandbox goes through that sandbox's own
 * queue, so a burst of table changes applies as one.
 */
import { createServer } from 'node:net';
import dgram from 'node:dgram';
import type { ContainerSpec, NetworkAttachment, PublishedPort } from '../../shared/containers.ts';
import { errors } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { IngressTable, NameRecord, ServiceTable, VirtualAddress } from '../../shared/p2p/protocol.ts';
import { parsePrefix } from '../ipam/ipv4.ts';
import { gatewayBridge } from '../model.ts';
import { ServiceDirectory } from './directory.ts';
import { SandboxDns } from './sandbox-dns.ts';
import {
  applyMeshRoutes, applyTable, type HostPublish, listTables, type MeshReturn, meshReturn, parseSandboxRules, publishRules, rulesHold, sandboxRules, sandboxTable, type SandboxKernelRules,
} from './rules.ts';
import { inBackground } from '../../shared/concurrency.ts';
import { readNameservers, Upstreams } from './upstreams.ts';
import type { IngressMesh } from './ingress.ts';

export interface DiscoveryOptions {
  /** The host's resolv.conf: its nameservers are the upstreams of sandboxes without --dns. */
  resolvConf: string;
  /** Seconds a DNS answer may be cached (Docker's 600 lets clients keep dead tasks). */
  ttlSeconds: number;
  upstreamTimeoutMs: number;
  log: Logger;
  /** Called once every sandbox, the routing mesh and the published ports hold the tables of a revision. */
  onApplied?: (revision: number) => void;
}

/** What one host serves for a network, for `network inspect --verbose` to set against the leader's tables. */
export interface DiscoveryHostState {
  /** The names its embedded DNS answers on the network, with their addresses. */
  records: NameRecord[];
  /** The VIPs it was told of, with their backends. */
  vips: VirtualAddress[];
  /** Each local sandbox on the network, as its kernel holds it. */
  sandboxes: Array<{
    id: string;
    name: string;
    /** Whether 127.0.0.11:53 goes to this sandbox's embedded DNS, over both UDP and TCP. */
    dnsRedirected: boolean;
    /** The VIPs on this network that the sandbox's kernel spreads, with their backends. */
    vips: SandboxKernelRules['vips'];
  }>;
}

/**
 * A host's discovery state as it travels to the manager: each sandbox's VIP rules (every
 * backend of every VIP, alike on all the sandboxes of a healthy host) are sent once per
 * distinct set, not once per sandbox: 500 sandboxes with 500 backends were 1.25 MB a host.
 */
export interface PackedDiscoveryHostState extends Omit<DiscoveryHostState, 'sandboxes'> {
  vipSets: Array<SandboxKernelRules['vips']>;
  sandboxes: Array<Omit<DiscoveryHostState['sandboxes'][number], 'vips'> & { vips: number }>;
}

export function packDiscovery(state: DiscoveryHostState): PackedDiscoveryHostState {
  const seen = new Map<string, number>();
  const vipSets: PackedDiscoveryHostState['vipSets'] = [];
  const sandboxes = state.sandboxes.map((sandbox) => {
    const key = JSON.stringify(sandbox.vips);
    let index = seen.get(key);
    if (index === undefined) {
      index = vipSets.push(sandbox.vips) - 1;
      seen.set(key, index);
    }
    return { ...sandbox, vips: index };
  });
  return { ...state, vipSets, sandboxes };
}

export function unpackDiscovery(packed: PackedDiscoveryHostState): DiscoveryHostState {
  const { vipSets, ...state } = packed;
  return { ...state, sandboxes: packed.sandboxes.map((sandbox) => ({ ...sandbox, vips: vipSets[sandbox.vips] ?? [] })) };
}

interface Sandbox {
  id: string;
  netns: string;
  attachments: NetworkAttachment[];
  spec: ContainerSpec;
  /** Networks whose names it sees: all but the gateway bridge and the ingress network. */
  networkIds: string[];
  dns: SandboxDns;
  applied?: string;
  /** The mesh-return routes last put in place (JSON of the MeshReturn). */
  appliedRoutes?: string;
  applying?: Promise<void>;
  again?: boolean;
}

/** The ports the sandbox's 127.0.0.11:53 is redirected to. */
const dnsPortsOf = (sandbox: Sandbox) => ({ udpPort: sandbox.dns.udpPort, tcpPort: sandbox.dns.tcpPort });

/** How often at most the sandboxes' kernel tables are read back (at the leader's full resends). */
const kernelCheckMs = 9_000;

/** Networks without names: the default bridge (as Docker's), the gateway bridge. */
const namelessNetworks = new Set(['bridge', gatewayBridge.name]);

export class ServiceDiscovery {
  readonly directory = new ServiceDirectory();
  private readonly upstreams: Upstreams;
  private readonly sandboxes = new Map<string, Sandbox>();
  private hostServers: string[] = [];
  private hostServersReadAt = 0;
  private readonly published = new Map<string, HostPublish[]>();
  private publishing: Promise<void> = Promise.resolve();
  private mesh: IngressMesh | undefined;

  constructor(private readonly options: DiscoveryOptions) {
    this.upstreams = new Upstreams(options.upstreamTimeoutMs);
    this.directory.onChange((changed) => {
      for (const sandbox of this.sandboxes.values()) if (sandbox.networkIds.some((id) => changed.has(id))) this.applySoon(sandbox);
      if (changed.has('ingress')) {
        this.mesh?.update(this.directory.ingress());
        // The sandboxes a task sends mesh replies back through may have changed.
        for (const sandbox of this.sandboxes.values()) this.applySoon(sandbox);
      }
    });
  }

  /** The routing mesh of this host, driven by the ingress part of the tables. */
  useMesh(mesh: IngressMesh): void {
    this.mesh = mesh;
    mesh.update(this.directory.ingress());
  }

  setTables(tables: readonly ServiceTable[], ingress: IngressTable | undefined, revision?: number): void {
    this.directory.setLeaderTables(tables, ingress);
    if (revision !== undefined) {
      this.revision = revision;
      inBackground(
        this.whenApplied().then(() => {
          if (this.revision === revision) this.options.onApplied?.(revision);
        }),
        (error) => this.options.log.warn('service tables not acknowledged', { error: String(error) }),
      );
    }
    // The leader resends its whole tables every 10 s: then the kernel is read back, and a
    // sandbox table changed behind the agent's back (by hand, by a crashed apply) is put right.
    if (Date.now() - this.checkedAt >= kernelCheckMs) {
      this.checkedAt = Date.now();
      inBackground(this.checkKernel(), (error) => this.options.log.warn('sandbox rules not checked', { error: String(error) }));
    }
  }

  private checkedAt = 0;
  /** The revision of the leader's tables held now, and the one every node in session holds. */
  private revision: number | undefined;
  private settledRevision = -1;

  /** The leader says every node holds this revision of the tables, or a later one. */
  settle(revision: number): void {
    this.settledRevision = revision;
  }

  /** Resolves once no sandbox, nor the routing mesh, has a change of the tables still to apply. */
  private async whenApplied(): Promise<void> {
    for (;;) {
      const pending = [...this.sandboxes.values()].flatMap((s) => (s.applying ? [s.applying] : []));
      if (pending.length === 0) break;
      await Promise.all(pending);
    }
    await this.mesh?.settled();
    await this.publishing;
  }

  private async checkKernel(): Promise<void> {
    const settled = [...this.sandboxes.values()].filter((s) => !s.applying && s.applied !== undefined);
    const listings = await listTables(sandboxTable, settled.map((s) => s.netns));
    for (const [i, sandbox] of settled.entries()) {
      const kernel = parseSandboxRules(listings[i]!);
      if (sandbox.applying || this.sandboxes.get(sandbox.id) !== sandbox || rulesHold(kernel, dnsPortsOf(sandbox), this.vipsOf(sandbox))) continue;
      this.options.log.warn('a sandbox\'s service rules differed from the tables; applying them again', { sandbox: sandbox.spec.name ?? sandbox.id.slice(0, 12) });
      sandbox.applied = undefined;
      sandbox.appliedRoutes = undefined;
      this.applySoon(sandbox);
    }
  }

  private async refreshHostServers(): Promise<void> {
    if (Date.now() - this.hostServersReadAt < 30_000) return;
    this.hostServers = await readNameservers(this.options.resolvConf);
    this.hostServersReadAt = Date.now();
  }

  /** Gives a sandbox its embedded DNS and VIP rules; resolves once both are in place. */
  async open(id: string, netns: string, attachments: readonly NetworkAttachment[], spec: ContainerSpec): Promise<void> {
    await this.refreshHostServers();
    const networkIds = attachments.filter((a) => !namelessNetworks.has(a.networkName)).map((a) => a.networkId);
    const sandbox: Sandbox = {
      id, netns, attachments: [...attachments], spec, networkIds,
      dns: new SandboxDns({
        view: () => ({ networkIds: sandbox.networkIds, directory: this.directory, ttl: this.options.ttlSeconds }),
        upstreams: this.upstreams,
        servers: () => (spec.dns.length > 0 ? spec.dns : this.hostServers),
        log: this.options.log,
      }),
    };
    await sandbox.dns.open(netns);
    this.sandboxes.get(id)?.dns.close();
    this.sandboxes.set(id, sandbox);
    try {
      await this.apply(sandbox);
    } catch (error) {
      this.close(id);
      throw error;
    }
    this.updateLocalRecords();
  }

  /** Whether a container's sandbox is served (its DNS socket open). */
  serves(id: string): boolean {
    return this.sandboxes.has(id);
  }

  close(id: string): void {
    const sandbox = this.sandboxes.get(id);
    if (!sandbox) return;
    sandbox.dns.close();
    this.sandboxes.delete(id);
    this.updateLocalRecords();
  }

  /** Local networks have no tables from the leader: this host's sandboxes on them answer to their names. */
  private updateLocalRecords(): void {
    const records = new Map<string, NameRecord[]>();
    for (const sandbox of this.sandboxes.values()) {
      for (const attachment of sandbox.attachments) {
        if (attachment.scope === 'swarm' || namelessNetworks.has(attachment.networkName) || !attachment.address) continue;
        const names = new Set([sandbox.spec.name, sandbox.spec.hostname, ...(sandbox.spec.aliases[attachment.networkName] ?? sandbox.spec.aliases[attachment.networkId] ?? [])]);
        for (const name of names) {
          if (!name) continue;
          const list = records.get(attachment.networkId) ?? [];
          list.push({ name: name.toLowerCase(), addresses: [attachment.address] });
          records.set(attachment.networkId, list);
        }
      }
    }
    this.directory.setLocalRecords(records);
  }

  /** `network check --repair`: the DNS and VIP rules of the network's sandboxes written again, whatever was applied before. */
  async repair(networkId: string): Promise<number> {
    const touched = [...this.sandboxes.values()].filter((s) => s.networkIds.includes(networkId));
    for (const sandbox of touched) {
      sandbox.applied = undefined;
      sandbox.appliedRoutes = undefined;
      await this.apply(sandbox).catch((error: unknown) => this.options.log.warn('service rules not repaired in a sandbox', { sandbox: sandbox.id.slice(0, 12), error: String(error) }));
    }
    return touched.length;
  }

  private applySoon(sandbox: Sandbox): void {
    if (sandbox.applying) {
      sandbox.again = true;
      return;
    }
    sandbox.applying = this.apply(sandbox)
      .catch((error: unknown) => this.options.log.warn('service rules not applied to a sandbox', { sandbox: sandbox.id.slice(0, 12), error: String(error) }))
      .finally(() => {
        sandbox.applying = undefined;
        if (sandbox.again && this.sandboxes.get(sandbox.id) === sandbox) {
          sandbox.again = false;
          this.applySoon(sandbox);
        }
      });
  }

  /** The VIPs of every network a sandbox sees. */
  private vipsOf(sandbox: Sandbox): VirtualAddress[] {
    return sandbox.networkIds.flatMap((id) => this.directory.vips(id));
  }

  private async apply(sandbox: Sandbox): Promise<void> {
    const mesh = this.meshReturnOf(sandbox);
    const script = sandboxRules(dnsPortsOf(sandbox), this.vipsOf(sandbox), mesh);
    if (script === sandbox.applied) return;
    // Routes first: a connection marked by the new rules finds its table in place.
    const routes = JSON.stringify(mesh ?? null);
    if (routes !== sandbox.appliedRoutes) {
      await applyMeshRoutes(sandbox.netns, mesh);
      sandbox.appliedRoutes = routes;
    }
    await applyTable(script, sandbox.netns);
    sandbox.applied = script;
  }

  /** How a sandbox on the ingress network sends replies back through the routing mesh; none for the others. */
  private meshReturnOf(sandbox: Sandbox): MeshReturn | undefined {
    const ingress = this.directory.ingress();
    const index = ingress ? sandbox.attachments.findIndex((a) => a.networkId === ingress.attachment.networkId) : -1;
    if (!ingress || index < 0) return undefined;
    return meshReturn(`eth${index}`, parsePrefix(sandbox.attachments[index]!.subnet, false), ingress.sandboxes);
  }

  /**
   * The drain before a task is stopped: waits until none of the addresses takes traffic in this
   * host's tables (the leader withdrew them), then until the leader says every node in session
   * has applied those tables to its sandboxes, its routing mesh and its ports; at most
   * `timeoutMs`. A fixed margin was not enough: under load one host took over 1 s to apply a
   * change (an nft run per sandbox), and its client's next connection met a stopped server.
   */
  async drained(addresses: readonly string[], timeoutMs: number): Promise<boolean> {
    if (addresses.length === 0) return true;
    const deadline = Date.now() + timeoutMs;
    const wait = () => new Promise((done) => setTimeout(done, 20));
    while (this.directory.serves(addresses)) {
      if (Date.now() > deadline) return false;
      await wait();
    }
    const withdrawnIn = this.revision;
    // A leader that numbers no revision (an older one) gets the margin its tables took before.
    if (withdrawnIn === undefined) {
      await new Promise((done) => setTimeout(done, 500));
      return true;
    }
    while (this.settledRevision < withdrawnIn) {
      if (Date.now() > deadline) return false;
      await wait();
    }
    return true;
  }

  /** The network's records and VIPs on this host, and every local sandbox's kernel rules for it. */
  async diagnose(networkId: string): Promise<DiscoveryHostState> {
    const onNetwork = [...this.sandboxes.values()].filter((s) => s.networkIds.includes(networkId));
    const listings = await listTables(sandboxTable, onNetwork.map((s) => s.netns));
    const sandboxes = onNetwork.map((sandbox, i) => {
      const kernel = parseSandboxRules(listings[i]!);
      // The sandbox's other networks' VIPs belong to their own diagnosis (an address test would
      // not do: a network split per host keeps its VIPs outside each endpoint's subnet).
      const others = new Set(sandbox.networkIds.filter((id) => id !== networkId).flatMap((id) => this.directory.vips(id).map((v) => v.address)));
      return {
        id: sandbox.id,
        name: sandbox.spec.name ?? sandbox.id.slice(0, 12),
        dnsRedirected: kernel.dnsPorts.udp === sandbox.dns.udpPort && kernel.dnsPorts.tcp === sandbox.dns.tcpPort,
        vips: kernel.vips.filter((v) => !others.has(v.address)),
      };
    });
    return { records: this.directory.records(networkId), vips: this.directory.vips(networkId), sandboxes: sandboxes.sort((a, b) => a.name.localeCompare(b.name)) };
  }

  /**
   * Publishes a container's host-mode ports on this host, to its address on the gateway or
   * bridge network (a task's replies leave by its default route, through this host, so the
   * task sees the client's own address). A port another container publishes here, or a
   * process of the host listens on, is refused.
   */
  async publish(id: string, name: string, ports: readonly PublishedPort[], attachments: readonly NetworkAttachment[]): Promise<void> {
    if (ports.length === 0) return;
    const reachable = attachments.find((a) => a.networkId === gatewayBridge.networkId) ?? attachments.find((a) => a.scope === 'local' && a.address && !a.internal);
    if (!reachable) throw errors.invalid(`container ${name} publishes ports but has no network this host routes to (a bridge network, or an overlay that is not internal)`, 'join it to a bridge network or a non-internal overlay');
    for (const port of ports) {
      for (const [owner, entries] of this.published) {
        if (owner === id) continue;
        if (entries.some((e) => e.publishedPort === port.publishedPort && e.protocol === port.protocol)) {
          throw errors.conflict(`port ${port.publishedPort}/${port.protocol} is already published on this host (by ${owner.startsWith('ingress:') ? 'the routing mesh' : `container ${owner.slice(0, 12)}`})`, 'publish another port');
        }
      }
      if (!this.published.has(id)) await portFree(port.publishedPort, port.protocol, port.hostIp);
    }
    this.published.set(id, ports.map((p) => ({ protocol: p.protocol, publishedPort: p.publishedPort, to: reachable.address, toPort: p.targetPort, ...(p.hostIp ? { hostIp: p.hostIp } : {}) })));
    await this.applyPublished();
  }

  /** The routing mesh's ports: every ingress port to the ingress sandbox. */
  async publishMesh(entries: HostPublish[]): Promise<void> {
    if (entries.length === 0) this.published.delete('ingress:mesh');
    else this.published.set('ingress:mesh', entries);
    await this.applyPublished();
  }

  async unpublish(id: string): Promise<void> {
    if (!this.published.delete(id)) return;
    await this.applyPublished();
  }

  /** One queue for the host's table: two writers could each replace the other's change. */
  private applyPublished(): Promise<void> {
    const next = this.publishing.then(() => applyTable(publishRules([...this.published.values()].flat())));
    this.publishing = next.catch(() => undefined);
    return next;
  }

  closeAll(): void {
    for (const id of [...this.sandboxes.keys()]) this.close(id);
  }
}

/** Refuses a port a process of this host already listens on (a bind that fails says so). */
async function portFree(port: number, protocol: 'tcp' | 'udp', hostIp?: string): Promise<void> {
  const busy = () => errors.conflict(`port ${port}/${protocol} is in use on this host`, 'publish another port, or stop what listens on it');
  if (protocol === 'tcp') {
    await new Promise<void>((resolve, reject) => {
      const server = createServer();
      server.once('error', () => reject(busy()));
      server.listen({ port, host: hostIp ?? '0.0.0.0', exclusive: true }, () => server.close(() => resolve()));
    });
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      reject(busy());
    });
    socket.bind(port, hostIp ?? '0.0.0.0', () => socket.close(() => resolve()));
  });
}
