import { createRequire } from 'node:module';

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
}

interface NativeAddon {
  listLinks(netnsPath: string): Promise<LinkInfo[]>;
}

const require = createRequire(import.meta.url);
// Compiled to dist/native/netns.js; the addon is built in native/build/.
const addon = require('../../native/build/Release/shoal_native.node') as NativeAddon;

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
