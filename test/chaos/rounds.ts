import type { Lab } from '../../lab/lab.ts';
import { runShoal } from '../helpers/cli.ts';
import { type FaultBounds, type FaultName, faultNames, inject, type InjectedFault } from './faults.ts';
import { type Model, summarize, type Violations, violations } from './invariants.ts';
import { observe } from './observe.ts';
import { chaosNetwork, operate, type OperationName, operationNames } from './operations.ts';
import { Random } from './random.ts';

export interface RoundResult {
  round: number;
  /** Replays this round alone: `npm run chaos -- --rounds 1 --seed SEED`. */
  seed: number;
  fault: FaultName;
  operation: OperationName;
  what: string;
  passed: boolean;
  /** From the fault to every invariant holding again. */
  recoveredMs?: number;
  /** From the heal (process started again, link up, ...) to every invariant holding again. */
  afterHealMs?: number;
  /** leader-kill: from the kill to another manager leading. */
  failoverMs?: number;
  /** agent-kill and link-down: from the fault to every service's count running off the failed host. */
  replacedMs?: number;
  problems?: string;
  /** The invariants recovery last waited on, before they all held. */
  waitedOn?: string;
}

export interface ChaosOptions {
  rounds: number;
  seed: number;
  bounds: FaultBounds;
  /** How long a round may take to converge after its fault is healed. */
  convergeMs: number;
  /** Limits the faults (and operations) drawn, for a focused run. */
  faults?: readonly FaultName[];
  operations?: readonly OperationName[];
  progress?: (line: string) => void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The seed of round `index` of a run seeded `seed`: each round replays alone from its own. */
export const roundSeed = (seed: number, index: number) => (seed + index * 7919) >>> 0;

async function leaderOf(lab: Lab): Promise<string | undefined> {
  return (await lab.managers().catch(() => [])).find((m) => m.leader)?.hostname;
}

/** Polls the store during a fault's hold for the time-to-recover figures of the benchmark. */
function watchRecovery(lab: Lab, injected: InjectedFault, model: Model, startedAt: number, before: string | undefined, result: RoundResult): () => void {
  let stopped = false;
  let hadTasks: boolean | undefined;
  const failedHost = /^(h\d+)/.exec(injected.what)?.[1];
  const loop = async () => {
    while (!stopped) {
      if (injected.name === 'leader-kill' && result.failoverMs === undefined) {
        const now = await leaderOf(lab);
        if (now && now !== before) result.failoverMs = Date.now() - startedAt;
      }
      if ((injected.name === 'agent-kill' || injected.name === 'link-down') && failedHost && result.replacedMs === undefined) {
        const client = await lab.client();
        const tasks = await client.call<Array<{ serviceName: string; desiredState: string; status: { state: string }; node: string | null }>>('GET', '/v1/tasks').catch(() => undefined);
        // Timed only when the failed host ran some of the tasks as the fault began.
        if (tasks && hadTasks === undefined) hadTasks = tasks.some((t) => t.node === failedHost && t.desiredState === 'running' && t.status.state === 'running');
        const ready = hadTasks && tasks && [...model.services].every(([name, wanted]) => tasks.filter((t) => t.serviceName === name && t.desiredState === 'running' && t.status.state === 'running' && t.node !== failedHost).length === wanted.replicas);
        if (ready) result.replacedMs = Date.now() - startedAt;
      }
      await sleep(250);
    }
  };
  void loop().catch(() => undefined);
  return () => {
    stopped = true;
  };
}

/**
 * Waits until every invariant holds; returns the last violations when the time is up, and
 * otherwise the last ones seen before they all held (what recovery waited on), if any.
 */
export async function converge(lab: Lab, model: Model, timeoutMs: number): Promise<{ held: boolean; last?: Violations }> {
  const deadline = Date.now() + timeoutMs;
  let last: Violations | undefined;
  while (Date.now() < deadline) {
    let now: Violations;
    try {
      now = violations(model, await observe(lab));
    } catch (error) {
      now = { 'no desired state lost': [`the cluster could not be read: ${(error as Error).message}`] };
    }
    if (Object.keys(now).length === 0) return { held: true, ...(last ? { last } : {}) };
    last = now;
    await sleep(1_000);
  }
  return { held: false, ...(last ? { last } : {}) };
}

/** Prepares the lab for rounds: the suite's overlay network and one service on it. */
export async function prepare(lab: Lab, model: Model): Promise<void> {
  const shoal = (...args: string[]) => runShoal(args, { env: { SHOAL_CONTEXT: lab.record.contextFile }, timeoutMs: 120_000 });
  const created = await shoal('network', 'create', '--driver', 'overlay', chaosNetwork);
  if (created.code !== 0 && !/already exists/.test(created.stderr)) throw new Error(`network create failed: ${created.stderr}`);
  model.networks.add(chaosNetwork);
  model.services.set('c0', { replicas: 3, env: [] });
  const service = await shoal('service', 'create', '--name', 'c0', '--replicas', '3', '--network', chaosNetwork, 'busybox:1.35.0', 'sleep', '3600');
  if (service.code !== 0) throw new Error(`service create failed: ${service.stderr}`);
}

export async function runRound(lab: Lab, model: Model, index: number, options: ChaosOptions): Promise<RoundResult> {
  const seed = roundSeed(options.seed, index);
  const random = new Random(seed);
  const fault = random.pick(options.faults ?? faultNames);
  const operation = random.pick(options.operations ?? operationNames);
  const result: RoundResult = { round: index + 1, seed, fault, operation, what: '', passed: false };
  const before = await leaderOf(lab);
  let injected: InjectedFault | undefined;
  let stopWatching = () => undefined as void;
  try {
    const operating = operate(lab, operation, model, random, index + 1);
    await sleep(random.int(0, 1_500));
    const startedAt = Date.now();
    injected = await inject(lab, fault, random, options.bounds);
    stopWatching = watchRecovery(lab, injected, model, startedAt, before, result);
    await sleep(injected.holdMs);
    await injected.heal();
    const healedAt = Date.now();
    const done = await operating;
    result.what = `${done}; ${injected.what} for ${(injected.holdMs / 1000).toFixed(1)} s`;
    const settled = await converge(lab, model, options.convergeMs);
    stopWatching();
    if (settled.last) result.waitedOn = summarize(settled.last);
    if (!settled.held) {
      result.problems = result.waitedOn;
    } else {
      result.passed = true;
      result.recoveredMs = Date.now() - startedAt;
      result.afterHealMs = Date.now() - healedAt;
    }
  } catch (error) {
    result.problems = (error as Error).message;
  } finally {
    stopWatching();
    await injected?.heal().catch(() => undefined);
  }
  return result;
}

export async function runChaos(lab: Lab, options: ChaosOptions): Promise<RoundResult[]> {
  const model: Model = { services: new Map(), networks: new Set(), removedNetworks: new Set() };
  await prepare(lab, model);
  const first = await converge(lab, model, options.convergeMs);
  if (!first.held) throw new Error(`the lab did not settle before the first round:\n${summarize(first.last ?? {})}`);
  const results: RoundResult[] = [];
  for (let i = 0; i < options.rounds; i++) {
    const result = await runRound(lab, model, i, options);
    results.push(result);
    options.progress?.(formatRound(result));
    // A failed round leaves the cluster in some state; the next round starts from a settled one.
    if (!result.passed) await converge(lab, model, options.convergeMs);
  }
  return results;
}

export function formatRound(r: RoundResult): string {
  const seconds = (ms: number | undefined) => `${((ms ?? 0) / 1000).toFixed(1)} s`;
  const extra = [r.failoverMs !== undefined ? `new leader after ${seconds(r.failoverMs)}` : '', r.replacedMs !== undefined ? `tasks running elsewhere after ${seconds(r.replacedMs)}` : ''].filter(Boolean).join(', ');
  const timing = r.passed ? `recovered in ${seconds(r.recoveredMs)} (${seconds(r.afterHealMs)} after the heal${extra ? `; ${extra}` : ''})` : 'FAILED';
  const slow = r.passed && r.waitedOn && (r.afterHealMs ?? 0) > 3_000 ? `\n  waited on: ${r.waitedOn.replaceAll('\n', '\n  ')}` : '';
  return `round ${r.round} (seed ${r.seed}) ${r.fault} during ${r.operation}: ${r.what || '-'}: ${timing}${r.problems ? `\n  ${r.problems.replaceAll('\n', '\n  ')}` : ''}${slow}`;
}

/** Faults down, operations across: passes over rounds in each cell. */
export function passTable(results: RoundResult[]): string {
  const header = ['fault \\ operation', ...operationNames, 'all'];
  const rows = faultNames.map((fault) => {
    const mine = results.filter((r) => r.fault === fault);
    const cell = (list: RoundResult[]) => (list.length === 0 ? '-' : `${list.filter((r) => r.passed).length}/${list.length}`);
    return [fault, ...operationNames.map((op) => cell(mine.filter((r) => r.operation === op))), cell(mine)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
