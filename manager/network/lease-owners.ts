/**
 * Who holds an address lease. Most leases belong to a task or a container (an endpoint with a
 * sandbox); two kinds have none: a service's virtual address on a network, and the routing
 * mesh's ingress sandbox on a node. Listings and the in-use check tell them apart here.
 */

const vipPrefix = 'vip:';
const ingressSandboxPrefix = 'ingress-sbox:';

/** The lease owner of a service's virtual address on a network. */
export const vipOwner = (serviceId: string) => `${vipPrefix}${serviceId}`;

/** The lease owner of a node's ingress sandbox (the routing mesh's endpoint on that node). */
export const ingressSandboxOwner = (nodeId: string) => `${ingressSandboxPrefix}${nodeId}`;

export type LeaseHolder = { kind: 'vip'; serviceId: string } | { kind: 'ingress-sandbox'; nodeId: string } | { kind: 'endpoint' };

export function leaseHolder(owner: string): LeaseHolder {
  if (owner.startsWith(vipPrefix)) return { kind: 'vip', serviceId: owner.slice(vipPrefix.length) };
  if (owner.startsWith(ingressSandboxPrefix)) return { kind: 'ingress-sandbox', nodeId: owner.slice(ingressSandboxPrefix.length) };
  return { kind: 'endpoint' };
}

export const isVipLease = (lease: { owner: string }) => leaseHolder(lease.owner).kind === 'vip';
