import { addon } from './addon.ts';

/** A network interface as rtnetlink reports it inside one namespace. */
export interface LinkInfo {
  index: number;
  name: string;
  /** veth, bridge, vxlan, macvlan, ... ("" for loopback and physical devices) */
  kind: string;
  mtu: number;
  up: boolean;
  mac: string;
  /** Index of the bridge the link is a port of, 0 if none. */
  master: number;
  /** CIDR strings such as "198.18.0.1/24". */
  addresses: string[];
  /** A VXLAN device's local (underlay) address. */
  vxlanLocal?: string;
}

/** A neighbour entry (`inet`, as `ip neigh show`) or a bridge forwarding entry (`bridge`, as `bridge fdb show`). */
export interface NeighbourInfo {
  ifindex: number;
  family: 'inet' | 'bridge';
  mac: string;
  /** The neighbour's address; for a VXLAN device's FDB entry, the remote VTEP ("" when none). */
  dst: string;
  /** NUD_* bits: 0x80 is permanent. */
  state: number;
  /** NTF_* bits: 0x02 is an entry of the device itself (self), 0x04 of its bridge (master). */
  flags: number;
}

/** The path of a named network namespace, as `ip netns add` creates it. */
export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

/**
 * Lists the links and addresses of a network namespace (a path such as /run/netns/NAME, or ""
 * for the caller's). The addon enters the namespace on a thread of its own that ends after.
 */
export function listLinks(netns: string): Promise<LinkInfo[]> {
  return addon.listLinks(netns);
}

/** The IPv4 neighbour and bridge FDB entries of a named namespace, through rtnetlink (no `ip` or `bridge` process). */
export function listNeighbours(name: string): Promise<NeighbourInfo[]> {
  return addon.listNeighbours(netnsPath(name));
}

/** Creates a named network namespace with loopback up, as `ip netns add` plus `ip link set lo up`. */
export function createNetns(name: string): Promise<void> {
  return addon.createNetns(netnsPath(name));
}

/** Removes a named network namespace; one that is already gone is fine. */
export function deleteNetns(name: string): Promise<void> {
  return addon.deleteNetns(netnsPath(name));
}

/** Sets a sysctl of a network namespace by name, such as `net/bridge/bridge-nf-call-iptables`. */
export function setNetnsSysctl(name: string, key: string, value: string): Promise<void> {
  return addon.writeInNetns(netnsPath(name), `/proc/sys/${key}`, value);
}

/**
 * Opens a socket inside a network namespace, bound to address:port (0: a free port) and, for
 * TCP, listening; resolves with its descriptor. The socket stays in that namespace, whichever
 * namespace the process that holds it is in: the agent serves a container's namespace from its
 * own (hand it to dgram's `bind({ fd })` or net's `listen({ fd })`).
 */
export function socketInNetns(netns: string, kind: 'udp' | 'tcp', address: string, port: number): Promise<number> {
  return addon.socketInNetns(netns, kind, address, port);
}

/**
 * Runs one nft command (such as `list table ip shoal-sandbox`) in each named namespace, in
 * order, through libnftables on one thread that enters them in turn: about 0.3 ms a namespace
 * where an `nft` process costs 13. A namespace that failed has `error` (nft's message, or why
 * it could not be entered).
 */
export function nftInNamespaces(names: readonly string[], command: string, options: { json?: boolean } = {}): Promise<Array<{ output: string; error?: string }>> {
  return names.length === 0 ? Promise.resolve([]) : addon.nftInNetns(names.map(netnsPath), command, options.json ?? false);
}

/**
 * One nft command or script (what `nft -f -` reads) in a named namespace, or this process's,
 * through libnftables: no process, no `ip netns exec` (whose mount namespace and sysfs
 * remount cost the kernel more than nft itself). Resolves with nft's output; rejects with its
 * message.
 */
export async function nftIn(netns: string | undefined, script: string, options: { json?: boolean } = {}): Promise<string> {
  const [result] = await addon.nftInNetns([netns ? netnsPath(netns) : '/proc/self/ns/net'], script, options.json ?? false);
  if (result!.error) throw new Error(`nft: ${result!.error.trim()}`);
  return result!.output;
}
