/**
 * The bridge driver (local scope), docker0 style: on each host that has endpoints in the
 * network, a Linux bridge `slb-<id>` holding the gateway address, one veth per endpoint, and
 * nftables rules in the host's namespace (table `ip shoal-<id>`): masquerade for traffic
 * leaving the subnet (egress from the host's underlay address), none for internal networks,
 * which also drop anything routed in or out. With icc=false the endpoints' bridge ports are
 * isolated: they reach the gateway but not each other (this kernel's nftables cannot match
 * the bridge name). Addresses come from host-local IPAM.
 */
import { writeFile } from 'node:fs/promises';
import type { NetworkAttachment } from '../../shared/containers.ts';
import { ipBatch, run, systemBinary } from '../../shared/exec.ts';
import type { NetworkDriver } from '../driver.ts';
import { addEndpoint, bridgePorts, endpointVethName, linkExists } from '../links.ts';
import { macFor } from '../model.ts';
import type { HostLocalIpam } from './host-local.ts';

const nft = systemBinary('nft');
const bridgeName = (networkId: string) => `slb-${networkId.slice(0, 10)}`;
const tableName = (networkId: string) => `shoal-${networkId.slice(0, 10)}`;
const vethName = (attachment: NetworkAttachment) => endpointVethName('slv-', attachment);

export interface BridgeDiagnosis {
  bridge: string;
  gateway?: string;
  endpoints: string[];
  nat: boolean;
}

export class BridgeDriver implements NetworkDriver {
  constructor(private readonly ipam: HostLocalIpam) {}

  /** Makes sure the bridge, its gateway address and its rules exist (each checked on its own, so a flushed ruleset comes back). */
  private async ensureNetwork(attachment: NetworkAttachment): Promise<void> {
    const bridge = bridgeName(attachment.networkId);
    if (!(await linkExists(bridge))) {
      const prefixLength = attachment.subnet.split('/')[1];
      const mtu = attachment.mtu ?? 1500;
      await ipBatch([`link add ${bridge} mtu ${mtu} type bridge`, `addr add ${attachment.gateway}/${prefixLength} dev ${bridge}`, `link set ${bridge} up`]).catch(async (error: unknown) => {
        if (!(await linkExists(bridge))) throw error;
      });
    }
    // Routing between the bridge and the underlay; this namespace is the host's.
    await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
    const table = tableName(attachment.networkId);
    if (await run(nft, ['list', 'table', 'ip', table]).then(() => true, () => false)) return;
    const rules = attachment.internal
      ? [
          `table ip ${table} {`,
          '  chain forward { type filter hook forward priority 0; policy accept;',
          `    iifname "${bridge}" oifname != "${bridge}" drop`,
          `    oifname "${bridge}" iifname != "${bridge}" drop`,
          '  }',
          '}',
        ]
      : [
          `table ip ${table} {`,
          '  chain postrouting { type nat hook postrouting priority 100; policy accept;',
          `    ip saddr ${attachment.subnet} oifname != "${bridge}" masquerade`,
          '  }',
          '}',
        ];
    await run(nft, ['-f', '-'], `${rules.join('\n')}\n`);
  }

  async join(attachment: NetworkAttachment, netns: string, ifname: string): Promise<void> {
    await this.ensureNetwork(attachment);
    const veth = vethName(attachment);
    await addEndpoint(attachment, {
      veth,
      bridge: bridgeName(attachment.networkId),
      netns,
      ifname,
      mtu: attachment.mtu ?? 1500,
      // icc=false: isolated ports reach the bridge (the gateway) but not each other.
      hostLines: attachment.icc === false ? [`link set dev ${veth} type bridge_slave isolated on`] : [],
      containerLines: attachment.internal ? [] : [`route add default via ${attachment.gateway} dev ${ifname}`],
    });
  }

  /** Takes the endpoint's address from host-local IPAM: local networks have no address in etcd. */
  async address(attachment: NetworkAttachment): Promise<NetworkAttachment> {
    const address = await this.ipam.allocate(attachment.networkId, attachment.subnet, attachment.gateway, attachment.owner);
    return { ...attachment, address, mac: macFor(address) };
  }

  async leave(attachment: NetworkAttachment): Promise<void> {
    await run('ip', ['link', 'del', vethName(attachment)]).catch(() => undefined);
    await this.ipam.release(attachment.networkId, attachment.owner);
    const bridge = bridgeName(attachment.networkId);
    if ((await bridgePorts(bridge)).length > 0) return;
    await run('ip', ['link', 'del', bridge]).catch(() => undefined);
    await run(nft, ['delete', 'table', 'ip', tableName(attachment.networkId)]).catch(() => undefined);
  }

  async diagnose(networkId: string): Promise<BridgeDiagnosis | undefined> {
    const bridge = bridgeName(networkId);
    if (!(await linkExists(bridge))) return undefined;
    const addresses = JSON.parse(await run('ip', ['-j', '-4', 'addr', 'show', 'dev', bridge])) as Array<{ addr_info: Array<{ local: string }> }>;
    const ports = await bridgePorts(bridge);
    const nat = (await run(nft, ['list', 'table', 'ip', tableName(networkId)]).catch(() => '')).includes('masquerade');
    return { bridge, ...(addresses[0]?.addr_info[0] ? { gateway: addresses[0].addr_info[0].local } : {}), endpoints: ports, nat };
  }
}
