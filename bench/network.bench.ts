/**
 * The overlay on the real lab (needs root; builds a three-host lab named "bench-net"), in one
 * run:
 * - TCP throughput (iperf3, 1 stream, 3 s) and ping latency, container to container across
 *   hosts on an overlay network, against host to host on the underlay; and between two
 *   containers on one host's default bridge;
 * - endpoint convergence: a service of 100 replicas on the overlay; for each task, the time
 *   from its reaching running (seen in the events stream) until every other host of the
 *   network has its forwarding entry (seen by `bridge monitor fdb` in each host), p50 and p99.
 *   Entries are usually programmed before the task runs (at assignment); those count as 0, and
 *   the time from assignment is reported beside.
 * iperf3 and busybox ping run from the host's filesystem inside the containers' network namespaces.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { labDown, labUp } from '../lab/lab.ts';
import { netnsPrefix } from '../lab/topology.ts';
import { overlayNamespace } from '../netplug/drivers/overlay/overlay.ts';
import type { ContainerRecord } from '../shared/containers.ts';
import type { TaskObject } from '../shared/services.ts';
import { iperf, pingMs } from './paths.ts';
import { percentile, ratio, summarise } from './stats.ts';

const labName = 'bench-net';
const replicas = 100;

export default async function network(): Promise<Record<string, unknown>> {
  const lab = await labUp({ name: labName, hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 5000 });
  const monitors: ChildProcess[] = [];
  try {
    const client = await lab.client();
    const hosts = lab.record.topology.hosts;
    const containerNetns = (record: ContainerRecord) => `${netnsPrefix(labName)}c-${record.id.slice(0, 12)}`;
    await client.call('POST', '/v1/networks', { name: 'bench', driver: 'overlay', attachable: true });
    const [a, b] = await Promise.all(
      ['h1', 'h2'].map((node, i) => client.call<ContainerRecord>('POST', '/v1/containers', { node, name: `perf${i}`, image: 'busybox:1.35.0', cmd: ['sleep', '600'], networks: ['bench'] })),
    );
    const overlayAddress = b!.spec.attachments[0]!.address;
    // The first packets wait for nothing: the entries are there before the container runs.
    await pingMs(containerNetns(a!), overlayAddress);
    const underlayGbps = await iperf(hosts[1]!.netns, hosts[0]!.netns, hosts[1]!.address);
    const overlayGbps = await iperf(containerNetns(b!), containerNetns(a!), overlayAddress);
    const underlayPing = await pingMs(hosts[0]!.netns, hosts[1]!.address);
    const overlayPing = await pingMs(containerNetns(a!), overlayAddress);
    // The local bridge: two containers on one host, on the default bridge network.
    const [c, d] = await Promise.all(
      [0, 1].map((i) => client.call<ContainerRecord>('POST', '/v1/containers', { node: 'h3', name: `local${i}`, image: 'busybox:1.35.0', cmd: ['sleep', '600'], networks: ['bridge'] })),
    );
    const bridgeAddress = d!.spec.attachments[0]!.address;
    const bridgeGbps = await iperf(containerNetns(d!), containerNetns(c!), bridgeAddress);
    const bridgePing = await pingMs(containerNetns(c!), bridgeAddress);

    // Convergence: watch every host's FDB and the task events, then deploy. Each host's VTEP
    // lives in the network's namespace on that host, which exists while the host has an
    // endpoint: h3 gets one first, so all three can be watched from the start.
    await client.call<ContainerRecord>('POST', '/v1/containers', { node: 'h3', name: 'anchor', image: 'busybox:1.35.0', cmd: ['sleep', '600'], networks: ['bench'] });
    const vni = Number(a!.spec.attachments[0]!.data.vni);
    const seen = new Map<string, Map<string, number>>();
    for (const host of hosts) {
      const monitor = spawn('bridge', ['-n', overlayNamespace(netnsPrefix(labName), vni, host.address), 'monitor', 'fdb'], { stdio: ['ignore', 'pipe', 'ignore'] });
      monitors.push(monitor);
      createInterface({ input: monitor.stdout! }).on('line', (line) => {
        const match = /^(\S+) dev svx-\d+ dst (\S+)/.exec(line);
        if (!match || line.startsWith('Deleted')) return;
        const perHost = seen.get(match[1]!) ?? new Map<string, number>();
        if (!perHost.has(host.name)) perHost.set(host.name, performance.now());
        seen.set(match[1]!, perHost);
      });
    }
    const runningAt = new Map<string, number>();
    const assignedAt = new Map<string, number>();
    const events = new AbortController();
    const following = client
      .stream('GET', '/v1/events?type=task', undefined, (data) => {
        const event = data as { id: string; state?: string };
        if (event.state === 'assigned' && !assignedAt.has(event.id)) assignedAt.set(event.id, performance.now());
        if (event.state === 'running' && !runningAt.has(event.id)) runningAt.set(event.id, performance.now());
      }, events.signal)
      .catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const service = await client.call<{ id: string }>('POST', '/v1/services', { name: 'spread', replicas, container: { image: 'busybox:1.35.0', cmd: ['sleep', '600'], networks: ['bench'] } });
    const deadline = Date.now() + 180_000;
    let tasks: TaskObject[] = [];
    for (;;) {
      tasks = (await client.call<TaskObject[]>('GET', `/v1/services/${service.id}/tasks`)).filter((t) => t.desiredState === 'running');
      const done = tasks.length === replicas && tasks.every((t) => t.status.state === 'running' && runningAt.has(t.id));
      const hostsOf = new Set(tasks.map((t) => t.nodeId));
      const programmed = tasks.every((t) => (seen.get(t.attachments?.[0]?.mac ?? '')?.size ?? 0) >= hostsOf.size - 1);
      if (done && programmed) break;
      if (Date.now() > deadline) throw new Error(`the ${replicas} tasks did not all run with their entries programmed within 180 s`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    events.abort();
    await following;
    const nodeHost = new Map((await client.call<Array<{ id: string; description: { hostname: string } }>>('GET', '/v1/nodes')).map((n) => [n.id, n.description.hostname]));
    const fromRunning: number[] = [];
    const fromAssigned: number[] = [];
    for (const task of tasks) {
      const own = nodeHost.get(task.nodeId!)!;
      const times = [...(seen.get(task.attachments![0]!.mac)?.entries() ?? [])].filter(([host]) => host !== own).map(([, at]) => at);
      const everywhere = Math.max(...times);
      fromRunning.push(Math.max(0, everywhere - runningAt.get(task.id)!));
      if (assignedAt.has(task.id)) fromAssigned.push(everywhere - assignedAt.get(task.id)!);
    }
    const result = {
      description: 'overlay (kernel VXLAN) against the underlay, container to container and host to host across lab hosts; convergence over a 100-replica service',
      throughput: { underlayGbps: Math.round(underlayGbps * 100) / 100, overlayGbps: Math.round(overlayGbps * 100) / 100, ratio: ratio(overlayGbps, underlayGbps), goalRatio: 0.9 },
      pingMs: { underlay: underlayPing, overlay: overlayPing, ratio: ratio(overlayPing, underlayPing) },
      bridge: { gbps: Math.round(bridgeGbps * 100) / 100, pingMs: bridgePing, ratioToUnderlay: ratio(bridgeGbps, underlayGbps) },
      convergence: {
        tasks: tasks.length,
        fromRunning: summarise(fromRunning),
        fromAssigned: summarise(fromAssigned),
        p99GoalMs: 500,
        programmedBeforeRunning: fromRunning.filter((ms) => ms === 0).length,
      },
    };
    process.stderr.write(
      `  overlay ${result.throughput.overlayGbps} Gbit/s vs underlay ${result.throughput.underlayGbps} (ratio ${result.throughput.ratio}); ping ${overlayPing} vs ${underlayPing} ms; convergence after running p50 ${percentile(fromRunning, 50).toFixed(1)} ms, p99 ${percentile(fromRunning, 99).toFixed(1)} ms\n`,
    );
    return result;
  } finally {
    for (const monitor of monitors) monitor.kill();
    await labDown(labName);
  }
}
