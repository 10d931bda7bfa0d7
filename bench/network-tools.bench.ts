/**
 * The network's diagnostic tools on a three-host lab ("bench-tools"), in one run:
 * - `network trace` of a working path through the API (20 traces), p50 and p99, goal <= 2 s;
 * - `network check` of an overlay holding 500 real endpoints (a service's 498 replicas and the
 *   two traced containers) across the hosts: the check asks every host and compares every FDB
 *   and neighbour entry, DNS record, sandbox VIP rule and policy table; p50 and p99 of 10, goal
 *   <= 1 s for 1,000 (SHOAL_BENCH_ENDPOINTS=1000 runs that many; the three lab hosts take about
 *   40 minutes to start them, each new backend rewriting every sandbox's VIP rules);
 * - the trace's live ICMP probe round trip against busybox ping on the same path, alternating.
 */
import { labDown, labUp } from '../lab/lab.ts';
import { netnsPrefix } from '../lab/topology.ts';
import type { ContainerRecord } from '../shared/containers.ts';
import type { NetworkDetail } from '../manager/api/networks.ts';
import type { TraceAnswer } from '../manager/api/trace.ts';
import { pingMs } from './paths.ts';
import { percentile, ratio, summarise, timeMs } from './stats.ts';

const labName = 'bench-tools';
const replicas = Number(process.env.SHOAL_BENCH_ENDPOINTS ?? 500) - 2;

export default async function networkTools(): Promise<Record<string, unknown>> {
  const lab = await labUp({ name: labName, hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 5000 });
  try {
    const client = await lab.client();
    await client.call('POST', '/v1/networks', { name: 'tools', driver: 'overlay', attachable: true, ipam: { pools: [{ subnet: '198.19.72.0/22' }] } });
    const [a, b] = await Promise.all(['h1', 'h2'].map((node, i) => client.call<ContainerRecord>('POST', '/v1/containers', {
      node, name: `t${i}`, image: 'busybox:1.35.0', cmd: i === 1 ? ['httpd', '-f', '-p', '80', '-h', '/var/www'] : ['sleep', '900'], networks: ['tools'],
    })));
    await client.call('POST', '/v1/services', { name: 'many', replicas, container: { image: 'busybox:1.35.0', cmd: ['sleep', '900'], networks: ['tools'] } });
    // Until every replica runs and every host agrees with the tables.
    const started = Date.now();
    // The endpoints counted from the leases first: asking every host while hundreds of tasks start would time out.
    for (let i = 0; i < 3600; i++) {
      const detail = await client.call<NetworkDetail>('GET', '/v1/networks/tools').catch(() => undefined);
      const running = (await client.call<Array<{ spec: { name: string }; running: number }>>('GET', '/v1/services').catch(() => [])).find((s) => s.spec.name === 'many')?.running ?? 0;
      const verbose = running >= replicas && detail && detail.endpoints.length >= replicas + 2 ? await client.call<NetworkDetail>('GET', '/v1/networks/tools?verbose=true').catch(() => undefined) : undefined;
      if (verbose && verbose.endpoints.length >= replicas + 2 && (verbose.hosts ?? []).every((h) => h.problems.length === 0)) break;
      if (i % 20 === 0) process.stderr.write(`  ${running} of ${replicas} replicas running, ${detail?.endpoints.length ?? '?'} endpoints, after ${Math.round((Date.now() - started) / 1000)} s\n`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const endpoints = (await client.call<NetworkDetail>('GET', '/v1/networks/tools')).endpoints.length;
    const traces: number[] = [];
    let lastTrace: TraceAnswer | undefined;
    for (let i = 0; i < 20; i++) traces.push(await timeMs(async () => (lastTrace = await client.call<TraceAnswer>('POST', '/v1/networks/trace', { from: 't0', to: 't1', port: 80 }))));
    const checks: number[] = [];
    for (let i = 0; i < 10; i++) checks.push(await timeMs(() => client.call('GET', '/v1/networks/tools?verbose=true')));
    // Probe against ping: one echo each, alternating, from t0's namespace to t1.
    const address = b!.spec.attachments[0]!.address;
    const netns = `${netnsPrefix(labName)}c-${a!.id.slice(0, 12)}`;
    const probe: number[] = [];
    const ping: number[] = [];
    for (let i = 0; i < 20; i++) {
      const answer = await client.call<TraceAnswer>('POST', '/v1/networks/trace', { from: 't0', to: 't1', protocol: 'icmp' });
      const probed = /answered in (\d+) ms/.exec(answer.hops.at(-1)!.detail)?.[1];
      if (probed) probe.push(Number(probed));
      ping.push(await pingMs(netns, address));
    }
    const trace = summarise(traces);
    const check = summarise(checks);
    const figures = {
      endpoints,
      traceOk: lastTrace?.ok ?? false,
      traceMs: trace,
      checkMs: check,
      probeMs: { p50: percentile(probe, 50), raw: probe },
      pingMs: { p50: Math.round(percentile(ping, 50) * 1000) / 1000, raw: ping },
    };
    const ratios = {
      'trace p99 (ms, goal <= 2000)': { value: trace.p99Ms, goal: 2000, met: trace.p99Ms <= 2000 },
      [`check of ${endpoints} endpoints p99 (ms, goal <= 1000)`]: { value: check.p99Ms, goal: 1000, met: check.p99Ms <= 1000 },
      'probe / ping (p50; the probe runs busybox through ip netns exec, ping is the same echo alone)': { value: ratio(figures.probeMs.p50, figures.pingMs.p50) },
    };
    for (const [name, r] of Object.entries(ratios)) process.stderr.write(`  ${name.padEnd(60)} ${String(r.value).padStart(8)}${'met' in r ? (r.met ? '  met' : '  missed') : ''}\n`);
    return {
      description: 'network trace and check on a three-host lab, and the trace\'s live probe against ping on the same path',
      figures,
      ratios,
    };
  } finally {
    await labDown(labName);
  }
}
