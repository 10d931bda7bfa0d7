/**
 * Service discovery on the real lab (needs root; builds a three-host lab named "bench-dns"), in
 * one run, side by side:
 * - HTTP requests/s and p99 (a new connection per request, 8 at a time, 4 s) from a task on h1
 *   to one busybox httpd task on h2: straight to its address, through the service's VIP, and
 *   through the routing mesh from h3's own namespace (a host with no task of the service);
 * - the embedded DNS at 5,000 A queries/s for 3 s from a task's namespace: answered/s, p50, p99;
 * - convergence: from a scale-down (the API call returning) and from a failed health check
 *   (the check file removed; the check runs every 500 ms) until the client's VIP rules no
 *   longer send to that task; from a new task running until its name resolves in a sandbox on
 *   every host.
 * The load and DNS clients (bench/helpers/netns-probe.ts) run inside the client task's own
 * namespace, so they pass through its VIP rules and its 127.0.0.11 as the task's processes do.
 */
import { fileURLToPath } from 'node:url';
import { labDown, labUp } from '../lab/lab.ts';
import { netnsPrefix } from '../lab/topology.ts';
import { run } from '../shared/exec.ts';
import type { ServiceObject, TaskObject } from '../shared/services.ts';
import { ratio, summarise } from './stats.ts';

const labName = 'bench-dns';
const probe = fileURLToPath(new URL('./helpers/netns-probe.js', import.meta.url));
const httpd = ['sh', '-c', 'mkdir -p /w && echo ok > /w/index.html && touch /w/ok && exec httpd -f -p 80 -h /w'];

type Client = Awaited<ReturnType<Awaited<ReturnType<typeof labUp>>['client']>>;

/** Runs the probe in a namespace and parses its one line. */
async function probeIn<T>(netns: string, ...args: string[]): Promise<T> {
  const output = await run('ip', ['netns', 'exec', netns, process.execPath, probe, ...args], { timeoutMs: 60_000 });
  return JSON.parse(output) as T;
}

interface HttpResult {
  requests: number;
  errors: number;
  rps: number;
  latencies: number[];
}

async function tasksOf(client: Client, service: string): Promise<TaskObject[]> {
  return (await client.call<TaskObject[]>('GET', `/v1/services/${service}/tasks`)).filter((t) => t.desiredState === 'running');
}

async function waitUp(client: Client, service: string, count: number, healthy = false): Promise<TaskObject[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const tasks = (await tasksOf(client, service)).filter((t) => t.status.state === 'running' && (!healthy || t.status.health === 'healthy'));
    if (tasks.length === count) return tasks;
    if (Date.now() > deadline) throw new Error(`${service}: ${tasks.length} of ${count} tasks up after 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Polls a sandbox's VIP rules until `address` is no longer among the backends; ms from `since`. */
async function goneFromVip(netns: string, address: string, since: number): Promise<number> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const rules = await run('ip', ['netns', 'exec', netns, 'nft', 'list', 'table', 'ip', 'shoal-sandbox']).catch(() => '');
    if (!rules.includes(`${address},`) && !rules.includes(`${address} `) && !rules.includes(`${address}}`)) return Date.now() - since;
    // 25 ms apart: polling every 5 ms spawned some 200 processes a second on 2 cores, and the
    // probe slowed the agents it was timing.
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${address} stayed in the VIP rules for 30 s`);
}

const httpSummary = (result: HttpResult) => ({ rps: result.rps, errors: result.errors, ...summarise(result.latencies) });

export default async function discovery(): Promise<Record<string, unknown>> {
  const lab = await labUp({ name: labName, hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
  try {
    const client = await lab.client();
    const hosts = lab.record.topology.hosts;
    const sandboxOf = (task: TaskObject) => `${netnsPrefix(labName)}c-${task.status.containerId!.slice(0, 12)}`;
    await client.call('POST', '/v1/networks', { name: 'app', driver: 'overlay' });
    const service = (name: string, spec: Record<string, unknown>) =>
      client.call<ServiceObject>('POST', '/v1/services', { name, ...spec, container: { image: 'busybox:1.35.0', networks: ['app'], ...(spec.container as object) } });
    await service('web', {
      replicas: 1,
      placement: { constraints: ['node.hostname==h2'] },
      container: { cmd: httpd },
      endpoint: { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, mode: 'ingress' }] },
    });
    // One client task per host: the DNS convergence is seen from every host.
    await service('client', { mode: 'global', container: { cmd: ['sleep', '3600'] } });
    const [webTask] = await waitUp(client, 'web', 1);
    const clients = await waitUp(client, 'client', hosts.length);
    const nodes = new Map((await client.call<Array<{ id: string; description: { hostname: string } }>>('GET', '/v1/nodes')).map((n) => [n.id, n.description.hostname]));
    const clientOn = (host: string) => clients.find((t) => nodes.get(t.nodeId!) === host)!;
    const h1Client = sandboxOf(clientOn('h1'));
    const direct = webTask!.attachments!.find((a) => a.networkName === 'app')!.address;
    const vip = (await client.call<ServiceObject>('GET', '/v1/services/web')).endpoint!.networks.find((n) => n.networkName === 'app')!.vip!;
    const h3 = hosts.find((h) => h.name === 'h3')!;
    // The mesh is ready once h3 answers on 8080.
    const meshDeadline = Date.now() + 30_000;
    while ((await run('ip', ['netns', 'exec', h3.netns, 'timeout', '2', 'busybox', 'wget', '-qO-', `http://${h3.address}:8080/`]).catch(() => '')).trim() !== 'ok') {
      if (Date.now() > meshDeadline) throw new Error('the routing mesh did not answer on h3 within 30 s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const load = (netns: string, url: string) => probeIn<HttpResult>(netns, 'http', url, '4000', '8');
    await load(h1Client, `http://${direct}/`); // warm-up: neighbour entries, page cache
    const straight = await load(h1Client, `http://${direct}/`);
    const throughVip = await load(h1Client, `http://${vip}/`);
    const throughMesh = await load(h3.netns, `http://${h3.address}:8080/`);
    process.stderr.write(`  http: direct ${straight.rps}/s, VIP ${throughVip.rps}/s, mesh from h3 ${throughMesh.rps}/s\n`);

    const dnsRate = 5000;
    const dns = await probeIn<{ sent: number; answered: number; lost: number; qps: number; latencies: number[] }>(h1Client, 'dns', 'web', String(dnsRate), '3000');
    process.stderr.write(`  dns: ${dns.answered} of ${dns.sent} answered (${dns.qps}/s)\n`);

    // Scale-down: 3 -> 1, twice; each removed task until it leaves the VIP rules on h1.
    const scaleDown: number[] = [];
    const current = await client.call<ServiceObject & { version: number }>('GET', '/v1/services/web');
    await client.call('PATCH', '/v1/services/web', { spec: { ...current.spec, placement: { constraints: [], preferences: [] } }, version: current.version });
    for (let round = 0; round < 2; round++) {
      await client.call('PATCH', '/v1/services/web', { replicas: 3 });
      const before = await waitUp(client, 'web', 3);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const started = Date.now();
      await client.call('PATCH', '/v1/services/web', { replicas: 1 });
      // The call returns once the spec is stored; the tasks it stops are known a moment later.
      let left = await tasksOf(client, 'web');
      while (left.length > 1) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        left = await tasksOf(client, 'web');
      }
      const kept = new Set(left.map((t) => t.id));
      const removed = before.filter((t) => !kept.has(t.id)).map((t) => t.attachments!.find((a) => a.networkName === 'app')!.address);
      scaleDown.push(...(await Promise.all(removed.map((address) => goneFromVip(h1Client, address, started)))));
    }

    // A failed health check: the check file goes; the check runs every 500 ms and fails once.
    const health: number[] = [];
    await service('checked', { replicas: 2, container: { cmd: httpd, healthcheck: { cmd: ['test', '-f', '/w/ok'], intervalMs: 500, timeoutMs: 2000, retries: 1 } } });
    for (let round = 0; round < 3; round++) {
      // A task replaced a moment ago may still be listed healthy while its container stops: take one that takes the exec.
      let sick: TaskObject | undefined;
      let started = 0;
      for (let attempt = 0; !sick; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        const candidate = (await waitUp(client, 'checked', 2, true))[attempt % 2]!;
        started = Date.now();
        const done = await client.call('POST', `/v1/containers/${candidate.status.containerId}/exec?node=${encodeURIComponent(candidate.nodeId!)}`, { cmd: ['rm', '/w/ok'], env: [] }).then(
          () => true,
          (error: unknown) => {
            if (attempt > 10) throw error;
            return false;
          },
        );
        if (done) sick = candidate;
      }
      health.push(await goneFromVip(h1Client, sick!.attachments!.find((a) => a.networkName === 'app')!.address, started));
    }

    // A name resolving everywhere: from the new task's running report until every host's client sandbox answers it.
    const resolved: number[] = [];
    const fromCreate: number[] = [];
    for (let round = 0; round < 4; round++) {
      const name = `fresh${round}`;
      const watchers = clients.map((c) => probeIn<{ at: number | null }>(sandboxOf(c), 'resolves', name));
      await new Promise((resolve) => setTimeout(resolve, 300));
      const created = Date.now();
      await service(name, { replicas: 1, container: { cmd: ['sleep', '3600'] } });
      const [task] = await waitUp(client, name, 1);
      const seen = await Promise.all(watchers);
      if (seen.some((s) => s.at === null)) throw new Error(`${name} did not resolve on every host within 30 s`);
      const everywhere = Math.max(...seen.map((s) => s.at!));
      // The running report's timestamp is the agent's; the name may answer before the report's write returns.
      resolved.push(everywhere - Date.parse(task!.status.timestamp));
      fromCreate.push(everywhere - created);
    }

    const result = {
      description: 'embedded DNS, VIPs and the routing mesh on a three-host lab: HTTP through the VIP and the mesh against straight to the task; DNS under 5,000 q/s; convergence after scale-down, failed health checks and new tasks',
      http: {
        direct: httpSummary(straight),
        vip: httpSummary(throughVip),
        mesh: httpSummary(throughMesh),
        vipRatio: ratio(throughVip.rps, straight.rps),
        meshRatio: ratio(throughMesh.rps, straight.rps),
        goals: { vipRatio: 0.9, meshRatio: 0.8 },
      },
      dns: { rate: dnsRate, sent: dns.sent, answered: dns.answered, lost: dns.lost, qps: dns.qps, ...summarise(dns.latencies), goalP99Ms: 5 },
      convergence: {
        scaleDownUntilVipStops: summarise(scaleDown),
        failedHealthCheckUntilVipStops: { ...summarise(health), note: 'from the check file removed: includes up to one 500 ms check interval' },
        runningUntilNameResolvesEverywhere: summarise(resolved),
        createUntilNameResolvesEverywhere: summarise(fromCreate),
        goalP99Ms: 1000,
      },
    };
    process.stderr.write(
      `  vip ratio ${result.http.vipRatio}, mesh ratio ${result.http.meshRatio}; dns p99 ${result.dns.p99Ms} ms; scale-down p99 ${result.convergence.scaleDownUntilVipStops.p99Ms} ms, health p99 ${result.convergence.failedHealthCheckUntilVipStops.p99Ms} ms, resolves everywhere p99 ${result.convergence.runningUntilNameResolvesEverywhere.p99Ms} ms\n`,
    );
    return result;
  } finally {
    await labDown(labName);
  }
}
