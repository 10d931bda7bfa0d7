import { randomBytes } from 'node:crypto';
import { errors } from '../shared/errors.ts';
import { keys } from '../shared/keys.ts';
import type { ClusterRecord } from '../shared/schemas.ts';
import { fenceHolds, now } from '../shared/store/objects.ts';
import type { Store, Versioned, WriteOp } from '../shared/store/store.ts';
import { driverRegistry } from '../netplug/drivers/index.ts';
import { type DriverDefinition, DriverRegistry } from '../netplug/registry.ts';
import { formatIpv4, formatPrefix, hostRange, overlaps, parseIpv4, parsePrefix, type Prefix, size, within } from '../netplug/ipam/ipv4.ts';
import { isVipLease } from './network/lease-owners.ts';
import { type AddressLease, gatewayBridge, type IpamPool, macFor, type NetworkObject, type NetworkScope, NetworkSpec, type NodeSubnetLease } from '../netplug/model.ts';
import type { NetworkAttachment } from '../shared/containers.ts';
import { isTerminal, stackLabel, type TaskObject } from '../shared/services.ts';

/**
 * Which subnets and driver resources (a VNI, a macvlan parent) are taken, and by which
 * network: one key, changed only by revision-checked transactions, so two networks can never
 * get overlapping subnets or the same resource, whichever managers create them at once.
 */
export interface IpamRegistry {
  subnets: Record<string, string>;
  claims: Record<string, string>;
}

const attempts = 8;

async function readRegistry(store: Store): Promise<{ registry: IpamRegistry; version?: number }> {
  const found = await store.get<IpamRegistry & { vnis?: Record<string, string> }>(keys.ipamRegistry);
  if (!found) return { registry: { subnets: {}, claims: {} } };
  // A registry written before drivers claimed resources held VNIs apart.
  const legacy = Object.fromEntries(Object.entries(found.value.vnis ?? {}).map(([vni, id]) => [`vni:${vni}`, id]));
  return { registry: { subnets: found.value.subnets, claims: { ...legacy, ...(found.value.claims ?? {}) } }, version: found.version };
}

function registryWrite(registry: IpamRegistry, version: number | undefined): WriteOp {
  return version === undefined ? { op: 'create', key: keys.ipamRegistry, value: registry } : { op: 'update', key: keys.ipamRegistry, value: registry, version };
}

/** The first subnet of `maskLength` in `pool` that overlaps none taken. */
function freeSubnet(pool: Prefix, maskLength: number, taken: Prefix[]): Prefix | undefined {
  const step = 2 ** (32 - maskLength);
  for (let base = pool.base; base + step <= pool.base + size(pool); base += step) {
    const candidate = { base, length: maskLength };
    if (!taken.some((t) => overlaps(t, candidate))) return candidate;
  }
  return undefined;
}

/** Checks the user's pools (or picks one from the default pool) against the subnets taken. */
function allocatePools(spec: NetworkSpec, scope: 'local' | 'swarm', cluster: ClusterRecord, registry: IpamRegistry, names: Map<string, string>): IpamPool[] {
  const taken = [...Object.keys(registry.subnets), gatewayBridge.subnet].map((s) => parsePrefix(s));
  const ownerOf = (subnet: Prefix) => {
    const clash = Object.entries(registry.subnets).find(([s]) => overlaps(parsePrefix(s), subnet));
    if (!clash && overlaps(parsePrefix(gatewayBridge.subnet), subnet)) return `the hosts' gateway bridge (${gatewayBridge.subnet})`;
    return clash ? `network "${names.get(clash[1]) ?? clash[1]}" (${clash[0]})` : 'another network';
  };
  if (spec.ipam.pools.length === 0) {
    const pool = parsePrefix(scope === 'swarm' ? cluster.addressPools.swarm : cluster.addressPools.local);
    // Local networks are one host's business: a /24 each, whatever the swarm pool's mask.
    const maskLength = scope === 'swarm' ? cluster.addressPools.maskLength : 24;
    const subnet = freeSubnet(pool, maskLength, taken);
    if (!subnet) {
      throw errors.conflict(`the default address pool ${formatPrefix(pool)} has no free /${maskLength} left`, 'pass --subnet, or remove networks you no longer need (`shoal network prune`)');
    }
    const range = hostRange(subnet);
    return [{ subnet: formatPrefix(subnet), gateway: formatIpv4(range.first), ipRange: formatPrefix(subnet) }];
  }
  const chosen: Prefix[] = [];
  return spec.ipam.pools.map((request) => {
    const subnet = parsePrefix(request.subnet);
    if (subnet.length > 30) throw errors.invalid(`subnet ${request.subnet} is too small for a network`, 'use a /30 or larger');
    if (taken.some((t) => overlaps(t, subnet))) throw errors.conflict(`subnet ${request.subnet} overlaps ${ownerOf(subnet)}`, 'pick a subnet no other network uses');
    if (chosen.some((c) => overlaps(c, subnet))) throw errors.invalid(`subnet ${request.subnet} overlaps another subnet of the same network`);
    chosen.push(subnet);
    const range = hostRange(subnet);
    const ipRange = request.ipRange ? parsePrefix(request.ipRange) : subnet;
    if (!within(ipRange, subnet)) throw errors.invalid(`ip range ${request.ipRange} is not inside subnet ${request.subnet}`);
    const gateway = request.gateway ? parseIpv4(request.gateway) : range.first;
    if (gateway < range.first || gateway > range.last) {
      throw errors.invalid(`gateway ${request.gateway} is not a host address of subnet ${request.subnet}`, `use an address from ${formatIpv4(range.first)} to ${formatIpv4(range.last)}`);
    }
    return { subnet: request.subnet, gateway: formatIpv4(gateway), ipRange: formatPrefix(ipRange) };
  });
}

export async function listNetworks(store: Store): Promise<Versioned<NetworkObject>[]> {
  return store.list<NetworkObject>(keys.networks);
}

/** The scope a spec gets: the one asked for, if its driver can take it, else the driver's first. */
function scopeOf(spec: NetworkSpec, scopes: readonly NetworkScope[]): NetworkScope {
  // A stack's networks span the nodes its services run on.
  if (spec.scope === undefined) return spec.labels[stackLabel] !== undefined && scopes.includes('swarm') ? 'swarm' : scopes[0]!;
  if (!scopes.includes(spec.scope)) throw errors.invalid(`--scope ${spec.scope}: a ${spec.driver} network is ${scopes.join(' or ')}-scoped`);
  return spec.scope;
}

/** Takes a config-only network's subnets and options into a spec that names it with `configFrom`. */
async function withConfig(store: Store, spec: NetworkSpec): Promise<NetworkSpec> {
  if (spec.configFrom === undefined) return spec;
  if (spec.configOnly) throw errors.invalid('a config-only network cannot take its configuration from another');
  if (spec.ipam.pools.length > 0 || Object.keys(spec.options).length > 0) {
    throw errors.invalid(`--config-from ${spec.configFrom} gives the subnets and options: leave out --subnet, --gateway, --ip-range and -o`);
  }
  const config = (await findNetwork(store, spec.configFrom)).value;
  if (!config.spec.configOnly) throw errors.invalid(`network "${config.spec.name}" is not a config-only network`, `create one with \`shoal network create --config-only ...\``);
  return { ...spec, ipam: config.spec.ipam, options: config.spec.options };
}

/** Checks a spec against its driver's definition: the options it accepts, the scopes it can take, its own rules. */
function checkSpec(spec: NetworkSpec, options: { builtin?: boolean }): { definition: DriverDefinition; scope: NetworkScope } {
  const definition = driverRegistry.require(spec.driver);
  if (!definition.creatable && !options.builtin) throw errors.invalid(`networks of driver "${spec.driver}" cannot be created; the cluster has its one "${definition.builtin?.name ?? spec.driver}" network`);
  for (const [key, value] of Object.entries(spec.options)) {
    const check = DriverRegistry.optionCheck(definition, key);
    const known = [...Object.keys(definition.options), ...Object.keys(definition.optionPrefixes ?? {}).map((p) => `${p}.NODE`)];
    if (!check) throw errors.invalid(`driver "${spec.driver}" has no option "${key}"`, known.length ? `its options: ${known.join(', ')}` : 'it takes no options');
    const problem = check(value);
    if (problem) throw errors.invalid(`option ${key}=${value}: ${problem}`);
  }
  if (!definition.addressed && spec.ipam.pools.length > 0) throw errors.invalid(`networks of driver "${spec.driver}" have no addresses`);
  if (spec.ingress && !definition.ingress) throw errors.invalid('an ingress network is an overlay: the routing mesh spans the nodes', 'create it with `-d overlay --ingress`');
  const scope = scopeOf(spec, definition.scopes);
  // A config-only network is checked by the network that takes it.
  const problem = spec.configOnly ? undefined : definition.validate?.(spec, scope);
  if (problem) throw errors.invalid(problem.message, problem.hint);
  return { definition, scope };
}

/** Creates a network: its name, subnets and driver resources are claimed in the one transaction that stores it. */
export async function createNetwork(store: Store, cluster: ClusterRecord, asked: NetworkSpec, options: { builtin?: boolean } = {}): Promise<NetworkObject> {
  const spec = await withConfig(store, asked);
  const { definition, scope } = checkSpec(spec, options);
  for (let attempt = 0; attempt < attempts; attempt++) {
    const [{ registry, version }, existing] = await Promise.all([readRegistry(store), listNetworks(store)]);
    if (existing.some((n) => n.value.spec.name === spec.name)) throw errors.conflict(`a network named "${spec.name}" exists already`, 'pick another name');
    const ingress = spec.ingress ? existing.find((n) => n.value.spec.ingress) : undefined;
    if (ingress) throw errors.conflict(`the cluster has an ingress network already ("${ingress.value.spec.name}")`, `remove it first (\`shoal network rm ${ingress.value.spec.name}\`, once no service publishes ports in ingress mode)`);
    const names = new Map(existing.map((n) => [n.value.id, n.value.spec.name]));
    const id = randomBytes(12).toString('hex');
    // A config-only network holds subnets for the network that takes them: it claims nothing.
    const pools = definition.addressed && !spec.configOnly ? allocatePools(spec, scope, cluster, registry, names) : [];
    const claimed = new Map(Object.entries(registry.claims).map(([claim, owner]) => [claim, names.get(owner) ?? owner]));
    const allocated = spec.configOnly ? { data: {}, claims: [] } : (definition.allocator?.network?.(spec, claimed) ?? { data: {}, claims: [] });
    const next: IpamRegistry = {
      subnets: { ...registry.subnets, ...Object.fromEntries(pools.map((p) => [p.subnet, id])) },
      claims: { ...registry.claims, ...Object.fromEntries(allocated.claims.map((c) => [c, id])) },
    };
    const time = now();
    const network: NetworkObject = { id, spec, scope, pools, data: allocated.data, builtin: options.builtin ?? false, createdAt: time, updatedAt: time };
    const result = await store.commit([
      { op: 'create', key: keys.networkName(spec.name), value: id },
      registryWrite(next, version),
      { op: 'create', key: keys.network(id), value: network },
    ]);
    if (result.ok) return network;
    if (await store.get(keys.networkName(spec.name))) throw errors.conflict(`a network named "${spec.name}" exists already`, 'pick another name');
  }
  throw errors.unavailable('networks changed too often to create this one; try again');
}

/** By id, unique id prefix, or name. */
export async function findNetwork(store: Store, reference: string): Promise<Versioned<NetworkObject>> {
  const networks = await listNetworks(store);
  const exact = networks.find((n) => n.value.id === reference || n.value.spec.name === reference);
  if (exact) return exact;
  const matches = networks.filter((n) => n.value.id.startsWith(reference));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw errors.conflict(`"${reference}" matches ${matches.length} networks`, 'use the full name');
  throw errors.notFound('network', reference, 'list networks with `shoal network ls`');
}

export async function addressesOf(store: Store, networkId: string): Promise<Versioned<AddressLease>[]> {
  return store.list<AddressLease>(keys.networkAddresses(networkId));
}

/** Everyone on a network: the address leases, and the endpoints on local networks (no address). */
export async function endpointsOf(store: Store, networkId: string): Promise<Versioned<AddressLease>[]> {
  const [addressed, local] = await Promise.all([addressesOf(store, networkId), store.list<AddressLease>(keys.networkLocalEndpoints(networkId))]);
  return [...addressed, ...local];
}

/** Records an endpoint on a local network for its owner (nothing to do when one is there). */
function localEndpointWrite(network: NetworkObject, owner: string, nodeId: string) {
  const lease: AddressLease = { networkId: network.id, address: '', owner, nodeId, allocatedAt: now() };
  return { op: 'create' as const, key: keys.networkLocalEndpoint(network.id, owner), value: lease };
}

/** Removes a network nobody uses; its subnets and VNI go back to the pool in the same transaction. */
export async function removeNetwork(store: Store, reference: string): Promise<NetworkObject> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const found = await findNetwork(store, reference);
    const network = found.value;
    if (network.builtin) throw errors.conflict(`"${network.spec.name}" is a built-in network and cannot be removed`);
    if (network.spec.configOnly) {
      const users = (await listNetworks(store)).filter((n) => n.value.spec.configFrom === network.spec.name);
      if (users.length > 0) throw errors.conflict(`config-only network "${network.spec.name}" is used by ${users.map((n) => `"${n.value.spec.name}"`).join(', ')}`, 'remove those networks first');
    }
    const all = await endpointsOf(store, network.id);
    // An ended task keeps its address while its history does (so a copy still running on a
    // cut-off host never shares it); one its agent saw stop holds nothing, and goes with the network.
    const owners = await store.getMany<TaskObject>(all.map((l) => keys.task(l.value.owner)));
    const stopped = new Set(owners.filter(({ value }) => isTerminal(value.desiredState) && isTerminal(value.status.state) && value.status.state !== 'orphaned').map(({ value }) => value.id));
    const leases = all.filter((l) => !stopped.has(l.value.owner));
    if (leases.length > 0) {
      // A service's VIP is not an endpoint, but the service still uses the network (with no task running, it is the only lease).
      const users = leases.filter((l) => !isVipLease(l.value));
      const vips = leases.length - users.length;
      const who = users
        .slice(0, 5)
        .map((u) => `${u.value.owner.slice(0, 12)} (${u.value.address || `on node ${(u.value.nodeId ?? '').slice(0, 12)}`})`)
        .join(', ');
      const parts = [
        ...(users.length > 0 ? [`${users.length} endpoint(s): ${who}${users.length > 5 ? ', ...' : ''}`] : []),
        ...(vips > 0 ? [`the virtual address of ${vips} service(s)`] : []),
      ];
      throw errors.conflict(`network "${network.spec.name}" is in use by ${parts.join(', and ')}`, 'remove the services or containers that use it first');
    }
    const { registry, version } = await readRegistry(store);
    const next: IpamRegistry = {
      subnets: Object.fromEntries(Object.entries(registry.subnets).filter(([, id]) => id !== network.id)),
      claims: Object.fromEntries(Object.entries(registry.claims).filter(([, id]) => id !== network.id)),
    };
    const nodeSubnets = await store.list<NodeSubnetLease>(keys.networkNodeSubnets(network.id));
    const result = await store.commit([
      { op: 'delete', key: found.key, version: found.version },
      { op: 'delete', key: keys.networkName(network.spec.name) },
      registryWrite(next, version),
      ...all.filter((l) => stopped.has(l.value.owner)).map((l) => ({ op: 'delete' as const, key: l.key, version: l.version })),
      ...nodeSubnets.map((l) => ({ op: 'delete' as const, key: l.key })),
    ]);
    if (result.ok) return network;
  }
  throw errors.unavailable('networks changed too often to remove this one; try again');
}

/** Removes every network that is not built in and has no endpoint; returns their names. */
export async function pruneNetworks(store: Store): Promise<string[]> {
  const removed: string[] = [];
  for (const { value: network } of await listNetworks(store)) {
    if (network.builtin || network.spec.ingress || (await endpointsOf(store, network.id)).length > 0) continue;
    await removeNetwork(store, network.id).then(
      () => removed.push(network.spec.name),
      () => undefined,
    );
  }
  return removed;
}

/** The routing mesh's network of a new cluster, as Docker's ingress: kept out of the default pool's first subnets. */
export const defaultIngressSubnet = '198.19.127.0/24';

/** A new cluster: none of its built-in networks made yet. */
const builtinsMissing = (existing: ReadonlySet<string>) => driverRegistry.list().every((d) => !d.builtin || !existing.has(d.builtin.name));

/**
 * The networks every cluster has, as Docker has them: bridge (local), host and none; and, made
 * with them in a new cluster, the ingress overlay (which, unlike them, may be replaced).
 */
export async function ensureBuiltinNetworks(store: Store, cluster: ClusterRecord): Promise<void> {
  const existing = new Set((await listNetworks(store)).map((n) => n.value.spec.name));
  const mesh = driverRegistry.list().find((d) => d.ingress);
  if (mesh && builtinsMissing(existing)) {
    await createNetwork(store, cluster, NetworkSpec.parse({ name: 'ingress', driver: mesh.type, ingress: true, ipam: { pools: [{ subnet: defaultIngressSubnet }] } })).catch((error: unknown) => {
      if (!String(error).includes('exists already') && !String(error).includes('ingress network already')) throw error;
    });
  }
  const builtins = driverRegistry.list().flatMap((d) => (d.builtin ? [NetworkSpec.parse({ name: d.builtin.name, driver: d.type })] : []));
  for (const spec of builtins) {
    if (existing.has(spec.name)) continue;
    await createNetwork(store, cluster, spec, { builtin: true }).catch((error: unknown) => {
      // Another manager made it at the same moment.
      if (!String(error).includes('exists already')) throw error;
    });
  }
}

/** How long a node's subnet lease lasts unrenewed: the leader renews those of ready nodes every 10 s. */
export const nodeSubnetTtlMs = 30_000;

/** The prefix length of each node's subnet, on a network whose driver splits the pool per host (host-gw). */
function nodeSubnetLength(network: NetworkObject): number | undefined {
  return driverRegistry.get(network.spec.driver)?.allocator?.nodeSubnetLength?.(network);
}

/** The subnet kept for service VIPs on a network split per host: the pool's last host-sized subnet. */
function vipSubnet(network: NetworkObject, length: number): Prefix {
  const pool = parsePrefix(network.pools[0]!.subnet);
  return { base: pool.base + size(pool) - 2 ** (32 - length), length };
}

/** Whether a node whose share of the pool is full may lease another (calico's blocks). */
const moreSharesPerNode = (network: NetworkObject) => driverRegistry.get(network.spec.driver)?.allocator?.moreSharesPerNode === true;

/** The share (an aligned prefix of the node-subnet length) an address lies in. */
function shareOf(network: NetworkObject, address: string): string | undefined {
  const length = nodeSubnetLength(network);
  if (length === undefined || !address) return undefined;
  const span = 2 ** (32 - length);
  return formatPrefix({ base: Math.floor(parseIpv4(address) / span) * span, length });
}

/**
 * The subnet `nodeId` holds on a network split per host, leased now if it holds none (one etcd
 * key per subnet: never given twice). `full`: shares the caller found full; where the driver
 * allows it (calico), the node leases another block, as Calico's IPAM does.
 */
export async function ensureNodeSubnet(store: Store, network: NetworkObject, nodeId: string, fence: readonly WriteOp[] = [], full: ReadonlySet<string> = new Set()): Promise<NodeSubnetLease> {
  const length = nodeSubnetLength(network);
  if (length === undefined) throw new Error(`network ${network.spec.name} is not split per host`);
  for (let attempt = 0; attempt < attempts; attempt++) {
    const leases = await store.list<NodeSubnetLease>(keys.networkNodeSubnets(network.id));
    const mine = leases.filter((l) => l.value.nodeId === nodeId);
    const held = mine.find((l) => !full.has(l.value.subnet)) ?? (moreSharesPerNode(network) ? undefined : mine[0]);
    if (held) return held.value;
    const taken = [...leases.map((l) => parsePrefix(l.value.subnet)), vipSubnet(network, length)];
    const subnet = freeSubnet(parsePrefix(network.pools[0]!.subnet), length, taken);
    if (!subnet) throw errors.conflict(`network "${network.spec.name}" has no free /${length} left for another host (${leases.length} hosts hold one)`, 'create the network with a larger --subnet or a larger -o host_subnet_size');
    const lease: NodeSubnetLease = { networkId: network.id, nodeId, subnet: formatPrefix(subnet), renewedAt: Date.now(), ttlMs: nodeSubnetTtlMs };
    if ((await store.commit([...fence, { op: 'create', key: keys.networkNodeSubnet(network.id, lease.subnet), value: lease }])).ok) return lease;
    if (!(await fenceHolds(store, fence))) throw errors.deposed();
  }
  throw errors.unavailable(`could not lease a host subnet on "${network.spec.name}"; try again`);
}

/**
 * A free address in a node's share by `pick`; when the share is full and the driver allows it
 * (calico), in another of the node's shares, leased now if it holds no other with room.
 */
async function freeInShares(
  store: Store,
  network: NetworkObject,
  nodeId: string | undefined,
  share: string | undefined,
  fence: readonly WriteOp[],
  pick: (share: string | undefined) => number,
): Promise<{ address: number; share: string | undefined }> {
  const full = new Set<string>();
  for (;;) {
    try {
      return { address: pick(share), share };
    } catch (error) {
      if (!share || !nodeId || !moreSharesPerNode(network) || full.has(share)) throw error;
      full.add(share);
      const next = (await ensureNodeSubnet(store, network, nodeId, fence, full)).subnet;
      if (full.has(next)) throw error;
      share = next;
    }
  }
}

/**
 * The subnet, gateway and dynamic range an endpoint's address comes from: the network's pool,
 * or on a network split per host, its node's subnet (VIPs, with no node, the subnet kept for them).
 */
function addressPool(network: NetworkObject, nodeSubnet?: string): { subnet: string; gateway: string; first: number; last: number; gatewayNumber: number } {
  const length = nodeSubnetLength(network);
  if (length !== undefined) {
    const subnet = nodeSubnet ? parsePrefix(nodeSubnet) : vipSubnet(network, length);
    const hosts = hostRange(subnet);
    return { subnet: formatPrefix(subnet), gateway: formatIpv4(hosts.first), first: hosts.first + 1, last: hosts.last, gatewayNumber: hosts.first };
  }
  const pool = network.pools[0]!;
  const hosts = hostRange(parsePrefix(pool.subnet));
  const range = hostRange(parsePrefix(pool.ipRange));
  return { subnet: pool.subnet, gateway: pool.gateway, first: Math.max(range.first, hosts.first), last: Math.min(range.last, hosts.last), gatewayNumber: parseIpv4(pool.gateway) };
}

/**
 * Takes an address on a network for `owner`: the one asked for (only on networks created with
 * a subnet, as Docker requires), or the lowest free one in the pool's ip range (the node's
 * subnet, on a network split per host). Each address is its own key, taken with a create:
 * never handed out twice, whatever runs concurrently.
 */
export async function allocateAddress(
  store: Store,
  network: NetworkObject,
  owner: string,
  /** `nodeSubnet`: the node's subnet on a network split per host, when the caller has it already. */
  options: { address?: string; nodeId?: string; names?: string[]; nodeSubnet?: string; labels?: Record<string, string> } = {},
): Promise<AddressLease> {
  if (!network.pools[0]) throw errors.invalid(`network "${network.spec.name}" has no addresses to give`);
  const split = nodeSubnetLength(network) !== undefined;
  const nodeSubnet = split && options.nodeId ? (options.nodeSubnet ?? (await ensureNodeSubnet(store, network, options.nodeId)).subnet) : undefined;
  const pool = addressPool(network, nodeSubnet);
  const lease = (address: number): AddressLease => ({
    networkId: network.id, address: formatIpv4(address), owner, ...(options.nodeId ? { nodeId: options.nodeId } : {}), ...(options.names ? { names: options.names } : {}), ...(options.labels && Object.keys(options.labels).length ? { labels: options.labels } : {}), allocatedAt: now(),
  });
  const take = async (address: number) => (await store.commit([{ op: 'create', key: keys.networkAddress(network.id, formatIpv4(address)), value: lease(address) }])).ok;

  if (options.address) {
    if (network.spec.ipam.pools.length === 0) throw errors.invalid(`a static address needs a network created with --subnet; "${network.spec.name}" was not`);
    if (split) throw errors.invalid(`network "${network.spec.name}" gives each host its own subnet: a static address is not supported on it`);
    const wanted = parseIpv4(options.address);
    const range = hostRange(parsePrefix(pool.subnet));
    if (wanted < range.first || wanted > range.last || wanted === pool.gatewayNumber) {
      throw errors.invalid(`address ${options.address} is not a free host address of ${pool.subnet} (the gateway is ${pool.gateway})`);
    }
    if (!(await take(wanted))) throw errors.conflict(`address ${options.address} on network "${network.spec.name}" is taken`);
    return lease(wanted);
  }
  let from = pool.first;
  let block = nodeSubnet;
  for (let round = 0; round < 1_000; round++) {
    const taken = new Set((await addressesOf(store, network.id)).map((l) => parseIpv4(l.value.address)));
    const found = await freeInShares(store, network, options.nodeId, block, [], (share) => {
      const range = addressPool(network, share);
      return nextFree(network, range, taken, share === block ? from : range.first);
    });
    block = found.share;
    const candidate = found.address;
    if (await take(candidate)) return lease(candidate);
    // Someone took it a moment ago: look again from the next one.
    const range = addressPool(network, block);
    from = candidate + 1 > range.last ? range.first : candidate + 1;
  }
  throw errors.unavailable(`could not take an address on "${network.spec.name}"; try again`);
}

/** Gives an address back, if `owner` still holds it. */
export async function releaseAddress(store: Store, networkId: string, address: string, owner: string): Promise<void> {
  const key = keys.networkAddress(networkId, address);
  const found = await store.get<AddressLease>(key);
  if (!found || found.value.owner !== owner) return;
  await store.commit([{ op: 'delete', key, version: found.version }]);
}

/**
 * Resolves a container's `--network` names into attachments its agent can plumb, taking an
 * address on each. Networks with no addresses: `none` means loopback only; `host` the host's
 * own namespace (the caller sets the network mode). On failure, what was taken is given back.
 */
export async function attachNetworks(
  store: Store,
  names: readonly string[],
  nodeId: string,
  options: { address?: string; owner?: string; standalone?: boolean; names?: (network: { id: string; name: string }) => string[]; labels?: Record<string, string> } = {},
): Promise<NetworkAttachment[]> {
  const attachments: NetworkAttachment[] = [];
  // A task's own id: an earlier attempt (a pass whose write failed) left its leases, which are reused.
  const owner = options.owner ?? randomBytes(12).toString('hex');
  try {
    for (const [index, name] of names.entries()) {
      if (addresslessBuiltin(name)) continue;
      const network = (await findNetwork(store, name)).value;
      if (takesNoAddress(network)) continue;
      checkJoinable(network);
      if (options.standalone && network.scope === 'swarm' && !network.spec.attachable) {
        throw errors.invalid(`network "${network.spec.name}" is not attachable: standalone containers join swarm-scoped networks created with --attachable`, `create it with \`shoal network create -d ${network.spec.driver} --attachable ...\`, or run a service on it`);
      }
      if (network.scope === 'local') {
        if (index === 0 && options.address) throw errors.invalid(`a static address on the local network "${network.spec.name}" is not supported yet`, 'use a swarm-scoped network created with --subnet');
        // Already there when a retried pass made it before: the create fails, and that is fine.
        await store.commit([localEndpointWrite(network, owner, nodeId)]);
        attachments.push(attachmentFor(network, owner));
        continue;
      }
      const held = options.owner ? (await addressesOf(store, network.id)).find((l) => l.value.owner === owner)?.value : undefined;
      const names = options.names?.({ id: network.id, name: network.spec.name }) ?? [];
      const nodeSubnet = nodeSubnetLength(network) !== undefined ? (await ensureNodeSubnet(store, network, nodeId)).subnet : undefined;
      const lease =
        held ??
        (await allocateAddress(store, network, owner, { nodeId, ...(nodeSubnet ? { nodeSubnet } : {}), ...(names.length ? { names } : {}), ...(index === 0 && options.address ? { address: options.address } : {}), ...(options.labels ? { labels: options.labels } : {}) }));
      attachments.push(attachmentFor(network, owner, lease.address, shareOf(network, lease.address) ?? nodeSubnet));
    }
    return attachments;
  } catch (error) {
    await detachNetworks(store, attachments);
    throw error;
  }
}

/**
 * What an agent needs to plumb one network. Local networks get no address here: the host's
 * agent takes it (host-local IPAM). On a network split per host, the endpoint's subnet and
 * gateway are its node's.
 */
export function attachmentFor(network: NetworkObject, owner: string, address?: string, nodeSubnet?: string): NetworkAttachment {
  const pool = addressPool(network, nodeSubnet);
  return {
    networkId: network.id,
    networkName: network.spec.name,
    driver: network.spec.driver,
    scope: network.scope,
    subnet: pool.subnet,
    gateway: pool.gateway,
    address: address ?? '',
    mac: address ? macFor(address) : '',
    internal: network.spec.internal,
    options: network.spec.options,
    data: network.data ?? {},
    owner,
  };
}

/** The lowest address from `from` on that is neither taken nor the gateway; a clear error when the range is spent. */
function nextFree(network: NetworkObject, pool: ReturnType<typeof addressPool>, taken: ReadonlySet<number>, from: number): number {
  let candidate = from;
  while (candidate <= pool.last && (candidate === pool.gatewayNumber || taken.has(candidate))) candidate++;
  if (candidate > pool.last) {
    const where = nodeSubnetLength(network) !== undefined ? `this host's subnet ${pool.subnet}` : network.pools[0]!.ipRange;
    throw errors.conflict(`network "${network.spec.name}" has no free address left in ${where}`, 'create a network with a larger --subnet or --ip-range');
  }
  return candidate;
}

/**
 * Takes the addresses of a whole pass of tasks at once: each network's leases are read once and
 * the new leases created in batched transactions, instead of several round trips per task
 * (which made a 100-task service wait 15 s for its assignments). The tasks of a batch that lost
 * a race with another writer fall back to one allocation at a time.
 */
export async function attachTasks(
  store: Store,
  requests: ReadonlyArray<{ owner: string; nodeId: string; names: readonly string[] }>,
  /** The leader's fence: a deposed leader's allocations do not land. */
  fence: readonly WriteOp[] = [],
): Promise<Map<string, NetworkAttachment[] | Error>> {
  const result = new Map<string, NetworkAttachment[] | Error>();
  if (requests.length === 0) return result;
  const networks = (await listNetworks(store)).map((n) => n.value);
  const leasesOf = new Map<string, AddressLease[]>();
  const pools = new Map<string, { taken: Set<number>; byOwner: Map<string, string>; next: number }>();
  const nodeSubnets = new Map<string, string>();
  const localOwners = new Map<string, Set<string>>();
  const creates: Array<{ op: WriteOp; owner: string }> = [];
  for (const request of requests) {
    try {
      const attachments: NetworkAttachment[] = [];
      for (const name of request.names) {
        const network = networks.find((n) => n.id === name || n.spec.name === name);
        if (!network) throw errors.notFound('network', name);
        if (takesNoAddress(network)) continue;
        checkJoinable(network);
        if (network.scope === 'local') {
          let owners = localOwners.get(network.id);
          if (!owners) {
            owners = new Set((await store.list<AddressLease>(keys.networkLocalEndpoints(network.id))).map((l) => l.value.owner));
            localOwners.set(network.id, owners);
          }
          if (!owners.has(request.owner)) creates.push({ op: localEndpointWrite(network, request.owner, request.nodeId), owner: request.owner });
          attachments.push(attachmentFor(network, request.owner));
          continue;
        }
        let nodeSubnet: string | undefined;
        if (nodeSubnetLength(network) !== undefined) {
          const key = `${network.id}/${request.nodeId}`;
          nodeSubnet = nodeSubnets.get(key) ?? (await ensureNodeSubnet(store, network, request.nodeId, fence)).subnet;
          nodeSubnets.set(key, nodeSubnet);
        }
        let leases = leasesOf.get(network.id);
        if (!leases) leasesOf.set(network.id, (leases = (await addressesOf(store, network.id)).map((l) => l.value)));
        const poolOf = (subnet: string | undefined) => {
          const range = addressPool(network, subnet);
          const poolKey = `${network.id}/${subnet ?? ''}`;
          let pool = pools.get(poolKey);
          if (!pool) {
            pool = { taken: new Set(leases!.map((l) => parseIpv4(l.address))), byOwner: new Map(leases!.map((l) => [l.owner, l.address])), next: range.first };
            pools.set(poolKey, pool);
          }
          return { range, pool };
        };
        let address = poolOf(nodeSubnet).pool.byOwner.get(request.owner);
        if (!address) {
          const found = await freeInShares(store, network, request.nodeId, nodeSubnet, fence, (share) => {
            const { range, pool } = poolOf(share);
            return nextFree(network, range, pool.taken, pool.next);
          });
          if (found.share !== nodeSubnet) {
            nodeSubnet = found.share;
            nodeSubnets.set(`${network.id}/${request.nodeId}`, found.share!);
          }
          const candidate = found.address;
          const { pool } = poolOf(nodeSubnet);
          pool.taken.add(candidate);
          pool.next = candidate + 1;
          address = formatIpv4(candidate);
          const lease: AddressLease = { networkId: network.id, address, owner: request.owner, nodeId: request.nodeId, allocatedAt: now() };
          creates.push({ op: { op: 'create', key: keys.networkAddress(network.id, address), value: lease }, owner: request.owner });
        }
        attachments.push(attachmentFor(network, request.owner, address, shareOf(network, address) ?? nodeSubnet));
      }
      result.set(request.owner, attachments);
    } catch (error) {
      result.set(request.owner, error as Error);
    }
  }
  const lost = new Set<string>();
  for (let i = 0; i < creates.length; i += 100) {
    const batch = creates.slice(i, i + 100);
    if (!(await store.commit([...fence, ...batch.map((c) => c.op)])).ok) for (const create of batch) lost.add(create.owner);
  }
  // One at a time would not carry the fence: a batch refused because the term ended ends here.
  if (lost.size > 0 && !(await fenceHolds(store, fence))) throw errors.deposed();
  for (const owner of lost) {
    const request = requests.find((r) => r.owner === owner)!;
    result.set(owner, await attachNetworks(store, request.names, request.nodeId, { owner }).catch((error: unknown) => error as Error));
  }
  return result;
}

/**
 * A built-in network that takes no address (none), by its name: nothing to attach, and no
 * network can take its name, so the store is not read (a container start was 2-4 ms faster).
 */
const addresslessBuiltin = (name: string) => driverRegistry.list().some((d) => d.builtin?.name === name && d.addressed === false);
/** `none` (loopback only) and `host` (the host's own namespace) hand out no address. */
const takesNoAddress = (network: NetworkObject) => driverRegistry.get(network.spec.driver)?.addressed === false;

/** Whether containers can join the network; throws the reason when not. */
export function checkJoinable(network: NetworkObject): void {
  if (network.spec.configOnly) {
    throw errors.invalid(`network "${network.spec.name}" is config-only: it holds options for other networks`, `create a network with \`--config-from ${network.spec.name}\` and use that`);
  }
  const definition = driverRegistry.get(network.spec.driver);
  if (definition && (definition.agent || !definition.addressed)) return;
  throw errors.invalid(`network "${network.spec.name}" (driver ${network.spec.driver}) cannot be joined: no agent has a data plane for its driver`);
}

/** Whether tasks on the network run in their host's own namespace (Docker's host network). */
export const isHostNetwork = (network: NetworkObject) => driverRegistry.get(network.spec.driver)?.hostNamespace === true;

/** Gives back the addresses of a container's attachments (and its records on local networks). */
export async function detachNetworks(store: Store, attachments: readonly NetworkAttachment[]): Promise<void> {
  for (const attachment of attachments) {
    // A local network's endpoint has its record; a swarm one its address (an agent may have
    // filled in a local address, so each is given back only if held).
    await store.commit([{ op: 'delete', key: keys.networkLocalEndpoint(attachment.networkId, attachment.owner) }]).catch(() => undefined);
    if (attachment.address) await releaseAddress(store, attachment.networkId, attachment.address, attachment.owner).catch(() => undefined);
  }
}
