/**
 * The orchestrators' decisions as a pure function of desired and observed state: which tasks
 * to create, which to shut down, which history to drop. The loop applies them in etcd.
 */
import type { NodeObject } from '../../shared/schemas.ts';
import { isTerminal, isUp, type ServiceObject, type TaskObject, type TaskState } from '../../shared/services.ts';
import { satisfies } from '../scheduler/filters.ts';

export interface Decisions {
  /** A change to the service itself: update progress, or an automatic rollback. */
  service?: ServiceObject;
  create: TaskObject[];
  /** Tasks whose desired state goes to shutdown (with, for tasks on a down node, the orphaned status). */
  shutdown: Array<{ task: TaskObject; reason: string; orphan?: boolean }>;
  remove: TaskObject[];
  /** When to look again (a restart delay running out), if sooner than the next event. */
  recheckAt?: number;
}

export const historyLimit = 5;

interface Context {
  nodes: ReadonlyMap<string, NodeObject>;
  now: number;
  newTaskId: () => string;
  timestamp: string;
}

/** Still holding its slot: meant to run, not ended, and not on a node that is down. */
function isLive(task: TaskObject, nodes: ReadonlyMap<string, NodeObject>): boolean {
  if (task.desiredState !== 'running' || isTerminal(task.status.state)) return false;
  if (!task.nodeId) return true;
  return nodes.get(task.nodeId)?.status.state === 'ready';
}

function newTask(service: ServiceObject, slot: number, context: Context, nodeId?: string): TaskObject {
  return {
    id: context.newTaskId(),
    serviceId: service.id,
    serviceName: service.spec.name,
    slot,
    ...(nodeId ? { nodeId } : {}),
    spec: service.spec,
    specVersion: service.specVersion,
    desiredState: 'running',
    status: { state: 'pending', message: 'waiting to be scheduled', timestamp: context.timestamp },
    createdAt: context.timestamp,
    updatedAt: context.timestamp,
  };
}

/** Whether the restart policy lets a new task replace the slot's last one now, or when. */
function restartAllowed(service: ServiceObject, history: TaskObject[], context: Context): { allowed: boolean; at?: number } {
  const last = history.at(-1);
  if (!last) return { allowed: true };
  const policy = service.spec.restartPolicy;
  const failed: TaskState[] = ['failed', 'rejected', 'orphaned'];
  // A replica that was shut down on purpose (update, node down) is always replaced.
  const deliberate = last.desiredState !== 'running' && !failed.includes(last.status.state);
  if (!deliberate) {
    if (policy.condition === 'none') return { allowed: false };
    if (policy.condition === 'on-failure' && !failed.includes(last.status.state)) return { allowed: false };
    if (policy.maxAttempts > 0) {
      const since = policy.windowMs > 0 ? context.now - policy.windowMs : 0;
      const attempts = history.filter((t) => Date.parse(t.createdAt) >= since && isTerminal(t.status.state)).length;
      if (attempts > policy.maxAttempts) return { allowed: false };
    }
  }
  // A slot whose node went down is refilled at once, not after the restart delay: the pass
  // that orphans it usually refills it too, but when that pass's write lost a race the next
  // one found the orphaned task last and waited 5 s more (measured: 8 s instead of 3-4 s).
  const at = Date.parse(last.status.timestamp) + (deliberate || last.status.state === 'orphaned' ? 0 : policy.delayMs);
  return at <= context.now ? { allowed: true } : { allowed: false, at };
}

/** Eligible for a global service's task: ready, active, and within the constraints. */
function eligible(node: NodeObject, service: ServiceObject): boolean {
  return node.status.state === 'ready' && node.spec.availability === 'active' && service.spec.placement.constraints.every((c) => satisfies(node, c));
}

export function reconcileService(service: ServiceObject, tasks: readonly TaskObject[], context: Context): Decisions {
  const decisions: Decisions = { create: [], shutdown: [], remove: [] };
  const { nodes } = context;
  // Tasks on nodes that went down lose their slot; their containers are stopped if the node returns.
  for (const task of tasks) {
    if (task.desiredState === 'running' && !isTerminal(task.status.state) && task.nodeId && nodes.get(task.nodeId)?.status.state !== 'ready') {
      decisions.shutdown.push({ task, reason: 'node is down', orphan: true });
    }
  }
  const bySlot = new Map<string, TaskObject[]>();
  for (const task of tasks) {
    const key = service.spec.mode === 'global' ? (task.nodeId ?? '') : String(task.slot);
    const history = bySlot.get(key);
    if (history) history.push(task);
    else bySlot.set(key, [task]);
  }
  for (const history of bySlot.values()) if (history.length > 1) history.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  const wanted =
    service.spec.mode === 'global'
      ? [...nodes.values()].filter((n) => eligible(n, service)).map((n) => n.id)
      : Array.from({ length: service.spec.replicas }, (_, i) => String(i + 1));
  const wantedSet = new Set(wanted);
  for (const key of wanted) {
    const history = bySlot.get(key) ?? [];
    const live = history.filter((t) => isLive(t, nodes));
    const current = live.filter((t) => t.specVersion === service.specVersion);
    const old = live.filter((t) => t.specVersion < service.specVersion);
    if (current.length > 0 && old.length > 0) {
      // start-first: the old task goes once its successor is up.
      if (current.some(isUp)) for (const task of old) decisions.shutdown.push({ task, reason: 'replaced by its update' });
      for (const extra of current.slice(1)) decisions.shutdown.push({ task: extra, reason: 'slot has another task' });
    } else {
      for (const extra of live.slice(1)) decisions.shutdown.push({ task: extra, reason: 'slot has another task' });
    }
    if (live[0]) continue;
    const restart = restartAllowed(service, history.filter((t) => !live.includes(t)), context);
    if (restart.allowed) {
      decisions.create.push(service.spec.mode === 'global' ? newTask(service, 0, context, key) : newTask(service, Number(key), context));
      // The ended tasks it replaces become history.
      for (const ended of history) if (ended.desiredState === 'running' && isTerminal(ended.status.state)) decisions.shutdown.push({ task: ended, reason: 'replaced' });
    } else if (restart.at !== undefined) {
      decisions.recheckAt = Math.min(decisions.recheckAt ?? Number.POSITIVE_INFINITY, restart.at);
    }
  }
  rollingUpdate(service, tasks, wanted, bySlot, context, decisions);
  for (const [key, history] of bySlot) {
    if (!wantedSet.has(key)) {
      for (const task of history) if (task.desiredState === 'running' && !isTerminal(task.status.state)) decisions.shutdown.push({ task, reason: 'scaled down' });
    }
    const ended = history.filter((t) => t.desiredState !== 'running' && isTerminal(t.status.state));
    const drop = !wantedSet.has(key) ? ended : ended.slice(0, Math.max(0, ended.length - historyLimit));
    decisions.remove.push(...drop);
  }
  return decisions;
}

const failedStates: TaskState[] = ['failed', 'rejected'];

/**
 * Replaces tasks made from an older spec, `parallelism` at a time with `delay` between
 * batches. A new task that fails within the monitor period counts against the update; past
 * the failure ratio the failure action applies: pause, continue, or roll back to the
 * previous spec (which then rolls with the rollback settings).
 */
function rollingUpdate(
  service: ServiceObject,
  tasks: readonly TaskObject[],
  wanted: string[],
  bySlot: Map<string, TaskObject[]>,
  context: Context,
  decisions: Decisions,
): void {
  const status = service.updateStatus;
  const rollingBack = status?.state.startsWith('rollback') ?? false;
  const config = rollingBack ? service.spec.rollback : service.spec.update;
  // Slots whose live tasks are all from an older spec (a slot with a successor is on its way).
  const outdated = wanted
    .map((key) => (bySlot.get(key) ?? []).filter((t) => isLive(t, context.nodes)))
    .filter((live) => live.length > 0 && live.every((t) => t.specVersion < service.specVersion))
    .map((live) => live[0]!);
  const fresh = tasks.filter((t) => t.specVersion === service.specVersion);
  // On their way up: new tasks not up yet (not running, or not yet healthy), including those this very pass creates.
  const starting = [
    ...fresh.filter((t) => t.desiredState === 'running' && !isTerminal(t.status.state) && !isUp(t)),
    ...decisions.create,
  ];
  if (!status || status.state === 'completed' || status.state === 'rollback_completed') {
    if (outdated.length === 0) return;
  }
  if (status?.state === 'paused' || status?.state === 'rollback_paused') return;
  const since = status ? Date.parse(status.startedAt) : 0;
  // New tasks that failed since the update began count against it, until it completes.
  const failed = fresh.filter((t) => failedStates.includes(t.status.state) && Date.parse(t.createdAt) >= since);
  const total = Math.max(1, wanted.length);
  if (failed.length > 0 && failed.length / total > config.maxFailureRatio && config.failureAction !== 'continue') {
    const cause = failed[0]!;
    const why = `task ${cause.id.slice(0, 12)} ${cause.status.state}: ${cause.status.error ?? cause.status.message}`;
    if (config.failureAction === 'rollback' && !rollingBack && service.previousSpec) {
      decisions.service = {
        ...service,
        spec: service.previousSpec,
        previousSpec: service.spec,
        specVersion: service.specVersion + 1,
        updateStatus: { state: 'rollback_started', message: `update rolled back due to failure or early termination of ${why}`, startedAt: context.timestamp },
        updatedAt: context.timestamp,
      };
    } else {
      decisions.service = {
        ...service,
        updateStatus: { ...(status ?? { startedAt: context.timestamp }), state: rollingBack ? 'rollback_paused' : 'paused', message: `${rollingBack ? 'rollback' : 'update'} paused due to failure or early termination of ${why}` },
        updatedAt: context.timestamp,
      };
    }
    return;
  }
  if (outdated.length === 0) {
    // Complete once every new task has run for the monitor period without failing.
    const lastStart = fresh.reduce((latest, t) => (isUp(t) ? Math.max(latest, Date.parse(t.status.timestamp)) : latest), 0);
    if (starting.length === 0 && context.now - lastStart < config.monitorMs) {
      decisions.recheckAt = Math.min(decisions.recheckAt ?? Number.POSITIVE_INFINITY, lastStart + config.monitorMs);
      return;
    }
    if (starting.length === 0 && status && (status.state === 'updating' || status.state === 'rollback_started')) {
      decisions.service = {
        ...service,
        updateStatus: { ...status, state: rollingBack ? 'rollback_completed' : 'completed', message: rollingBack ? 'rollback completed' : 'update completed', completedAt: context.timestamp },
        updatedAt: context.timestamp,
      };
    }
    return;
  }
  const lastBatch = status?.lastBatchAt ? Date.parse(status.lastBatchAt) : 0;
  if (starting.length > 0 && config.parallelism !== 0) {
    // The batch in flight must run before the next starts (and the delay runs from then).
    if (starting.length >= config.parallelism) return;
  }
  if (lastBatch && context.now - lastBatch < config.delayMs) {
    decisions.recheckAt = Math.min(decisions.recheckAt ?? Number.POSITIVE_INFINITY, lastBatch + config.delayMs);
    return;
  }
  const budget = config.parallelism === 0 ? outdated.length : Math.max(0, config.parallelism - starting.length);
  const batch = outdated.slice(0, budget);
  if (batch.length === 0) return;
  for (const task of batch) {
    if (config.order === 'start-first') {
      // The new task starts beside the old one; the old one goes once its slot has a running successor.
      decisions.create.push(newTask(service, task.slot, context, service.spec.mode === 'global' ? task.nodeId : undefined));
    } else {
      decisions.shutdown.push({ task, reason: rollingBack ? 'rolling back to the previous spec' : 'updating to the new spec' });
    }
  }
  decisions.service = {
    ...service,
    updateStatus: { ...(status ?? { state: 'updating', message: 'update in progress', startedAt: context.timestamp }), lastBatchAt: context.timestamp },
    updatedAt: context.timestamp,
  };
}
