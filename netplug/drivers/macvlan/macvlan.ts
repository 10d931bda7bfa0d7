/**
 * The macvlan driver, as CNI's macvlan plugin and libnetwork's: each endpoint is a macvlan
 * device on the host's parent interface, moved into the sandbox: no bridge, no veth, no NAT.
 * The sandbox sits on the parent's L2 segment with its own MAC, its default route via the
 * network's gateway (the segment's router). A parent named `eth0.20` is an 802.1q
 * sub-interface: made on demand (and removed with the network when Shoal made it, marked by
 * its alias). The kernel keeps the host's own address on the parent from talking to its
 * macvlan devices; `-o host_shim=true` adds the usual shim: a macvlan device of the host's on
 * the parent, with a /32 route per local endpoint through it.
 */
import { run } from '../../../shared/exec.ts';
import { type Endpoint, mtuOf, type Network, type Sandbox } from '../../cnm.ts';
import type { DriverDiagnosis, NetworkDriver } from '../../driver.ts';
import type { HostNamespace } from '../../host.ts';
import { addressLines, endpointDeviceName } from '../../links.ts';

export const macvlanModes = ['bridge', 'private', 'vepa', 'passthru'] as const;

/** `eth0.20`: VLAN 20 on eth0. */
export function vlanOf(parent: string): { link: string; id: number } | undefined {
  const match = /^(.+)\.(\d{1,4})$/.exec(parent);
  return match && Number(match[2]) >= 1 && Number(match[2]) <= 4094 ? { link: match[1]!, id: Number(match[2]) } : undefined;
}

const shimName = (network: Network) => `smh-${network.id.slice(0, 10)}`;
const madeMark = (network: Network) => `shoal:${network.id}`;

export interface MacvlanDiagnosis extends DriverDiagnosis {
  parent: string;
  mode: string;
  parentState?: string;
  vlan?: { link: string; id: number; madeByShoal: boolean };
  shim?: { device: string; routes: string[] };
}

export class MacvlanDriver implements NetworkDriver {
  constructor(
    private readonly host: HostNamespace,
    /** This node's hostname: `parent.HOSTNAME` names its own parent. */
    private readonly nodeName: string,
  ) {}

  /** This host's parent interface for the network. */
  parentOf(network: Network): string {
    const parent = network.options[`parent.${this.nodeName}`] ?? network.options.parent;
    if (!parent) throw new Error(`macvlan network ${network.name} names no parent interface for node ${this.nodeName} (-o parent=IFACE or -o parent.${this.nodeName}=IFACE)`);
    return parent;
  }

  private mode(network: Network): string {
    return network.options.macvlan_mode ?? 'bridge';
  }

  private async linkDetails(device: string): Promise<{ operstate?: string; ifalias?: string; mtu?: number } | undefined> {
    const links = JSON.parse(await this.host.ip(['-j', '-d', 'link', 'show', 'dev', device]).catch(() => '[]')) as Array<{ operstate?: string; ifalias?: string; mtu?: number }>;
    return links[0];
  }

  async createNetwork(network: Network): Promise<void> {
    const parent = this.parentOf(network);
    const vlan = vlanOf(parent);
    if (!(await this.host.linkExists(parent))) {
      if (!vlan) throw new Error(`parent interface ${parent} of macvlan network ${network.name} does not exist on node ${this.nodeName}`);
      if (!(await this.host.linkExists(vlan.link))) throw new Error(`interface ${vlan.link} (the link of VLAN ${parent}) does not exist on node ${this.nodeName}`);
      await this.host.ipBatch([`link add link ${vlan.link} name ${parent} type vlan id ${vlan.id}`, `link set ${parent} alias ${madeMark(network)}`]).catch((error: unknown) => {
        const message = String(error);
        throw new Error(/Unknown device type|not supported/i.test(message) ? `cannot make VLAN ${parent}: this kernel has no 802.1q support (module 8021q)` : `cannot make VLAN ${parent}: ${message}`);
      });
    }
    await this.host.ip(['link', 'set', parent, 'up']);
    if (network.options.host_shim === 'true' && !(await this.host.linkExists(shimName(network)))) {
      await this.host.ipBatch([`link add ${shimName(network)} link ${parent} type macvlan mode bridge`, `link set ${shimName(network)} up`]).catch(async (error: unknown) => {
        if (!(await this.host.linkExists(shimName(network)))) throw error;
      });
    }
  }

  async deleteNetwork(network: Network): Promise<void> {
    await this.host.ip(['link', 'del', shimName(network)]).catch(() => undefined);
    const parent = network.options[`parent.${this.nodeName}`] ?? network.options.parent;
    if (parent && vlanOf(parent) && (await this.linkDetails(parent))?.ifalias === madeMark(network)) await this.host.ip(['link', 'del', parent]).catch(() => undefined);
  }

  /**
   * Makes the device in the host's namespace under a name of its own (the sandbox's eth0 would
   * clash with the host's), moves it into the sandbox, then names and addresses it there.
   */
  async join(endpoint: Endpoint, sandbox: Sandbox): Promise<void> {
    const network = endpoint.network;
    const parent = this.parentOf(network);
    const temporary = endpointDeviceName('smv-', endpoint);
    const parentMtu = (await this.linkDetails(parent))?.mtu ?? 1500;
    try {
      await this.host.ipBatch([`link add ${temporary} mtu ${mtuOf(network, parentMtu)} link ${parent} type macvlan mode ${this.mode(network)}`, `link set ${temporary} netns ${sandbox.netns}`]);
      const routes = network.internal ? [] : [`route add default via ${network.gateway} dev ${endpoint.ifname}`];
      await run('ip', ['-n', sandbox.netns, '-batch', '-'], `${[`link set ${temporary} name ${endpoint.ifname}`, ...addressLines(endpoint, mtuOf(network, parentMtu)), ...routes].join('\n')}\n`);
      if (network.options.host_shim === 'true') await this.host.ip(['route', 'replace', `${endpoint.address}/32`, 'dev', shimName(network)]);
    } catch (error) {
      await this.host.ip(['link', 'del', temporary]).catch(() => undefined);
      await run('ip', ['-n', sandbox.netns, 'link', 'del', temporary]).catch(() => undefined);
      await run('ip', ['-n', sandbox.netns, 'link', 'del', endpoint.ifname]).catch(() => undefined);
      throw error;
    }
  }

  async leave(endpoint: Endpoint, sandbox: Sandbox): Promise<void> {
    if (endpoint.address) await this.host.ip(['route', 'del', `${endpoint.address}/32`, 'dev', shimName(endpoint.network)]).catch(() => undefined);
    if (endpoint.ifname) await run('ip', ['-n', sandbox.netns, 'link', 'del', endpoint.ifname]).catch(() => undefined);
  }

  async check(network: Network): Promise<string[]> {
    const parent = this.parentOf(network);
    const details = await this.linkDetails(parent);
    if (!details) return [`parent interface ${parent} is missing`];
    const problems: string[] = [];
    if (details.operstate === 'DOWN') problems.push(`parent interface ${parent} is down`);
    if (network.options.host_shim === 'true' && !(await this.host.linkExists(shimName(network)))) problems.push(`host shim ${shimName(network)} is missing`);
    return problems;
  }

  async diagnose(network: Network): Promise<MacvlanDiagnosis> {
    const parent = this.parentOf(network);
    const details = await this.linkDetails(parent);
    const vlan = vlanOf(parent);
    const shim = network.options.host_shim === 'true' ? shimName(network) : undefined;
    const shimRoutes = shim ? (JSON.parse(await this.host.ip(['-j', 'route', 'show', 'dev', shim]).catch(() => '[]')) as Array<{ dst: string }>).map((r) => r.dst) : [];
    return {
      driver: 'macvlan',
      summary: `macvlan on ${parent} (${this.mode(network)}${details?.operstate ? `, ${details.operstate}` : ', missing'})${shim ? ` shim ${shim}` : ''}`,
      // The hosts meet on the parent's LAN: the UI draws that link, red for what a host lacks of another's endpoints.
      link: 'LAN',
      parent,
      mode: this.mode(network),
      ...(details?.operstate ? { parentState: details.operstate } : {}),
      ...(vlan ? { vlan: { ...vlan, madeByShoal: details?.ifalias === madeMark(network) } } : {}),
      ...(shim ? { shim: { device: shim, routes: shimRoutes } } : {}),
    };
  }
}
