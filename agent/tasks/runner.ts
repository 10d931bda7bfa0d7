import type { Engine } from '../engine/containers/engine.ts';
import type { ContainerRecord } from '../../shared/containers.ts';
import { isShoalError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { TaskStatusReport } from '../../shared/p2p/protocol.ts';
import { isTerminal, stateIndex, type TaskAssignment } from '../../shared/services.ts';
import { inBackground } from '../../shared/concurrency.ts';
import type { ServiceDiscovery } from '../../netplug/discovery/discovery.ts';

/** At most this long a stopping task waits for the cluster to stop sending it connections. */
const drainTimeoutMs = 2000;

export const taskLabel = 'shoal.task.id';
const serviceLabel = 'shoal.service.id';

/**
 * Runs the tasks the leader assigns, through the same engine the container commands use:
 * one container per task, labelled with the task id so an agent restart finds them again.
 * It reconciles on every new assignment set and every second: start what should run, stop
 * what should not, report each state once (and everything again when a session opens).
 * Containers of tasks the leader no longer assigns are stopped and removed, but only once a
 * leader has spoken since this agent started.
 */
export class TaskRunner {
  private assignments = new Map<string, TaskAssignment>();
  private heardFromLeader = false;
  private readonly reported = new Map<string, TaskStatusReport>();
  private readonly busy = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly engine: Engine,
    private readonly send: (reports: TaskStatusReport[]) => boolean,
    private readonly log: Logger,
    private readonly discovery?: ServiceDiscovery,
    /** Told how long each stage of a task's start took (prepare, start, total): the agent's metrics. */
    private readonly observeStart: (stage: 'prepare' | 'start' | 'total', seconds: number) => void = () => undefined,
  ) {}

  /**
   * Drain first: a task being stopped leaves the VIPs, the routing mesh and DNS before its
   * container gets SIGTERM (the leader withdraws it as soon as it is told to stop or fails its
   * health check), so no new connection reaches a task that is going away.
   */
  private async drain(container: ContainerRecord): Promise<void> {
    const addresses = container.spec.attachments.filter((a) => a.scope === 'swarm' && a.address).map((a) => a.address);
    if (!this.discovery || addresses.length === 0) return;
    if (!(await this.discovery.drained(addresses, drainTimeoutMs))) this.log.warn('a stopping task was still listed for traffic after the drain timeout', { container: container.name });
  }

  start(): void {
    this.timer = setInterval(() => this.poke(), 1000);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.reconciling;
  }

  setAssignments(tasks: TaskAssignment[]): void {
    this.assignments = new Map(tasks.map((t) => [t.id, t]));
    this.heardFromLeader = true;
    this.poke();
  }

  /** A new session: the leader may have missed reports, so all current states go again. */
  resendAll(): void {
    this.send([...this.reported.values()].filter((r) => this.assignments.has(r.taskId)));
  }

  private poke(): void {
    if (this.reconciling) {
      this.again = true;
      return;
    }
    this.reconciling = this.reconcile()
      .catch((error: unknown) => this.log.warn('task reconcile failed', { error: String(error) }))
      .finally(() => {
        this.reconciling = undefined;
        if (this.again) {
          this.again = false;
          this.poke();
        }
      });
  }

  private report(taskId: string, report: Omit<TaskStatusReport, 'taskId'>): void {
    const previous = this.reported.get(taskId);
    const healthChange = previous?.state === report.state && report.health !== undefined && report.health !== previous.health;
    if (previous && stateIndex(report.state) <= stateIndex(previous.state) && !healthChange) return;
    const full = { taskId, ...report };
    this.reported.set(taskId, full);
    this.send([full]);
  }

  private async reconcile(): Promise<void> {
    // One look at the engine per pass, not one per task.
    const containers = this.engine.list();
    const byTask = new Map(containers.filter((c) => c.spec.labels[taskLabel]).map((c) => [c.spec.labels[taskLabel]!, c]));
    for (const task of this.assignments.values()) {
      if (this.busy.has(task.id)) continue;
      const container = byTask.get(task.id);
      if (task.desiredState === 'running') {
        if (!container) this.launch(task);
        else if (container.state === 'running') {
          // The check's state first: a task with a health check is never reported running
          // without it, or it would take traffic before its first check passed.
          this.checkHealth(task.id, container);
          this.report(task.id, { state: 'running', message: 'running', containerId: container.id, ...this.healthOf(task.id) });
        }
        else if (container.state === 'exited') {
          const failed = container.exitCode !== 0 || container.oomKilled;
          this.report(task.id, {
            state: failed ? 'failed' : 'complete',
            message: failed ? `exited with ${container.exitCode}${container.oomKilled ? ' (OOM-killed)' : ''}` : 'finished',
            ...(failed ? { error: `task: non-zero exit (${container.exitCode})` } : {}),
            containerId: container.id,
            ...(container.exitCode !== undefined ? { exitCode: container.exitCode } : {}),
          });
        }
      } else if (isTerminal(task.desiredState)) {
        this.shutDown(task.id, container);
      }
    }
    if (!this.heardFromLeader) return;
    for (const [taskId, container] of byTask) {
      if (!this.assignments.has(taskId) && !this.busy.has(taskId)) this.shutDown(taskId, container, true);
    }
    for (const taskId of this.reported.keys()) if (!this.assignments.has(taskId)) this.reported.delete(taskId);
    for (const taskId of this.health.keys()) if (!this.assignments.has(taskId)) this.health.delete(taskId);
  }

  private readonly health = new Map<string, { status: 'starting' | 'healthy' | 'unhealthy'; failures: number; nextAt: number; since: number; probing: boolean }>();

  private healthOf(taskId: string): { health?: 'starting' | 'healthy' | 'unhealthy' } {
    const state = this.health.get(taskId);
    return state ? { health: state.status } : {};
  }

  /**
   * Runs the task's health check through the engine's exec at its interval. Failures inside
   * the start period do not count; `retries` failures in a row make the task unhealthy: its
   * container is stopped and the task fails, and the orchestrator replaces it.
   */
  private checkHealth(taskId: string, container: ContainerRecord): void {
    const check = this.engine.healthcheckOf(container);
    if (!check) return;
    const now = Date.now();
    let state = this.health.get(taskId);
    if (!state) {
      state = { status: 'starting', failures: 0, nextAt: now + check.intervalMs, since: Date.parse(container.startedAt ?? new Date().toISOString()), probing: false };
      this.health.set(taskId, state);
      this.report(taskId, { state: 'running', message: 'running', containerId: container.id, health: 'starting' });
    }
    if (state.probing || now < state.nextAt) return;
    state.probing = true;
    const probe = state;
    const checked = this.engine
      .exec(container.id, { cmd: check.cmd, env: [] }, check.timeoutMs)
      .then((result) => ({ ok: result.exitCode === 0, output: (result.stdout + result.stderr).trim().slice(0, 200) }))
      .catch((error: unknown) => ({ ok: false, output: String(error) }))
      .then(async ({ ok, output }) => {
        probe.probing = false;
        probe.nextAt = Date.now() + check.intervalMs;
        if (ok) {
          probe.failures = 0;
          if (probe.status !== 'healthy') {
            probe.status = 'healthy';
            this.report(taskId, { state: 'running', message: 'running', containerId: container.id, health: 'healthy' });
          }
          return;
        }
        if (Date.now() - probe.since < check.startPeriodMs) return;
        probe.failures++;
        if (probe.failures < check.retries) return;
        probe.status = 'unhealthy';
        this.report(taskId, { state: 'running', message: 'running', containerId: container.id, health: 'unhealthy' });
        this.busy.add(taskId);
        try {
          await this.drain(container);
          const stopped = await this.engine.stop(container.id);
          this.report(taskId, {
            state: 'failed',
            message: 'unhealthy container',
            error: `task: unhealthy after ${check.retries} failed checks${output ? ` (${output})` : ''}`,
            containerId: stopped.id,
            ...(stopped.exitCode !== undefined ? { exitCode: stopped.exitCode } : {}),
            health: 'unhealthy',
          });
        } finally {
          this.busy.delete(taskId);
        }
      });
    inBackground(checked, (error) => this.log.warn('could not stop an unhealthy task', { task: taskId, error: String(error) }));
  }

  private launch(task: TaskAssignment): void {
    this.busy.add(task.id);
    inBackground((async () => {
      try {
        this.report(task.id, { state: 'accepted', message: 'accepted' });
        this.report(task.id, { state: 'preparing', message: 'preparing (pulling the image if needed)' });
        const spec = { ...task.container, name: task.name, labels: { ...task.container.labels, [taskLabel]: task.id, [serviceLabel]: task.serviceId } };
        const references = (task.container.secrets?.length ?? 0) + (task.container.configs?.length ?? 0);
        if (references > 0 && task.files?.length !== references) {
          this.report(task.id, { state: 'rejected', message: 'could not prepare the container', error: 'its secrets and configs did not come with the assignment (the leader could not open them; see its log)' });
          return;
        }
        let prepared: ContainerRecord;
        const startedAt = performance.now();
        try {
          prepared = await this.engine.prepare(spec, task.files, task.registryAuth);
        } catch (error) {
          this.report(task.id, { state: 'rejected', message: 'could not prepare the container', error: isShoalError(error) ? error.message : String(error) });
          return;
        }
        const preparedAt = performance.now();
        this.observeStart('prepare', (preparedAt - startedAt) / 1000);
        this.report(task.id, { state: 'starting', message: 'starting' });
        const started = await this.engine.start(prepared.id);
        const now = performance.now();
        this.observeStart('start', (now - preparedAt) / 1000);
        this.observeStart('total', (now - startedAt) / 1000);
        // With a health check it runs as 'starting' until the first check passes (no traffic before).
        const checked = this.engine.healthcheckOf(started) ? { health: 'starting' as const } : {};
        this.report(task.id, { state: 'running', message: 'running', containerId: started.id, ...checked });
      } catch (error) {
        this.report(task.id, { state: 'failed', message: 'could not start the container', error: isShoalError(error) ? error.message : String(error) });
      } finally {
        this.busy.delete(task.id);
      }
    })(), (error) => this.log.warn('task step failed', { task: task.id, error: String(error) }));
  }

  private shutDown(taskId: string, container: ContainerRecord | undefined, forgotten = false): void {
    if (!container) {
      if (!forgotten) this.report(taskId, { state: 'shutdown', message: 'shut down' });
      return;
    }
    this.busy.add(taskId);
    inBackground((async () => {
      try {
        if (container.state === 'running') await this.drain(container);
        const stopped = container.state === 'running' ? await this.engine.stop(container.id) : container;
        if (!forgotten) {
          this.report(taskId, {
            state: 'shutdown',
            message: 'shut down',
            containerId: stopped.id,
            ...(stopped.exitCode !== undefined ? { exitCode: stopped.exitCode } : {}),
          });
        }
        await this.engine.remove(stopped.id, true);
      } catch (error) {
        this.log.warn('could not shut a task down', { task: taskId, error: String(error) });
      } finally {
        this.busy.delete(taskId);
      }
    })(), (error) => this.log.warn('could not shut a task down', { task: taskId, error: String(error) }));
  }
}
