import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestFn } from 'ava';
import { type Lab, labDown, labUp } from '../../lab/lab.ts';
import type { LabOptions } from '../../lab/topology.ts';
import { type CliResult, runShoal } from './cli.ts';

export interface LabFixture {
  lab(): Lab;
  /** A scratch directory removed with the lab. */
  scratch(): string;
  /** The CLI against this lab. */
  shoal(...args: string[]): Promise<CliResult>;
  /** The CLI, failing the test with its stderr unless it exits 0; returns stdout. */
  ok(...args: string[]): Promise<string>;
}

/**
 * One lab for a whole test file: built before the first test (after sweeping leftovers of a
 * lab of the same name), removed after the last, also when a test fails. The lab's context is
 * kept out of the user's default one.
 */
export function useLab(test: TestFn, options: LabOptions): LabFixture {
  let lab: Lab | undefined;
  let scratch = '';
  test.before(async () => {
    scratch = await mkdtemp(join(tmpdir(), `shoal-${options.name}-`));
    process.env.SHOAL_CONTEXT = join(scratch, 'context.json');
    lab = await labUp(options);
  });
  // A failed test shows what the daemons said meanwhile: CI keeps no lab to look at afterwards.
  test.afterEach.always(async (t) => {
    if (!t.passed && lab) process.stderr.write(await daemonTrail(lab, t.title));
  });
  test.after.always(async () => {
    await labDown(options.name);
    await rm(scratch, { recursive: true, force: true });
  });
  const shoal = (...args: string[]) => runShoal(args, { env: { SHOAL_CONTEXT: lab!.record.contextFile }, timeoutMs: 180_000 });
  return {
    lab: () => lab!,
    scratch: () => scratch,
    shoal,
    async ok(...args) {
      const result = await shoal(...args);
      if (result.code !== 0) throw new Error(`shoal ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
      return result.stdout;
    },
  };
}

/** The last notable lines of every Shoal daemon's log (warnings, errors, leadership, sessions, health), oldest first. */
async function daemonTrail(lab: Lab, title: string, perDaemon = 25): Promise<string> {
  const notable = /"level":"(warn|error|fatal)"|leader|session open|marked (down|ready)/;
  const lines: Array<{ time: string; text: string }> = [];
  for (const process of lab.record.processes.filter((p) => /\/(manager|agent)$/.test(p.key))) {
    const text = await readFile(process.log, 'utf8').catch(() => '');
    for (const line of text.split('\n').filter((l) => notable.test(l)).slice(-perDaemon)) {
      const time = /"time":"([^"]+)"/.exec(line)?.[1] ?? '';
      lines.push({ time, text: `${process.key} ${line.replace(/^\{"level":"(\w+)","time":"[^"]+",/, '$1 ').slice(0, 400)}` });
    }
  }
  lines.sort((a, b) => a.time.localeCompare(b.time));
  return `\n--- daemon logs after the failed test "${title}" (${lab.record.options.name}) ---\n${lines.map((l) => `${l.time.slice(11, 23)} ${l.text}`).join('\n')}\n---\n`;
}
