/**
 * The control plane at scale, on SIMULATED nodes (bench/sim): a real etcd and a real manager
 * process; the nodes hold real libp2p sessions but run no containers. In one cluster, one run:
 *
 * - joins: 1,000 nodes started together, until the manager lists every one Ready (goal 10 s);
 * - one service of 30,000 replicas: from `service create`, the first and the last assignment
 *   stored, every task running, tasks scheduled per second;
 * - a run shaped like Swarm's 2015 test: services of 30 replicas created one after another at
 *   a steady rate until 30,000 tasks run.
 *
 * A task's scheduling delay is measured two ways, from etcd's own watch: from the task's
 * creation in the store to its assignment being stored (the measure; Shoal writes a
 * task it can place at once together with its placement, so this is zero for most), and from
 * the create request of its service (what a user waits). SHOAL_SIM_NODES, SHOAL_SIM_TASKS and
 * SHOAL_SIM_RATE (services per second in the second run) change the scale.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { keys } from '../shared/keys.ts';
import { type ServiceObject, stateIndex, type TaskObject } from '../shared/services.ts';
import { EtcdStore } from '../shared/store/etcd.ts';
import { startSimulatedCluster, type SimulatedCluster } from './sim/cluster.ts';
import { memoryOf, ratio, summarise } from './stats.ts';

const nodes = Number(process.env.SHOAL_SIM_NODES ?? 1_000);
const replicas = Number(process.env.SHOAL_SIM_TASKS ?? 30_000);
const perService = 30;
/**
 * Services created a second in the Swarm-shaped run. Swarm's 2015 test ran its 1,000 \`docker
 * run\` one after another, each waiting for the last (230 ms at the median): about 4 a second.
 * Ten a second is more than twice that pace; 100 (the earlier default) asks for all 30,000
 * tasks in 10 s, a load test of its own (SHOAL_SIM_RATE=100).
 */
const servicesPerSecond = Number(process.env.SHOAL_SIM_RATE ?? 10);
const goals = { joinMs: 10_000, delayP99Ms: 100, wholeMs: 10_000 };
const timeoutMs = 240_000;
const settleMs = 10_000;
const image = 'busybox:1.35.0';
const progress = (line: string) => process.stderr.write(`  ${line}\n`);

/** What etcd's watch shows of each task: when it was first stored, assigned, running. */
class TaskTimes {
  readonly created = new Map<string, number>();
  readonly assigned = new Map<string, number>();
  readonly running = new Map<string, number>();
  readonly serviceOf = new Map<string, string>();
  private waiters: { count: number; resolve: () => void }[] = [];

  see(task: TaskObject, at: number): void {
    if (!this.created.has(task.id)) {
      this.created.set(task.id, at);
      this.serviceOf.set(task.id, task.serviceId);
    }
    if (stateIndex(task.status.state) >= stateIndex('assigned') && !this.assigned.has(task.id)) this.assigned.set(task.id, at);
    if (task.status.state === 'running' && task.desiredState === 'running' && !this.running.has(task.id)) {
      this.running.set(task.id, at);
      for (const waiter of this.waiters.filter((w) => this.running.size >= w.count)) waiter.resolve();
      this.waiters = this.waiters.filter((w) => this.running.size < w.count);
    }
  }

  async allRunning(count: number): Promise<void> {
    if (this.running.size >= count) return;
    let timer: NodeJS.Timeout | undefined;
    const reached = new Promise<void>((resolve) => this.waiters.push({ count, resolve }));
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`only ${this.running.size} of ${count} tasks were running after ${timeoutMs / 1000} s`)), timeoutMs);
    });
    await Promise.race([reached, timedOut]).finally(() => clearTimeout(timer));
  }

  /** Per task, from its creation in the store to its assignment stored. */
  storeDelays(): number[] {
    return [...this.assigned].map(([id, at]) => at - this.created.get(id)!);
  }

  /** Per task, from its service's create request to its assignment stored. */
  requestDelays(requestAt: (serviceId: string) => number | undefined): number[] {
    return [...this.assigned].flatMap(([id, at]) => {
      const sent = requestAt(this.serviceOf.get(id)!);
      return sent === undefined ? [] : [at - sent];
    });
  }
}

/** Watches etcd's tasks directly: polling the API for 30,000 tasks would load the manager it measures. */
async function watchTasks(observer: EtcdStore): Promise<{ times: TaskTimes; close: () => Promise<void> }> {
  const times = new TaskTimes();
  const watch = await observer.watch(keys.tasks, (event) => {
    if (event.type === 'put') times.see(event.value as TaskObject, performance.now());
  });
  let lastShown = -1;
  const shower = setInterval(() => {
    if (times.running.size === lastShown) return;
    lastShown = times.running.size;
    progress(`${times.assigned.size} assigned, ${times.running.size} running`);
  }, 2_000);
  return { times, close: async () => (clearInterval(shower), await watch.close()) };
}

async function oneLargeService(cluster: SimulatedCluster, observer: EtcdStore) {
  const { times, close } = await watchTasks(observer);
  try {
    const sentAt = performance.now();
    const created = await cluster.client.call<{ id: string }>('POST', '/v1/services', { name: 'scale', replicas, container: { image, cmd: ['sleep', 'infinity'] } });
    await times.allRunning(replicas);
    const assigned = [...times.assigned.values()];
    const result = {
      replicas,
      firstAssignedMs: Math.round(Math.min(...assigned) - sentAt),
      lastAssignedMs: Math.round(Math.max(...assigned) - sentAt),
      allRunningMs: Math.round(Math.max(...times.running.values()) - sentAt),
      tasksScheduledPerSecond: Math.round(replicas / ((Math.max(...assigned) - sentAt) / 1000)),
      delayFromCreation: summarise(times.storeDelays()),
      delayFromRequest: summarise(times.requestDelays(() => sentAt)),
      timeToRunning: summarise([...times.running.values()].map((at) => at - sentAt)),
    };
    progress(`one service of ${replicas}: first assignment ${result.firstAssignedMs} ms, last ${result.lastAssignedMs} ms, all running ${result.allRunningMs} ms after the request`);
    await cluster.client.call('DELETE', `/v1/services/${created.id}`);
    return result;
  } finally {
    await close();
  }
}

async function swarmShapedRun(cluster: SimulatedCluster, observer: EtcdStore) {
  const services = Math.ceil(replicas / perService);
  const { times, close } = await watchTasks(observer);
  // When each service is seen stored: the wait after it is the control loop's (and the watches').
  const storedAt = new Map<string, number>();
  const serviceWatch = await observer.watch(keys.services, (event) => {
    if (event.type !== 'put') return;
    const { id } = event.value as ServiceObject;
    if (!storedAt.has(id)) storedAt.set(id, performance.now());
  });
  // etcd's own answer time meanwhile (a read of one key, ten a second): every create and
  // every assignment is an etcd round trip or more, so its tail is their floor.
  const storeMs: number[] = [];
  const probing = { current: true };
  const probe = (async () => {
    while (probing.current) {
      const at = performance.now();
      if (!(await observer.get(keys.cluster).then(() => true, () => false))) return;
      storeMs.push(performance.now() - at);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    const requestAt = new Map<string, number>();
    const responseMs: number[] = [];
    // The observer's own event-loop delay: a late watch callback would read as a late assignment.
    const observerDelay = monitorEventLoopDelay({ resolution: 5 });
    observerDelay.enable();
    const startedAt = performance.now();
    const creates: Promise<void>[] = [];
    for (let i = 0; i < services; i++) {
      // A steady rate: the i-th request leaves at its own time, whatever the earlier ones took.
      const due = startedAt + (i * 1000) / servicesPerSecond;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const sentAt = performance.now();
      creates.push(
        cluster.client.call<{ id: string }>('POST', '/v1/services', { name: `swarm-${i}`, replicas: perService, container: { image, cmd: ['sleep', 'infinity'] } }).then((created) => {
          requestAt.set(created.id, sentAt);
          responseMs.push(performance.now() - sentAt);
        }),
      );
    }
    await Promise.all(creates);
    await times.allRunning(services * perService);
    probing.current = false;
    await probe;
    const assigned = [...times.assigned.values()];
    const result = {
      services,
      replicasEach: perService,
      servicesPerSecond,
      lastAssignedMs: Math.round(Math.max(...assigned) - startedAt),
      allRunningMs: Math.round(Math.max(...times.running.values()) - startedAt),
      delayFromCreation: summarise(times.storeDelays()),
      delayFromRequest: summarise(times.requestDelays((id) => requestAt.get(id))),
      delayFromServiceStored: summarise(times.requestDelays((id) => storedAt.get(id))),
      // What `service create` itself took to answer (the service stored), as Swarm's test reported its API response time.
      createResponse: summarise(responseMs),
      storeReadMeanwhile: summarise(storeMs),
      observerLoopDelayP99Ms: Math.round(observerDelay.percentile(99) / 1e6),
      observerLoopDelayMaxMs: Math.round(observerDelay.max / 1e6),
    };
    observerDelay.disable();
    progress(`${services} services of ${perService} at ${servicesPerSecond}/s: delay from request p50 ${result.delayFromRequest.p50Ms} ms, p99 ${result.delayFromRequest.p99Ms} ms (from the service stored: p50 ${result.delayFromServiceStored.p50Ms} ms, p99 ${result.delayFromServiceStored.p99Ms} ms); create answered p50 ${result.createResponse.p50Ms} ms, p99 ${result.createResponse.p99Ms} ms; an etcd read meanwhile p50 ${result.storeReadMeanwhile.p50Ms} ms, p99 ${result.storeReadMeanwhile.p99Ms} ms; all running ${result.allRunningMs} ms`);
    return result;
  } finally {
    probing.current = false;
    await serviceWatch.close();
    await close();
  }
}

/** Waits until the store holds no task (the first run's, shut down and forgotten). */
async function tasksGone(observer: EtcdStore): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await observer.list(keys.tasks)).length > 0) {
    if (Date.now() > deadline) throw new Error('the first run\'s tasks were not removed');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

export default async function scaleSimulation(): Promise<Record<string, unknown>> {
  const cluster = await startSimulatedCluster({ nodes, progress });
  const observer = new EtcdStore([cluster.etcdEndpoint]);
  try {
    const idle = await memoryOf(cluster.managerPid);
    const large = await oneLargeService(cluster, observer);
    await tasksGone(observer);
    // The second run measures creations into a quiet cluster, not the first run's cleanup
    // (30,000 removals still echoing through the watches and the nodes' reports).
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const swarm = await swarmShapedRun(cluster, observer);
    const busy = await memoryOf(cluster.managerPid);
    const result = {
      simulated: true,
      nodes,
      joins: { readyMs: cluster.joinedMs, readyFromProcessStartMs: cluster.startedMs, goalMs: goals.joinMs, ratioToGoal: ratio(cluster.joinedMs, goals.joinMs) },
      oneService: { ...large, goals: { delayP99Ms: goals.delayP99Ms, wholeMs: goals.wholeMs } },
      swarmShaped: { ...swarm, goals: { delayP99Ms: goals.delayP99Ms, wholeMs: goals.wholeMs } },
      managerMemory: { idleMiB: idle.currentMiB, afterMiB: busy.currentMiB, peakMiB: busy.peakMiB },
    };
    progress(`joins: ${nodes} Ready in ${cluster.joinedMs} ms (goal ${goals.joinMs} ms, ratio ${result.joins.ratioToGoal})`);
    return result;
  } finally {
    await observer.close();
    await cluster.stop();
  }
}
