/**
 * Recovery under each fault, on a real lab of 3 hosts, 3 managers and 3 etcd members (1 s
 * heartbeats, so a 3 s grace period): rounds of the chaos suite, each fault the same number of
 * times with nothing else going on, timed from the fault to every invariant holding again, and set side by
 * side with the goals: leader failover within 3 s, a dead node's tasks running elsewhere
 * within the grace period + 2 s, every invariant within 5 s of a partition's heal. Needs root.
 */
import { labDown, labUp } from '../lab/lab.ts';
import type { FaultName } from '../test/chaos/faults.ts';
import type { Model } from '../test/chaos/invariants.ts';
import { converge, prepare, type RoundResult, runRound } from '../test/chaos/rounds.ts';
import { ratio, summarise } from './stats.ts';

const faults: FaultName[] = ['agent-kill', 'leader-kill', 'link-down', 'etcd-kill'];
const repeats = Number(process.env.SHOAL_BENCH_RECOVERY_REPEATS ?? 3);
const graceMs = 3_000;

export default async function recovery(): Promise<Record<string, unknown>> {
  const name = 'bench-chaos';
  await labDown(name);
  const lab = await labUp({ name, hosts: 3, managers: 3, etcdMembers: 3, heartbeatPeriodMs: 1000 });
  try {
    const model: Model = { services: new Map(), networks: new Set(), removedNetworks: new Set() };
    await prepare(lab, model);
    if (!(await converge(lab, model, 120_000)).held) throw new Error('the lab did not settle');
    const results: RoundResult[] = [];
    let index = 0;
    for (let r = 0; r < repeats; r++) {
      for (const fault of faults) {
        // Kills held 8 s, links down 5-10 s: long enough for the replacement to be timed during the fault.
        const result = await runRound(lab, model, index++, {
          rounds: 1,
          seed: 1_000 + index,
          faults: [fault],
          // No operation beside the fault: the times are the fault's alone.
          operations: ['idle'],
          bounds: { killMs: [8_000, 8_000], linkMs: [5_000, 10_000], brokenMs: [3_000, 3_000] },
          convergeMs: 120_000,
        });
        process.stderr.write(`  ${fault}: ${result.passed ? `${result.recoveredMs} ms (${result.afterHealMs} ms after the heal)${result.waitedOn ? `; waited on ${result.waitedOn}` : ''}` : `FAILED ${result.problems}`}\n`);
        results.push(result);
      }
    }
    const pick = (fault: FaultName, value: (r: RoundResult) => number | undefined) =>
      results.filter((r) => r.fault === fault && r.passed).map(value).filter((v): v is number => v !== undefined);
    const perFault = Object.fromEntries(
      faults.map((fault) => [fault, { recovered: summarise(pick(fault, (r) => r.recoveredMs)), afterHeal: summarise(pick(fault, (r) => r.afterHealMs)) }]),
    );
    const failover = summarise(pick('leader-kill', (r) => r.failoverMs));
    const replaced = summarise(pick('agent-kill', (r) => r.replacedMs));
    const partitionHeal = perFault['link-down']!.afterHeal;
    return {
      lab: '3 hosts, 3 managers, 3 etcd members, 1 s heartbeats (grace 3 s)',
      rounds: results.length,
      failedRounds: results.filter((r) => !r.passed).map((r) => ({ fault: r.fault, seed: r.seed, problems: r.problems })),
      perFault,
      goals: {
        leaderFailover: { goalMs: 3_000, p50Ms: failover.p50Ms, p99Ms: failover.p99Ms, p99OverGoal: ratio(failover.p99Ms, 3_000) },
        deadNodeTasksElsewhere: { goalMs: graceMs + 2_000, p50Ms: replaced.p50Ms, p99Ms: replaced.p99Ms, p99OverGoal: ratio(replaced.p99Ms, graceMs + 2_000) },
        partitionHealToInvariants: { goalMs: 5_000, p50Ms: partitionHeal.p50Ms, p99Ms: partitionHeal.p99Ms, p99OverGoal: ratio(partitionHeal.p99Ms, 5_000) },
      },
    };
  } finally {
    await labDown(name);
  }
}
