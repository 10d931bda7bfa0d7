/**
 * Docker's Container Network Model: networks, the endpoints that join a sandbox to a network,
 * and the sandboxes (a task's network namespace). One schema per object gives its types.
 */
import { z } from 'zod';
import { Labels } from '../shared/schemas.ts';
import { isIpv4, parseIpv4, parsePrefix } from './ipam/ipv4.ts';

export const NetworkScope = z.enum(['local', 'swarm']);
export type NetworkScope = z.infer<typeof NetworkScope>;

const prefixText = z.string().refine((text) => {
  try {
    parsePrefix(text);
    return true;
  } catch {
    return false;
  }
}, { message: 'must be an IPv4 subnet such as 198.19.1.0/24, with no host bits set' });
const addressText = z.string().refine(isIpv4, { message: 'must be an IPv4 address such as 198.19.1.1' });

/** One address pool of a network, as the user asked for it (all parts optional but the subnet). */
export const IpamPoolRequest = z
  .object({ subnet: prefixText, gateway: addressText.optional(), ipRange: prefixText.optional() })
  .strict();
export type IpamPoolRequest = z.infer<typeof IpamPoolRequest>;

/** Body of POST /v1/networks (the CLI's `network create`). */
export const NetworkSpec = z
  .object({
    name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, { message: 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit' }),
    driver: z.string().default('bridge'),
    ipam: z.object({ pools: z.array(IpamPoolRequest).max(8).default([]) }).strict().default({ pools: [] }),
    internal: z.boolean().default(false),
    attachable: z.boolean().default(false),
    /** The routing mesh's network (Docker's ingress): one per cluster, made by the cluster unless replaced. */
    ingress: z.boolean().default(false),
    options: z.record(z.string(), z.string()).default({}),
    labels: Labels.default({}),
    /** Asked for by the user; each driver has the scopes it can take (macvlan: local or swarm). */
    scope: NetworkScope.optional(),
    /** Holds options and subnets for other networks to use (`--config-from`); no endpoint joins it. */
    configOnly: z.boolean().default(false),
    /** The config-only network whose options and subnets this one takes. */
    configFrom: z.string().optional(),
  })
  .strict();
export type NetworkSpec = z.infer<typeof NetworkSpec>;

/** A pool as allocated: every part known. */
export const IpamPool = z.object({ subnet: z.string(), gateway: z.string(), ipRange: z.string() });
export type IpamPool = z.infer<typeof IpamPool>;

export const NetworkObject = z.object({
  id: z.string(),
  spec: NetworkSpec,
  scope: NetworkScope,
  pools: z.array(IpamPool),
  /** What the driver's allocator gave the network (overlay: its VNI), as a string map. */
  data: z.record(z.string(), z.string()).default({}),
  /** Created by the cluster itself (bridge, host, none): cannot be removed. */
  builtin: z.boolean().default(false),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type NetworkObject = z.infer<typeof NetworkObject>;

/**
 * An address held by an endpoint, one etcd key per address: taking one is a create. An
 * endpoint on a local network is recorded the same way, with no address (its host's IPAM
 * picks it), under one key per owner.
 */
export const AddressLease = z.object({
  networkId: z.string(),
  address: z.string(),
  /** Who holds it: a task id, or a container id for containers run outside services. */
  owner: z.string(),
  nodeId: z.string().optional(),
  /** The names a standalone container answers to on the network (its name, hostname and aliases). */
  names: z.array(z.string()).optional(),
  /** A standalone container's labels, for network policy's selectors (a task's come from its service). */
  labels: z.record(z.string(), z.string()).optional(),
  allocatedAt: z.string(),
});
export type AddressLease = z.infer<typeof AddressLease>;

/**
 * One node's share of a network whose driver splits the pool per host (host-gw's subnet lease,
 * flannel's): one etcd key per subnet, so two nodes never get the same one. The leader renews
 * it while the node is ready; once `ttlMs` passes unrenewed, no host routes to it any more.
 */
export const NodeSubnetLease = z.object({
  networkId: z.string(),
  nodeId: z.string(),
  subnet: z.string(),
  renewedAt: z.number(),
  ttlMs: z.number(),
});
export type NodeSubnetLease = z.infer<typeof NodeSubnetLease>;

/**
 * Every host's gateway bridge (Docker's docker_gwbridge): overlay endpoints that are not
 * internal get a second interface on it, for egress with NAT. Local to each host, the same
 * subnet everywhere, and kept out of every address pool.
 */
export const gatewayBridge = { networkId: 'gwbridge', name: 'gwbridge', driver: 'bridge', subnet: '198.19.255.0/24', gateway: '198.19.255.1' } as const;

/** A MAC address derived from the IPv4 address, as Docker does (02:42 and the four octets). */
export function macFor(address: string): string {
  const n = parseIpv4(address);
  return ['02', '42', n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => (typeof b === 'string' ? b : b.toString(16).padStart(2, '0'))).join(':');
}
