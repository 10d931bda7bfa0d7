/**
 * The bridge driver (local scope), docker0 style: on each host that has endpoints in the
 * network, a Linux bridge `slb-<id>` holding the gateway address, one veth per endpoint, and
 * nftables rules in the host's namespace (table `ip shoal-<id>`): masquerade for traffic
 * leaving the subnet (egress from the host's underlay address), none for internal networks,
 * which also drop anything routed in or out. With icc=false the endpoints' bridge ports are
 * isolated: they reach the gateway but not each other (this kernel's nftables cannot match
 * the bridge name). Addresses come from host-local IPAM.
 */
import { systemBinary } from '../../../shared/exec.ts';
import { type Endpoint, mtuOf, type Network, prefixLength, type Sandbox } from '../../cnm.ts';
import type { DriverDiagnosis, NetworkDriver } from '../../driver.ts';
import type { HostNamespace } from '../../host.ts';
import { addEndpoint, bridgePorts, endpointDeviceName } from '../../links.ts';

const nft = systemBinary('nft');
const bridgeName = (network: Network) => `slb-${network.id.slice(0, 10)}`;
const tableName = (network: Network) => `shoal-${network.id.slice(0, 10)}`;
const vethName = (endpoint: Endpoint) => endpointDeviceName('slv-', endpoint);

export interface BridgeDiagnosis extends DriverDiagnosis {
  bridge: string;
  gateway?: string;
  endpoints: string[];
  nat: boolean;
}

/**
 * A routed bridge in the host's namespace with the network's gateway on it and NAT out of the
 * subnet: the bridge driver's, and host-gw's per-host subnet. `nat` names what to masquerade.
 */
export class HostBridge {
  constructor(
    private readonly host: HostNamespace,
    readonly name: string,
    private readonly table: string,
  ) {}

  /** Makes what is missing: the bridge with the gateway address, forwarding, and the nftables table. */
  async create(network: Network, nat: { from: string; notTo?: string }): Promise<void> {
    if (!(await this.host.linkExists(this.name))) {
      const mtu = mtuOf(network, 1500);
      await this.host.ipBatch([`link add ${this.name} mtu ${mtu} type bridge`, `addr add ${network.gateway}/${prefixLength(network)} dev ${this.name}`, `link set ${this.name} up`]).catch(async (error: unknown) => {
        if (!(await this.host.linkExists(this.name))) throw error;
      });
    }
    // Routing between the bridge and the underlay.
    await this.host.sysctl('net/ipv4/ip_forward', '1');
    if (await this.host.run(nft, ['list', 'table', 'ip', this.table]).then(() => true, () => false)) return;
    const outside = nat.notTo ? `ip daddr != ${nat.notTo}` : `oifname != "${this.name}"`;
    const rules = network.internal
      ? [
          `table ip ${this.table} {`,
          '  chain forward { type filter hook forward priority 0; policy accept;',
          `    iifname "${this.name}" ${nat.notTo ? `ip daddr != ${nat.notTo}` : `oifname != "${this.name}"`} drop`,
          `    oifname "${this.name}" ${nat.notTo ? `ip saddr != ${nat.notTo}` : `iifname != "${this.name}"`} drop`,
          '  }',
          '}',
        ]
      : [
          `table ip ${this.table} {`,
          '  chain postrouting { type nat hook postrouting priority 100; policy accept;',
          `    ip saddr ${nat.from} ${outside} masquerade`,
          '  }',
          // Routed between hosts inside the pool, nothing is translated: conntrack need not
          // follow it (measured: host-gw at 0.90 of the hand-built path with it tracked).
          ...(nat.notTo ? ['  chain raw { type filter hook prerouting priority raw; policy accept;', `    ip saddr ${nat.notTo} ip daddr ${nat.notTo} notrack`, '  }'] : []),
          '}',
        ];
    await this.host.run(nft, ['-f', '-'], `${rules.join('\n')}\n`);
  }

  async delete(): Promise<void> {
    await this.host.ip(['link', 'del', this.name]).catch(() => undefined);
    await this.host.run(nft, ['delete', 'table', 'ip', this.table]).catch(() => undefined);
  }

  /** Adds the endpoint's veth pair; `isolated`: its port reaches the gateway but not the other ports. */
  join(endpoint: Endpoint, sandbox: Sandbox, veth: string, options: { isolated?: boolean; routes: string[] }): Promise<void> {
    const mtu = mtuOf(endpoint.network, 1500);
    return addEndpoint(endpoint, {
      veth, bridge: this.name, bridgeNetns: this.host.netns, netns: sandbox.netns, mtu,
      hostLines: options.isolated ? [`link set dev ${veth} type bridge_slave isolated on`] : [],
      containerLines: options.routes.map((destination) => `route add ${destination} via ${endpoint.network.gateway} dev ${endpoint.ifname}`),
    });
  }

  async check(network: Network): Promise<string[]> {
    if (!(await this.host.linkExists(this.name))) return [`bridge ${this.name} is missing`];
    const problems: string[] = [];
    const addresses = JSON.parse(await this.host.ip(['-j', '-4', 'addr', 'show', 'dev', this.name])) as Array<{ operstate: string; addr_info: Array<{ local: string }> }>;
    if (!addresses[0]?.addr_info.some((a) => a.local === network.gateway)) problems.push(`bridge ${this.name} does not hold the gateway ${network.gateway}`);
    if (!(await this.host.run(nft, ['list', 'table', 'ip', this.table]).then(() => true, () => false))) problems.push(`nftables table ip ${this.table} is missing`);
    return problems;
  }

  async diagnose(): Promise<{ bridge: string; gateway?: string; endpoints: string[]; nat: boolean } | undefined> {
    if (!(await this.host.linkExists(this.name))) return undefined;
    const addresses = JSON.parse(await this.host.ip(['-j', '-4', 'addr', 'show', 'dev', this.name])) as Array<{ addr_info: Array<{ local: string }> }>;
    const ports = await bridgePorts(this.name, this.host.netns);
    const nat = (await this.host.run(nft, ['list', 'table', 'ip', this.table]).catch(() => '')).includes('masquerade');
    return { bridge: this.name, ...(addresses[0]?.addr_info[0] ? { gateway: addresses[0].addr_info[0].local } : {}), endpoints: ports, nat };
  }
}

export class BridgeDriver implements NetworkDriver {
  constructor(private readonly host: HostNamespace) {}

  private bridge(network: Network): HostBridge {
    return new HostBridge(this.host, bridgeName(network), tableName(network));
  }

  createNetwork(network: Network): Promise<void> {
    return this.bridge(network).create(network, { from: network.subnet });
  }

  deleteNetwork(network: Network): Promise<void> {
    return this.bridge(network).delete();
  }

  join(endpoint: Endpoint, sandbox: Sandbox): Promise<void> {
    return this.bridge(endpoint.network).join(endpoint, sandbox, vethName(endpoint), {
      // icc=false: isolated ports reach the bridge (the gateway) but not each other.
      isolated: endpoint.network.options.icc === 'false',
      routes: endpoint.network.internal ? [] : ['default'],
    });
  }

  async leave(endpoint: Endpoint): Promise<void> {
    await this.host.ip(['link', 'del', vethName(endpoint)]).catch(() => undefined);
  }

  check(network: Network): Promise<string[]> {
    return this.bridge(network).check(network);
  }

  async diagnose(network: Network): Promise<BridgeDiagnosis | undefined> {
    const found = await this.bridge(network).diagnose();
    return found ? { driver: 'bridge', summary: `bridge ${found.bridge}${found.gateway ? ` gw ${found.gateway}` : ''}${found.nat ? ' NAT' : ''}`, ...found } : undefined;
  }
}
