import test from 'ava';
import { CommandError, ipBatch, run } from '../../shared/exec.ts';

test('a child that exits before reading its input rejects; the caller lives on', async (t) => {
  // 10,000 lines of ~100 bytes is far more than a pipe buffer: the child exits while we write.
  const input = Array.from({ length: 10_000 }, (_, i) => `line ${i} ${'x'.repeat(90)}`).join('\n');
  const error = await t.throwsAsync(run('sh', ['-c', 'echo first line is bad >&2; exit 3'], input), { instanceOf: CommandError });
  t.is(error?.exitCode, 3);
  t.regex(error?.message ?? '', /\(exit code 3\): first line is bad/);
  // Let any late 'error' event fire: an unhandled one would end this test process.
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.is(await run('sh', ['-c', 'echo alive']), 'alive\n');
});

test('ip -batch whose first of 10,000 lines fails rejects with the command and its stderr', async (t) => {
  const lines = ['link set dev no-such-shoal-link up', ...Array.from({ length: 9_999 }, (_, i) => `link show dev no-such-shoal-link-${i}`)];
  const error = await t.throwsAsync(ipBatch(lines), { instanceOf: CommandError });
  t.regex(error?.message ?? '', /^ip -batch - failed/);
  t.truthy(error?.stderr);
});

test('a command that does not exist rejects instead of throwing', async (t) => {
  const error = await t.throwsAsync(run('/nonexistent/shoal-binary', ['x']), { instanceOf: CommandError });
  t.regex(error?.message ?? '', /ENOENT/);
});

test('a command past its timeout is killed and rejects', async (t) => {
  const started = Date.now();
  const error = await t.throwsAsync(run('sleep', ['5'], { timeoutMs: 200 }), { instanceOf: CommandError });
  t.regex(error?.message ?? '', /timed out after 200 ms/);
  t.true(Date.now() - started < 2_000);
});

test('an aborted command rejects', async (t) => {
  const controller = new AbortController();
  const pending = run('sleep', ['5'], { signal: controller.signal });
  controller.abort();
  await t.throwsAsync(pending, { instanceOf: CommandError });
});

test('stdout comes back whole, with input fed through stdin', async (t) => {
  t.is(await run('cat', [], 'a\nb\n'), 'a\nb\n');
});
