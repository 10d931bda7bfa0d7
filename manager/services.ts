import { randomBytes } from 'node:crypto';
import { errors } from '../shared/errors.ts';
import { keys } from '../shared/keys.ts';
import { type ServiceNetwork, type ServiceObject, ServiceSpec, type ServiceUpdateRequest, type TaskObject } from '../shared/services.ts';
import { now, updateObject } from '../shared/store/objects.ts';
import type { CommitResult, Store, Versioned, WriteOp } from '../shared/store/store.ts';
import type { NetworkObject } from '../netplug/model.ts';
import { allocateAddress, checkJoinable, findNetwork, isHostNetwork, listNetworks, releaseAddress } from './networks.ts';
import { vipOwner } from './network/lease-owners.ts';
import { resolveFileReferences } from './secrets.ts';

/** Checks what a spec asks of the cluster's networks and gives the stored spec (attachments are the manager's, per task). */
async function storedSpec(store: Store, spec: ServiceSpec): Promise<ServiceSpec> {
  if (spec.container.ip) throw errors.invalid('a service\'s tasks cannot share one static address', 'leave out --ip');
  const networks = await Promise.all(spec.container.networks.map(async (name) => (await findNetwork(store, name)).value));
  for (const network of networks) checkJoinable(network);
  // The host's namespace, as `docker service create --network host`: alone, with no address.
  const host = networks.find(isHostNetwork);
  if (host && networks.length > 1) throw errors.invalid(`--network ${host.spec.name} cannot be combined with other networks`, 'give the service either the host network or its own networks');
  if (spec.container.networkMode.startsWith('container:')) throw errors.invalid('a service\'s tasks cannot join another container\'s namespace', 'use a network the tasks share instead');
  const resolved = await resolveFileReferences(store, spec);
  return { ...resolved, container: { ...resolved.container, attachments: [], networkMode: host ? 'host' : 'private' } };
}

/** Where the cluster picks a published port a service leaves to it (0), as Swarm does. */
export const assignedPortRange = { first: 30_000, last: 32_767 } as const;

/**
 * The spec's published ports as the cluster will hold them, read against the other services
 * once: each ingress port published as 0 gets a real one (the port this service already
 * holds for the same target and protocol, so an update or a stack redeploy keeps it, else the
 * lowest free one of the range); a port another service publishes (in either mode) is refused,
 * naming that service.
 */
async function settlePorts(store: Store, serviceId: string, spec: ServiceSpec, current?: ServiceSpec): Promise<ServiceSpec> {
  if (spec.endpoint.ports.length === 0) return spec;
  const others = (await listServices(store)).map((s) => s.value).filter((other) => other.id !== serviceId);
  const settled = assignPorts(others, spec, current);
  checkPorts(others, settled);
  return settled;
}

function assignPorts(others: readonly ServiceObject[], spec: ServiceSpec, current?: ServiceSpec): ServiceSpec {
  if (!spec.endpoint.ports.some((p) => p.publishedPort === 0)) return spec;
  const held = new Set<string>();
  for (const other of others) for (const p of other.spec.endpoint?.ports ?? []) held.add(`${p.publishedPort}/${p.protocol}`);
  for (const p of spec.endpoint.ports) if (p.publishedPort !== 0) held.add(`${p.publishedPort}/${p.protocol}`);
  const ports = spec.endpoint.ports.map((port) => {
    if (port.publishedPort !== 0) return port;
    const kept = current?.endpoint.ports.find((c) => c.targetPort === port.targetPort && c.protocol === port.protocol && c.mode === port.mode && !held.has(`${c.publishedPort}/${c.protocol}`));
    let published = kept?.publishedPort;
    for (let candidate: number = assignedPortRange.first; published === undefined && candidate <= assignedPortRange.last; candidate++) {
      if (!held.has(`${candidate}/${port.protocol}`)) published = candidate;
    }
    if (published === undefined) throw errors.conflict(`no free port is left in ${assignedPortRange.first}-${assignedPortRange.last} to publish ${port.targetPort}/${port.protocol} on`, 'publish it on a port you choose (published=PORT,target=...)');
    held.add(`${published}/${port.protocol}`);
    return { ...port, publishedPort: published };
  });
  return { ...spec, endpoint: { ...spec.endpoint, ports } };
}

function checkPorts(others: readonly ServiceObject[], spec: ServiceSpec): void {
  for (const other of others) {
    for (const port of spec.endpoint.ports) {
      const held = other.spec.endpoint?.ports.find((p) => p.publishedPort === port.publishedPort && p.protocol === port.protocol);
      if (held) {
        throw errors.conflict(
          `port ${port.publishedPort}/${port.protocol} is already published by service "${other.spec.name}" (${held.mode} mode)`,
          `publish another port, or free it with \`shoal service update --publish-rm ${port.publishedPort} ${other.spec.name}\``,
        );
      }
    }
  }
}

/** Whether the service publishes a port through the routing mesh (it then joins the ingress network). */
function publishesIngress(spec: ServiceSpec): boolean {
  return spec.endpoint.ports.some((p) => p.mode === 'ingress');
}

/** Whether the service joins any network (its own, or ingress): else it holds no endpoint to allocate. */
function joinsNetworks(spec: ServiceSpec): boolean {
  return spec.container.networks.length > 0 || publishesIngress(spec);
}

/**
 * The networks a service is reached on: each swarm-scope network it joins, plus the ingress
 * network when it publishes in ingress mode, with a virtual address on each in vip mode. VIPs
 * it already holds are kept; new ones are leases of the network's IPAM (never handed out twice).
 * Returns the endpoint and the leases taken now, to give back if the service is not stored.
 */
async function allocateEndpoint(store: Store, serviceId: string, spec: ServiceSpec, current: readonly ServiceNetwork[] = []): Promise<{ networks: ServiceNetwork[]; taken: ServiceNetwork[] }> {
  if (!joinsNetworks(spec)) return { networks: [], taken: [] };
  const all = (await listNetworks(store)).map((n) => n.value);
  const joined = spec.container.networks.map((name) => all.find((n) => n.id === name || n.spec.name === name)).filter((n): n is NetworkObject => n !== undefined && n.scope === 'swarm');
  const wanted = joined.map((network) => ({ network, ingress: false }));
  if (publishesIngress(spec)) {
    const ingress = all.find((n) => n.spec.ingress);
    if (!ingress) throw errors.invalid('the cluster has no ingress network, so ports cannot be published in ingress mode', 'create one with `shoal network create -d overlay --ingress ingress`, or publish with mode=host');
    if (!wanted.some((w) => w.network.id === ingress.id)) wanted.push({ network: ingress, ingress: true });
  }
  const networks: ServiceNetwork[] = [];
  const taken: ServiceNetwork[] = [];
  try {
    for (const { network, ingress } of wanted) {
      const held = current.find((c) => c.networkId === network.id)?.vip;
      let vip = spec.endpoint.mode === 'vip' ? held : undefined;
      if (spec.endpoint.mode === 'vip' && !vip) {
        vip = (await allocateAddress(store, network, vipOwner(serviceId))).address;
        taken.push({ networkId: network.id, networkName: network.spec.name, vip });
      }
      networks.push({ networkId: network.id, networkName: network.spec.name, ...(vip ? { vip } : {}), ...(ingress ? { ingress } : {}) });
    }
  } catch (error) {
    await releaseVips(store, serviceId, taken);
    throw error;
  }
  return { networks, taken };
}

async function releaseVips(store: Store, serviceId: string, networks: readonly ServiceNetwork[]): Promise<void> {
  for (const network of networks) if (network.vip) await releaseAddress(store, network.networkId, network.vip, vipOwner(serviceId)).catch(() => undefined);
}

/** The VIPs of `before` that `after` no longer holds. */
const droppedVips = (before: readonly ServiceNetwork[], after: readonly ServiceNetwork[]) => before.filter((b) => b.vip && !after.some((a) => a.networkId === b.networkId && a.vip === b.vip));

/**
 * Stores a new service together with its first tasks (the leader's control loop): the result
 * of that one transaction, or undefined when the service is to be stored alone.
 */
export type StoreWithTasks = (service: ServiceObject, ops: WriteOp[]) => Promise<CommitResult | undefined>;

/**
 * Creates a service; its name is claimed in the same transaction, so names stay unique. On the
 * leader a service on no network is stored with its first tasks already placed
 * (`withTasks`); a service on networks has addresses to take first, and is placed by a pass.
 */
export async function createService(store: Store, spec: ServiceSpec, sealedRegistryAuth?: string, withTasks?: StoreWithTasks): Promise<ServiceObject> {
  const id = randomBytes(12).toString('hex');
  const stored = await settlePorts(store, id, await storedSpec(store, spec));
  // The commit below refuses a taken name by itself; asking first only spares allocating
  // addresses for a create that would fail. Each etcd round trip here is a user's wait.
  if (joinsNetworks(stored) && (await store.get(keys.serviceName(spec.name))) !== undefined) throw nameTaken(spec.name);
  const endpoint = await allocateEndpoint(store, id, stored);
  const time = now();
  const service: ServiceObject = { id, spec: stored, specVersion: 1, endpoint: { networks: endpoint.networks }, ...(sealedRegistryAuth ? { sealedRegistryAuth } : {}), createdAt: time, updatedAt: time };
  const ops: WriteOp[] = [
    { op: 'create', key: keys.serviceName(spec.name), value: service.id },
    { op: 'create', key: keys.service(service.id), value: service },
  ];
  const placed = withTasks && !joinsNetworks(stored) ? await withTasks(service, ops) : undefined;
  const result = placed ?? await store.commit(ops).catch(async (error: unknown) => {
    await releaseVips(store, id, endpoint.taken);
    throw error;
  });
  if (!result.ok) {
    await releaseVips(store, id, endpoint.taken);
    throw nameTaken(spec.name);
  }
  return service;
}

const nameTaken = (name: string) => errors.conflict(`a service named "${name}" exists already`, 'pick another name, or change it with `shoal service update`');

export async function listServices(store: Store): Promise<Versioned<ServiceObject>[]> {
  return store.list<ServiceObject>(keys.services);
}

/** By id, unique id prefix, or name. */
export async function findService(store: Store, reference: string): Promise<Versioned<ServiceObject>> {
  const services = await listServices(store);
  const exact = services.find((s) => s.value.id === reference || s.value.spec.name === reference);
  if (exact) return exact;
  const matches = services.filter((s) => s.value.id.startsWith(reference));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw errors.conflict(`"${reference}" matches ${matches.length} services`, 'use the full name');
  throw errors.notFound('service', reference, 'list services with `shoal service ls`');
}

/** What the tasks see of a spec: a change here replaces them, one of replicas or update settings does not. */
function tasksSee(spec: ServiceSpec): string {
  // Service labels are the service's, as Swarm's annotations: changing them replaces no task (policy reads them live).
  return JSON.stringify({ ...spec, labels: null, replicas: 0, update: null, rollback: null });
}

/**
 * Changes a service: a field or two (scale, image), or a whole spec computed by the CLI from
 * the version it read. A change to what its tasks run bumps the spec version, which rolls the
 * tasks over batch by batch; replicas alone do not. The spec before any change is kept, so
 * `service rollback` works after every update, as Docker's PreviousSpec.
 */
export async function updateService(store: Store, reference: string, request: ServiceUpdateRequest, sealedRegistryAuth?: string): Promise<ServiceObject> {
  const found = await findService(store, reference);
  if (request.spec && request.spec.name !== found.value.spec.name) {
    throw errors.invalid(`a service cannot be renamed (from "${found.value.spec.name}" to "${request.spec.name}")`, 'create a service under the new name and remove the old one');
  }
  const whole = request.spec ? await settlePorts(store, found.value.id, await storedSpec(store, request.spec), found.value.spec) : undefined;
  const before = found.value.endpoint?.networks ?? [];
  const endpoint = whole ? await allocateEndpoint(store, found.value.id, whole, before) : undefined;
  const change = (service: ServiceObject): ServiceObject => {
    const spec =
      whole ??
      ServiceSpec.parse({
        ...service.spec,
        ...(request.replicas !== undefined ? { replicas: request.replicas } : {}),
        container: { ...service.spec.container, ...(request.image ? { image: request.image } : {}), ...(request.env ? { env: request.env } : {}) },
        placement: { ...service.spec.placement, ...(request.constraints ? { constraints: request.constraints } : {}) },
        update: { ...service.spec.update, ...request.update },
        rollback: { ...service.spec.rollback, ...request.rollback },
      });
    const changed = JSON.stringify(spec) !== JSON.stringify(service.spec);
    const taskChange = tasksSee(spec) !== tasksSee(service.spec) || request.force === true;
    const time = now();
    return {
      ...service,
      // A new login (update --with-registry-auth) replaces the old; without one, the old stays, as in Swarm.
      ...(sealedRegistryAuth ? { sealedRegistryAuth } : {}),
      spec,
      ...(endpoint ? { endpoint: { networks: endpoint.networks } } : {}),
      ...(changed ? { previousSpec: service.spec } : {}),
      ...(taskChange ? { specVersion: service.specVersion + 1, updateStatus: { state: 'updating' as const, message: 'update in progress', startedAt: time } } : {}),
      updatedAt: time,
    };
  };
  if (request.version !== undefined) {
    // The caller computed the spec from this version: commit against it, or refuse.
    const next = change(found.value);
    const result = await store.commit([{ op: 'update', key: found.key, value: next, version: request.version }]).catch(async (error: unknown) => {
      if (endpoint) await releaseVips(store, found.value.id, endpoint.taken);
      throw error;
    });
    if (!result.ok) {
      if (endpoint) await releaseVips(store, found.value.id, endpoint.taken);
      throw errors.versionConflict(found.key);
    }
    if (endpoint) await releaseVips(store, found.value.id, droppedVips(before, endpoint.networks));
    return { ...next, version: result.revision };
  }
  const updated = await updateObject<ServiceObject>(store, found.key, change);
  if (!updated) throw errors.notFound('service', reference);
  return { ...updated.value, version: updated.version };
}

/** Removes a service; the control loop then stops and forgets its tasks. */
export async function removeService(store: Store, reference: string): Promise<ServiceObject> {
  const found = await findService(store, reference);
  const result = await store.commit([
    { op: 'delete', key: found.key, version: found.version },
    { op: 'delete', key: keys.serviceName(found.value.spec.name) },
  ]);
  if (!result.ok) throw errors.versionConflict(found.key);
  await releaseVips(store, found.value.id, found.value.endpoint?.networks ?? []);
  return found.value;
}

export async function tasksOf(store: Store, serviceId: string): Promise<TaskObject[]> {
  return (await store.list<TaskObject>(keys.tasks)).map((t) => t.value).filter((t) => t.serviceId === serviceId);
}

/** Goes back to the spec before the last change (as `docker service rollback`); tasks roll over. */
export async function rollbackService(store: Store, reference: string): Promise<ServiceObject> {
  const found = await findService(store, reference);
  if (!found.value.previousSpec) throw errors.conflict(`service ${found.value.spec.name} has no previous spec to roll back to`);
  const before = found.value.endpoint?.networks ?? [];
  await settlePorts(store, found.value.id, found.value.previousSpec);
  const endpoint = await allocateEndpoint(store, found.value.id, found.value.previousSpec, before);
  const updated = await updateObject<ServiceObject>(store, found.key, (service) => {
    if (!service.previousSpec) return undefined;
    // Rolling back a scale changes the count alone; only a change the tasks see rolls them.
    const taskChange = tasksSee(service.previousSpec) !== tasksSee(service.spec);
    return {
      ...service,
      spec: service.previousSpec,
      previousSpec: service.spec,
      endpoint: { networks: endpoint.networks },
      ...(taskChange
        ? { specVersion: service.specVersion + 1, updateStatus: { state: 'rollback_started' as const, message: 'manually requested rollback', startedAt: now() } }
        : {}),
      updatedAt: now(),
    };
  });
  await releaseVips(store, found.value.id, droppedVips(before, endpoint.networks));
  return updated!.value;
}
