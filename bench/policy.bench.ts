/**
 * Network policy at scale, on the real kernel, with the agent's own enforcer (no lab: two
 * namespaces joined by a veth pair, a client and a server, and a policy table of 1,000
 * simulated workload endpoints, named as a simulation: only their addresses and labels exist):
 * - apply: the time for the enforcer to install one policy of 1,000 rules, each selecting
 *   one of the 1,000 workloads, on the server (one nft transaction, sets filled), against
 *   `nft -f` of the same text alone;
 * - coverage: the time until a new workload is in the sets of a covered sandbox (a table
 *   change adding one address: the incremental path), p50 and p99 of 100; and the time to
 *   cover a new sandbox with the 1,000 rules before its first packet, p50 and p99 of 20;
 * - throughput: iperf3 client to server with no policy against the 1,000 rules (the client
 *   allowed by the last rule), alternating, median of rounds.
 */
import { run, systemBinary } from '../shared/exec.ts';
import { silentLogger } from '../shared/log.ts';
import { createNetns, deleteNetns } from '../native/netns.ts';
import { compileSandbox, tableText } from '../netplug/policy/compile.ts';
import { PolicyEnforcer } from '../netplug/policy/enforcer.ts';
import { PolicySpec, type PolicyTable, type WorkloadEndpoint } from '../netplug/policy/model.ts';
import { netnsPrefix } from '../lab/topology.ts';
import { iperf, pingMs } from './paths.ts';
import { percentile, ratio, summarise } from './stats.ts';

const prefix = netnsPrefix('bench-pol');
const clientNs = `${prefix}client`;
const serverNs = `${prefix}server`;
const rules = 1000;
const rounds = 5;
const nft = systemBinary('nft');

const ip = (netns: string, lines: string[]) => run('ip', ['-n', netns, '-batch', '-'], `${lines.join('\n')}\n`);
const since = (start: number) => performance.now() - start;

/** 1,000 simulated workloads (198.19.240.0/22), and the real client (198.19.250.1) as the last rule's. */
function simulatedWorkloads(): WorkloadEndpoint[] {
  const workloads = Array.from({ length: rules - 1 }, (_, i) => ({ address: `198.19.${240 + (i >> 8)}.${i & 255}`, labels: { role: `client-${i}` } }));
  return [...workloads, { address: '198.19.250.1', labels: { role: `client-${rules - 1}` } }];
}

const server: WorkloadEndpoint = { address: '198.19.250.2', labels: { role: 'server' } };

function thousandRules(): PolicyTable['policies'] {
  return [PolicySpec.parse({
    name: 'bench-1000',
    selector: "role == 'server'",
    ingress: Array.from({ length: rules }, (_, i) => ({ action: 'allow', protocol: 'tcp', source: { selector: `role == 'client-${i}'` }, destination: { ports: [5201] } })),
  })];
}

export default async function policy(): Promise<Record<string, unknown>> {
  const made: string[] = [];
  const make = async (name: string) => {
    await createNetns(name);
    made.push(name);
  };
  try {
    for (const ns of [clientNs, serverNs]) await deleteNetns(ns).catch(() => undefined);
    await make(clientNs);
    await make(serverNs);
    await ip(clientNs, [`link add eth0 type veth peer name eth0 netns ${serverNs}`, 'addr add 198.19.250.1/24 dev eth0', 'link set eth0 up', 'link set lo up']);
    await ip(serverNs, ['addr add 198.19.250.2/24 dev eth0', 'link set eth0 up', 'link set lo up']);
    await pingMs(clientNs, server.address);

    const workloads = simulatedWorkloads();
    const policies = thousandRules();
    const enforcer = new PolicyEnforcer(silentLogger);
    await enforcer.setTable({ policies: [], workloads: [] });
    await enforcer.cover({ name: 'server', netns: serverNs, endpoints: [server] });

    // Apply: the enforcer's whole path, and the nft transaction alone for scale.
    let started = performance.now();
    await enforcer.setTable({ policies, workloads: [...workloads, server] });
    const applyMs = since(started);
    const text = tableText(compileSandbox([server], policies, [...workloads, server]));
    started = performance.now();
    await run('ip', ['netns', 'exec', serverNs, nft, '-f', '-'], text);
    const nftAloneMs = since(started);
    const installed = await run('ip', ['netns', 'exec', serverNs, nft, 'list', 'table', 'inet', 'shoal-policy']);
    const ruleCount = (installed.match(/counter packets/g) ?? []).length;

    // Coverage of a new workload elsewhere: its address joins the sets (one table change each).
    const coverage: number[] = [];
    let table: PolicyTable = { policies, workloads: [...workloads, server] };
    for (let i = 0; i < 100; i++) {
      table = { policies, workloads: [...table.workloads, { address: `198.19.248.${i}`, labels: { role: `client-${i}` } }] };
      started = performance.now();
      await enforcer.setTable(table);
      coverage.push(since(started));
    }
    // Coverage of a new local sandbox: its own table of 1,000 rules before it runs.
    const sandboxes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const netns = `${prefix}new-${i}`;
      await make(netns);
      await ip(netns, ['link set lo up']);
      started = performance.now();
      await enforcer.cover({ name: `new-${i}`, netns, endpoints: [{ address: `198.19.251.${i}`, labels: { role: 'server' } }] });
      sandboxes.push(since(started));
    }

    // Throughput with the 1,000 rules against none, alternating.
    const withRules: number[] = [];
    const without: number[] = [];
    const noPolicy = async () => enforcer.setTable({ policies: [], workloads: [] });
    const rulesOn = async () => enforcer.setTable(table);
    for (let round = 0; round < rounds; round++) {
      for (const [apply, samples] of (round % 2 === 0 ? [[noPolicy, without], [rulesOn, withRules]] : [[rulesOn, withRules], [noPolicy, without]]) as Array<[() => Promise<void>, number[]]>) {
        await apply();
        samples.push(await iperf(serverNs, clientNs, server.address));
      }
    }
    const median = (samples: number[]) => Math.round(percentile(samples, 50) * 100) / 100;
    const coverageSummary = summarise(coverage);
    const sandboxSummary = summarise(sandboxes);
    const figures = {
      rulesInstalled: ruleCount,
      applyMs: Math.round(applyMs),
      nftAloneMs: Math.round(nftAloneMs),
      newWorkloadCoveredMs: coverageSummary,
      newSandboxCoveredMs: sandboxSummary,
      gbpsWithoutPolicy: median(without),
      gbpsWith1000Rules: median(withRules),
      rawGbpsWithout: without.map((g) => Math.round(g * 100) / 100),
      rawGbpsWith: withRules.map((g) => Math.round(g * 100) / 100),
    };
    const ratios = {
      'apply 1,000 rules (ms, goal <= 1000)': { value: figures.applyMs, goal: 1000, met: figures.applyMs <= 1000 },
      'enforcer apply / nft alone': { value: ratio(applyMs, nftAloneMs) },
      'new workload covered p99 (ms, goal <= 1000)': { value: coverageSummary.p99Ms, goal: 1000, met: coverageSummary.p99Ms <= 1000 },
      'new sandbox covered p99 (ms, goal <= 1000)': { value: sandboxSummary.p99Ms, goal: 1000, met: sandboxSummary.p99Ms <= 1000 },
      'throughput with 1,000 rules / without (goal >= 0.90)': { value: ratio(figures.gbpsWith1000Rules, figures.gbpsWithoutPolicy), goal: 0.9, met: ratio(figures.gbpsWith1000Rules, figures.gbpsWithoutPolicy) >= 0.9 },
    };
    for (const [name, r] of Object.entries(ratios)) process.stderr.write(`  ${name.padEnd(54)} ${String(r.value).padStart(8)}${'met' in r ? (r.met ? '  met' : '  missed') : ''}\n`);
    process.stderr.write(`  throughput without ${figures.gbpsWithoutPolicy} Gbit/s, with 1,000 rules ${figures.gbpsWith1000Rules} Gbit/s\n`);
    return {
      description: 'Network policy at scale with the agent\'s enforcer on two namespaces joined by a veth pair: 1,000 rules selecting 1,000 simulated workload addresses (a simulation: addresses and labels only), applied, a new workload and a new sandbox covered, and iperf3 throughput with and without the rules',
      rounds,
      figures,
      ratios,
    };
  } finally {
    for (const ns of made.reverse()) await deleteNetns(ns).catch(() => undefined);
  }
}
