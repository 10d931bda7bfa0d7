/** Kernel links both data-plane drivers use: endpoint veth pairs on a bridge, and what a bridge holds. */
import { createHash } from 'node:crypto';
import type { NetworkAttachment } from '../shared/containers.ts';
import { ipBatch, run } from '../shared/exec.ts';

/** Whether `device` exists, in the namespace named `netns` (the agent's own when absent). */
export async function linkExists(device: string, netns?: string): Promise<boolean> {
  return run('ip', [...(netns ? ['-n', netns] : []), 'link', 'show', 'dev', device]).then(() => true, () => false);
}

/** The names of the ports on a bridge (none when the bridge is gone). */
export async function bridgePorts(bridge: string, netns?: string): Promise<string[]> {
  const ports = JSON.parse(await run('ip', [...(netns ? ['-n', netns] : []), '-j', 'link', 'show', 'master', bridge]).catch(() => '[]')) as Array<{ ifname: string }>;
  return ports.map((p) => p.ifname);
}

/** Host side of an endpoint's veth: `prefix` names the driver; owner and network keep it unique on the host. */
export function endpointVethName(prefix: string, attachment: NetworkAttachment): string {
  return `${prefix}${createHash('sha256').update(`${attachment.owner}/${attachment.networkId}`).digest('hex').slice(0, 10)}`;
}

/**
 * One endpoint: a veth pair with `veth` on `bridge` and `ifname` in the container's namespace,
 * holding the attachment's address and MAC. `hostLines` and `containerLines` add to each side.
 * The bridge is in `bridgeNetns` (a network's own namespace), else in the agent's.
 */
export async function addEndpoint(
  attachment: NetworkAttachment,
  options: { veth: string; bridge: string; bridgeNetns?: string; netns: string; ifname: string; mtu: number; hostLines?: string[]; containerLines?: string[] },
): Promise<void> {
  const { veth, ifname, mtu } = options;
  await ipBatch([`link add ${veth} mtu ${mtu} type veth peer name ${ifname} netns ${options.netns}`, `link set ${veth} master ${options.bridge} up`, ...(options.hostLines ?? [])], options.bridgeNetns);
  await ipBatch(
    [`addr add ${attachment.address}/${attachment.subnet.split('/')[1]} dev ${ifname}`, `link set ${ifname} address ${attachment.mac} mtu ${mtu} up`, ...(options.containerLines ?? [])],
    options.netns,
  );
}
