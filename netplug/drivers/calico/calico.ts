/**
 * The calico driver, Calico's data plane without its control plane: every workload is a
 * routed /32 on a veth, with no bridge and no encapsulation. The sandbox's interface holds the
 * workload's address as a /32 and a default route via 169.254.1.1, a link-local address no one
 * holds: the host end of the veth answers for it (proxy ARP, and a permanent neighbour entry
 * in the sandbox for the host end's fixed MAC, ee:ee:ee:ee:ee:ee as Calico's, so a host with no
 * default route answers too). The host has a /32 route per local workload through its veth,
 * and, through the shared route loop, a route to every other host's block via that host's
 * underlay address. With nat_outgoing, what leaves the pool is masqueraded.
 */
import { run, systemBinary } from '../../../shared/exec.ts';
import { type Endpoint, mtuOf, type Network, type Sandbox } from '../../cnm.ts';
import type { DriverDiagnosis, NetworkDriver, RouteAware, RouteEntry, WantedRoute } from '../../driver.ts';
import type { HostNamespace } from '../../host.ts';
import { endpointDeviceName } from '../../links.ts';
import type { Underlay } from '../../underlay.ts';
import { routesToOtherShares } from '../split-pool.ts';
import { type BgpPeerState, BirdSpeaker } from './bird.ts';
import { formatPrefix, parseIpv4 } from '../../ipam/ipv4.ts';

const nft = systemBinary('nft');
export const linkLocalGateway = '169.254.1.1';
const hostEndMac = 'ee:ee:ee:ee:ee:ee';
/** slb-: the egress guard shuts the control plane to every slb- interface of the host. */
const vethName = (endpoint: Endpoint) => endpointDeviceName('slb-c', endpoint);
const tableName = (network: Network) => `shoal-${network.id.slice(0, 10)}`;

export interface CalicoDiagnosis extends DriverDiagnosis {
  /** This host's block, and the whole pool. */
  block: string;
  pool: string;
  /** Each local workload's /32 route, and whether the kernel holds it. */
  workloads: Array<{ address: string; device: string; routed: boolean }>;
  natOutgoing: boolean;
  /** routing=bgp: this host's BGP sessions (BIRD), and the routes it learned into the kernel. */
  bgp?: { peers: BgpPeerState[]; learned: Array<{ destination: string; via: string }>; error?: string };
}

const usesBgp = (network: Network) => network.options.routing === 'bgp';

export class CalicoDriver implements NetworkDriver, RouteAware {
  /** Per network, the local workloads: device -> address (what check compares the kernel with). */
  private readonly workloads = new Map<string, Map<string, string>>();

  private readonly bird: BirdSpeaker;

  constructor(
    private readonly host: HostNamespace,
    private readonly underlay: Underlay,
    birdDir: string,
  ) {
    this.bird = new BirdSpeaker(host, birdDir, underlay.address);
  }

  /** This host's blocks of a network: the aligned blocks its workloads' addresses lie in. */
  private localBlocks(network: Network): string[] {
    const length = Number(network.data.blockSize ?? network.options.block_size ?? 26);
    const span = 2 ** (32 - length);
    return [...new Set([...(this.workloads.get(network.id)?.values() ?? [])].map((a) => formatPrefix({ base: Math.floor(parseIpv4(a) / span) * span, length })))].sort();
  }

  private pool(network: Network): string {
    return network.data.pool ?? network.subnet;
  }

  async createNetwork(network: Network): Promise<void> {
    await this.host.sysctl('net/ipv4/ip_forward', '1');
    if (!this.workloads.has(network.id)) this.workloads.set(network.id, new Map());
    if (await this.host.run(nft, ['list', 'table', 'ip', tableName(network)]).then(() => true, () => false)) return;
    const pool = this.pool(network);
    const rules = [
      `table ip ${tableName(network)} {`,
      // Routed between hosts inside the pool, nothing is translated: conntrack need not follow it.
      '  chain raw { type filter hook prerouting priority raw; policy accept;', `    ip saddr ${pool} ip daddr ${pool} notrack`, '  }',
      ...(network.options.nat_outgoing === 'true' ? ['  chain postrouting { type nat hook postrouting priority 100; policy accept;', `    ip saddr ${pool} ip daddr != ${pool} masquerade`, '  }'] : []),
      '}',
    ];
    await this.host.run(nft, ['-f', '-'], `${rules.join('\n')}\n`);
  }

  async deleteNetwork(network: Network): Promise<void> {
    await this.host.run(nft, ['delete', 'table', 'ip', tableName(network)]).catch(() => undefined);
    this.workloads.delete(network.id);
    if (usesBgp(network)) await this.bird.want(network.id, undefined).catch(() => undefined);
  }

  async join(endpoint: Endpoint, sandbox: Sandbox): Promise<void> {
    const veth = vethName(endpoint);
    const mtu = mtuOf(endpoint.network, this.underlay.mtu);
    try {
      await this.host.ipBatch([`link add ${veth} mtu ${mtu} address ${hostEndMac} type veth peer name ${endpoint.ifname} netns ${sandbox.netns}`, `link set ${veth} up`]);
      await this.host.sysctl(`net/ipv4/conf/${veth}/proxy_arp`, '1');
      await run('ip', ['-n', sandbox.netns, '-batch', '-'], `${[
        `addr add ${endpoint.address}/32 dev ${endpoint.ifname}`,
        `link set ${endpoint.ifname} address ${endpoint.mac} mtu ${mtu} up`,
        `route add ${linkLocalGateway} dev ${endpoint.ifname} scope link`,
        `neigh replace ${linkLocalGateway} lladdr ${hostEndMac} dev ${endpoint.ifname} nud permanent`,
        // Internal: the pool only, no way out.
        `route add ${endpoint.network.internal ? this.pool(endpoint.network) : 'default'} via ${linkLocalGateway} dev ${endpoint.ifname}`,
      ].join('\n')}\n`);
      await this.host.ip(['route', 'replace', `${endpoint.address}/32`, 'dev', veth]);
    } catch (error) {
      await this.host.ip(['link', 'del', veth]).catch(() => undefined);
      throw error;
    }
    let local = this.workloads.get(endpoint.network.id);
    if (!local) this.workloads.set(endpoint.network.id, (local = new Map()));
    local.set(veth, endpoint.address);
  }

  async leave(endpoint: Endpoint): Promise<void> {
    // The /32 route goes with the veth.
    await this.host.ip(['link', 'del', vethName(endpoint)]).catch(() => undefined);
    this.workloads.get(endpoint.network.id)?.delete(vethName(endpoint));
  }

  /**
   * routing=static: the other hosts' blocks, for the route loop. routing=bgp: none for the loop;
   * BIRD is told this host's blocks and its neighbours (the other hosts holding blocks), and
   * learns the same routes from them.
   */
  routes(network: Network, entries: readonly RouteEntry[]): WantedRoute[] {
    const wanted = routesToOtherShares(network, entries, this.underlay.address);
    if (!usesBgp(network)) return wanted;
    // Failures are kept by the speaker and shown by diagnose and check.
    this.bird.want(network.id, { blocks: this.localBlocks(network), peers: [...new Set(wanted.map((r) => r.via))].sort() }).catch(() => undefined);
    return [];
  }

  /** The routes BIRD put in the kernel (proto bird). */
  private async learned(): Promise<Array<{ destination: string; via: string }>> {
    const routes = JSON.parse(await this.host.ip(['-j', 'route', 'show', 'proto', 'bird']).catch(() => '[]')) as Array<{ dst: string; gateway?: string }>;
    return routes.filter((r) => r.gateway).map((r) => ({ destination: r.dst, via: r.gateway! })).sort((a, b) => a.destination.localeCompare(b.destination, undefined, { numeric: true }));
  }

  private async routed(device: string, address: string): Promise<boolean> {
    const routes = JSON.parse(await this.host.ip(['-j', 'route', 'show', 'dev', device]).catch(() => '[]')) as Array<{ dst: string }>;
    return routes.some((r) => r.dst === address || r.dst === `${address}/32`);
  }

  async check(network: Network): Promise<string[]> {
    const problems: string[] = [];
    if (!(await this.host.run(nft, ['list', 'table', 'ip', tableName(network)]).then(() => true, () => false))) problems.push(`nftables table ip ${tableName(network)} is missing`);
    for (const [device, address] of this.workloads.get(network.id) ?? []) {
      if (!(await this.host.linkExists(device))) problems.push(`workload ${address}: its veth ${device} is missing`);
      else if (!(await this.routed(device, address))) problems.push(`missing route ${address}/32 dev ${device}`);
    }
    if (usesBgp(network)) {
      const { peers, error } = await this.bird.peers();
      if (error) problems.push(`BGP: ${error}`);
      for (const peer of peers.filter((p) => !/Established/.test(p.state))) problems.push(`BGP session with ${peer.peer} is ${peer.state}`);
    }
    return problems;
  }

  async diagnose(network: Network): Promise<CalicoDiagnosis> {
    const workloads = await Promise.all([...(this.workloads.get(network.id) ?? [])].map(async ([device, address]) => ({ address, device, routed: await this.routed(device, address) })));
    const bgp = usesBgp(network) ? { ...(await this.bird.peers()), learned: await this.learned() } : undefined;
    const blocks = this.localBlocks(network);
    return {
      driver: 'calico', summary: `block${blocks.length > 1 ? 's' : ''} ${blocks.join(', ') || network.subnet}, ${workloads.length} routed /32${bgp ? `, BGP with ${bgp.peers.length} peer(s)` : ''}`, link: bgp ? 'BGP routes' : 'routes',
      block: network.subnet, pool: this.pool(network), workloads, natOutgoing: network.options.nat_outgoing === 'true', ...(bgp ? { bgp } : {}),
    };
  }
}
