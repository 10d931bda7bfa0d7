/** Kernel links several drivers use: endpoint veth pairs on a bridge, and what a bridge holds. */
import { createHash } from 'node:crypto';
import { ipBatch, run } from '../shared/exec.ts';
import { type Endpoint, prefixLength } from './cnm.ts';
import { type LinkInfo, listLinks, netnsPath } from '../native/netns.ts';

/** Whether `device` exists, in the namespace named `netns` (the agent's own when absent). */
export async function linkExists(device: string, netns?: string): Promise<boolean> {
  return (await linksOf(netns)).some((l) => l.name === device);
}

/** The links of a named namespace (or this process's) through rtnetlink; none when it is gone. */
export function linksOf(netns?: string): Promise<LinkInfo[]> {
  return listLinks(netns ? netnsPath(netns) : '').catch(() => []);
}

/** The names of the ports on a bridge (none when the bridge is gone). */
export async function bridgePorts(bridge: string, netns?: string): Promise<string[]> {
  const links = await linksOf(netns);
  const master = links.find((l) => l.name === bridge);
  return master ? links.filter((l) => l.master === master.index).map((l) => l.name) : [];
}

/** A host-side device name for an endpoint: `prefix` names the driver; sandbox and network keep it unique on the host. */
export function endpointDeviceName(prefix: string, endpoint: Endpoint): string {
  return `${prefix}${createHash('sha256').update(`${endpoint.sandboxId}/${endpoint.network.id}`).digest('hex').slice(0, 10)}`;
}

/** The lines that give the sandbox's interface its address and MAC, and bring it up. */
export function addressLines(endpoint: Endpoint, mtu: number): string[] {
  return [`addr add ${endpoint.address}/${prefixLength(endpoint.network)} dev ${endpoint.ifname}`, `link set ${endpoint.ifname} address ${endpoint.mac} mtu ${mtu} up`];
}

/**
 * One endpoint: a veth pair with `veth` on `bridge` and the endpoint's interface in the
 * sandbox, holding its address and MAC. `hostLines` and `containerLines` add to each side. The
 * bridge is in `bridgeNetns` (a network's own namespace, or the host's), else in the process's.
 * A failure part way removes the pair again.
 */
export async function addEndpoint(
  endpoint: Endpoint,
  options: { veth: string; bridge: string; bridgeNetns?: string | undefined; netns: string; mtu: number; hostLines?: string[]; containerLines?: string[] },
): Promise<void> {
  const { veth, mtu } = options;
  try {
    await ipBatch([`link add ${veth} mtu ${mtu} type veth peer name ${endpoint.ifname} netns ${options.netns}`, `link set ${veth} master ${options.bridge} up`, ...(options.hostLines ?? [])], options.bridgeNetns);
    await ipBatch([...addressLines(endpoint, mtu), ...(options.containerLines ?? [])], options.netns);
  } catch (error) {
    await run('ip', [...(options.bridgeNetns ? ['-n', options.bridgeNetns] : []), 'link', 'del', veth]).catch(() => undefined);
    throw error;
  }
}
