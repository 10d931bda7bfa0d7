import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { blkioWeightSupported } from '../../agent/engine/containers/engine.ts';
import { labDown } from '../../lab/lab.ts';
import type { ContainerRecord } from '../../shared/containers.ts';
import { run } from '../../shared/exec.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

// One lab of two hosts for the file; real registry, real runc, real overlayfs and cgroups.
const fixture = useLab(test, { name: 'it-engine', hosts: 2, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { shoal, ok } = fixture;
const MiB = 1024 * 1024;

async function inspect(ref: string): Promise<ContainerRecord & { node: string }> {
  return (JSON.parse(await ok('container', 'inspect', ref)) as Array<ContainerRecord & { node: string }>)[0]!;
}

function cgroup(controller: string, id: string, file: string): string {
  return readFileSync(`/sys/fs/cgroup/${controller}/shoal/${id}/${file}`, 'utf8').trim();
}

function agentDir(host: string): string {
  return join(fixture.lab().record.dir, host, 'agent', 'engine');
}

test.serial('busybox is pulled from the lab registry and runs on both hosts', async (t) => {
  for (const host of ['h1', 'h2']) {
    const result = await shoal('container', 'run', '--node', host, '--rm', 'busybox:1.35.0', 'sh', '-c', 'echo "hello from $(cat /etc/hostname)"; exit 4');
    t.is(result.code, 4, result.stderr);
    t.regex(result.stdout, /^hello from [0-9a-f]{12}\n$/);
  }
  const images = JSON.parse(await ok('image', 'ls', '--format', 'json')) as Array<{ node: string; references: string[] }>;
  t.deepEqual(images.map((i) => i.node).sort(), ['h1', 'h2']);
});

test.serial('each resource flag reaches the container\'s cgroup', async (t) => {
  const id = (
    await ok('container', 'run', '-d', '--node', 'h1', '--memory', '64m', '--memory-reservation', '32m', '--cpu-shares', '512', '--cpus', '0.5',
      '--cpuset-cpus', '0', '--pids-limit', '42', '--device-read-bps', '/dev/vda:1mb', '--device-write-bps', '/dev/vda:2mb',
      '--device-read-iops', '/dev/vda:300', '--device-write-iops', '/dev/vda:400', 'busybox:1.35.0', 'sleep', '300')
  ).trim();
  t.teardown(() => shoal('container', 'rm', '-f', id));
  t.is(cgroup('memory', id, 'memory.limit_in_bytes'), String(64 * MiB));
  t.is(cgroup('memory', id, 'memory.memsw.limit_in_bytes'), String(128 * MiB), '--memory-swap defaults to twice --memory');
  t.is(cgroup('memory', id, 'memory.soft_limit_in_bytes'), String(32 * MiB));
  t.is(cgroup('cpu', id, 'cpu.shares'), '512');
  t.is(cgroup('cpu', id, 'cpu.cfs_quota_us'), '50000');
  t.is(cgroup('cpu', id, 'cpu.cfs_period_us'), '100000');
  t.is(cgroup('cpuset', id, 'cpuset.cpus'), '0');
  t.is(cgroup('pids', id, 'pids.max'), '42');
  t.is(cgroup('blkio', id, 'blkio.throttle.read_bps_device'), '254:0 1048576');
  t.is(cgroup('blkio', id, 'blkio.throttle.write_bps_device'), '254:0 2097152');
  t.is(cgroup('blkio', id, 'blkio.throttle.read_iops_device'), '254:0 300');
  t.is(cgroup('blkio', id, 'blkio.throttle.write_iops_device'), '254:0 400');

  const unlimitedSwap = (await ok('container', 'run', '-d', '--node', 'h1', '--memory', '16m', '--memory-swap', '-1', 'busybox:1.35.0', 'sleep', '300')).trim();
  t.teardown(() => shoal('container', 'rm', '-f', unlimitedSwap));
  t.is(cgroup('memory', unlimitedSwap, 'memory.limit_in_bytes'), String(16 * MiB));
  t.true(Number(cgroup('memory', unlimitedSwap, 'memory.memsw.limit_in_bytes')) > 2 ** 60, '--memory-swap -1 is unlimited');

  const weighted = await shoal('container', 'run', '-d', '--node', 'h1', '--blkio-weight', '300', 'busybox:1.35.0', 'sleep', '300');
  if (blkioWeightSupported()) {
    t.is(weighted.code, 0, weighted.stderr);
    const weightedId = weighted.stdout.trim();
    t.teardown(() => shoal('container', 'rm', '-f', weightedId));
    const file = existsSync(`/sys/fs/cgroup/blkio/shoal/${weightedId}/blkio.weight`) ? 'blkio.weight' : 'blkio.bfq.weight';
    t.regex(cgroup('blkio', weightedId, file), /300/);
  } else {
    t.log('--blkio-weight not checked in the cgroup: this kernel\'s blkio controller has no weight file (no BFQ/CFQ scheduler); Shoal refuses the flag instead');
    t.is(weighted.code, 1);
    t.regex(weighted.stderr, /--blkio-weight is not supported by this host's kernel/);
  }
});

test.serial('run options reach the process: env, workdir, user, hostname, read-only root, bind, tmpfs', async (t) => {
  await writeFile(join(fixture.scratch(), 'bind-file'), 'from the host\n', { mode: 0o644 });
  await chmod(fixture.scratch(), 0o755);
  const result = await shoal('container', 'run', '--node', 'h1', '--rm', '-e', 'GREETING=hi', '-w', '/tmp', '-u', 'nobody', '--hostname', 'box',
    '--read-only', '-v', `${fixture.scratch()}:/host:ro`, '--tmpfs', '/scratch', 'busybox:1.35.0',
    'sh', '-c', 'echo "$GREETING $(pwd) $(id -u) $(hostname)"; cat /host/bind-file; touch /etc/x 2>/dev/null || echo ro-root; touch /host/y 2>/dev/null || echo ro-bind; grep -c " /scratch tmpfs" /proc/mounts');
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, 'hi /tmp 65534 box\nfrom the host\nro-root\nro-bind\n1\n');
  t.false(existsSync(join(fixture.scratch(), 'y')), 'nothing was written through the read-only bind');
});

test.serial('images pull by digest and push under another name', async (t) => {
  const image = (JSON.parse(await ok('image', 'inspect', '--node', 'h1', 'busybox:1.35.0')) as Array<{ result: { id: string } }>)[0]!.result;
  await ok('image', 'push', '--node', 'h1', 'busybox:1.35.0', 'copies/busybox:pushed');
  const pulled = await ok('image', 'pull', '--node', 'h2', `copies/busybox@${image.id}`);
  t.regex(pulled, new RegExp(`h2: ${image.id}`));
  const run = await shoal('container', 'run', '--node', 'h2', '--rm', 'copies/busybox:pushed', 'echo', 'pushed');
  t.is(run.stdout, 'pushed\n');
});

test.serial('the init reaps orphaned zombies; without it they stay', async (t) => {
  // The subshell exits at once, so its child is re-parented to pid 1 and exits 0.1 s later.
  const orphanMaker = ['sh', '-c', '(sleep 0.1 &); exec sleep 300'];
  await ok('container', 'run', '-d', '--node', 'h1', '--name', 'with-init', 'busybox:1.35.0', ...orphanMaker);
  await ok('container', 'run', '-d', '--node', 'h1', '--name', 'without-init', '--no-init', 'busybox:1.35.0', ...orphanMaker);
  t.teardown(async () => {
    await shoal('container', 'rm', '-f', 'with-init');
    await shoal('container', 'rm', '-f', 'without-init');
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const zombies = async (name: string) => (await ok('container', 'exec', name, 'ps', '-o', 'stat')).split('\n').filter((line) => line.startsWith('Z')).length;
  t.is(await zombies('with-init'), 0);
  t.is(await zombies('without-init'), 1);
});

test.serial('invalid resource values are refused before anything starts', async (t) => {
  const before = (await ok('container', 'ls', '-a', '-q')).split('\n').filter(Boolean).length;
  const tooSmall = await shoal('container', 'run', '-d', '--node', 'h1', '--memory', '4m', 'busybox:1.35.0', 'true');
  t.is(tooSmall.code, 1);
  t.regex(tooSmall.stderr, /memory must be at least 6MiB/);
  const badCpuset = await shoal('container', 'run', '-d', '--node', 'h1', '--cpuset-cpus', '0-63', 'busybox:1.35.0', 'true');
  t.is(badCpuset.code, 1);
  t.regex(badCpuset.stderr, /--cpuset-cpus names CPU .* but this host has CPUs 0-/);
  const badSwap = await shoal('container', 'run', '-d', '--node', 'h1', '--memory', '64m', '--memory-swap', '32m', 'busybox:1.35.0', 'true');
  t.is(badSwap.code, 1);
  t.regex(badSwap.stderr, /--memory-swap must be at least --memory/);
  t.is((await ok('container', 'ls', '-a', '-q')).split('\n').filter(Boolean).length, before);
});

test.serial('a create that fails after its namespace and rootfs were made leaves neither behind', async (t) => {
  const containers = join(agentDir('h1'), 'containers');
  const state = () => ({
    namespaces: readdirSync('/run/netns').sort(),
    mounts: readFileSync('/proc/mounts', 'utf8').split('\n').filter((line) => line.includes(containers)).length,
    dirs: readdirSync(containers).sort(),
  });
  const before = state();
  // The bind source is checked once the rootfs is mounted, while the namespace is being made.
  const result = await shoal('container', 'run', '-d', '--node', 'h1', '-v', '/shoal-no-such-dir:/x', 'busybox:1.35.0', 'true');
  t.is(result.code, 1);
  t.regex(result.stderr, /bind source \/shoal-no-such-dir does not exist on this host/);
  t.deepEqual(state(), before);
});

test.serial('a container directory left without a record (an undo that could not finish) is swept while the agent runs', async (t) => {
  // As a create on a disk that went read-only for a moment leaves it: a mounted rootfs and a
  // namespace, but no state.json.
  const id = randomBytes(32).toString('hex');
  const dir = join(agentDir('h1'), 'containers', id);
  const netns = `shoal-it-engine-c-${id.slice(0, 12)}`;
  await mkdir(join(dir, 'rootfs'), { recursive: true });
  await run('mount', ['-t', 'tmpfs', 'leftover', join(dir, 'rootfs')]);
  await run('ip', ['netns', 'add', netns]);
  t.teardown(async () => {
    await run('umount', [join(dir, 'rootfs')]).catch(() => undefined);
    await run('ip', ['netns', 'del', netns]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  const mounted = () => readFileSync('/proc/mounts', 'utf8').includes(join(dir, 'rootfs'));
  t.true(mounted());
  const swept = await eventually(15_000, async () => (!existsSync(dir) && !existsSync(`/run/netns/${netns}`) && !mounted() ? true : undefined));
  t.log(`swept ${swept.ms} ms after it was made`);
  const log = await readFile(join(fixture.lab().record.dir, 'h1', 'agent.log'), 'utf8');
  t.true(log.split('\n').some((line) => line.includes('removing a container whose create did not finish') && line.includes(id)));
});

test.serial('a memory hog under --memory is OOM-killed and inspect says so', async (t) => {
  const result = await shoal('container', 'run', '--node', 'h2', '--name', 'hog', '--memory', '16m', '--memory-swap', '16m', 'busybox:1.35.0',
    'sh', '-c', 'dd if=/dev/zero bs=64M count=1 | cat >/dev/null; sleep 1');
  t.teardown(() => shoal('container', 'rm', '-f', 'hog'));
  const hog = await inspect('hog');
  t.true(hog.oomKilled, JSON.stringify(hog));
  t.regex(result.stderr, /out of memory/);
  t.truthy(hog.finishedAt);
  t.is(hog.state, 'exited');
});

test.serial('writes stay in the container: not in the image, not in a second container', async (t) => {
  await ok('container', 'run', '-d', '--node', 'h1', '--name', 'writer', 'busybox:1.35.0', 'sh', '-c', 'echo changed > /etc/motd; echo x > /bin/new; sleep 300');
  t.teardown(() => shoal('container', 'rm', '-f', 'writer'));
  await eventually(5000, async () => ((await shoal('container', 'exec', 'writer', 'cat', '/etc/motd')).stdout === 'changed\n' ? true : undefined));
  const layers = join(agentDir('h1'), 'images', 'layers');
  for (const layer of readdirSync(layers)) {
    t.false(existsSync(join(layers, layer, 'etc', 'motd')));
    t.false(existsSync(join(layers, layer, 'bin', 'new')));
  }
  const second = await shoal('container', 'run', '--node', 'h1', '--rm', 'busybox:1.35.0', 'sh', '-c', 'cat /etc/motd /bin/new 2>&1; true');
  t.regex(second.stdout, /No such file/);
  t.notRegex(second.stdout, /changed/);
});

test.serial('a named volume keeps its data after its container is removed', async (t) => {
  t.teardown(() => shoal('volume', 'rm', '--node', 'h2', 'keep'));
  const write = await shoal('container', 'run', '--node', 'h2', '--name', 'vol-writer', '-v', 'keep:/data', 'busybox:1.35.0', 'sh', '-c', 'echo kept > /data/file');
  t.is(write.code, 0, write.stderr);
  const inUse = await shoal('volume', 'rm', '--node', 'h2', 'keep');
  t.is(inUse.code, 1);
  t.regex(inUse.stderr, /in use by container\(s\) vol-writer/);
  await ok('container', 'rm', 'vol-writer');
  const read = await shoal('container', 'run', '--node', 'h2', '--rm', '-v', 'keep:/data:ro', 'busybox:1.35.0', 'cat', '/data/file');
  t.is(read.stdout, 'kept\n');
  const volumes = JSON.parse(await ok('volume', 'ls', '--format', 'json')) as Array<{ name: string; node: string }>;
  t.true(volumes.some((v) => v.name === 'keep' && v.node === 'h2'));
});

test.serial('logs follow a running container and rotate at the size limit', async (t) => {
  const id = (await ok('container', 'run', '-d', '--node', 'h1', '--log-opt', 'max-size=2k', '--log-opt', 'max-file=2', 'busybox:1.35.0',
    'sh', '-c', 'i=0; while [ $i -lt 200 ]; do echo "line $i"; i=$((i+1)); done; sleep 1; echo oops >&2; echo last')).trim();
  t.teardown(() => shoal('container', 'rm', '-f', id));
  const followed = await shoal('container', 'logs', '--follow', id);
  t.is(followed.code, 0);
  // The two streams are read apart, so order holds within a stream; the sleep keeps "oops" after the lines.
  t.regex(followed.stdout, /line 199\nlast\n$/);
  t.is(followed.stderr, 'oops\n');
  t.notRegex(followed.stdout, /^line 0$/m, 'the oldest lines rotated away');
  const dir = join(agentDir('h1'), 'containers', id);
  t.true(existsSync(join(dir, 'container.log.1')));
  t.false(existsSync(join(dir, 'container.log.2')), 'max-file=2 keeps one rotated file');
  // As in Docker, --tail counts the lines of both streams.
  const tail = await shoal('container', 'logs', '--tail', '3', id);
  t.is(tail.stdout, 'line 199\nlast\n');
  t.is(tail.stderr, 'oops\n');
});

test.serial('exec returns the command\'s output and exit code', async (t) => {
  await ok('container', 'run', '-d', '--node', 'h2', '--name', 'execd', 'busybox:1.35.0', 'sleep', '300');
  t.teardown(() => shoal('container', 'rm', '-f', 'execd'));
  const result = await shoal('container', 'exec', 'execd', 'sh', '-c', 'id -u; echo err >&2; exit 5');
  t.is(result.code, 5);
  t.is(result.stdout, '0\n');
  t.is(result.stderr, 'err\n');
  const asNobody = await shoal('container', 'exec', '--user', 'nobody', 'execd', 'id', '-u');
  t.is(asNobody.stdout, '65534\n');
  const stats = JSON.parse(await ok('container', 'stats', '--format', 'json', 'execd')) as Array<{ pids: number; memoryUsageBytes: number }>;
  t.true(stats[0]!.pids >= 1);
  t.true(stats[0]!.memoryUsageBytes > 0);
});

test.serial('an agent restart finds running containers again and reports those that exited meanwhile', async (t) => {
  await ok('container', 'run', '-d', '--node', 'h2', '--name', 'survivor', 'busybox:1.35.0', 'sh', '-c', 'echo before; sleep 3; echo after; sleep 300');
  await ok('container', 'run', '-d', '--node', 'h2', '--name', 'quitter', 'busybox:1.35.0', 'sh', '-c', 'sleep 2; exit 9');
  t.teardown(async () => {
    await shoal('container', 'rm', '-f', 'survivor');
    await shoal('container', 'rm', '-f', 'quitter');
  });
  const before = await inspect('survivor');
  await fixture.lab().kill('h2/agent');
  await new Promise((resolve) => setTimeout(resolve, 4000));
  await fixture.lab().start('h2/agent');
  await eventually(20_000, async () => ((await inspect('survivor')).state === 'running' ? true : undefined));
  const after = await inspect('survivor');
  t.is(after.id, before.id);
  t.is(after.pid, before.pid, 'the same process, not a restarted one');
  const quitter = await inspect('quitter');
  t.is(quitter.state, 'exited');
  t.is(quitter.exitCode, 9);
  const all = JSON.parse(await ok('container', 'ls', '-a', '--format', 'json')) as ContainerRecord[];
  t.is(all.filter((c) => c.name === 'survivor').length, 1, 'not duplicated');
  const logs = await ok('container', 'logs', 'survivor');
  t.is(logs, 'before\nafter\n', 'output written while the agent was down is kept');
});

test.serial('registry errors are clear and leave no half-written blob', async (t) => {
  const unknown = await shoal('image', 'pull', '--node', 'h1', 'busybox:no-such-tag');
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /manifest not found in 198\.18\.0\.250:5000/);
  const unreachable = await shoal('image', 'pull', '--node', 'h1', '198.18.0.99:5000/busybox:1.35.0');
  t.is(unreachable.code, 1);
  t.regex(unreachable.stderr, /registry 198\.18\.0\.99:5000 is unreachable/);
  const badName = await shoal('container', 'run', '--node', 'h1', 'Not An Image');
  t.is(badName.code, 1);
  t.regex(badName.stderr, /not an image reference/);

  // Corrupt the layer in the registry's own storage, then pull on a node that lacks it.
  const image = JSON.parse(await ok('image', 'inspect', '--node', 'h1', 'busybox:1.35.0')) as Array<{ result: { layers: Array<{ digest: string }> } }>;
  const layer = image[0]!.result.layers[0]!.digest.slice(7);
  const stored = join(fixture.lab().record.dir, 'infra', 'registry', 'docker', 'registry', 'v2', 'blobs', 'sha256', layer.slice(0, 2), layer, 'data');
  const saved = join(fixture.scratch(), 'layer');
  await copyFile(stored, saved);
  t.teardown(() => copyFile(saved, stored));
  // By id: the whole image goes, whatever references name it.
  const h2Image = (JSON.parse(await ok('image', 'inspect', '--node', 'h2', 'busybox:1.35.0')) as Array<{ result: { id: string } }>)[0]!.result.id;
  await ok('image', 'rm', '--node', 'h2', h2Image);
  t.false(existsSync(join(agentDir('h2'), 'images', 'blobs', 'sha256', layer)), 'image rm dropped the layer blob');
  await writeFile(stored, Buffer.alloc(readFileSync(saved).length, 7));
  const corrupt = await shoal('image', 'pull', '--node', 'h2', 'busybox:1.35.0');
  t.is(corrupt.code, 1);
  t.regex(corrupt.stderr, /arrived as sha256:/);
  const blobs = readdirSync(join(agentDir('h2'), 'images', 'blobs', 'sha256'));
  t.false(blobs.some((b) => b.includes('partial')), 'no partial download left');
  t.false(blobs.includes(layer), 'the corrupt blob was not stored');
  await copyFile(saved, stored);
  await ok('image', 'pull', '--node', 'h2', 'busybox:1.35.0');
});

test.serial('image rm refuses an image in use; prune frees unused ones', async (t) => {
  await ok('container', 'run', '-d', '--node', 'h1', '--name', 'user', 'busybox:1.35.0', 'sleep', '300');
  const id = (JSON.parse(await ok('image', 'inspect', '--node', 'h1', 'busybox:1.35.0')) as Array<{ result: { id: string } }>)[0]!.result.id;
  const refused = await shoal('image', 'rm', '--node', 'h1', id);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /in use by container\(s\) user/);
  t.is((await ok('image', 'prune', '--node', 'h1')).trim(), '', 'prune keeps an image in use');
  await ok('container', 'rm', '-f', 'user');
  t.regex(await ok('image', 'prune', '--node', 'h1'), new RegExp(`h1: deleted ${id}`));
  t.deepEqual(readdirSync(join(agentDir('h1'), 'images', 'layers')), []);
  await ok('image', 'pull', '--node', 'h1', 'busybox:1.35.0');
});

test.serial('lab down removes every container, mount and cgroup the tests made', async (t) => {
  await ok('container', 'run', '-d', '--node', 'h1', 'busybox:1.35.0', 'sleep', '300');
  const dir = fixture.lab().record.dir;
  await labDown('it-engine');
  t.false(readFileSync('/proc/mounts', 'utf8').includes(dir));
  t.false(existsSync('/sys/fs/cgroup/memory/shoal') && readdirSync('/sys/fs/cgroup/memory/shoal').some((e) => /^[0-9a-f]{64}$/.test(e)));
  t.false(existsSync(dir));
});
