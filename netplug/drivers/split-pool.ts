/** The checks every driver that splits its pool into one share per host makes of a spec (host-gw's subnets, calico's blocks). */
import { parsePrefix } from '../ipam/ipv4.ts';
import type { NetworkSpec } from '../model.ts';
import type { Network } from '../cnm.ts';
import type { RouteEntry, WantedRoute } from '../driver.ts';
import type { NetworkAllocator, SpecProblem } from '../registry.ts';

export interface PoolShare {
  /** The driver as users read it: "host-gw", "calico". */
  driver: string;
  /** What each host gets: "subnet", "block". */
  share: string;
  /** The share's prefix length, from the spec's options. */
  length: number;
  /** Why --gateway and --ip-range make no sense on it. */
  noGateway: string;
  /** A --subnet that works, with what it holds. */
  example: string;
}

/** The routes a host needs on a network split per host: each other host's share, via that host's underlay address. */
export function routesToOtherShares(network: Network, entries: readonly RouteEntry[], ownAddress: string): WantedRoute[] {
  return entries.filter((e) => e.host !== ownAddress && e.subnet !== network.subnet).map((e) => ({ destination: e.subnet, via: e.host }));
}

/** The allocator of a network split per host: its pool and share size as the driver's data (under `sizeKey`), one share per node. */
export function splitPoolAllocator(sizeKey: string, shareLength: (options: Record<string, string>) => number, moreSharesPerNode = false): NetworkAllocator {
  return {
    network: (spec) => ({ data: { pool: spec.ipam.pools[0]!.subnet, [sizeKey]: String(shareLength(spec.options)) }, claims: [] }),
    nodeSubnetLength: (network) => shareLength(network.spec.options),
    moreSharesPerNode,
  };
}

export function splitPoolProblem(spec: NetworkSpec, pool: PoolShare): SpecProblem | undefined {
  const asked = spec.ipam.pools[0];
  if (!asked) return { message: `a ${pool.driver} network splits its pool into one ${pool.share} per host: it needs --subnet`, hint: pool.example };
  if (spec.ipam.pools.length > 1) return { message: `a ${pool.driver} network takes one --subnet` };
  if (asked.gateway || asked.ipRange) return { message: `a ${pool.driver} network ${pool.noGateway}: leave out --gateway and --ip-range` };
  if (parsePrefix(asked.subnet).length >= pool.length) {
    return { message: `subnet ${asked.subnet} cannot hold two /${pool.length} ${pool.share}s (one for a host, one for service VIPs)`, hint: `give a larger --subnet or a smaller ${pool.share}` };
  }
  if (spec.ingress) return { message: `a ${pool.driver} network cannot be the routing mesh's network` };
  return undefined;
}
