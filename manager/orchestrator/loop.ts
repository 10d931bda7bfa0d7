import { randomBytes } from 'node:crypto';
import { keys } from '../../shared/keys.ts';
import type { Logger } from '../../shared/log.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { isTerminal, type ServiceObject, stateIndex, type TaskAssignment, type TaskObject, taskName } from '../../shared/services.ts';
import type { TaskFile } from '../../shared/secrets.ts';
import type { TaskFileSource } from './task-files.ts';
import { inParallel } from '../../shared/concurrency.ts';
import { StoreMirror } from '../../shared/store/mirror.ts';
import type { Store, Versioned, WriteOp } from '../../shared/store/store.ts';
import type { Dispatcher } from '../dispatcher/dispatcher.ts';
import { schedule } from '../scheduler/schedule.ts';
import { attachTasks, detachNetworks } from '../networks.ts';
import type { NetworkAttachment, PublishedPort } from '../../shared/containers.ts';
import { isShoalError } from '../../shared/errors.ts';
import { type Decisions, reconcileService } from './reconcile.ts';
import { fairShares } from './fair-share.ts';
import type { ManagerMetrics } from '../metrics.ts';

/** etcd allows 128 operations in a transaction; batches stay below that. */
const batchSize = 100;
const parallelCommits = 4;

/**
 * New tasks one pass creates at most, shared fairly among the services that want some. A
 * service of 30,000 replicas is placed, written and dispatched 5,000 at a time, so its first
 * tasks reach their nodes while the rest are still to be placed, and a service created
 * meanwhile waits one such pass, not the whole (measured: a single pass of 30,000 took 3 s).
 * Smaller chunks cost more than they give: every chunk sends each node a message, and with
 * 1,000 nodes 2,000 per pass made the whole start half again as long.
 */
const createsPerPass = 5_000;

/**
 * Cuts each service's creations to its fair share of the budget; says whether any was cut.
 * Only a service that just grows (no update under way, nothing to shut down) is cut: an
 * update's creations go with the shutdowns they pair with.
 */
function limitCreations(perService: Decisions[], budget: number): boolean {
  const growing = perService.filter((d) => d.create.length > 0 && !d.service && d.shutdown.length === 0);
  const fixed = perService.filter((d) => d.create.length > 0 && !growing.includes(d)).reduce((sum, d) => sum + d.create.length, 0);
  const shares = fairShares(growing.map((d) => d.create.length), Math.max(0, budget - fixed));
  let cut = false;
  for (const [i, decisions] of growing.entries()) {
    if (shares[i]! < decisions.create.length) {
      decisions.create.length = shares[i]!;
      cut = true;
    }
  }
  return cut;
}

/**
 * The leader's control loop: level-triggered, as in swarmkit. A mirror of services, tasks and
 * nodes is kept by watches, and every change marks the state dirty; each pass reads the
 * mirror, lets the orchestrators decide (create, shut
 * down, drop history), lets the scheduler place pending tasks, writes the decisions in
 * revision-checked batches, and hands each node its assignments through the dispatcher.
 * Killed at any point, the next leader's first pass reaches the same result.
 */
export class ControlLoop {
  private dirty = true;
  private stopped = false;
  private running: Promise<void> | undefined;
  private mirror: StoreMirror | undefined;
  private stopListening: () => void = () => undefined;
  private wake: (() => void) | undefined;
  private recheckAt = Number.POSITIVE_INFINITY;
  /** The last pass left creations for the next (its budget ran out). */
  private moreToCreate = false;

  constructor(
    private readonly store: Store,
    private readonly dispatcher: Dispatcher,
    private readonly log: Logger,
    /** Conditions every write of this loop carries: the fence of the term it runs in. */
    private readonly fence: readonly WriteOp[] = [],
    /** Opens the secrets and configs of assigned tasks; without it, tasks that use some get none. */
    private readonly files?: TaskFileSource,
    private readonly metrics?: Pick<ManagerMetrics, 'schedulingDelay' | 'dispatchDelay' | 'loopPass'>,
  ) {}

  /** The mirrored objects under `prefix` counted by state (for the metrics' gauges); undefined before the mirror is open. */
  countByState<T>(prefix: string, state: (value: T) => string): Map<string, number> | undefined {
    const mirror = this.mirror;
    if (!mirror) return undefined;
    const counts = new Map<string, number>();
    for (const { value } of mirror.values<T>(prefix)) counts.set(state(value), (counts.get(state(value)) ?? 0) + 1);
    return counts;
  }

  async start(): Promise<void> {
    this.mirror = await StoreMirror.open(this.store, [keys.services, keys.tasks, keys.nodes], () => this.markDirty());
    this.stopListening = this.dispatcher.onSessionOpen(() => this.markDirty());
    this.running = this.run();
  }

  markDirty(): void {
    this.dirty = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    let lastPassMs = 0;
    while (!this.stopped) {
      if (this.dirty || Date.now() >= this.recheckAt) {
        this.dirty = false;
        const startedAt = performance.now();
        try {
          await this.pass();
          if (this.moreToCreate) this.dirty = true;
        } catch (error) {
          this.dirty = true;
          this.log.warn('control loop pass failed; retrying', { error: String(error) });
        }
        lastPassMs = performance.now() - startedAt;
        this.metrics?.loopPass.observe(lastPassMs / 1000);
      }
      // A pause batches bursts of events into one pass. It is at least as long as the last
      // pass, so that under a storm of task reports the loop leaves half a core to the
      // dispatcher writing them; a pass that left creations for the next goes on sooner (its
      // time was mostly spent waiting on etcd). A periodic pass is the resync.
      const pause = this.moreToCreate ? Math.max(5, lastPassMs / 4) : Math.max(20, lastPassMs);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.dirty ? pause : Math.max(pause, Math.min(2_000, this.recheckAt - Date.now())));
        this.wake = () => {
          clearTimeout(timer);
          setTimeout(resolve, pause);
        };
      });
      this.wake = undefined;
    }
  }

  /** The mirror of services, tasks and nodes this loop reads, while it runs. */
  get state(): StoreMirror | undefined {
    return this.mirror;
  }

  private async pass(): Promise<void> {
    const mirror = this.mirror;
    if (!mirror) return;
    const startedAt = performance.now();
    const serviceList = mirror.values<ServiceObject>(keys.services);
    const taskList = mirror.values<TaskObject>(keys.tasks);
    const nodeList = mirror.values<NodeObject>(keys.nodes);
    const tasks = new Map<string, Versioned<TaskObject>>(taskList.map((t) => [t.value.id, t]));
    const nodes = new Map(nodeList.map((n) => [n.value.id, n.value]));
    const services = new Map(serviceList.map((s) => [s.value.id, s.value]));
    const now = Date.now();
    const timestamp = new Date(now).toISOString();
    const context = { nodes, now, timestamp, newTaskId };

    const decisions: Decisions = { create: [], shutdown: [], remove: [] };
    const byService = new Map<string, TaskObject[]>();
    for (const { value } of tasks.values()) {
      const own = byService.get(value.serviceId);
      if (own) own.push(value);
      else byService.set(value.serviceId, [value]);
    }
    const serviceWrites: WriteOp[] = [];
    const perService = serviceList.map(({ value: service }) => reconcileService(service, byService.get(service.id) ?? [], context));
    this.moreToCreate = limitCreations(perService, createsPerPass);
    for (const [i, { version, key }] of serviceList.entries()) {
      const made = perService[i]!;
      if (made.service) serviceWrites.push({ op: 'update', key, value: made.service, version });
      // Loops, not push(...): a spread of 30,000 arguments can overflow the stack.
      for (const task of made.create) decisions.create.push(task);
      for (const shutdown of made.shutdown) decisions.shutdown.push(shutdown);
      for (const task of made.remove) decisions.remove.push(task);
      if (made.recheckAt !== undefined) decisions.recheckAt = Math.min(decisions.recheckAt ?? Number.POSITIVE_INFINITY, made.recheckAt);
    }
    // Tasks of removed services: stop what runs, forget what ended.
    for (const [serviceId, orphans] of byService) {
      if (services.has(serviceId)) continue;
      for (const task of orphans) {
        if (task.desiredState === 'running') decisions.shutdown.push({ task, reason: 'service removed' });
        else if (isTerminal(task.status.state) || !task.nodeId) decisions.remove.push(task);
      }
    }
    this.recheckAt = decisions.recheckAt ?? Number.POSITIVE_INFINITY;

    const written = new Map<string, TaskObject>(decisions.create.map((task) => [task.id, task]));
    for (const { task, reason, orphan } of decisions.shutdown) {
      const current = written.get(task.id) ?? task;
      const next: TaskObject = {
        ...current,
        desiredState: 'shutdown',
        ...(orphan ? { status: { ...current.status, state: 'orphaned', message: reason, timestamp } } : { status: { ...current.status, message: isTerminal(current.status.state) ? current.status.message : `shutting down: ${reason}` } }),
        updatedAt: timestamp,
      };
      written.set(task.id, next);
    }
    // The scheduler sees the tasks as they will be once this pass's writes land.
    const view = new Map<string, TaskObject>([...[...tasks.values()].map((t): [string, TaskObject] => [t.value.id, t.value]), ...written]);
    for (const task of decisions.remove) view.delete(task.id);
    const pending = [...view.values()].filter((t) => t.desiredState === 'running' && t.status.state === 'pending');
    const placed = schedule(pending, [...nodes.values()], [...view.values()]);
    // Addresses are taken once the node is known (the peer tables place them on its host), for
    // all the pass's tasks at once; the lease's owner is the task, so a retried pass reuses them.
    const addressed = await attachTasks(
      this.store,
      pending.flatMap((task) => {
        const nodeId = placed.assignments.get(task.id);
        const names = taskNetworks(task, services.get(task.serviceId));
        return nodeId && names.length > 0 ? [{ owner: task.id, nodeId, names }] : [];
      }),
      this.fence,
    );
    for (const task of pending) {
      let nodeId = placed.assignments.get(task.id);
      let why = placed.pending.get(task.id);
      let attachments: NetworkAttachment[] | undefined;
      const taken = addressed.get(task.id);
      if (taken instanceof Error) {
        why = `no network address: ${isShoalError(taken) ? taken.message : String(taken)}`;
        nodeId = undefined;
      } else if (taken) {
        attachments = taken;
      }
      const next: TaskObject = nodeId
        ? { ...task, nodeId, ...(attachments ? { attachments } : {}), status: { state: 'assigned', message: 'assigned to a node', timestamp }, updatedAt: timestamp }
        : { ...task, status: { ...task.status, message: why ?? task.status.message } };
      if (nodeId || next.status.message !== task.status.message) {
        written.set(task.id, next);
        view.set(task.id, next);
      }
    }
    const ops: WriteOp[] = [...serviceWrites, ...[...written].map(([id, task]): WriteOp => {
      const stored = tasks.get(id);
      return stored ? { op: 'update', key: keys.task(id), value: task, version: stored.version } : { op: 'create', key: keys.task(id), value: task };
    })];
    for (const task of decisions.remove) {
      const stored = tasks.get(task.id);
      if (stored) ops.push({ op: 'delete', key: keys.task(task.id), version: stored.version });
    }
    let failed = false;
    const batches: WriteOp[][] = [];
    for (let i = 0; i < ops.length; i += batchSize) batches.push(ops.slice(i, i + batchSize));
    // A few transactions in flight: etcd commits concurrent proposals together.
    const assignedAt = new Map<string, number>();
    await inParallel(batches, parallelCommits, async (batch) => {
      const result = await this.store.commit([...this.fence, ...batch]);
      if (result.ok) {
        mirror.applyCommit(batch, result.revision);
        this.observeAssignments(batch, tasks, assignedAt);
      } else {
        failed = true;
      }
    });
    if (failed) {
      // Someone wrote in between (an agent's report): decide again once the mirror has it.
      this.dirty = true;
      return;
    }
    // Removed tasks give their addresses back (a lease not held by the task any more is left alone).
    for (const task of decisions.remove) if (task.attachments?.length) await detachNetworks(this.store, task.attachments);
    if (ops.length > 0) {
      this.log.info('control loop pass', { created: decisions.create.length, shutdown: decisions.shutdown.length, removed: decisions.remove.length, writes: ops.length, tasks: tasks.size, ms: Math.round(performance.now() - startedAt) });
    }

    // Each node's assignments are rebuilt only when its set of tasks or their desired states
    // changed: with 30,000 tasks, building every assignment on every pass cost more than the
    // pass's own decisions. The dispatcher keeps what it last had for a node (sessions that
    // reopen get it again).
    const byNode = new Map<string, TaskObject[]>([...nodes.keys()].map((id) => [id, []]));
    for (const task of view.values()) {
      if (task.nodeId && !isTerminal(task.status.state) && task.status.state !== 'pending') byNode.get(task.nodeId)?.push(task);
    }
    const changed: [string, TaskObject[], string][] = [];
    for (const [nodeId, list] of byNode) {
      let signature = '';
      for (const task of list) signature += `${task.id}${task.desiredState[0]}`;
      if (this.dispatched.get(nodeId) !== signature) changed.push([nodeId, list, signature]);
    }
    for (const nodeId of this.dispatched.keys()) if (!byNode.has(nodeId)) this.dispatched.delete(nodeId);
    for (const taskId of this.assignments.keys()) if (!view.has(taskId)) this.assignments.delete(taskId);
    const assigned = changed.flatMap(([, list]) => list);
    // Only a task that still has to start needs its files; a running one has them on its tmpfs.
    const needFiles = new Map(assigned.filter((t) => !isStarted(t) && (t.spec.container.secrets?.length ?? 0) + (t.spec.container.configs?.length ?? 0) > 0).map((t) => [t.id, t.spec.container]));
    const files = needFiles.size > 0 && this.files ? await this.files.filesOf(needFiles) : new Map<string, TaskFile[] | undefined>();
    for (const [nodeId, list, signature] of changed) {
      // A task whose secrets could not all be opened yet is handed over without them; its node
      // is rebuilt on the next pass, until they are there.
      let complete = true;
      this.dispatcher.assign(nodeId, list.map((task): TaskAssignment => {
        // Built once per task and desired state: a node of a large service is handed its list
        // again for each chunk placed, and each list is mostly the tasks it already had.
        const cached = this.assignments.get(task.id);
        if (cached && cached.desiredState === task.desiredState && !needFiles.has(task.id)) return cached;
        const taskFiles = files.get(task.id);
        if (needFiles.has(task.id) && !taskFiles) complete = false;
        const registryAuth = isStarted(task) ? undefined : this.files?.registryAuthOf(services.get(task.serviceId));
        const assignment: TaskAssignment = {
          id: task.id, name: taskName(task), serviceId: task.serviceId, desiredState: task.desiredState,
          container: { ...task.spec.container, attachments: task.attachments ?? [], publish: hostModePorts(task), workload: { service: task.serviceName, serviceLabels: task.spec.labels } },
          ...(taskFiles ? { files: taskFiles } : {}),
          ...(registryAuth ? { registryAuth } : {}),
        };
        this.assignments.set(task.id, assignment);
        return assignment;
      }));
      if (complete) this.dispatched.set(nodeId, signature);
      else this.dispatched.delete(nodeId);
      if (this.metrics && assignedAt.size > 0) {
        const now = performance.now();
        for (const task of list) {
          const at = assignedAt.get(task.id);
          if (at !== undefined) this.metrics.dispatchDelay.observe((now - at) / 1000);
        }
      }
    }
  }

  /** Observes, for each task a committed batch assigned, its delay since creation; notes when it was stored. */
  private observeAssignments(batch: readonly WriteOp[], before: ReadonlyMap<string, Versioned<TaskObject>>, assignedAt: Map<string, number>): void {
    if (!this.metrics) return;
    const now = performance.now();
    const wallNow = Date.now();
    for (const op of batch) {
      if (op.op !== 'create' && op.op !== 'update') continue;
      const task = op.value as TaskObject;
      if (!op.key.startsWith(keys.tasks) || task.status?.state !== 'assigned') continue;
      const previous = before.get(task.id)?.value.status.state;
      if (previous !== undefined && previous !== 'pending') continue;
      this.metrics.schedulingDelay.observe(Math.max(0, wallNow - Date.parse(task.createdAt)) / 1000);
      assignedAt.set(task.id, now);
    }
  }

  /** What each node was last handed: its tasks' ids and desired states, in one string. */
  private readonly dispatched = new Map<string, string>();
  /** Each dispatched task's assignment as last built (dropped with the task). */
  private readonly assignments = new Map<string, TaskAssignment>();

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.stopListening();
    await this.mirror?.close();
    this.mirror = undefined;
    await this.running;
  }
}

/**
 * Task ids, 16 random bytes each, cut from a pool filled 1,024 ids at a time: a pass that
 * creates 30,000 tasks spent two seconds in one randomBytes call per id.
 */
let idPool = Buffer.alloc(0);
let idOffset = 0;
function newTaskId(): string {
  if (idOffset + 16 > idPool.length) {
    idPool = randomBytes(16 * 1_024);
    idOffset = 0;
  }
  idOffset += 16;
  return idPool.toString('hex', idOffset - 16, idOffset);
}

/** Past the point where its agent read its files. */
function isStarted(task: TaskObject): boolean {
  return stateIndex(task.status.state) >= stateIndex('starting');
}

/** The networks a task joins: its service's, and the ingress network when the service publishes in ingress mode. */
export function taskNetworks(task: TaskObject, service: ServiceObject | undefined): string[] {
  const ingress = (service?.endpoint?.networks ?? []).filter((n) => n.ingress).map((n) => n.networkId);
  const own = task.spec.container.networks;
  // A port published in host mode needs an interface the host routes to; with no network of
  // its own the task gets the host's default bridge, as a Swarm task without networks does.
  if (own.length === 0 && ingress.length === 0 && hostModePorts(task).length > 0) return ['bridge'];
  return [...own, ...ingress];
}

/** A task publishes its service's host-mode ports on its own host. */
function hostModePorts(task: TaskObject): PublishedPort[] {
  return (task.spec.endpoint?.ports ?? []).filter((p) => p.mode === 'host');
}
