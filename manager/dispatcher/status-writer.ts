import { keys } from '../../shared/keys.ts';
import type { Logger } from '../../shared/log.ts';
import type { TaskStatusReport } from '../../shared/p2p/protocol.ts';
import { stateIndex, type TaskObject } from '../../shared/services.ts';
import { fenceHolds, updateObject } from '../../shared/store/objects.ts';
import type { StoreMirror } from '../../shared/store/mirror.ts';
import type { Store, Versioned, WriteOp } from '../../shared/store/store.ts';
import { inBackground, inParallel } from '../../shared/concurrency.ts';

/** Stays below etcd's 128 operations per transaction. */
const batchSize = 100;
/** Reports arriving within this window share transactions, as swarmkit's dispatcher batches them. */
const flushDelayMs = 50;
/** Transactions in flight at once. */
const parallelBatches = 4;

/**
 * A report applied to its task, or undefined to leave the task as it is: only the task's own
 * node may report on it, and a state only moves forward (the same state may change its health).
 */
export function applyReport(task: TaskObject, nodeId: string, report: TaskStatusReport, timestamp: string): TaskObject | undefined {
  if (task.nodeId !== nodeId) return undefined;
  const forward = stateIndex(report.state) > stateIndex(task.status.state);
  const healthChange = report.state === task.status.state && report.health !== task.status.health;
  if (!forward && !healthChange) return undefined;
  const { taskId: _taskId, ...status } = report;
  return { ...task, status: { ...status, timestamp }, updatedAt: timestamp };
}

interface Pending {
  nodeId: string;
  report: TaskStatusReport;
}

/**
 * Writes agents' task reports in batches: a thousand nodes reporting thirty thousand tasks
 * would otherwise cost a read and a transaction each. A batch takes its tasks from the leader's
 * mirror (or reads them in one transaction) and writes them in one, revision-checked; if
 * something else wrote one of them meanwhile, that batch falls back to one read-modify-write
 * per task.
 */
export class StatusWriter {
  /** Latest report per task; a later report of the same task replaces an earlier one. */
  private queue = new Map<string, Pending>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** The leader's mirror of the store, while its control loop runs. */
  mirror: StoreMirror | undefined;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    /**
     * The leader's fence at write time: reports queued by a manager that has since been
     * deposed are dropped (agents send every status again to the leader they find next).
     */
    private readonly fence: () => readonly WriteOp[] = () => [],
  ) {}

  enqueue(nodeId: string, reports: readonly TaskStatusReport[]): void {
    for (const report of reports) {
      const queued = this.queue.get(report.taskId);
      // Keep the most advanced state, should an older report arrive late.
      if (queued && queued.nodeId === nodeId && stateIndex(queued.report.state) > stateIndex(report.state)) continue;
      this.queue.set(report.taskId, { nodeId, report });
    }
    this.timer ??= setTimeout(() => inBackground(this.flush(), (error) => this.log.warn('task statuses not flushed', { error: String(error) })), flushDelayMs);
  }

  /** Writes everything queued so far; one flush at a time. */
  async flush(): Promise<void> {
    this.timer = undefined;
    while (this.flushing) await this.flushing;
    if (this.queue.size === 0) return;
    const work = [...this.queue.values()];
    this.queue = new Map();
    this.flushing = this.writeAll(work).finally(() => (this.flushing = undefined));
    await this.flushing;
  }

  private async writeAll(work: Pending[]): Promise<void> {
    const batches: Pending[][] = [];
    for (let i = 0; i < work.length; i += batchSize) batches.push(work.slice(i, i + batchSize));
    await inParallel(batches, parallelBatches, (batch) =>
      this.writeBatch(batch).catch((error: unknown) => this.log.warn('task status not recorded', { tasks: batch.length, error: String(error) })),
    );
  }

  /** The tasks as stored: from the leader's mirror when there is one, else read in one transaction. */
  private async read(batch: Pending[]): Promise<Map<string, Versioned<TaskObject>>> {
    const taskKeys = batch.map((p) => keys.task(p.report.taskId));
    const mirror = this.mirror;
    const found = mirror ? taskKeys.flatMap((key) => mirror.get<TaskObject>(key) ?? []) : await this.store.getMany<TaskObject>(taskKeys);
    return new Map(found.map((t) => [t.value.id, t]));
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    const timestamp = new Date().toISOString();
    const stored = await this.read(batch);
    const ops: WriteOp[] = [];
    for (const { nodeId, report } of batch) {
      const task = stored.get(report.taskId);
      const next = task && applyReport(task.value, nodeId, report, timestamp);
      if (task && next) ops.push({ op: 'update', key: task.key, value: next, version: task.version });
    }
    if (ops.length === 0) return;
    const fence = this.fence();
    const result = await this.store.commit([...fence, ...ops]);
    if (result.ok) {
      this.mirror?.applyCommit(ops, result.revision);
      return;
    }
    if (fence.length > 0 && !(await fenceHolds(this.store, fence))) {
      this.log.info('task statuses dropped: no longer the leader', { tasks: batch.length });
      return;
    }
    // Something else wrote one of them, or the mirror lagged: one task at a time, from etcd.
    for (const { nodeId, report } of batch) {
      await updateObject<TaskObject>(this.store, keys.task(report.taskId), (task) => applyReport(task, nodeId, report, new Date().toISOString()), 5, fence).catch(
        (error: unknown) => this.log.warn('task status not recorded', { task: report.taskId, error: String(error) }),
      );
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await this.flush();
  }
}
