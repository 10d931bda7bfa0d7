/**
 * The overlay driver: kernel VXLAN, one VNI per network, no multicast and no learning. On each
 * host with endpoints in the network, a namespace of the network's own (as Docker's overlay
 * sandbox) holds a bridge `sbr-<vni>`, the VXLAN device `svx-<vni>` (created in the host's
 * namespace, so its UDP socket stays on the underlay, then moved in; ARP answered locally from
 * its neighbour table: `proxy`) and the host side of one veth per endpoint. Remote endpoints are
 * static entries: an all-zero FDB entry per remote host (broadcast and unknown traffic), and
 * per remote endpoint an FDB entry (its MAC behind its host) and a neighbour entry (its IP and
 * MAC). The namespace has bridge netfilter off: Shoal filters nothing bridged, and a host with
 * br_netfilter loaded would otherwise pass every overlay frame through iptables and conntrack
 * (measured: the overlay at 0.73-0.83 of the underlay with it, 0.90-1.06 without). The host
 * leaves the network's data plane, namespace and all, with its last endpoint.
 */
import { existsSync } from 'node:fs';
import { run } from '../../../shared/exec.ts';
import { createNetns, deleteNetns, type LinkInfo, listNeighbours, netnsPath, setNetnsSysctl } from '../../../native/netns.ts';
import { type Endpoint, mtuOf, type Network, type Sandbox } from '../../cnm.ts';
import { type NetworkDriver, type Peer, type PeerAware, type PeerEntriesDiagnosis, peerEntryProblems, type VxlanProbeable } from '../../driver.ts';
import { vxlanPort } from '../../vxlan/codec.ts';
import type { ProbePath } from '../../vxlan/prober.ts';
import type { HostNamespace } from '../../host.ts';
import { addEndpoint, bridgePorts, endpointDeviceName, linkExists, linksOf } from '../../links.ts';
import type { Underlay } from '../../underlay.ts';

/** VXLAN adds 50 bytes: outer Ethernet 14, IP 20, UDP 8, VXLAN 8. */
const vxlanOverhead = 50;
const broadcastMac = '00:00:00:00:00:00';

const bridgeName = (vni: number) => `sbr-${vni}`;
/** Bridged traffic skips iptables, ip6tables and arptables in the network's namespace. */
const bridgeNetfilter = ['net/bridge/bridge-nf-call-iptables', 'net/bridge/bridge-nf-call-ip6tables', 'net/bridge/bridge-nf-call-arptables'];

/** The namespace of a network's data plane on one host: unique per host, since lab hosts share one /run/netns. */
export const overlayNamespace = (prefix: string, vni: number, underlayAddress: string) => `${prefix}n-${vni}-${underlayAddress}`;
const vxlanName = (vni: number) => `svx-${vni}`;
const vethPrefix = 'sve-';
const hostVethName = (endpoint: Endpoint) => endpointDeviceName(vethPrefix, endpoint);

/** The VNI the manager's allocator gave the network. */
export function vniOf(network: Network): number {
  const vni = Number(network.data.vni);
  if (!Number.isInteger(vni) || vni <= 0) throw new Error(`overlay network ${network.name} has no VNI`);
  return vni;
}

interface FdbEntry {
  mac: string;
  dst?: string;
}
interface NeighbourEntry {
  dst: string;
  lladdr?: string;
}

export interface OverlayDiagnosis extends PeerEntriesDiagnosis {
  vni: number;
  endpoints: string[];
}

export class OverlayDriver implements NetworkDriver, PeerAware, VxlanProbeable {
  /** The peers each network was last given: what `check` compares the kernel with. */
  private readonly wanted = new Map<string, readonly Peer[]>();

  constructor(
    private readonly host: HostNamespace,
    private readonly underlay: Underlay,
    /** Prefix of the namespaces this agent makes (the lab's, or the host's). */
    private readonly netnsPrefix: string,
  ) {}

  private namespaceOf(vni: number): string {
    return overlayNamespace(this.netnsPrefix, vni, this.underlay.address);
  }

  private mtu(network: Network): number {
    return mtuOf(network, this.underlay.mtu - vxlanOverhead);
  }

  /**
   * Creates the VXLAN device in the host's namespace. A device of the same VNI that is going
   * away (its namespace deleted: the kernel destroys its devices later, in the background)
   * still holds the VNI on the underlay's UDP socket for a moment, so "already exists" is
   * tried again for up to two seconds.
   */
  private async createVxlan(vni: number, mtu: number): Promise<void> {
    const line = `link add ${vxlanName(vni)} mtu ${mtu} type vxlan id ${vni} dstport ${vxlanPort} local ${this.underlay.address} dev ${this.underlay.device} nolearning proxy`;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.host.ipBatch([line]);
        return;
      } catch (error) {
        if (attempt >= 20 || !/already exists/.test((error as Error).message)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /**
   * Makes what is missing of the network's data plane on this host: its namespace, bridge and
   * VXLAN device. Each step checks first, so a setup cut short (an agent killed) is finished;
   * a VXLAN device stranded in the host's namespace by such a cut is moved in, not made again.
   */
  async createNetwork(network: Network): Promise<void> {
    const vni = vniOf(network);
    const mtu = this.mtu(network);
    const ns = this.namespaceOf(vni);
    if ((await bridgePorts(bridgeName(vni), ns)).includes(vxlanName(vni))) return;
    if (!existsSync(netnsPath(ns))) await createNetns(ns);
    // Absent where br_netfilter is not loaded: then there is nothing to turn off.
    for (const key of bridgeNetfilter) await setNetnsSysctl(ns, key, '0').catch(() => undefined);
    if (!(await linkExists(bridgeName(vni), ns))) await run('ip', ['-n', ns, '-batch', '-'], `link add ${bridgeName(vni)} mtu ${mtu} type bridge\nlink set ${bridgeName(vni)} up\n`);
    if (!(await linkExists(vxlanName(vni), ns))) {
      if (!(await this.host.linkExists(vxlanName(vni)))) await this.createVxlan(vni, mtu);
      await this.host.ipBatch([`link set ${vxlanName(vni)} netns ${ns}`]);
    }
    await run('ip', ['-n', ns, 'link', 'set', vxlanName(vni), 'master', bridgeName(vni), 'up']);
  }

  async deleteNetwork(network: Network): Promise<void> {
    const vni = vniOf(network);
    const ns = this.namespaceOf(vni);
    // The VXLAN device first, synchronously: it frees the VNI on the underlay's socket now,
    // where the namespace's deletion would free it only when the kernel gets round to it.
    await run('ip', ['-n', ns, 'link', 'del', vxlanName(vni)]).catch(() => undefined);
    // One stranded in the host's namespace by a setup cut between its creation and its move.
    await this.host.ip(['link', 'del', vxlanName(vni)]).catch(() => undefined);
    if (existsSync(netnsPath(ns))) await deleteNetns(ns);
    this.wanted.delete(network.id);
  }

  async join(endpoint: Endpoint, sandbox: Sandbox): Promise<void> {
    const vni = vniOf(endpoint.network);
    await addEndpoint(endpoint, { veth: hostVethName(endpoint), bridge: bridgeName(vni), bridgeNetns: this.namespaceOf(vni), netns: sandbox.netns, mtu: this.mtu(endpoint.network) });
  }

  async leave(endpoint: Endpoint): Promise<void> {
    await run('ip', ['-n', this.namespaceOf(vniOf(endpoint.network)), 'link', 'del', hostVethName(endpoint)]).catch(() => undefined);
  }

  probePath(network: Network, endpoint: Endpoint, sandbox: Sandbox): ProbePath {
    const vni = vniOf(network);
    return {
      vni, host: this.host, underlayDevice: this.underlay.device, networkNetns: this.namespaceOf(vni),
      vxlanDevice: vxlanName(vni), bridge: bridgeName(vni), veth: hostVethName(endpoint), sandboxNetns: sandbox.netns,
    };
  }

  /** The VTEP's remote FDB entries and its neighbour entries, through rtnetlink (no `bridge` or `ip` process: `network check` reads every host). */
  private async kernelPeers(vni: number): Promise<{ fdb: FdbEntry[]; neighbours: NeighbourEntry[]; vtep?: LinkInfo }> {
    const ns = this.namespaceOf(vni);
    const [links, entries] = await Promise.all([linksOf(ns), listNeighbours(ns).catch(() => [])]);
    const vtep = links.find((l) => l.name === vxlanName(vni));
    if (!vtep) return { fdb: [], neighbours: [] };
    const own = entries.filter((e) => e.ifindex === vtep.index);
    return {
      fdb: own.filter((e) => e.family === 'bridge' && e.dst).map((e) => ({ mac: e.mac, dst: e.dst })),
      neighbours: own.filter((e) => e.family === 'inet').map((e) => ({ dst: e.dst, ...(e.mac ? { lladdr: e.mac } : {}) })),
      vtep,
    };
  }

  /** What the VTEP should hold for these peers: FDB entries (one flood entry per host) and neighbour entries. */
  private wantedEntries(peers: readonly Peer[]): { fdb: Map<string, string>; neighbours: Map<string, string> } {
    const remote = peers.filter((p) => p.host !== this.underlay.address);
    const fdb = new Map<string, string>();
    for (const host of new Set(remote.map((p) => p.host))) fdb.set(`${broadcastMac}/${host}`, host);
    for (const peer of remote) fdb.set(`${peer.mac}/${peer.host}`, peer.host);
    return { fdb, neighbours: new Map(remote.map((p) => [p.address, p.mac])) };
  }

  /** Makes the VTEP hold exactly these remote endpoints: adds what is missing, removes what is stale. */
  async setPeers(network: Network, peers: readonly Peer[]): Promise<void> {
    this.wanted.set(network.id, peers);
    const vni = vniOf(network);
    const ns = this.namespaceOf(vni);
    if (!(await linkExists(vxlanName(vni), ns))) return;
    const device = vxlanName(vni);
    const wanted = this.wantedEntries(peers);
    const current = await this.kernelPeers(vni);
    const bridgeLines: string[] = [];
    const ipLines: string[] = [];
    const have = new Set(current.fdb.map((e) => `${e.mac}/${e.dst}`));
    for (const entry of current.fdb) if (!wanted.fdb.has(`${entry.mac}/${entry.dst}`)) bridgeLines.push(`fdb del ${entry.mac} dev ${device} dst ${entry.dst}`);
    for (const [key, host] of wanted.fdb) {
      if (have.has(key)) continue;
      const mac = key.slice(0, key.indexOf('/'));
      bridgeLines.push(mac === broadcastMac ? `fdb append ${mac} dev ${device} dst ${host}` : `fdb append ${mac} dev ${device} dst ${host} self permanent`);
    }
    for (const entry of current.neighbours) if (wanted.neighbours.get(entry.dst) !== entry.lladdr) ipLines.push(`neigh del ${entry.dst} dev ${device}`);
    for (const [address, mac] of wanted.neighbours) {
      if (current.neighbours.some((e) => e.dst === address && e.lladdr === mac)) continue;
      ipLines.push(`neigh replace ${address} lladdr ${mac} dev ${device} nud permanent`);
    }
    if (bridgeLines.length) await run('bridge', ['-n', ns, '-force', '-batch', '-'], `${bridgeLines.join('\n')}\n`).catch(() => undefined);
    if (ipLines.length) await run('ip', ['-n', ns, '-force', '-batch', '-'], `${ipLines.join('\n')}\n`).catch(() => undefined);
  }

  /** The namespace, bridge and VTEP, and every FDB and neighbour entry the last peers given call for. */
  async check(network: Network): Promise<string[]> {
    const vni = vniOf(network);
    const ns = this.namespaceOf(vni);
    if (!existsSync(netnsPath(ns))) return [`the network's namespace ${ns} is missing`];
    const ports = await bridgePorts(bridgeName(vni), ns);
    if (!ports.includes(vxlanName(vni))) return [`VTEP ${vxlanName(vni)} is missing from bridge ${bridgeName(vni)}`];
    const current = await this.kernelPeers(vni);
    const kernel = { fdb: current.fdb.map((e) => ({ mac: e.mac, host: e.dst! })), neighbours: current.neighbours.flatMap((n) => (n.lladdr ? [{ address: n.dst, mac: n.lladdr }] : [])) };
    return peerEntryProblems((this.wanted.get(network.id) ?? []).filter((p) => p.host !== this.underlay.address), kernel);
  }

  async diagnose(network: Network): Promise<OverlayDiagnosis | undefined> {
    const vni = vniOf(network);
    const ns = this.namespaceOf(vni);
    if (!existsSync(netnsPath(ns))) return undefined;
    const [ports, { fdb, neighbours, vtep }] = await Promise.all([bridgePorts(bridgeName(vni), ns), this.kernelPeers(vni)]);
    return {
      driver: 'overlay',
      summary: vtep ? `VTEP ${vxlanName(vni)} mtu ${vtep.mtu}` : 'no VTEP',
      link: `VXLAN ${vni}`,
      vni,
      ...(vtep ? { vtep: { device: vxlanName(vni), local: vtep.vxlanLocal ?? '', mtu: vtep.mtu } } : {}),
      endpoints: ports.filter((name) => name.startsWith(vethPrefix)),
      fdb: fdb.map((e) => ({ mac: e.mac, host: e.dst! })),
      neighbours: neighbours.filter((n) => n.lladdr).map((n) => ({ address: n.dst, mac: n.lladdr! })),
    };
  }
}
