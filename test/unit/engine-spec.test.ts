import test from 'ava';
import { cpusetCpus } from '../../agent/engine/containers/engine.ts';
import { buildRuntimeSpec, capabilitiesOf, linuxResources, mergeEnv, processArgs, resolveUser } from '../../agent/engine/containers/runtime-spec.ts';
import type { ImageConfig } from '../../agent/engine/images/oci.ts';
import { formatReference, parseReference } from '../../agent/engine/registry/reference.ts';
import { ContainerSpec, Resources } from '../../shared/containers.ts';

const image: ImageConfig = {
  architecture: 'amd64',
  os: 'linux',
  config: { Entrypoint: ['/entry'], Cmd: ['serve'], Env: ['PATH=/bin', 'MODE=prod'], WorkingDir: '/app' },
  rootfs: { type: 'layers', diff_ids: [] },
};
const MiB = 1024 * 1024;

test('references default to the cluster registry and to "latest"', (t) => {
  t.deepEqual(parseReference('busybox', '198.18.0.250:5000'), { registry: '198.18.0.250:5000', repository: 'busybox', tag: 'latest' });
  t.deepEqual(parseReference('reg.lab:5000/tools/busybox:1.35', 'x:1'), { registry: 'reg.lab:5000', repository: 'tools/busybox', tag: '1.35' });
  const digest = `sha256:${'a'.repeat(64)}`;
  t.deepEqual(parseReference(`busybox@${digest}`, 'r:5000'), { registry: 'r:5000', repository: 'busybox', digest });
  t.is(formatReference(parseReference('busybox:1.35', 'r:5000')), 'r:5000/busybox:1.35');
});

test('malformed references are refused with what to write', (t) => {
  t.throws(() => parseReference('Busy Box', 'r:5000'), { message: /not an image reference/ });
  t.throws(() => parseReference('busybox@sha256:123', 'r:5000'), { message: /64 hex digits/ });
});

test('entrypoint and cmd merge as in Docker', (t) => {
  t.deepEqual(processArgs({}, image), ['/entry', 'serve']);
  t.deepEqual(processArgs({ cmd: ['debug'] }, image), ['/entry', 'debug']);
  t.deepEqual(processArgs({ entrypoint: ['sh'] }, image), ['sh'], '--entrypoint drops the image Cmd');
  t.deepEqual(processArgs({ entrypoint: [], cmd: ['ls'] }, image), ['ls']);
});

test('container env overrides the image env by name', (t) => {
  t.deepEqual(mergeEnv(['PATH=/bin', 'MODE=prod'], ['MODE=dev', 'X=1']), ['PATH=/bin', 'MODE=dev', 'X=1']);
});

test('--memory-swap defaults to twice --memory; -1 is unlimited', (t) => {
  const base = Resources.parse({ memoryBytes: 64 * MiB });
  t.deepEqual(linuxResources(base, {}).memory, { limit: 64 * MiB, swap: 128 * MiB });
  t.deepEqual(linuxResources(Resources.parse({ memoryBytes: 64 * MiB, memorySwapBytes: -1 }), {}).memory, { limit: 64 * MiB, swap: -1 });
});

test('--cpus becomes a CFS quota over a 100 ms period', (t) => {
  t.deepEqual(linuxResources(Resources.parse({ nanoCpus: 1_500_000_000, cpuShares: 512, cpusetCpus: '0' }), {}).cpu, { period: 100_000, quota: 150_000, shares: 512, cpus: '0' });
});

test('device throttles carry the device numbers', (t) => {
  const resources = Resources.parse({ deviceReadBps: [{ path: '/dev/vda', rate: 1024 }] });
  t.deepEqual(linuxResources(resources, { '/dev/vda': { major: 254, minor: 0 } }).blockIO, { throttleReadBpsDevice: [{ major: 254, minor: 0, rate: 1024 }] });
});

test('resource values Docker refuses are refused', (t) => {
  t.false(Resources.safeParse({ memoryBytes: 4 * MiB }).success);
  t.false(Resources.safeParse({ memoryBytes: 64 * MiB, memorySwapBytes: 32 * MiB }).success);
  t.false(Resources.safeParse({ blkioWeight: 5 }).success);
  t.false(Resources.safeParse({ cpusetCpus: 'one' }).success);
});

test('the runtime spec runs the command under the init with the namespace it is given', (t) => {
  const spec = ContainerSpec.parse({ image: 'busybox', readOnlyRootfs: true, mounts: [{ type: 'volume', source: 'data', target: '/data', readOnly: true }] });
  const runtime = buildRuntimeSpec({
    id: 'abc', spec, image, rootfs: '/r', netnsPath: '/run/netns/n', hostname: 'h', user: { uid: 0, gid: 0, additionalGids: [] },
    mountSources: ['/volumes/data/_data'], etcFiles: { hosts: '/c/hosts', hostname: '/c/hostname', resolvConf: '/c/resolv.conf' }, devices: {}, initPath: '/init',
  }) as { process: { args: string[]; cwd: string }; root: { readonly: boolean }; linux: { namespaces: Array<{ type: string; path?: string }>; cgroupsPath: string }; mounts: Array<{ destination: string; source: string; options?: string[] }> };
  t.deepEqual(runtime.process.args, ['/sbin/shoal-init', '--', '/entry', 'serve']);
  t.is(runtime.process.cwd, '/app');
  t.true(runtime.root.readonly);
  t.deepEqual(runtime.linux.namespaces.find((n) => n.type === 'network'), { type: 'network', path: '/run/netns/n' });
  t.is(runtime.linux.cgroupsPath, '/shoal/abc');
  t.deepEqual(runtime.mounts.find((m) => m.destination === '/data'), { destination: '/data', type: 'bind', source: '/volumes/data/_data', options: ['rbind', 'ro'] } as never);
});

test('capabilities, sysctls, ulimits and secret files reach the runtime spec as Docker sets them', (t) => {
  t.false(capabilitiesOf({ capAdd: [], capDrop: [] }).includes('CAP_NET_ADMIN'), 'Docker\'s default set has no NET_ADMIN');
  t.true(capabilitiesOf({ capAdd: ['net_admin'], capDrop: [] }).includes('CAP_NET_ADMIN'));
  t.deepEqual(capabilitiesOf({ capAdd: ['NET_BIND_SERVICE'], capDrop: ['ALL'] }), ['CAP_NET_BIND_SERVICE'], 'drop ALL, add back one');
  t.true(capabilitiesOf({ capAdd: ['ALL'], capDrop: [] }).includes('CAP_SYS_ADMIN'));
  t.throws(() => capabilitiesOf({ capAdd: ['FLY'], capDrop: [] }), { message: /unknown capability: CAP_FLY/ });
  const spec = ContainerSpec.parse({ image: 'busybox', sysctls: { 'net.core.somaxconn': '1024' }, ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }], capDrop: ['CHOWN'] });
  const runtime = buildRuntimeSpec({
    id: 'abc', spec, image, rootfs: '/r', netnsPath: '/run/netns/n', hostname: 'h', user: { uid: 0, gid: 0, additionalGids: [] }, mountSources: [],
    etcFiles: { hosts: '/c/hosts', hostname: '/c/hostname', resolvConf: '/c/resolv.conf' }, devices: {}, fileMounts: [{ target: '/run/secrets/pw', source: '/c/files/0' }],
  }) as { process: { rlimits: unknown[]; capabilities: { bounding: string[] } }; linux: { sysctl: Record<string, string> }; mounts: Array<{ destination: string; source: string; options?: string[] }> };
  t.deepEqual(runtime.process.rlimits, [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 }]);
  t.false(runtime.process.capabilities.bounding.includes('CAP_CHOWN'));
  t.deepEqual(runtime.linux.sysctl, { 'net.core.somaxconn': '1024' });
  t.deepEqual(runtime.mounts.find((m) => m.destination === '/run/secrets/pw'), { destination: '/run/secrets/pw', type: 'bind', source: '/c/files/0', options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] } as never);
});

test('users resolve from the image\'s passwd and group files', (t) => {
  const passwd = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n';
  const group = 'root:x:0:\nnogroup:x:65534:\nstaff:x:50:nobody\n';
  t.deepEqual(resolveUser(undefined, passwd, group), { uid: 0, gid: 0, additionalGids: [] });
  t.deepEqual(resolveUser('nobody', passwd, group), { uid: 65534, gid: 65534, additionalGids: [50] });
  t.deepEqual(resolveUser('1000:50', passwd, group), { uid: 1000, gid: 50, additionalGids: [] });
  t.throws(() => resolveUser('ghost', passwd, group), { message: /not in the image's \/etc\/passwd/ });
});

test('cpusets expand to CPU numbers', (t) => {
  t.deepEqual(cpusetCpus('0-2,5'), [0, 1, 2, 5]);
});
