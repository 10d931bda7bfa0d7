import { run } from '../shared/exec.ts';

/** The host's interface that carries its underlay address: where VXLAN packets leave. */
export interface Underlay {
  device: string;
  address: string;
  mtu: number;
}

/** Finds the interface holding `address` in this process's network namespace. */
export async function findUnderlay(address: string): Promise<Underlay> {
  const links = JSON.parse(await run('ip', ['-j', '-4', 'addr', 'show'])) as Array<{ ifname: string; mtu: number; addr_info: Array<{ local: string }> }>;
  const link = links.find((l) => l.addr_info.some((a) => a.local === address));
  if (!link) throw new Error(`no interface of this host holds the address ${address}`);
  return { device: link.ifname, address, mtu: link.mtu };
}
