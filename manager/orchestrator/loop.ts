import { randomBytes } from 'node:crypto';
import { keys } from '../../shared/keys.ts';
import type { Logger } from '../../shared/log.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { isTerminal, keepTaskSpec, type ServiceObject, stateIndex, type TaskAssignment, type TaskObject, taskName } from '../../shared/services.ts';
import type { TaskFile } from '../../shared/secrets.ts';
import type { TaskFileSource } from './task-files.ts';
import { inParallel } from '../../shared/concurrency.ts';
import { StoreMirror } from '../../shared/store/mirror.ts';
import type { CommitResult, Store, Versioned, WriteOp } from '../../shared/store/store.ts';
import type { Dispatcher } from '../dispatcher/dispatcher.ts';
import { attachTasks, detachNetworks } from '../networks.ts';
import type { NetworkAttachment, PublishedPort } from '../../shared/containers.ts';
import { isShoalError } from '../../shared/errors.ts';
import { type Decisions, reconcileService } from './reconcile.ts';
import { fairShares } from './fair-share.ts';
import { TaskIndex } from './task-index.ts';
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
 * A pass looks at only what changed; every so often one looks at everything, so that whatever
 * a change could have missed is still decided (level-triggered, as the loop's contract says).
 */
const resyncMs = 30_000;
/** How long a pass waits after a service changed, to take the rest of its burst (a stack's services) along. */
const serviceChangePauseMs = 5;
/** Tasks written in a new service's own transaction at most: a batch, less its name and record. */
const tasksWithNewService = batchSize - 2;
/**
 * How long a create waits for a pass to take its service before it stores the service alone.
 * A pass under way is waited out: the service stored alone would wait for it too, and then for
 * the watch, a pause and a pass of its own. Only a pass stuck on the store is not.
 */
const newServiceWaitMs = 250;

/** A service `service create` hands the loop, to be stored in one transaction with its first tasks. */
interface NewService {
  service: ServiceObject;
  /** The writes that store it: its name claim and its record. */
  ops: WriteOp[];
  /** A pass has it: the create waits for that pass's answer. */
  taken: boolean;
  /** Its transaction's result; undefined when the caller is to store the service alone. */
  settle: (result: CommitResult | undefined) => void;
}

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
  /** A service was created, changed or removed since the last pass began: someone waits on it. */
  private serviceChanged = false;
  /** The last pass left creations for the next (its budget ran out). */
  private moreToCreate = false;
  private readonly index = new TaskIndex();
  /** Services whose record or tasks changed since the last pass looked at them. */
  private readonly changedServices = new Set<string>();
  /** Nodes whose tasks changed since they were last handed their list. */
  private readonly changedNodes = new Set<string>();
  /** The next pass looks at everything: at the start, and after a node's state or spec changed or a pass failed. */
  private everything = true;
  private lastFullPass = 0;
  /** New services waiting for a pass to store them with their tasks. */
  private newServices: NewService[] = [];

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
    this.mirror = await StoreMirror.open(this.store, [keys.services, keys.tasks, keys.nodes], (key, value, previous) => this.takeChange(key, value, previous), keepTaskSpec);
    this.stopListening = this.dispatcher.onSessionOpen((nodeId) => {
      this.changedNodes.add(nodeId);
      this.markDirty();
    });
    this.running = this.run();
  }

  /** Notes what a change in the mirror touches, for the next pass. */
  private takeChange(key: string, value: unknown, previous: unknown): void {
    if (key.startsWith(keys.tasks)) {
      const before = previous as TaskObject | undefined;
      const after = value as TaskObject | undefined;
      this.index.setTask(before, after);
      for (const task of [before, after]) {
        if (!task) continue;
        this.changedServices.add(task.serviceId);
        if (task.nodeId) this.changedNodes.add(task.nodeId);
      }
      if (before && !after) this.assignments.delete(before.id);
    } else if (key.startsWith(keys.services)) {
      const service = (value ?? previous) as ServiceObject | undefined;
      if (service) this.changedServices.add(service.id);
      this.serviceChanged = true;
    } else if (key.startsWith(keys.nodes)) {
      const before = previous as NodeObject | undefined;
      const after = value as NodeObject | undefined;
      // A node seen again changes only its last-seen time: nothing to decide.
      if (!this.index.setNode(before, after)) return;
      this.everything = true;
      if (before && !after) this.dispatched.delete(before.id);
    }
    this.markDirty();
  }

  markDirty(): void {
    this.dirty = true;
    this.wake?.();
  }

  /**
   * Stores a new service in one transaction with its first tasks, placed: what its creator
   * waits for is then one commit, where the service's commit used to be followed by its watch
   * event, a pause and a pass with a commit of its own, each hop a wait on a busy leader.
   * Undefined (the caller stores the service alone, and a pass places it later, as for a
   * service another manager stored) while a large creation is under way (its passes take a
   * second each), when no pass takes it within 250 ms (one stuck on the store), when the loop
   * does not run, or when the transaction is refused (its name is taken, or the term ended:
   * the caller's own commit tells which).
   */
  storeWithTasks(service: ServiceObject, ops: WriteOp[]): Promise<CommitResult | undefined> {
    if (this.stopped || !this.mirror || this.moreToCreate) return Promise.resolve(undefined);
    return new Promise((settle) => {
      const entry: NewService = { service, ops, taken: false, settle };
      this.newServices.push(entry);
      setTimeout(() => {
        if (entry.taken) return;
        this.newServices = this.newServices.filter((other) => other !== entry);
        settle(undefined);
      }, newServiceWaitMs);
      this.markDirty();
    });
  }

  private async run(): Promise<void> {
    let lastPassMs = 0;
    while (!this.stopped) {
      // The resync runs when it is due even in a cluster where nothing changes.
      if (this.dirty || Date.now() >= this.recheckAt || Date.now() - this.lastFullPass >= resyncMs) {
        if (!this.dirty) this.everything = true;
        this.dirty = false;
        this.serviceChanged = false;
        const startedAt = performance.now();
        const newServices = this.newServices;
        this.newServices = [];
        for (const entry of newServices) entry.taken = true;
        try {
          await this.pass(newServices);
          if (this.moreToCreate) this.dirty = true;
        } catch (error) {
          // What the pass had taken to look at is lost with it: the next looks at everything.
          this.dirty = true;
          this.everything = true;
          this.log.warn('control loop pass failed; retrying', { error: String(error) });
        } finally {
          // Whatever the pass did not store, its creator stores alone (a settled promise ignores this).
          for (const entry of newServices) entry.settle(undefined);
        }
        lastPassMs = performance.now() - startedAt;
        this.metrics?.loopPass.observe(lastPassMs / 1000);
      }
      // A pause batches bursts of events into one pass. It is as long as the last pass, so
      // that under a storm of task reports the loop leaves half a core to the dispatcher
      // writing them, but no longer than a second: a rare large pass (30,000 tasks removed)
      // must not hold back the small ones after it. A pass that left creations for the next
      // goes on sooner (its time was mostly spent waiting on etcd, and handing 1,000 nodes their
      // share): a tenth of its time, where a quarter made 1.3-2.2 s of the 30,000-task service's
      // 9-11 s (measured, six passes of 5,000). A change to a service is
      // what a user waits on (`service create`, `scale`): it waits only long enough to gather
      // its burst. Task reports never change a service, so a storm of them keeps its pause;
      // the last pass's time is wall time, and one slow etcd commit used to hold the next
      // create back for as long (measured: 100-300 ms at the p99 of a steady run of creates).
      const pause = this.moreToCreate ? Math.max(5, lastPassMs / 10) : Math.min(1_000, Math.max(20, lastPassMs));
      const pauseNow = () => (this.newServices.length > 0 ? 0 : this.serviceChanged ? Math.min(pause, serviceChangePauseMs) : pause);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.dirty ? pauseNow() : Math.max(pause, Math.min(2_000, this.recheckAt - Date.now())));
        this.wake = () => {
          clearTimeout(timer);
          setTimeout(resolve, pauseNow());
        };
      });
      this.wake = undefined;
    }
  }

  /** The mirror of services, tasks and nodes this loop reads, while it runs. */
  get state(): StoreMirror | undefined {
    return this.mirror;
  }

  private async pass(newServices: readonly NewService[] = []): Promise<void> {
    const mirror = this.mirror;
    if (!mirror) return;
    const fresh = new Map(newServices.map((entry) => [entry.service.id, entry]));
    const startedAt = performance.now();
    const index = this.index;
    const full = this.everything || Date.now() - this.lastFullPass >= resyncMs;
    this.everything = false;
    if (full) this.lastFullPass = Date.now();
    // A full pass looks at every service (and every service that left tasks behind); any other
    // only at those whose record or tasks changed since the last pass.
    const serviceIds = full ? new Set([...mirror.values<ServiceObject>(keys.services).map((s) => s.value.id), ...index.byService.keys()]) : new Set(this.changedServices);
    this.changedServices.clear();
    for (const id of fresh.keys()) serviceIds.add(id);
    const storedService = (id: string): Versioned<ServiceObject> | undefined => {
      const entry = fresh.get(id);
      return mirror.get<ServiceObject>(keys.service(id)) ?? (entry && { key: keys.service(id), value: entry.service, version: 0 });
    };
    const serviceOf = (id: string) => storedService(id)?.value;
    const now = Date.now();
    const timestamp = new Date(now).toISOString();
    const context = { nodes: index.nodes, now, timestamp, newTaskId };

    const decisions: Decisions = { create: [], shutdown: [], remove: [] };
    const serviceWrites: WriteOp[] = [];
    const reconciled: { stored: Versioned<ServiceObject>; made: Decisions }[] = [];
    for (const id of serviceIds) {
      const stored = storedService(id);
      const tasks = [...(index.byService.get(id)?.values() ?? [])];
      if (stored) {
        reconciled.push({ stored, made: reconcileService(stored.value, tasks, context) });
        continue;
      }
      // Tasks of a removed service: stop what runs, forget what ended.
      for (const task of tasks) {
        if (task.desiredState === 'running') decisions.shutdown.push({ task, reason: 'service removed' });
        else if (isTerminal(task.status.state) || !task.nodeId) decisions.remove.push(task);
      }
    }
    const wanted = reconciled.map(({ made }) => made.create.length);
    this.moreToCreate = limitCreations(reconciled.map(({ made }) => made), createsPerPass);
    for (const [i, { stored, made }] of reconciled.entries()) {
      const entry = fresh.get(stored.value.id);
      // A new service's record goes in its own transaction, as the pass left it, with as many of
      // its tasks as fit; the next pass creates the rest once the record is stored.
      if (entry && made.create.length > tasksWithNewService) made.create.length = tasksWithNewService;
      // A service cut short is looked at again next pass, even if none of its tasks was written.
      if (made.create.length < wanted[i]!) this.changedServices.add(stored.value.id);
      if (made.service && entry) entry.ops = entry.ops.map((op) => (op.op === 'create' && op.key === stored.key ? { ...op, value: made.service } : op));
      else if (made.service) serviceWrites.push({ op: 'update', key: stored.key, value: made.service, version: stored.version });
      // Loops, not push(...): a spread of 30,000 arguments can overflow the stack.
      for (const task of made.create) decisions.create.push(task);
      for (const shutdown of made.shutdown) decisions.shutdown.push(shutdown);
      for (const task of made.remove) decisions.remove.push(task);
      if (made.recheckAt !== undefined) decisions.recheckAt = Math.min(decisions.recheckAt ?? Number.POSITIVE_INFINITY, made.recheckAt);
    }
    // A partial pass saw only some services: an earlier recheck time still stands.
    this.recheckAt = full ? (decisions.recheckAt ?? Number.POSITIVE_INFINITY) : Math.min(this.recheckAt, decisions.recheckAt ?? Number.POSITIVE_INFINITY);

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
    // The scheduler sees the tasks as they will be once this pass's writes land: every task
    // still waiting for a node (of any service), and the nodes without what this pass stops.
    const removed = new Map(decisions.remove.map((task) => [task.id, task]));
    const pending: TaskObject[] = [];
    for (const task of index.pending.values()) if (!written.has(task.id) && !removed.has(task.id)) pending.push(task);
    for (const task of written.values()) if (task.desiredState === 'running' && task.status.state === 'pending') pending.push(task);
    const placed = index.schedule(pending, decisions.shutdown.map(({ task }) => task));
    // Addresses are taken once the node is known (the peer tables place them on its host), for
    // all the pass's tasks at once; the lease's owner is the task, so a retried pass reuses them.
    const addressed = await attachTasks(
      this.store,
      pending.flatMap((task) => {
        const nodeId = placed.assignments.get(task.id);
        const names = taskNetworks(task, serviceOf(task.serviceId));
        return nodeId && names.length > 0 ? [{ owner: task.id, nodeId, names }] : [];
      }),
      this.fence,
    );
    const newlyAssigned = new Set<string>();
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
      if (nodeId) newlyAssigned.add(task.id);
      if (nodeId || next.status.message !== task.status.message) written.set(task.id, next);
    }
    const ops: WriteOp[] = [...serviceWrites];
    const withNewService = new Map([...fresh].map(([id, entry]) => [id, [...entry.ops]]));
    for (const [id, task] of written) {
      const stored = mirror.get<TaskObject>(keys.task(id));
      (withNewService.get(task.serviceId) ?? ops).push(stored ? { op: 'update', key: keys.task(id), value: task, version: stored.version } : { op: 'create', key: keys.task(id), value: task });
    }
    for (const task of decisions.remove) {
      const stored = mirror.get<TaskObject>(keys.task(task.id));
      if (stored) ops.push({ op: 'delete', key: keys.task(task.id), version: stored.version });
    }
    let failed = false;
    const batches: WriteOp[][] = [];
    for (let i = 0; i < ops.length; i += batchSize) batches.push(ops.slice(i, i + batchSize));
    const assignedAt = new Map<string, number>();
    // New services first: their creators wait. One refused (its name taken) leaves the rest of
    // the pass as it is; its tasks are simply not stored.
    await inParallel([...withNewService], parallelCommits, async ([id, batch]) => {
      const result = await this.store.commit([...this.fence, ...batch]);
      if (!result.ok) return;
      mirror.applyCommit(batch, result.revision);
      this.observeAssignments(batch, newlyAssigned, assignedAt);
      fresh.get(id)!.settle(result);
    });
    // A few transactions in flight: etcd commits concurrent proposals together.
    await inParallel(batches, parallelCommits, async (batch) => {
      const result = await this.store.commit([...this.fence, ...batch]);
      if (result.ok) {
        mirror.applyCommit(batch, result.revision);
        this.observeAssignments(batch, newlyAssigned, assignedAt);
      } else {
        failed = true;
        // Someone wrote in between (an agent's report): these services are decided again once the mirror has it.
        for (const op of batch) {
          const id = op.key.slice(op.key.lastIndexOf('/') + 1);
          const serviceId = op.key.startsWith(keys.services) ? id : (written.get(id) ?? removed.get(id))?.serviceId;
          if (serviceId !== undefined) this.changedServices.add(serviceId);
        }
      }
    });
    if (failed) {
      this.log.debug('control loop pass lost a race; deciding again', { services: serviceIds.size, writes: ops.length, ms: Math.round(performance.now() - startedAt) });
      this.dirty = true;
      return;
    }
    // Removed tasks give their addresses back (a lease not held by the task any more is left alone).
    for (const task of decisions.remove) if (task.attachments?.length) await detachNetworks(this.store, task.attachments);
    let writes = ops.length;
    for (const batch of withNewService.values()) writes += batch.length;
    const summary = { created: decisions.create.length, shutdown: decisions.shutdown.length, removed: decisions.remove.length, writes, tasks: index.size, services: serviceIds.size, full, ms: Math.round(performance.now() - startedAt) };
    if (writes > 0) this.log.info('control loop pass', summary);
    else this.log.debug('control loop pass', summary);
    await this.dispatch(full, assignedAt);
  }

  /**
   * Hands each node whose tasks changed its list again (every node on a full pass). A node's
   * list is rebuilt only when its set of tasks or their desired states changed: task reports
   * change the tasks but not the lists. The dispatcher keeps what it last had for a node
   * (sessions that reopen get it again).
   */
  private async dispatch(full: boolean, assignedAt: ReadonlyMap<string, number>): Promise<void> {
    const index = this.index;
    const nodeIds = full ? [...index.nodes.keys()] : [...this.changedNodes];
    this.changedNodes.clear();
    const changed: [string, TaskObject[], string][] = [];
    for (const nodeId of nodeIds) {
      if (!index.nodes.has(nodeId)) continue;
      const list = [...(index.byNode.get(nodeId)?.values() ?? [])];
      let signature = '';
      for (const task of list) signature += `${task.id}${task.desiredState[0]}`;
      if (this.dispatched.get(nodeId) !== signature) changed.push([nodeId, list, signature]);
    }
    if (changed.length === 0) return;
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
        const registryAuth = isStarted(task) ? undefined : this.files?.registryAuthOf(this.mirror?.get<ServiceObject>(keys.service(task.serviceId))?.value);
        const assignment: TaskAssignment = {
          id: task.id, name: taskName(task), serviceId: task.serviceId, desiredState: task.desiredState,
          container: { ...task.spec.container, attachments: task.attachments ?? [], publish: hostModePorts(task), workload: { service: task.serviceName, serviceLabels: task.spec.labels } },
          ...(taskFiles ? { files: taskFiles } : {}),
          ...(registryAuth ? { registryAuth } : {}),
        };
        this.assignments.set(task.id, assignment);
        return assignment;
      }));
      if (complete) {
        this.dispatched.set(nodeId, signature);
      } else {
        this.dispatched.delete(nodeId);
        this.changedNodes.add(nodeId);
      }
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
  private observeAssignments(batch: readonly WriteOp[], newlyAssigned: ReadonlySet<string>, assignedAt: Map<string, number>): void {
    if (!this.metrics) return;
    const now = performance.now();
    const wallNow = Date.now();
    for (const op of batch) {
      if (op.op !== 'create' && op.op !== 'update') continue;
      const task = op.value as TaskObject;
      if (!op.key.startsWith(keys.tasks) || !newlyAssigned.has(task.id)) continue;
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
