import type { NodeObject } from '../../shared/schemas.ts';
import { isTerminal, type TaskObject } from '../../shared/services.ts';
import { filters, hostPortsOf, type NodeInfo } from './filters.ts';
import { MinHeap } from './heap.ts';

export interface ScheduleResult {
  /** task id -> node id */
  assignments: Map<string, string>;
  /** task id -> why it stays pending */
  pending: Map<string, string>;
}

/** A node that holds no task yet. */
export function emptyInfo(node: NodeObject): NodeInfo {
  return { node, tasksByService: new Map(), totalTasks: 0, reserved: { nanoCpus: 0, memoryBytes: 0 }, hostPorts: new Map() };
}

/** Whether a task holds its node: placed, meant to run, not ended. */
export function holdsNode(task: TaskObject): boolean {
  return task.nodeId !== undefined && task.desiredState === 'running' && !isTerminal(task.status.state);
}

/** Adds a task's load to its node's (sign 1), or takes it away (sign -1). */
export function addLoad(info: Omit<NodeInfo, 'node'>, task: TaskObject, sign: 1 | -1): void {
  const ofService = (info.tasksByService.get(task.serviceId) ?? 0) + sign;
  if (ofService > 0) info.tasksByService.set(task.serviceId, ofService);
  else info.tasksByService.delete(task.serviceId);
  info.totalTasks += sign;
  info.reserved.nanoCpus += sign * task.spec.reservations.nanoCpus;
  info.reserved.memoryBytes += sign * task.spec.reservations.memoryBytes;
  for (const port of hostPortsOf(task.spec)) {
    const holders = (info.hostPorts.get(port) ?? 0) + sign;
    if (holders > 0) info.hostPorts.set(port, holders);
    else info.hostPorts.delete(port);
  }
}

/** What each node holds now, counted from scratch (the control loop keeps the same counts incrementally, in NodeLoads). */
export function nodeInfos(nodes: readonly NodeObject[], tasks: readonly TaskObject[]): NodeInfo[] {
  const byId = new Map<string, NodeInfo>(nodes.map((node) => [node.id, emptyInfo(node)]));
  for (const task of tasks) {
    const info = task.nodeId ? byId.get(task.nodeId) : undefined;
    if (info && holdsNode(task)) addLoad(info, task, 1);
  }
  return [...byId.values()];
}

/** Runs the whole pipeline to say which filter left no node, for `service ps`. */
function whyPending(task: TaskObject, infos: readonly NodeInfo[]): string {
  let candidates = task.nodeId ? infos.filter((i) => i.node.id === task.nodeId) : infos;
  for (const filter of filters) {
    const passing = candidates.filter((info) => filter.accepts(info, task.spec, task.serviceId));
    if (passing.length === 0) return `no suitable node: ${filter.explain(candidates.length, infos.length, task.spec)}`;
    candidates = passing;
  }
  return 'no suitable node';
}

const specFilters = filters.filter((f) => !f.dependsOnPlacements);
const placementFilters = filters.filter((f) => f.dependsOnPlacements);

/**
 * Places pending tasks, one decision at a time so each sees the ones before it: filter the
 * nodes (ready, active, constraints, resources, platform), then spread: the node with the
 * fewest tasks of this service, then the fewest tasks overall. With a placement preference
 * (spread=node.labels.zone) the label value with the fewest of the service's tasks comes first.
 * Global tasks carry their node already and only need it to pass the filters.
 *
 * Tasks of one service version share a spec, so they are placed together: the filters that
 * depend on the spec alone run once for the group, and the spread order is a heap, so 30,000
 * tasks on 1,000 nodes cost a few heap operations each rather than a scan of every node.
 *
 * The infos are what each node holds; each placement is added to its node's info as it is
 * made, so the caller that keeps infos between calls takes the placements back out after.
 */
export function schedule(pendingTasks: readonly TaskObject[], infos: readonly NodeInfo[]): ScheduleResult {
  const result: ScheduleResult = { assignments: new Map(), pending: new Map() };
  const groups = new Map<string, TaskObject[]>();
  for (const task of pendingTasks) {
    const key = `${task.serviceId}/${task.specVersion}/${task.nodeId ?? ''}`;
    const group = groups.get(key);
    if (group) group.push(task);
    else groups.set(key, [task]);
  }
  for (const tasks of groups.values()) {
    const first = tasks[0]!;
    const pool = first.nodeId ? infos.filter((i) => i.node.id === first.nodeId) : infos;
    const eligible = pool.filter((info) => specFilters.every((f) => f.accepts(info, first.spec, first.serviceId)));
    if (first.spec.placement.preferences.length > 0) placeWithPreferences(tasks, eligible, infos, result);
    else spread(tasks, eligible, infos, result);
  }
  return result;
}

function place(task: TaskObject, chosen: NodeInfo, result: ScheduleResult): void {
  result.assignments.set(task.id, chosen.node.id);
  addLoad(chosen, task, 1);
}

const fits = (info: NodeInfo, task: TaskObject) => placementFilters.every((f) => f.accepts(info, task.spec, task.serviceId));

/** Spread over a heap ordered by (tasks of this service, tasks overall, node id). */
function spread(tasks: TaskObject[], eligible: NodeInfo[], infos: readonly NodeInfo[], result: ScheduleResult): void {
  const serviceId = tasks[0]!.serviceId;
  const ofService = (info: NodeInfo) => info.tasksByService.get(serviceId) ?? 0;
  const heap = new MinHeap(eligible, (a, b) => {
    const byService = ofService(a) - ofService(b);
    if (byService !== 0) return byService < 0;
    if (a.totalTasks !== b.totalTasks) return a.totalTasks < b.totalTasks;
    return a.node.id < b.node.id;
  });
  for (const task of tasks) {
    let chosen = heap.peek();
    // Reservations only grow while a pass places tasks: a node too full for this spec stays so.
    while (chosen && !fits(chosen, task)) {
      heap.pop();
      chosen = heap.peek();
    }
    if (!chosen) {
      result.pending.set(task.id, whyPending(task, infos));
      continue;
    }
    place(task, chosen, result);
    heap.topChanged();
  }
}

/** With placement preferences: the label value with the fewest of the service's tasks, then spread. */
function placeWithPreferences(tasks: TaskObject[], eligible: NodeInfo[], infos: readonly NodeInfo[], result: ScheduleResult): void {
  for (const task of tasks) {
    const ofService = (info: NodeInfo) => info.tasksByService.get(task.serviceId) ?? 0;
    let candidates = eligible.filter((info) => fits(info, task));
    if (candidates.length === 0) {
      result.pending.set(task.id, whyPending(task, infos));
      continue;
    }
    for (const preference of task.spec.placement.preferences) {
      const label = preference.slice('spread=node.labels.'.length);
      const groups = new Map<string, number>();
      for (const info of infos) {
        const value = info.node.spec.labels[label] ?? '';
        groups.set(value, (groups.get(value) ?? 0) + ofService(info));
      }
      const least = Math.min(...candidates.map((info) => groups.get(info.node.spec.labels[label] ?? '') ?? 0));
      candidates = candidates.filter((info) => (groups.get(info.node.spec.labels[label] ?? '') ?? 0) === least);
    }
    const chosen = candidates.reduce((best, info) => {
      const byService = ofService(info) - ofService(best);
      if (byService !== 0) return byService < 0 ? info : best;
      if (info.totalTasks !== best.totalTasks) return info.totalTasks < best.totalTasks ? info : best;
      return info.node.id < best.node.id ? info : best;
    });
    place(task, chosen, result);
  }
}
