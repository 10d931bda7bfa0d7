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
import type { NetworkAttachment } from '../../shared/containers.ts';
import { inBackground } from '../../shared/concurrency.ts';
import { ipBatch, run } from '../../shared/exec.ts';
import { createNetns, deleteNetns, netnsPath, setNetnsSysctl } from '../../native/netns.ts';
import type { NetworkDriver, Peer } from '../driver.ts';
import { addEndpoint, bridgePorts, endpointVethName, linkExists } from '../links.ts';
import type { Underlay } from '../underlay.ts';

/** VXLAN adds 50 bytes: outer Ethernet 14, IP 20, UDP 8, VXLAN 8. */
const vxlanOverhead = 50;
const vxlanPort = 4789;
const broadcastMac = '00:00:00:00:00:00';

const bridgeName = (vni: number) => `sbr-${vni}`;
/** Bridged traffic skips iptables, ip6tables and arptables in the network's namespace. */
const bridgeNetfilter = ['net/bridge/bridge-nf-call-iptables', 'net/bridge/bridge-nf-call-ip6tables', 'net/bridge/bridge-nf-call-arptables'];

/** The namespace of a network's data plane on one host: unique per host, since lab hosts share one /run/netns. */
export const overlayNamespace = (prefix: string, vni: number, underlayAddress: string) => `${prefix}n-${vni}-${underlayAddress}`;
const vxlanName = (vni: number) => `svx-${vni}`;
const vethPrefix = 'sve-';
const hostVethName = (attachment: NetworkAttachment) => endpointVethName(vethPrefix, attachment);

interface FdbEntry {
  mac: string;
  dst?: string;
}
interface NeighbourEntry {
  dst: string;
  lladdr?: string;
}

export interface OverlayDiagnosis {
  vni: number;
  vtep?: { device: string; local: string; mtu: number };
  endpoints: string[];
  fdb: Array<{ mac: string; host: string }>;
  neighbours: Array<{ address: string; mac: string }>;
}

export class OverlayDriver implements NetworkDriver {
  /** The VNI of each network this host has joined. */
  private readonly vnis = new Map<string, number>();
  /**
   * One queue per network on this host: joins and leaves take turns, so a leave that finds no
   * endpoint left never tears the data plane down under a join that is making one.
   */
  private readonly queues = new Map<number, Promise<unknown>>();

  constructor(
    private readonly underlay: Underlay,
    /** Prefix of the namespaces this agent makes (the lab's, or the host's). */
    private readonly netnsPrefix: string,
  ) {}

  private vniOf(attachment: NetworkAttachment): number {
    if (attachment.vni === undefined) throw new Error(`overlay network ${attachment.networkName} has no VNI`);
    return attachment.vni;
  }

  private namespaceOf(vni: number): string {
    return overlayNamespace(this.netnsPrefix, vni, this.underlay.address);
  }

  private serially<T>(vni: number, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(vni) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    const tail = next.catch(() => undefined);
    this.queues.set(vni, tail);
    inBackground(
      tail.then(() => {
        if (this.queues.get(vni) === tail) this.queues.delete(vni);
      }),
      () => undefined,
    );
    return next;
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
        await ipBatch([line]);
        return;
      } catch (error) {
        if (attempt >= 20 || !/already exists/.test((error as Error).message)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /**
   * Makes what is missing of the network's data plane on this host: its namespace, bridge and
   * VXLAN device. Each step checks first, so a setup cut short (an agent killed) is finished.
   */
  private async setUp(vni: number, mtu: number): Promise<void> {
    const ns = this.namespaceOf(vni);
    if ((await bridgePorts(bridgeName(vni), ns)).includes(vxlanName(vni))) return;
    if (!existsSync(netnsPath(ns))) await createNetns(ns);
    // Absent where br_netfilter is not loaded: then there is nothing to turn off.
    for (const key of bridgeNetfilter) await setNetnsSysctl(ns, key, '0').catch(() => undefined);
    if (!(await linkExists(bridgeName(vni), ns))) await ipBatch([`link add ${bridgeName(vni)} mtu ${mtu} type bridge`, `link set ${bridgeName(vni)} up`], ns);
    if (!(await linkExists(vxlanName(vni), ns))) {
      if (!(await linkExists(vxlanName(vni)))) await this.createVxlan(vni, mtu);
      await ipBatch([`link set ${vxlanName(vni)} netns ${ns}`]);
    }
    await ipBatch([`link set ${vxlanName(vni)} master ${bridgeName(vni)} up`], ns);
  }

  async join(attachment: NetworkAttachment, netns: string, ifname: string): Promise<void> {
    const vni = this.vniOf(attachment);
    const mtu = attachment.mtu ?? this.underlay.mtu - vxlanOverhead;
    await this.serially(vni, async () => {
      // Inside the turn: a leave before it may have forgotten the network.
      this.vnis.set(attachment.networkId, vni);
      await this.setUp(vni, mtu);
      await addEndpoint(attachment, { veth: hostVethName(attachment), bridge: bridgeName(vni), bridgeNetns: this.namespaceOf(vni), netns, ifname, mtu });
    });
  }

  async leave(attachment: NetworkAttachment): Promise<void> {
    const vni = this.vniOf(attachment);
    const ns = this.namespaceOf(vni);
    await this.serially(vni, async () => {
      await run('ip', ['-n', ns, 'link', 'del', hostVethName(attachment)]).catch(() => undefined);
      if ((await bridgePorts(bridgeName(vni), ns)).some((port) => port.startsWith(vethPrefix))) return;
      // The VXLAN device first, synchronously: it frees the VNI on the underlay's socket now,
      // where the namespace's deletion would free it only when the kernel gets round to it.
      await run('ip', ['-n', ns, 'link', 'del', vxlanName(vni)]).catch(() => undefined);
      await deleteNetns(ns).catch(() => undefined);
      this.vnis.delete(attachment.networkId);
    });
  }

  /** Remembers a network an existing endpoint (from before a restart) is on. */
  adopt(attachment: NetworkAttachment): void {
    if (attachment.vni !== undefined) this.vnis.set(attachment.networkId, attachment.vni);
  }

  /** The networks this host has joined, by id, with their VNIs. */
  joined(): Map<string, number> {
    return new Map(this.vnis);
  }

  private async kernelPeers(vni: number): Promise<{ fdb: FdbEntry[]; neighbours: NeighbourEntry[] }> {
    const ns = this.namespaceOf(vni);
    const fdb = JSON.parse(await run('bridge', ['-n', ns, '-j', 'fdb', 'show', 'dev', vxlanName(vni)]).catch(() => '[]')) as FdbEntry[];
    const neighbours = JSON.parse(await run('ip', ['-n', ns, '-j', '-4', 'neigh', 'show', 'dev', vxlanName(vni)]).catch(() => '[]')) as NeighbourEntry[];
    return { fdb: fdb.filter((e) => e.dst), neighbours };
  }

  /** Makes the VTEP hold exactly these remote endpoints: adds what is missing, removes what is stale. */
  async setPeers(networkId: string, peers: Peer[]): Promise<void> {
    const vni = this.vnis.get(networkId);
    if (vni === undefined || !(await linkExists(vxlanName(vni), this.namespaceOf(vni)))) return;
    const remote = peers.filter((p) => p.host !== this.underlay.address);
    const device = vxlanName(vni);
    const wantedFdb = new Map<string, string>();
    for (const host of new Set(remote.map((p) => p.host))) wantedFdb.set(`${broadcastMac}/${host}`, host);
    for (const peer of remote) wantedFdb.set(`${peer.mac}/${peer.host}`, peer.host);
    const wantedNeighbours = new Map(remote.map((p) => [p.address, p.mac]));
    const current = await this.kernelPeers(vni);
    const bridgeLines: string[] = [];
    const ipLines: string[] = [];
    const have = new Set(current.fdb.map((e) => `${e.mac}/${e.dst}`));
    for (const entry of current.fdb) if (!wantedFdb.has(`${entry.mac}/${entry.dst}`)) bridgeLines.push(`fdb del ${entry.mac} dev ${device} dst ${entry.dst}`);
    for (const [key, host] of wantedFdb) {
      if (have.has(key)) continue;
      const mac = key.slice(0, key.indexOf('/'));
      bridgeLines.push(mac === broadcastMac ? `fdb append ${mac} dev ${device} dst ${host}` : `fdb append ${mac} dev ${device} dst ${host} self permanent`);
    }
    for (const entry of current.neighbours) if (wantedNeighbours.get(entry.dst) !== entry.lladdr) ipLines.push(`neigh del ${entry.dst} dev ${device}`);
    for (const [address, mac] of wantedNeighbours) {
      if (current.neighbours.some((e) => e.dst === address && e.lladdr === mac)) continue;
      ipLines.push(`neigh replace ${address} lladdr ${mac} dev ${device} nud permanent`);
    }
    const ns = this.namespaceOf(vni);
    if (bridgeLines.length) await run('bridge', ['-n', ns, '-force', '-batch', '-'], `${bridgeLines.join('\n')}\n`).catch(() => undefined);
    await ipBatch(ipLines, ns).catch(() => undefined);
  }

  async diagnose(networkId: string): Promise<OverlayDiagnosis | undefined> {
    const vni = this.vnis.get(networkId);
    if (vni === undefined) return undefined;
    const ns = this.namespaceOf(vni);
    const details = JSON.parse(await run('ip', ['-n', ns, '-d', '-j', 'link', 'show', 'dev', vxlanName(vni)]).catch(() => '[]')) as Array<{ mtu: number; linkinfo?: { info_data?: { local?: string } } }>;
    const ports = await bridgePorts(bridgeName(vni), ns);
    const { fdb, neighbours } = await this.kernelPeers(vni);
    return {
      vni,
      ...(details[0] ? { vtep: { device: vxlanName(vni), local: details[0].linkinfo?.info_data?.local ?? '', mtu: details[0].mtu } } : {}),
      endpoints: ports.filter((name) => name.startsWith(vethPrefix)),
      fdb: fdb.map((e) => ({ mac: e.mac, host: e.dst! })),
      neighbours: neighbours.filter((n) => n.lladdr).map((n) => ({ address: n.dst, mac: n.lladdr! })),
    };
  }
}
