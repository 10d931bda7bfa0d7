/** Services and tasks, as swarmkit models them: one schema per object, types from them. */
import { z } from 'zod';
import type { RegistryAuth } from './registry-auth.ts';
import type { NetworkAttachment } from './containers.ts';
import { ContainerSpec, PublishedPort } from './containers.ts';
import { Labels } from './schemas.ts';
import type { TaskFile } from './secrets.ts';
import { keys } from './keys.ts';

/** Task states in swarmkit's order; a task's state only ever moves forward. */
export const taskStates = [
  'new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting',
  'running', 'complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned',
] as const;
export const TaskState = z.enum(taskStates);
export type TaskState = z.infer<typeof TaskState>;

export function stateIndex(state: TaskState): number {
  return taskStates.indexOf(state);
}

/** Past running: the task's container is gone or going. */
export function isTerminal(state: TaskState): boolean {
  return stateIndex(state) > stateIndex('running');
}

/**
 * A task that is up: running, and past its health check's start if it has one (Swarm holds such
 * a task in "starting" until healthy). Rolling updates wait for it; only such tasks take traffic.
 */
export function isUp(task: { status: { state: TaskState; health?: 'starting' | 'healthy' | 'unhealthy' } }): boolean {
  return task.status.state === 'running' && task.status.health !== 'starting' && task.status.health !== 'unhealthy';
}

const constraintPattern = /^\s*(node\.(id|hostname|role|labels\.[\w.-]+)|engine\.labels\.[\w.-]+)\s*(==|!=)\s*\S+\s*$/;

export const Placement = z.object({
  constraints: z.array(z.string().regex(constraintPattern, 'a constraint reads like node.hostname==h1, node.labels.zone!=east')).default([]),
  /** spread=node.labels.zone: spread tasks evenly over that label's values. */
  preferences: z.array(z.string().regex(/^spread=(node\.labels\.[\w.-]+)$/, 'a placement preference reads spread=node.labels.NAME')).default([]),
  /** At most this many of the service's tasks on one node (Docker's --replicas-max-per-node); 0: no limit. */
  maxReplicas: z.number().int().min(0).default(0),
});
export type Placement = z.infer<typeof Placement>;

export const RestartPolicy = z.object({
  condition: z.enum(['none', 'on-failure', 'any']).default('any'),
  delayMs: z.number().int().min(0).default(5000),
  /** 0: no limit. */
  maxAttempts: z.number().int().min(0).default(0),
  windowMs: z.number().int().min(0).default(0),
});
export type RestartPolicy = z.infer<typeof RestartPolicy>;

export const Reservations = z.object({
  nanoCpus: z.number().int().min(0).default(0),
  memoryBytes: z.number().int().min(0).default(0),
});
export type Reservations = z.infer<typeof Reservations>;

export const UpdateConfig = z.object({
  /** Tasks replaced at once; 0 replaces all together. */
  parallelism: z.number().int().min(0).default(1),
  delayMs: z.number().int().min(0).default(0),
  failureAction: z.enum(['pause', 'continue', 'rollback']).default('pause'),
  /** How long after it starts a new task's failure counts against the update. */
  monitorMs: z.number().int().min(0).default(5000),
  maxFailureRatio: z.number().min(0).max(1).default(0),
  order: z.enum(['stop-first', 'start-first']).default('stop-first'),
});
export type UpdateConfig = z.infer<typeof UpdateConfig>;
const defaultUpdate: UpdateConfig = { parallelism: 1, delayMs: 0, failureAction: 'pause', monitorMs: 5000, maxFailureRatio: 0, order: 'stop-first' };

/**
 * How a service is reached (Docker's EndpointSpec): `vip` gives it one virtual address per
 * network, spread over its tasks by the kernel; `dnsrr` answers its name with the tasks'
 * addresses. Ports are published on the nodes.
 */
export const EndpointSpec = z
  .object({ mode: z.enum(['vip', 'dnsrr']).default('vip'), ports: z.array(PublishedPort).default([]) })
  .refine((e) => e.mode === 'vip' || e.ports.every((p) => p.mode === 'host'), { message: 'a dnsrr service cannot publish in ingress mode (the routing mesh needs a VIP); publish with mode=host', path: ['ports'] })
  .refine((e) => e.ports.every((p) => p.publishedPort > 0 || p.mode === 'ingress'), { message: 'a host-mode port needs its published port (the cluster picks one only in ingress mode)', path: ['ports'] })
  .refine((e) => {
    const given = e.ports.filter((p) => p.publishedPort > 0);
    return new Set(given.map((p) => `${p.publishedPort}/${p.protocol}`)).size === given.length;
  }, { message: 'a port is published twice', path: ['ports'] });
export type EndpointSpec = z.infer<typeof EndpointSpec>;

export const ServiceSpec = z.object({
  name: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/, 'a service name is letters, digits, "_" and "-"'),
  labels: Labels.default({}),
  mode: z.enum(['replicated', 'global']).default('replicated'),
  replicas: z.number().int().min(0).max(100_000).default(1),
  container: ContainerSpec.omit({ name: true }),
  reservations: Reservations.default({ nanoCpus: 0, memoryBytes: 0 }),
  placement: Placement.default({ constraints: [], preferences: [], maxReplicas: 0 }),
  restartPolicy: RestartPolicy.default({ condition: 'any', delayMs: 5000, maxAttempts: 0, windowMs: 0 }),
  update: UpdateConfig.default(defaultUpdate),
  rollback: UpdateConfig.default(defaultUpdate),
  endpoint: EndpointSpec.default({ mode: 'vip', ports: [] }),
});
export type ServiceSpec = z.infer<typeof ServiceSpec>;

/** Where a rolling update (or rollback) stands, as `docker service inspect` shows it. */
export interface UpdateStatus {
  state: 'updating' | 'paused' | 'completed' | 'rollback_started' | 'rollback_paused' | 'rollback_completed';
  message: string;
  startedAt: string;
  completedAt?: string;
  /** When the last batch of tasks was replaced, for the update delay. */
  lastBatchAt?: string;
}
export type ServiceSpecInput = z.input<typeof ServiceSpec>;

/** A network a service is on, as the manager resolved it. */
export interface ServiceNetwork {
  networkId: string;
  networkName: string;
  /** Its virtual address there; none in dnsrr mode. */
  vip?: string;
  /** The cluster's ingress network, joined for the service's ingress-mode ports. */
  ingress?: boolean;
}

export interface ServiceObject {
  id: string;
  /** The store's revision of the object, in API answers: what an update says it read. */
  version?: number;
  spec: ServiceSpec;
  /** Counts spec changes: tasks carry the one they were made from. */
  specVersion: number;
  previousSpec?: ServiceSpec;
  updateStatus?: UpdateStatus;
  /** The networks it is reached on, with its virtual address on each (vip mode), from the manager's IPAM. */
  endpoint?: { networks: ServiceNetwork[] };
  /** `--with-registry-auth`: the registry login its nodes pull with, sealed under the managers' seal key (never in clear in the store). */
  sealedRegistryAuth?: string;
  createdAt: string;
  updatedAt: string;
}

export interface TaskStatus {
  state: TaskState;
  health?: 'starting' | 'healthy' | 'unhealthy';
  message: string;
  error?: string;
  containerId?: string;
  exitCode?: number;
  timestamp: string;
}

export interface TaskObject {
  id: string;
  serviceId: string;
  serviceName: string;
  /** Replicated services: the replica number, from 1. Global services: 0. */
  slot: number;
  nodeId?: string;
  spec: ServiceSpec;
  specVersion: number;
  desiredState: TaskState;
  status: TaskStatus;
  /** Its networks, with the addresses taken for it when it was assigned to a node. */
  attachments?: NetworkAttachment[];
  createdAt: string;
  updatedAt: string;
}

/**
 * A task's spec is written once, when the task is made (an update makes new tasks): a later
 * version of the task (each status report) keeps the spec object the earlier one had, and the
 * report's parsed copy dies young. The tasks the leader makes share their service's spec, so
 * its control loop's mirror holds one spec per service, not one per task.
 */
export function keepTaskSpec(key: string, value: unknown, previous: unknown): unknown {
  if (!key.startsWith(keys.tasks)) return value;
  const task = value as TaskObject;
  const before = previous as TaskObject;
  return before.spec !== task.spec && before.specVersion === task.specVersion ? { ...task, spec: before.spec } : value;
}

/** Docker's label naming the stack an object belongs to (kept so Docker's tools read it too). */
export const stackLabel = 'com.docker.stack.namespace';

/** The container name of a task: service.slot.id, as Docker names task containers. */
export function taskName(task: Pick<TaskObject, 'serviceName' | 'slot' | 'nodeId' | 'id'>): string {
  return `${task.serviceName}.${task.slot || (task.nodeId ?? '').slice(-12)}.${task.id.slice(0, 12)}`;
}

/** PATCH /v1/services/:ref: what `service update` and `service scale` change. */
export const ServiceUpdateRequest = z
  .object({
    replicas: z.number().int().min(0).max(100_000).optional(),
    image: z.string().min(1).optional(),
    env: z.array(z.string()).optional(),
    constraints: z.array(z.string()).optional(),
    force: z.boolean().optional(),
    update: UpdateConfig.partial().optional(),
    rollback: UpdateConfig.partial().optional(),
    /**
     * The whole new spec, as `service update` computes it from the one it read (Docker's CLI
     * does the same); `version` is that read's, so a change made in between is not lost.
     */
    spec: ServiceSpec.optional(),
    version: z.number().int().positive().optional(),
  })
  .strict()
  .refine((r) => r.spec === undefined || r.version !== undefined, { message: 'a whole spec needs the version it was read at', path: ['version'] });
export type ServiceUpdateRequest = z.infer<typeof ServiceUpdateRequest>;

/** What an agent is told to run: the task and its container spec, desired state included. */
export interface TaskAssignment {
  id: string;
  name: string;
  serviceId: string;
  desiredState: TaskState;
  container: ServiceSpec['container'];
  /** The contents of its secrets and configs, in the order of `container.secrets` then `container.configs`. */
  files?: TaskFile[];
  /** The service's registry login (`--with-registry-auth`), opened for the pull; only for a task still to start. */
  registryAuth?: RegistryAuth;
}
