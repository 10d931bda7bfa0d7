import { spawn } from 'node:child_process';
import test from 'ava';
import type { ContainerRecord } from '../../shared/containers.ts';
import type { TaskObject } from '../../shared/services.ts';
import { eventually, shoalMain } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

// A 3-host lab with a 1 s heartbeat (node down after 3 s); services run real containers.
const fixture = useLab(test, { name: 'it-services', hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { shoal, ok } = fixture;
type Task = TaskObject & { name: string; node: string | null };
type Container = ContainerRecord & { node: string };

async function tasks(service: string): Promise<Task[]> {
  return JSON.parse(await ok('service', 'ps', service, '--format', 'json')) as Task[];
}

async function running(service: string): Promise<Task[]> {
  return (await tasks(service)).filter((t) => t.desiredState === 'running' && t.status.state === 'running');
}

async function containersOf(service: string): Promise<Container[]> {
  return (JSON.parse(await ok('container', 'ls', '--format', 'json')) as Container[]).filter((c) => c.name.startsWith(`${service}.`));
}

function perHost(list: Array<{ node: string | null }>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of list) counts[item.node ?? '-'] = (counts[item.node ?? '-'] ?? 0) + 1;
  return counts;
}

test.serial('6 replicas spread 2 per host and all run; scaling to 9 and to 2 converges', async (t) => {
  const created = await shoal('service', 'create', '--name', 'web', '--replicas', '6', 'busybox:1.35.0', 'httpd', '-f', '-p', '80', '-h', '/var/www');
  t.is(created.code, 0, created.stderr);
  t.regex(created.stderr, /web: 6\/6 running/);
  t.deepEqual(perHost(await running('web')), { h1: 2, h2: 2, h3: 2 });
  t.deepEqual(perHost(await containersOf('web')), { h1: 2, h2: 2, h3: 2 });
  await ok('service', 'scale', 'web=9');
  t.deepEqual(perHost(await running('web')), { h1: 3, h2: 3, h3: 3 });
  await ok('service', 'scale', 'web=2');
  t.is((await running('web')).length, 2);
  await eventually(15_000, async () => ((await containersOf('web')).length === 2 ? true : undefined));
  const list = JSON.parse(await ok('service', 'ls', '--format', 'json')) as Array<{ spec: { name: string }; running: number }>;
  t.is(list.find((s) => s.spec.name === 'web')?.running, 2);
});

test.serial('a hostname constraint puts every task on that host', async (t) => {
  await ok('service', 'create', '--name', 'pinned', '--replicas', '3', '--constraint', 'node.hostname==h2', 'busybox:1.35.0', 'sleep', '300');
  t.teardown(() => shoal('service', 'rm', 'pinned'));
  t.deepEqual(perHost(await running('pinned')), { h2: 3 });
});

test.serial('a task no node fits stays pending with the reason, and runs once a node label makes it fit', async (t) => {
  await ok('service', 'create', '--detach', '--name', 'east', '--constraint', 'node.labels.zone==east', 'busybox:1.35.0', 'sleep', '300');
  t.teardown(async () => {
    await shoal('service', 'rm', 'east');
    await shoal('node', 'update', 'h3', '--label-rm', 'zone');
  });
  const pending = await eventually(10_000, async () => (await tasks('east')).find((task) => task.status.message.includes('no suitable node')));
  t.regex(pending.value.status.message, /3 of 3 nodes fail the constraints node\.labels\.zone==east/);
  const table = await ok('service', 'ps', 'east');
  t.regex(table, /no suitable node/);
  await ok('node', 'update', 'h3', '--label-add', 'zone=east');
  const placed = await eventually(15_000, async () => (await running('east'))[0]);
  t.is(placed.value.node, 'h3');
  const tooBig = await shoal('service', 'create', '--detach', '--name', 'huge', '--reserve-memory', '100g', 'busybox:1.35.0', 'sleep', '300');
  t.teardown(() => shoal('service', 'rm', 'huge'));
  t.is(tooBig.code, 0, tooBig.stderr);
  const starved = await eventually(10_000, async () => (await tasks('huge')).find((task) => task.status.message.includes('no suitable node')));
  t.regex(starved.value.status.message, /lack the reserved resources/);
});

test.serial('a global service runs one task per node and follows a drain and a return', async (t) => {
  await ok('service', 'create', '--name', 'everywhere', '--mode', 'global', 'busybox:1.35.0', 'sleep', '300');
  t.teardown(async () => {
    await shoal('service', 'rm', 'everywhere');
    await shoal('node', 'update', 'h1', '--availability', 'active');
  });
  t.deepEqual(perHost(await running('everywhere')), { h1: 1, h2: 1, h3: 1 });
  await ok('node', 'update', 'h1', '--availability', 'drain');
  await eventually(15_000, async () => ((await containersOf('everywhere')).every((c) => c.node !== 'h1') ? true : undefined));
  t.deepEqual(perHost(await running('everywhere')), { h2: 1, h3: 1 });
  await ok('node', 'update', 'h1', '--availability', 'active');
  const back = await eventually(15_000, async () => {
    const counts = perHost(await running('everywhere'));
    return counts.h1 === 1 ? counts : undefined;
  });
  t.deepEqual(back.value, { h1: 1, h2: 1, h3: 1 });
});

test.serial('a killed agent\'s tasks move within the grace period, and none runs twice after it returns', async (t) => {
  const before = await running('web');
  const victim = before[0]!.node!;
  await fixture.lab().kill(`${victim}/agent`);
  const moved = await eventually(15_000, async () => {
    const now = await running('web');
    return now.length === 2 && now.every((task) => task.node !== victim) ? now : undefined;
  });
  t.log(`tasks left ${victim} ${moved.ms} ms after its agent was killed (grace 3 s)`);
  t.true(moved.ms < 3000 + 5000);
  await fixture.lab().start(`${victim}/agent`);
  await eventually(20_000, async () => {
    const containers = await containersOf('web');
    return containers.length === 2 && containers.every((c) => c.node !== victim) ? true : undefined;
  });
  const orphaned = (await tasks('web')).filter((task) => task.node === victim && task.desiredState === 'running');
  t.deepEqual(orphaned, []);
});

test.serial('restart policy: on-failure with max attempts 2 runs a failing task three times, then stops', async (t) => {
  await ok('service', 'create', '--detach', '--name', 'crasher', '--restart-condition', 'on-failure', '--restart-delay', '0s', '--restart-max-attempts', '2',
    'busybox:1.35.0', 'sh', '-c', 'exit 3');
  t.teardown(() => shoal('service', 'rm', 'crasher'));
  await eventually(30_000, async () => ((await tasks('crasher')).filter((task) => task.status.state === 'failed').length === 3 ? true : undefined));
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const all = await tasks('crasher');
  t.is(all.length, 3);
  t.true(all.every((task) => task.status.state === 'failed' && task.status.exitCode === 3));
});

test.serial('an update rolls the tasks over to the new spec, and service rm stops them all', async (t) => {
  const old = (await running('web')).map((task) => task.id).sort();
  const updated = await shoal('service', 'update', '--env', 'VERSION=2', 'web');
  t.is(updated.code, 0, updated.stderr);
  const now = await running('web');
  t.is(now.length, 2);
  t.false(now.some((task) => old.includes(task.id)));
  for (const task of now) t.deepEqual(task.spec.container.env, ['VERSION=2']);
  const inside = await ok('container', 'exec', now[0]!.name, 'sh', '-c', 'echo $VERSION');
  t.is(inside, '2\n');
  await ok('service', 'rm', 'web');
  await eventually(15_000, async () => ((await containersOf('web')).length === 0 ? true : undefined));
  const missing = await shoal('service', 'ps', 'web');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /service "web" not found/);
});

test.serial('rollback returns to the previous spec; logs merge the tasks; a task\'s container answers to the task id', async (t) => {
  await ok('service', 'create', '--name', 'talker', '--replicas', '2', '-e', 'WORD=one', 'busybox:1.35.0', 'sh', '-c', 'echo "say $WORD"; exec sleep 300');
  t.teardown(() => shoal('service', 'rm', 'talker'));
  await ok('service', 'update', '--env', 'WORD=two', 'talker');
  const rolled = await shoal('service', 'rollback', 'talker');
  t.is(rolled.code, 0, rolled.stderr);
  const now = await running('talker');
  t.is(now.length, 2);
  for (const task of now) t.deepEqual(task.spec.container.env, ['WORD=one']);
  const logs = await eventually(10_000, async () => {
    const out = await ok('service', 'logs', 'talker');
    return out.split('\n').filter((line) => line.endsWith('| say one')).length === 2 ? out : undefined;
  });
  t.regex(logs.value, /^talker\.\d\.[0-9a-f]{12}@h\d +\| say one$/m);
  const byTaskId = await ok('container', 'exec', now[0]!.id, 'sh', '-c', 'echo $WORD');
  t.is(byTaskId, 'one\n');
});

test.serial('shoal events streams service and task changes live', async (t) => {
  const events = spawn(process.execPath, [shoalMain, 'events', '--format', 'json'], { env: { ...process.env, SHOAL_CONTEXT: fixture.lab().record.contextFile } });
  t.teardown(() => void events.kill());
  let out = '';
  events.stdout.on('data', (chunk: Buffer) => (out += chunk));
  await new Promise((resolve) => setTimeout(resolve, 500));
  await ok('service', 'create', '--name', 'watched', 'busybox:1.35.0', 'sleep', '300');
  await ok('service', 'rm', 'watched');
  const seen = await eventually(10_000, async () => {
    const lines = out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { type: string; action: string; name?: string; state?: string });
    const complete = lines.some((e) => e.type === 'service' && e.action === 'create' && e.name === 'watched') &&
      lines.some((e) => e.type === 'task' && e.state === 'running') &&
      lines.some((e) => e.type === 'service' && e.action === 'remove');
    return complete ? lines : undefined;
  });
  t.true(seen.value.length >= 3);
  // --since replays what happened before the command started.
  const replay = spawn(process.execPath, [shoalMain, 'events', '--since', '5m', '--filter', 'type=service', '--format', 'json'], {
    env: { ...process.env, SHOAL_CONTEXT: fixture.lab().record.contextFile },
  });
  t.teardown(() => void replay.kill());
  let replayed = '';
  replay.stdout.on('data', (chunk: Buffer) => (replayed += chunk));
  const past = await eventually(10_000, async () => {
    const lines = replayed.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { type: string; action: string; name?: string });
    return lines.some((e) => e.action === 'create' && e.name === 'watched') && lines.some((e) => e.action === 'remove') ? lines : undefined;
  });
  t.true(past.value.every((e) => e.type === 'service'));
});

test.serial('an update to a bad image pauses; with failure action rollback it returns to the old image', async (t) => {
  await ok('service', 'create', '--name', 'careful', '--replicas', '3', '--update-monitor', '1s', 'busybox:1.35.0', 'sleep', '300');
  t.teardown(() => shoal('service', 'rm', 'careful'));
  const paused = await shoal('service', 'update', '--image', 'busybox:no-such-tag', 'careful');
  t.is(paused.code, 1);
  t.regex(paused.stderr, /update paused due to failure or early termination of task [0-9a-f]{12} rejected: .*manifest not found/);
  const status = (JSON.parse(await ok('service', 'inspect', 'careful')) as Array<{ updateStatus: { state: string } }>)[0]!.updateStatus;
  t.is(status.state, 'paused');
  t.is((await running('careful')).filter((task) => task.spec.container.image === 'busybox:1.35.0').length, 2, 'parallelism 1: only one task was tried');

  await ok('service', 'create', '--name', 'undo', '--replicas', '2', '--update-monitor', '1s', '--update-failure-action', 'rollback', 'busybox:1.35.0', 'sleep', '300');
  t.teardown(() => shoal('service', 'rm', 'undo'));
  const rolled = await shoal('service', 'update', '--image', 'busybox:no-such-tag', 'undo');
  t.is(rolled.code, 0, rolled.stderr);
  t.regex(rolled.stderr, /update rolled back due to failure/);
  const after = await eventually(30_000, async () => {
    const service = (JSON.parse(await ok('service', 'inspect', 'undo')) as Array<{ updateStatus: { state: string }; spec: { container: { image: string } } }>)[0]!;
    return service.updateStatus.state === 'rollback_completed' ? service : undefined;
  });
  t.is(after.value.spec.container.image, 'busybox:1.35.0');
  const live = await running('undo');
  t.is(live.length, 2);
  t.true(live.every((task) => task.spec.container.image === 'busybox:1.35.0'));
});

test.serial('start-first updates bring the new task up before the old one stops', async (t) => {
  await ok('service', 'create', '--name', 'overlap', '--replicas', '1', '--update-order', 'start-first', '--update-monitor', '0s', 'busybox:1.35.0', 'sleep', '300');
  t.teardown(() => shoal('service', 'rm', 'overlap'));
  const old = (await running('overlap'))[0]!;
  const updated = await shoal('service', 'update', '--env', 'V=2', 'overlap');
  t.is(updated.code, 0, updated.stderr);
  const all = await tasks('overlap');
  const successor = all.find((task) => task.desiredState === 'running')!;
  const previous = all.find((task) => task.id === old.id)!;
  t.is(previous.desiredState, 'shutdown');
  t.true(Date.parse(successor.createdAt) <= Date.parse(previous.updatedAt), 'the successor existed before the old task was told to stop');
});

test.serial('a health check marks tasks healthy, and an unhealthy task is replaced', async (t) => {
  await ok('service', 'create', '--name', 'checked', '--restart-delay', '0s', '--health-cmd', 'test -f /tmp/ok', '--health-interval', '500ms', '--health-retries', '2',
    'busybox:1.35.0', 'sh', '-c', 'touch /tmp/ok; sleep 4; rm /tmp/ok; exec sleep 300');
  t.teardown(() => shoal('service', 'rm', 'checked'));
  const healthy = await eventually(10_000, async () => (await tasks('checked')).find((task) => task.status.health === 'healthy'));
  t.regex(await ok('service', 'ps', 'checked'), /Running .* \(healthy\)/);
  const failed = await eventually(20_000, async () => (await tasks('checked')).find((task) => task.id === healthy.value.id && task.status.state === 'failed'));
  t.regex(failed.value.status.error ?? '', /unhealthy after 2 failed checks/);
  await eventually(15_000, async () => ((await running('checked')).some((task) => task.id !== healthy.value.id) ? true : undefined));
});

test.serial('bad service input is refused with the reason', async (t) => {
  const badConstraint = await shoal('service', 'create', '--constraint', 'node.colour=blue', 'busybox:1.35.0');
  t.is(badConstraint.code, 1);
  t.regex(badConstraint.stderr, /constraint reads like/);
  await ok('service', 'create', '--detach', '--name', 'twice', 'busybox:1.35.0', 'sleep', '300');
  t.teardown(() => shoal('service', 'rm', 'twice'));
  const duplicate = await shoal('service', 'create', '--detach', '--name', 'twice', 'busybox:1.35.0', 'sleep', '300');
  t.is(duplicate.code, 1);
  t.regex(duplicate.stderr, /a service named "twice" exists already/);
  const badScale = await shoal('service', 'scale', 'twice=many');
  t.is(badScale.code, 1);
  t.regex(badScale.stderr, /is not SERVICE=REPLICAS/);
});
