/**
 * The chaos suite, alone: `npm run chaos -- --rounds N --seed S`. Builds a lab of 3 hosts, 3
 * managers and 3 etcd members, runs N rounds of a random fault during a random operation,
 * checks every invariant after each, prints a table of faults by operations and removes the lab.
 */
import '../../shared/node-version.ts';
import { parseArgs } from 'node:util';
import { labDown, labUp } from '../../lab/lab.ts';
import { type FaultName, faultNames } from './faults.ts';
import { type OperationName, operationNames } from './operations.ts';
import { formatRound, passTable, runChaos } from './rounds.ts';
import { summarise } from '../../bench/stats.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '10' },
    seed: { type: 'string' },
    lab: { type: 'string', default: 'chaos' },
    faults: { type: 'string' },
    operations: { type: 'string' },
    keep: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

function fail(message: string): never {
  process.stderr.write(`chaos: ${message}\n`);
  process.exit(2);
}

function listOf<T extends string>(text: string | undefined, known: readonly T[], flag: string): T[] | undefined {
  if (text === undefined) return undefined;
  const picked = text.split(',').map((s) => s.trim());
  for (const name of picked) if (!known.includes(name as T)) fail(`--${flag} ${name}: not one of ${known.join(', ')}`);
  return picked as T[];
}

const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) fail(`--rounds ${values.rounds}: give a whole number of rounds, at least 1`);
const seed = values.seed === undefined ? Date.now() % 1_000_000 : Number(values.seed);
if (!Number.isInteger(seed) || seed < 0) fail(`--seed ${values.seed}: give a whole number`);
const faults = listOf<FaultName>(values.faults, faultNames, 'faults');
const operations = listOf<OperationName>(values.operations, [...operationNames, 'idle'], 'operations');
const name = values.lab;

// lab down also unmounts what a fault left mounted (a read-only state directory, the runc wrapper).
const cleanUp = async () => {
  if (!values.keep) await labDown(name);
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanUp().then(
      () => process.exit(130),
      () => process.exit(130),
    );
  });
}

process.stderr.write(`chaos: ${rounds} round(s), seed ${seed} (replay with --rounds ${rounds} --seed ${seed})\n`);
await labDown(name);
const lab = await labUp({ name, hosts: 3, managers: 3, etcdMembers: 3, heartbeatPeriodMs: 1000 }, (line) => process.stderr.write(`  ${line}\n`));
let code = 0;
try {
  const results = await runChaos(lab, {
    rounds,
    seed,
    bounds: { killMs: [3_000, 10_000], linkMs: [5_000, 30_000], brokenMs: [3_000, 10_000] },
    convergeMs: 120_000,
    ...(faults ? { faults } : {}),
    ...(operations ? { operations } : {}),
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  const failed = results.filter((r) => !r.passed);
  process.stdout.write(`\n${passTable(results)}\n\n`);
  const byFault = (fault: FaultName, pick: (r: (typeof results)[number]) => number | undefined) =>
    results.filter((r) => r.fault === fault && r.passed).map(pick).filter((v): v is number => v !== undefined);
  for (const fault of faultNames) {
    const recovered = byFault(fault, (r) => r.recoveredMs);
    if (recovered.length === 0) continue;
    const s = summarise(recovered);
    process.stdout.write(`${fault}: recovered p50 ${(s.p50Ms / 1000).toFixed(1)} s, p99 ${(s.p99Ms / 1000).toFixed(1)} s over ${s.samples} round(s)\n`);
  }
  if (failed.length > 0) {
    process.stdout.write(`\n${failed.length} of ${results.length} round(s) failed; replay one with --rounds 1 --seed SEED:\n`);
    for (const r of failed) process.stdout.write(`${formatRound(r)}\n`);
    code = 1;
  } else {
    process.stdout.write(`\nall ${results.length} round(s) passed\n`);
  }
  if (values.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
} catch (error) {
  process.stderr.write(`chaos: ${(error as Error).stack}\n`);
  code = 1;
} finally {
  await cleanUp();
}
process.exit(code);
