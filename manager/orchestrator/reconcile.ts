/**
 * The orchestrators' decisions as a pure function of desired and observed state: which tasks
 * to create, which to shut down, which history to drop. The loop applies them in etcd.
 */
import type { NodeObject } from '../../shared/schemas.ts';
import { isTerminal, type ServiceObject, type TaskObject, type TaskState } from '../../shared/services.ts';
import { satisfies } from '../scheduler/filters.ts';

export interface Decisions {
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
  const at = Date.parse(last.status.timestamp) + (deliberate ? 0 : policy.delayMs);
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
    bySlot.set(key, [...(bySlot.get(key) ?? []), task].sort((a, b) => a.createdAt.localeCompare(b.createdAt)));
  }
  const wanted =
    service.spec.mode === 'global'
      ? [...nodes.values()].filter((n) => eligible(n, service)).map((n) => n.id)
      : Array.from({ length: service.spec.replicas }, (_, i) => String(i + 1));
  const wantedSet = new Set(wanted);
  let updating = 0;
  for (const key of wanted) {
    const history = bySlot.get(key) ?? [];
    const live = history.filter((t) => isLive(t, nodes));
    for (const extra of live.slice(1)) decisions.shutdown.push({ task: extra, reason: 'slot has another task' });
    const current = live[0];
    if (current && current.specVersion < service.specVersion) updating++;
    if (current) continue;
    const restart = restartAllowed(service, history.filter((t) => !live.includes(t)), context);
    if (restart.allowed) {
      decisions.create.push(service.spec.mode === 'global' ? newTask(service, 0, context, key) : newTask(service, Number(key), context));
      // The ended tasks it replaces become history.
      for (const ended of history) if (ended.desiredState === 'running' && isTerminal(ended.status.state)) decisions.shutdown.push({ task: ended, reason: 'replaced' });
    } else if (restart.at !== undefined) {
      decisions.recheckAt = Math.min(decisions.recheckAt ?? Number.POSITIVE_INFINITY, restart.at);
    }
  }
  // Rolling update, one task at a time: replace an outdated task once none is on its way up.
  const starting = tasks.some((t) => t.specVersion === service.specVersion && t.desiredState === 'running' && !isTerminal(t.status.state) && t.status.state !== 'running');
  if (updating > 0 && !starting) {
    const outdated = wanted
      .map((key) => (bySlot.get(key) ?? []).find((t) => isLive(t, nodes) && t.specVersion < service.specVersion))
      .find((t) => t !== undefined);
    if (outdated) decisions.shutdown.push({ task: outdated, reason: 'updating to the new spec' });
  }
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
