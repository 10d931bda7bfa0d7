/**
 * Stacks, side by side in one run (needs root; builds a three-host lab named "bench-stacks"):
 * - `shoal stack deploy` of a generated 20-service file until every service runs, against the
 *   same 20 services made with `shoal service create --detach` one after another (after one
 *   `network create`) and then waited for together, through the same CLI; the two are
 *   interleaved over rounds so neither always runs on a warmer cluster;
 * - reading, checking and mapping a generated 1,000-service file (what `stack deploy` does
 *   before its first API call), in this process.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labDown, labUp } from '../lab/lab.ts';
import { loadCompose } from '../cli/compose/load.ts';
import { checkForCluster } from '../cli/compose/cluster-fit.ts';
import { planStack } from '../cli/compose/plan.ts';
import type { ServiceObject } from '../shared/services.ts';
import { ratio, summarise } from './stats.ts';

const labName = 'bench-stacks';
const shoalMain = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const services = 20;
const rounds = 3;

function generated(count: number): string {
  const lines = ['services:'];
  for (let i = 1; i <= count; i++) {
    lines.push(`  s${i}:`, '    image: busybox:1.35.0', '    command: sleep 86400', '    environment:', `      INDEX: "${i}"`, '    deploy:', '      replicas: 1');
    if (i % 10 === 0) lines.push('      resources:', '        limits: { cpus: "0.1", memory: 16M }', '    healthcheck:', '      test: ["CMD", "true"]', '      interval: 5s');
  }
  return `${lines.join('\n')}\n`;
}

function shoal(context: string, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [shoalMain, ...args], { env: { ...process.env, SHOAL_CONTEXT: context }, timeout: 300_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`shoal ${args.join(' ')}: ${stderr || error.message}`)) : resolve(stdout),
    );
  });
}

export default async function stacks(): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-stacks-'));
  try {
    // Parse, check and map 1,000 services, five times.
    const big = join(dir, 'big.yaml');
    await writeFile(big, generated(1000));
    const parse: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const loaded = await loadCompose([big], { env: {} });
      const fit = checkForCluster(loaded.model, loaded.positions);
      const plan = await planStack(loaded, 'big', {});
      parse.push(performance.now() - started);
      if (loaded.problems.length + fit.problems.length + plan.problems.length > 0 || plan.services.length !== 1000) throw new Error('the generated file did not map cleanly');
    }

    const file = join(dir, 'twenty.yaml');
    await writeFile(file, generated(services));
    const lab = await labUp({ name: labName, hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
    try {
      const context = lab.record.contextFile;
      const client = await lab.client();
      const stackTimes: number[] = [];
      const oneByOneTimes: number[] = [];
      const allRunning = async (prefix: string) => {
        const deadline = Date.now() + 180_000;
        for (;;) {
          const list = (await client.call<Array<ServiceObject & { running: number }>>('GET', '/v1/services')).filter((s) => s.spec.name.startsWith(prefix));
          if (list.length === services && list.every((s) => s.running === s.spec.replicas)) return;
          if (Date.now() > deadline) throw new Error(`${prefix}: not all running after 180 s`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      // A first deploy pulls the image onto every node, so no round pays for it.
      await shoal(context, 'stack', 'deploy', '-q', '-c', file, 'warm');
      await shoal(context, 'stack', 'rm', 'warm');
      for (let round = 1; round <= rounds; round++) {
        const stack = `st${round}`;
        let started = performance.now();
        await shoal(context, 'stack', 'deploy', '-q', '-c', file, stack);
        await allRunning(`${stack}_`);
        stackTimes.push(performance.now() - started);

        const prefix = `one${round}`;
        started = performance.now();
        await shoal(context, 'network', 'create', '-d', 'overlay', `${prefix}_default`);
        for (let i = 1; i <= services; i++) {
          await shoal(context, 'service', 'create', '--detach', '-q', '--name', `${prefix}_s${i}`, '--network', `name=${prefix}_default,alias=s${i}`, '-e', `INDEX=${i}`,
            ...(i % 10 === 0 ? ['--limit-cpu', '0.1', '--limit-memory', '16M', '--health-cmd', 'true', '--health-interval', '5s'] : []), 'busybox:1.35.0', 'sleep', '86400');
        }
        await allRunning(`${prefix}_`);
        oneByOneTimes.push(performance.now() - started);

        await shoal(context, 'stack', 'rm', stack);
        const ids = (await client.call<ServiceObject[]>('GET', '/v1/services')).filter((s) => s.spec.name.startsWith(`${prefix}_`)).map((s) => s.id);
        await shoal(context, 'service', 'rm', ...ids);
        for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
          if (await client.call('DELETE', `/v1/networks/${prefix}_default`).then(() => true, () => false)) break;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
      const stack = summarise(stackTimes);
      const oneByOne = summarise(oneByOneTimes);
      const parsed = summarise(parse);
      process.stderr.write(`stack deploy of ${services} services: p50 ${stack.p50Ms.toFixed(0)} ms; one by one: p50 ${oneByOne.p50Ms.toFixed(0)} ms; ratio ${ratio(stack.p50Ms, oneByOne.p50Ms)}\n`);
      process.stderr.write(`1,000 services parsed, checked and mapped: p50 ${parsed.p50Ms.toFixed(0)} ms\n`);
      return {
        services,
        rounds,
        stackDeploy: stack,
        oneByOne,
        ratio: ratio(stack.p50Ms, oneByOne.p50Ms),
        goal: 'stack deploy <= 1.1x the one-by-one path; 1,000 services parsed in <= 1 s',
        parse1000: parsed,
        raw: { stackMs: stackTimes.map(Math.round), oneByOneMs: oneByOneTimes.map(Math.round), parseMs: parse.map(Math.round) },
      };
    } finally {
      await labDown(labName);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
