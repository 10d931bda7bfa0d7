import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlive, readSupervision, type LabProcess, type Supervision } from '../../lab/processes.ts';

const script = fileURLToPath(new URL('../../../lab/supervise.sh', import.meta.url));

async function supervise(t: import('ava').ExecutionContext, command: string[]) {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-supervise-'));
  const spec = { log: join(dir, 'daemon.log') } as LabProcess;
  const state = join(dir, 'daemon.supervision.json');
  const child = spawn('bash', [script, state, ...command], { stdio: 'ignore' });
  t.teardown(async () => {
    child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });
  const until = async (what: string, ok: (s: Supervision) => boolean): Promise<Supervision> => {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const seen = await readSupervision(spec);
      if (seen && ok(seen)) return seen;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`supervisor never reached: ${what}; last ${JSON.stringify(await readSupervision(spec))}`);
  };
  return { state, child, until };
}

test('a daemon that fails is started again, with its restart count and last exit recorded', async (t) => {
  const { until } = await supervise(t, ['sh', '-c', 'sleep 0.1; exit 3']);
  const seen = await until('two restarts', (s) => s.restarts >= 2);
  t.is(seen.lastExit?.code, 3);
});

test('a daemon killed from outside is restarted; a held one stays down until the hold goes', async (t) => {
  const { state, until } = await supervise(t, ['sleep', '1000']);
  const first = await until('running', (s) => s.state === 'running' && s.pid > 0);
  process.kill(first.pid, 'SIGKILL');
  const second = await until('restarted', (s) => s.state === 'running' && s.pid !== first.pid);
  t.is(second.restarts, 1);
  t.is(second.lastExit?.signal, 'SIGKILL');
  await writeFile(`${state}.hold`, 'held\n');
  process.kill(second.pid, 'SIGKILL');
  await until('held', (s) => s.state === 'held');
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.is((await readSupervision({ log: state.replace('.supervision.json', '.log') } as LabProcess))?.state, 'held');
  await rm(`${state}.hold`);
  const third = await until('running after the hold', (s) => s.state === 'running' && s.pid !== second.pid);
  t.true(isAlive(third.pid));
});

test('a daemon that exits cleanly is not restarted; stopping the supervisor stops its daemon', async (t) => {
  const clean = await supervise(t, ['true']);
  await clean.until('exited', (s) => s.state === 'exited');
  const long = await supervise(t, ['sleep', '1000']);
  const running = await long.until('running', (s) => s.state === 'running');
  long.child.kill('SIGTERM');
  await long.until('stopped', (s) => s.state === 'stopped');
  t.false(isAlive(running.pid));
});
