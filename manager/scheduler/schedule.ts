import type { NodeObject } from '../../shared/schemas.ts';
import { isTerminal, type TaskObject } from '../../shared/services.ts';
import { filters, type NodeInfo } from './filters.ts';

export interface ScheduleResult {
  /** task id -> node id */
  assignments: Map<string, string>;
  /** task id -> why it stays pending */
  pending: Map<string, string>;
}

/** What each node holds now: the tasks placed on it that have not ended, and their reservations. */
export function nodeInfos(nodes: readonly NodeObject[], tasks: readonly TaskObject[]): NodeInfo[] {
  return nodes.map((node) => {
    const info: NodeInfo = { node, tasksByService: new Map(), totalTasks: 0, reserved: { nanoCpus: 0, memoryBytes: 0 } };
    for (const task of tasks) {
      if (task.nodeId !== node.id || isTerminal(task.status.state) || task.desiredState !== 'running') continue;
      info.tasksByService.set(task.serviceId, (info.tasksByService.get(task.serviceId) ?? 0) + 1);
      info.totalTasks++;
      info.reserved.nanoCpus += task.spec.reservations.nanoCpus;
      info.reserved.memoryBytes += task.spec.reservations.memoryBytes;
    }
    return info;
  });
}

/**
 * Places pending tasks, one decision at a time so each sees the ones before it: filter the
 * nodes (ready, active, constraints, resources, platform), then spread: the node with the
 * fewest tasks of this service, then the fewest tasks overall. With a placement preference
 * (spread=node.labels.zone) the label value with the fewest of the service's tasks comes first.
 * Global tasks carry their node already and only need it to pass the filters.
 */
export function schedule(pendingTasks: readonly TaskObject[], nodes: readonly NodeObject[], allTasks: readonly TaskObject[]): ScheduleResult {
  const infos = nodeInfos(nodes, allTasks);
  const result: ScheduleResult = { assignments: new Map(), pending: new Map() };
  for (const task of pendingTasks) {
    const spec = task.spec;
    let candidates = task.nodeId ? infos.filter((i) => i.node.id === task.nodeId) : infos;
    for (const filter of filters) {
      const passing = candidates.filter((info) => filter.accepts(info, spec));
      if (passing.length === 0) {
        result.pending.set(task.id, `no suitable node: ${filter.explain(candidates.length, infos.length, spec)}`);
        candidates = [];
        break;
      }
      candidates = passing;
    }
    if (candidates.length === 0) continue;
    const ofService = (info: NodeInfo) => info.tasksByService.get(task.serviceId) ?? 0;
    for (const preference of spec.placement.preferences) {
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
    result.assignments.set(task.id, chosen.node.id);
    chosen.tasksByService.set(task.serviceId, ofService(chosen) + 1);
    chosen.totalTasks++;
    chosen.reserved.nanoCpus += spec.reservations.nanoCpus;
    chosen.reserved.memoryBytes += spec.reservations.memoryBytes;
  }
  return result;
}
