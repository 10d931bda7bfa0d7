import type { NodeObject } from '../../shared/schemas.ts';
import { isTerminal, type TaskObject } from '../../shared/services.ts';
import type { NodeInfo } from '../scheduler/filters.ts';
import { addLoad, holdsNode, schedule, type ScheduleResult } from '../scheduler/schedule.ts';

/** A node's load, kept before the node itself is known (the mirror lists tasks before nodes). */
type Load = Omit<NodeInfo, 'node'> & { node?: NodeObject };

/** Handed to its node: placed, and neither waiting nor ended. */
function onItsNode(task: TaskObject): boolean {
  return task.nodeId !== undefined && task.status.state !== 'pending' && !isTerminal(task.status.state);
}

function isPending(task: TaskObject): boolean {
  return task.desiredState === 'running' && task.status.state === 'pending';
}

/** Moves a task between the buckets of `groups`: a task that stays in its bucket keeps its place (a node's list keeps its order). */
function regroup(groups: Map<string, Map<string, TaskObject>>, before: string | undefined, after: string | undefined, id: string, task: TaskObject | undefined): void {
  if (before !== undefined && before !== after) {
    const bucket = groups.get(before);
    bucket?.delete(id);
    if (bucket?.size === 0) groups.delete(before);
  }
  if (after === undefined || !task) return;
  let bucket = groups.get(after);
  if (!bucket) groups.set(after, (bucket = new Map()));
  bucket.set(id, task);
}

/**
 * The control loop's indexes over the mirrored tasks and nodes, kept up to date change by
 * change: the tasks of each service, the tasks handed to each node, the tasks waiting for a
 * node, and each node's load for the scheduler. With them a pass costs what changed since the
 * last one, not the cluster's size: at 30,000 tasks, rebuilding these from every task took a
 * few hundred milliseconds per pass, and a pass ran on every batch of status reports.
 */
export class TaskIndex {
  readonly byService = new Map<string, Map<string, TaskObject>>();
  readonly byNode = new Map<string, Map<string, TaskObject>>();
  readonly pending = new Map<string, TaskObject>();
  readonly nodes = new Map<string, NodeObject>();
  private readonly loads = new Map<string, Load>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Takes in one task's change: its version before (none if new) and after (none once deleted). */
  setTask(before: TaskObject | undefined, after: TaskObject | undefined): void {
    const id = (after ?? before)?.id;
    if (id === undefined) return;
    this.count += (after ? 1 : 0) - (before ? 1 : 0);
    regroup(this.byService, before?.serviceId, after?.serviceId, id, after);
    regroup(this.byNode, before && onItsNode(before) ? before.nodeId : undefined, after && onItsNode(after) ? after.nodeId : undefined, id, after);
    if (after && isPending(after)) this.pending.set(id, after);
    else this.pending.delete(id);
    if (before && holdsNode(before)) addLoad(this.loadOf(before.nodeId!), before, -1);
    if (after && holdsNode(after)) addLoad(this.loadOf(after.nodeId!), after, 1);
  }

  /** Takes in one node's change; says whether it matters to placement (state, spec, resources), not just the time it was last seen. */
  setNode(before: NodeObject | undefined, after: NodeObject | undefined): boolean {
    const id = (after ?? before)?.id;
    if (id === undefined) return false;
    if (after) {
      this.nodes.set(id, after);
      this.loadOf(id).node = after;
    } else {
      this.nodes.delete(id);
      const load = this.loads.get(id);
      if (load) delete load.node;
    }
    return !before || !after || before.status.state !== after.status.state || JSON.stringify([before.spec, before.description]) !== JSON.stringify([after.spec, after.description]);
  }

  private loadOf(nodeId: string): Load {
    let load = this.loads.get(nodeId);
    if (!load) this.loads.set(nodeId, (load = { tasksByService: new Map(), totalTasks: 0, reserved: { nanoCpus: 0, memoryBytes: 0 }, hostPorts: new Map() }));
    return load;
  }

  /** Each known node with what it holds (live objects: the scheduler adds to them as it places). */
  infos(): NodeInfo[] {
    const infos: NodeInfo[] = [];
    for (const load of this.loads.values()) if (load.node) infos.push(load as NodeInfo);
    return infos;
  }

  /**
   * Places `pending` on the nodes as they will be once the tasks in `freed` stop holding
   * theirs (this pass shuts them down). The loads are left as they were: the placements count
   * once they are stored and come back as changes.
   */
  schedule(pending: readonly TaskObject[], freed: Iterable<TaskObject>): ScheduleResult {
    const released = new Map<string, TaskObject>();
    for (const task of freed) if (holdsNode(task)) released.set(task.id, task);
    for (const task of released.values()) addLoad(this.loadOf(task.nodeId!), task, -1);
    const result = schedule(pending, this.infos());
    for (const task of pending) {
      const nodeId = result.assignments.get(task.id);
      if (nodeId !== undefined) addLoad(this.loadOf(nodeId), task, -1);
    }
    for (const task of released.values()) addLoad(this.loadOf(task.nodeId!), task, 1);
    return result;
  }
}
