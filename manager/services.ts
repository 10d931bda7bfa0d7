import { randomBytes } from 'node:crypto';
import { errors } from '../shared/errors.ts';
import { keys } from '../shared/keys.ts';
import { type ServiceObject, ServiceSpec, type ServiceUpdateRequest, type TaskObject } from '../shared/services.ts';
import { now, updateObject } from '../shared/store/objects.ts';
import type { Store, Versioned } from '../shared/store/store.ts';
import { checkJoinable, findNetwork } from './networks.ts';

/** Creates a service; its name is claimed in the same transaction, so names stay unique. */
export async function createService(store: Store, spec: ServiceSpec): Promise<ServiceObject> {
  if (spec.container.ip) throw errors.invalid('a service\'s tasks cannot share one static address', 'leave out --ip');
  const networks = await Promise.all(spec.container.networks.map(async (name) => (await findNetwork(store, name)).value));
  for (const network of networks) checkJoinable(network);
  // The host's namespace, as `docker service create --network host`: alone, with no address.
  const host = networks.find((n) => n.spec.driver === 'host');
  if (host && networks.length > 1) throw errors.invalid(`--network ${host.spec.name} cannot be combined with other networks`, 'give the service either the host network or its own networks');
  if (spec.container.networkMode.startsWith('container:')) throw errors.invalid('a service\'s tasks cannot join another container\'s namespace', 'use a network the tasks share instead');
  const time = now();
  // Attachments are the manager's to fill in, per task.
  const stored: ServiceSpec = { ...spec, container: { ...spec.container, attachments: [], networkMode: host ? 'host' : 'private' } };
  const service: ServiceObject = { id: randomBytes(12).toString('hex'), spec: stored, specVersion: 1, createdAt: time, updatedAt: time };
  const result = await store.commit([
    { op: 'create', key: keys.serviceName(spec.name), value: service.id },
    { op: 'create', key: keys.service(service.id), value: service },
  ]);
  if (!result.ok) throw errors.conflict(`a service named "${spec.name}" exists already`, 'pick another name, or change it with `shoal service update`');
  return service;
}

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

/**
 * Changes a service. A change to what its tasks run bumps the spec version, which rolls the
 * tasks over one by one; replicas alone do not. The spec before is kept for rollback.
 */
export async function updateService(store: Store, reference: string, request: ServiceUpdateRequest): Promise<ServiceObject> {
  const found = await findService(store, reference);
  const updated = await updateObject<ServiceObject>(store, found.key, (service) => {
    const container = {
      ...service.spec.container,
      ...(request.image ? { image: request.image } : {}),
      ...(request.env ? { env: request.env } : {}),
    };
    const spec = ServiceSpec.parse({
      ...service.spec,
      ...(request.replicas !== undefined ? { replicas: request.replicas } : {}),
      container,
      placement: { ...service.spec.placement, ...(request.constraints ? { constraints: request.constraints } : {}) },
      update: { ...service.spec.update, ...request.update },
      rollback: { ...service.spec.rollback, ...request.rollback },
    });
    const tasksSee = (s: ServiceSpec) => JSON.stringify({ ...s, replicas: 0, update: null, rollback: null });
    const taskChange = tasksSee(spec) !== tasksSee(service.spec) || request.force;
    const time = now();
    return {
      ...service,
      spec,
      ...(taskChange
        ? { specVersion: service.specVersion + 1, previousSpec: service.spec, updateStatus: { state: 'updating' as const, message: 'update in progress', startedAt: time } }
        : {}),
      updatedAt: time,
    };
  });
  if (!updated) throw errors.notFound('service', reference);
  return updated.value;
}

/** Removes a service; the control loop then stops and forgets its tasks. */
export async function removeService(store: Store, reference: string): Promise<ServiceObject> {
  const found = await findService(store, reference);
  const result = await store.commit([
    { op: 'delete', key: found.key, version: found.version },
    { op: 'delete', key: keys.serviceName(found.value.spec.name) },
  ]);
  if (!result.ok) throw errors.versionConflict(found.key);
  return found.value;
}

export async function tasksOf(store: Store, serviceId: string): Promise<TaskObject[]> {
  return (await store.list<TaskObject>(keys.tasks)).map((t) => t.value).filter((t) => t.serviceId === serviceId);
}

/** Goes back to the spec before the last change (as `docker service rollback`); tasks roll over. */
export async function rollbackService(store: Store, reference: string): Promise<ServiceObject> {
  const found = await findService(store, reference);
  if (!found.value.previousSpec) throw errors.conflict(`service ${found.value.spec.name} has no previous spec to roll back to`);
  const updated = await updateObject<ServiceObject>(store, found.key, (service) =>
    service.previousSpec
      ? {
          ...service,
          spec: service.previousSpec,
          previousSpec: service.spec,
          specVersion: service.specVersion + 1,
          updateStatus: { state: 'rollback_started' as const, message: 'manually requested rollback', startedAt: now() },
          updatedAt: now(),
        }
      : undefined,
  );
  return updated!.value;
}
