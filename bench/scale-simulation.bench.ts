/**
 * The control plane at scale, on SIMULATED nodes (bench/sim): 1,000 nodes and a service of
 * 30,000 replicas, the 2015 Swarm scale test. A real etcd and a real manager process; the
 * nodes hold real libp2p sessions but run no containers. Measures, from the moment
 * `service create` is sent: time until every task is running, tasks scheduled per second,
 * per-task scheduling latency (until etcd holds the task assigned to a node) and time to
 * running, and the manager's memory. SHOAL_SIM_NODES and SHOAL_SIM_TASKS change the scale.
 */
import { keys } from '../shared/keys.ts';
import { stateIndex, type TaskObject } from '../shared/services.ts';
import { EtcdStore } from '../shared/store/etcd.ts';
import { startSimulatedCluster } from './sim/cluster.ts';
import { memoryOf, ratio, summarise } from './stats.ts';

const nodes = Number(process.env.SHOAL_SIM_NODES ?? 1_000);
const replicas = Number(process.env.SHOAL_SIM_TASKS ?? 30_000);
const goalMs = 60_000;
const timeoutMs = 240_000;

export default async function scaleSimulation(): Promise<Record<string, unknown>> {
  const progress = (line: string) => process.stderr.write(`  ${line}\n`);
  const cluster = await startSimulatedCluster({ nodes, progress });
  const observer = new EtcdStore([cluster.etcdEndpoint]);
  try {
    const idle = await memoryOf(cluster.managerPid);
    const assignedAt = new Map<string, number>();
    const runningAt = new Map<string, number>();
    let allRunning: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (allRunning = resolve));
    // Watching etcd directly: polling the API for 30,000 tasks would load the manager it measures.
    const watch = await observer.watch(keys.tasks, (event) => {
      if (event.type !== 'put') return;
      const task = event.value as TaskObject;
      const now = performance.now();
      if (stateIndex(task.status.state) >= stateIndex('assigned') && !assignedAt.has(task.id)) assignedAt.set(task.id, now);
      if (task.status.state === 'running' && task.desiredState === 'running' && !runningAt.has(task.id)) {
        runningAt.set(task.id, now);
        if (runningAt.size === replicas) allRunning();
      }
    });
    let lastShown = 0;
    const shower = setInterval(() => {
      if (runningAt.size === lastShown) return;
      lastShown = runningAt.size;
      progress(`${assignedAt.size}/${replicas} assigned, ${runningAt.size}/${replicas} running`);
    }, 2_000);

    const sentAt = performance.now();
    await cluster.client.call('POST', '/v1/services', { name: 'scale', replicas, container: { image: 'busybox:1.35.0', cmd: ['sleep', 'infinity'] } });
    const timedOut = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref());
    const outcome = await Promise.race([done.then(() => 'done' as const), timedOut]);
    clearInterval(shower);
    await watch.close();
    const busy = await memoryOf(cluster.managerPid);
    if (outcome === 'timeout') throw new Error(`only ${runningAt.size} of ${replicas} tasks were running after ${timeoutMs / 1000} s`);

    const allRunningMs = Math.max(...runningAt.values()) - sentAt;
    const allAssignedMs = Math.max(...assignedAt.values()) - sentAt;
    const result = {
      simulated: true,
      nodes,
      replicas,
      allRunningMs: Math.round(allRunningMs),
      allAssignedMs: Math.round(allAssignedMs),
      tasksScheduledPerSecond: Math.round(replicas / (allAssignedMs / 1000)),
      schedulingLatency: summarise([...assignedAt.values()].map((at) => at - sentAt)),
      timeToRunning: summarise([...runningAt.values()].map((at) => at - sentAt)),
      managerMemory: { idleMiB: idle.currentMiB, afterMiB: busy.currentMiB, peakMiB: busy.peakMiB },
      goalMs,
      ratioToGoal: ratio(allRunningMs, goalMs),
    };
    progress(`${replicas} tasks on ${nodes} simulated nodes: all running after ${(allRunningMs / 1000).toFixed(1)} s (goal ${goalMs / 1000} s, ratio ${result.ratioToGoal})`);
    return result;
  } finally {
    await observer.close();
    await cluster.stop();
  }
}
