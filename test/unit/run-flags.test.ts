import test from 'ava';
import { parseBytes, parseTmpfsFlag, parseVolumeFlag, type RunFlags, runFlagsToSpec } from '../../cli/run-flags.ts';
import { ContainerSpec } from '../../shared/containers.ts';

const none: RunFlags = {
  env: [], init: true, label: [], deviceReadBps: [], deviceWriteBps: [], deviceReadIops: [], deviceWriteIops: [], volume: [], tmpfs: [], logOpt: [],
};

test('sizes read as Docker reads them', (t) => {
  t.is(parseBytes('64m', '--memory'), 64 * 1024 * 1024);
  t.is(parseBytes('1g', '--memory'), 1024 ** 3);
  t.is(parseBytes('1mb', '--device-read-bps'), 1024 * 1024);
  t.is(parseBytes('512', '--memory'), 512);
  t.throws(() => parseBytes('lots', '--memory'), { message: /--memory: "lots" is not a size/ });
});

test('-v takes a bind mount for an absolute source and a named volume otherwise', (t) => {
  t.deepEqual(parseVolumeFlag('/srv:/data:ro'), { type: 'bind', source: '/srv', target: '/data', readOnly: true });
  t.deepEqual(parseVolumeFlag('cache:/cache'), { type: 'volume', source: 'cache', target: '/cache', readOnly: false });
  t.throws(() => parseVolumeFlag('/only'));
  t.deepEqual(parseTmpfsFlag('/run:size=8m'), { type: 'tmpfs', target: '/run', sizeBytes: 8 * 1024 * 1024 });
});

test('run flags become a spec the schema accepts', (t) => {
  const spec = runFlagsToSpec('busybox', ['sh', '-c', 'true'], {
    ...none, memory: '64m', memorySwap: '-1', cpus: '0.5', pidsLimit: '20', deviceWriteIops: ['/dev/vda:100'], logOpt: ['max-size=1m', 'max-file=2'], env: ['A=1'],
  });
  const parsed = ContainerSpec.parse(spec);
  t.is(parsed.resources.memoryBytes, 64 * 1024 * 1024);
  t.is(parsed.resources.memorySwapBytes, -1);
  t.is(parsed.resources.nanoCpus, 500_000_000);
  t.is(parsed.resources.pidsLimit, 20);
  t.deepEqual(parsed.resources.deviceWriteIops, [{ path: '/dev/vda', rate: 100 }]);
  t.deepEqual(parsed.log, { maxSizeBytes: 1024 * 1024, maxFiles: 2 });
  t.deepEqual(parsed.cmd, ['sh', '-c', 'true']);
});

test('bad run flags say which flag is wrong', (t) => {
  t.throws(() => runFlagsToSpec('busybox', [], { ...none, cpus: '-1' }), { message: /--cpus/ });
  t.throws(() => runFlagsToSpec('busybox', [], { ...none, deviceReadBps: ['/dev/vda'] }), { message: /DEVICE:RATE/ });
  t.throws(() => runFlagsToSpec('busybox', [], { ...none, pidsLimit: 'many' }), { message: /--pids-limit/ });
});
