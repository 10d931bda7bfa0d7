import test from 'ava';
import { formatRound, passTable, runChaos } from '../chaos/rounds.ts';
import { useLab } from '../helpers/lab-fixture.ts';

// A few rounds of the chaos suite (`npm run chaos` runs as many as asked): 3 hosts, 3 managers,
// 3 etcd members. The seed is printed; SHOAL_CHAOS_SEED replays a run, SHOAL_CHAOS_ROUNDS sets its length.
const fixture = useLab(test, { name: 'it-chaos', hosts: 3, managers: 3, etcdMembers: 3, heartbeatPeriodMs: 1000 });

test.serial('random faults during random operations: after each round every invariant holds again', async (t) => {
  t.timeout(15 * 60_000);
  const lab = fixture.lab();
  const seed = Number(process.env.SHOAL_CHAOS_SEED ?? Date.now() % 1_000_000);
  const rounds = Number(process.env.SHOAL_CHAOS_ROUNDS ?? 3);
  t.log(`seed ${seed}: replay with SHOAL_CHAOS_SEED=${seed}, or \`npm run chaos -- --rounds ${rounds} --seed ${seed}\``);
  const results = await runChaos(lab, {
    rounds,
    seed,
    // Shorter than `npm run chaos` (links down 5-30 s) to keep the test command's time bounded.
    bounds: { killMs: [2_000, 5_000], linkMs: [5_000, 8_000], brokenMs: [3_000, 5_000] },
    convergeMs: 90_000,
    progress: (line) => t.log(line),
  });
  t.log(`\n${passTable(results)}`);
  const failed = results.filter((r) => !r.passed);
  t.deepEqual(failed.map(formatRound), [], 'every round converged with every invariant holding');
});
