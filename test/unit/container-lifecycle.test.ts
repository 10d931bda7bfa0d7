import test from 'ava';
import { processTable, runcResources, updatedResources } from '../../agent/engine/containers/lifecycle.ts';
import { portLines } from '../../cli/commands/containers.ts';
import { updateFlagsToResources } from '../../cli/run-flags.ts';
import { ResourceUpdate, Resources, SignalName } from '../../shared/containers.ts';
import { isShoalError } from '../../shared/errors.ts';

const MiB = 1024 * 1024;
const base = Resources.parse({ memoryBytes: 64 * MiB });

test('kill -s takes names in any case, with or without SIG, and numbers; anything else is refused', (t) => {
  t.is(SignalName.parse('kill'), 'KILL');
  t.is(SignalName.parse('SIGUSR1'), 'USR1');
  t.is(SignalName.parse(' hup '), 'HUP');
  t.is(SignalName.parse('9'), '9');
  const bogus = SignalName.safeParse('BOGUS');
  t.false(bogus.success);
  t.regex(bogus.error!.issues[0]!.message, /"BOGUS" is not a signal/);
  t.false(SignalName.safeParse('65').success);
  t.false(SignalName.safeParse('0').success);
});

test('top keeps the container\'s rows of ps, and the command with its spaces', (t) => {
  const output = [
    'UID        PID  PPID  C STIME TTY          TIME CMD',
    'root         1     0  0 08:00 ?        00:00:01 /sbin/init',
    'root       200     1  0 08:01 ?        00:00:00 sh -c while true; do sleep 1; done',
    'root       201   200  0 08:01 ?        00:00:00 sleep 1',
    '',
  ].join('\n');
  const table = processTable(output, new Set([200, 201]));
  t.deepEqual(table.titles, ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD']);
  t.deepEqual(table.processes.map((row) => row[1]), ['200', '201']);
  t.is(table.processes[0]![7], 'sh -c while true; do sleep 1; done');
  const error = t.throws(() => processTable('USER COMMAND\nroot sh\n', new Set([1])));
  t.true(isShoalError(error));
  t.regex(error.message, /no PID column/);
});

test('update merges new limits, keeps swap unset as "twice memory", and refuses a swap below memory', (t) => {
  const doubled = updatedResources(base, { memoryBytes: 128 * MiB });
  t.is(doubled.memoryBytes, 128 * MiB);
  t.is(doubled.memorySwapBytes, undefined);
  t.deepEqual(runcResources(doubled).memory, { limit: 128 * MiB, swap: 256 * MiB });
  const withSwap = Resources.parse({ memoryBytes: 64 * MiB, memorySwapBytes: 96 * MiB });
  const error = t.throws(() => updatedResources(withSwap, { memoryBytes: 128 * MiB }));
  t.regex(error.message, /--memory-swap must be at least --memory/);
  t.deepEqual(runcResources(updatedResources(base, { nanoCpus: 5e8 })).cpu, { period: 100_000, quota: 50_000 });
  t.false(ResourceUpdate.safeParse({}).success, 'an update with nothing to change is refused');
});

test('update flags read as run reads them', (t) => {
  t.deepEqual(updateFlagsToResources({ memory: '32m', cpus: '1.5', pidsLimit: '10' }), { memoryBytes: 32 * MiB, nanoCpus: 1.5e9, pidsLimit: 10 });
  t.throws(() => updateFlagsToResources({ cpus: '-1' }), { message: /--cpus/ });
});

test('port lists published ports as Docker does, or one port\'s host side', (t) => {
  const publish = [
    { protocol: 'tcp' as const, targetPort: 80, publishedPort: 8080, mode: 'host' as const },
    { protocol: 'udp' as const, targetPort: 53, publishedPort: 5353, mode: 'host' as const, hostIp: '198.18.0.1' },
  ];
  t.deepEqual(portLines(publish), ['80/tcp -> 0.0.0.0:8080', '53/udp -> 198.18.0.1:5353']);
  t.deepEqual(portLines(publish, '53/udp'), ['53/udp -> 198.18.0.1:5353']);
  t.deepEqual(portLines(publish, '53'), []);
});
