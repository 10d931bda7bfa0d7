import { readFile } from 'node:fs/promises';
import test from 'ava';
import { readSupervision } from '../../lab/processes.ts';
import type { ContainerRecord } from '../../shared/containers.ts';
import type { ServiceObject, TaskObject } from '../../shared/services.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

// A Swarm operator's ordinary day on a 3-host lab: every service and node verb, on several
// networks, with Docker's flags. The daemons must come out of it with the pids they started with.
const fixture = useLab(test, { name: 'it-daily', hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { shoal, ok } = fixture;
type Task = TaskObject & { name: string; node: string | null };

const pidsAtStart = new Map<string, number>();

async function daemonPids(): Promise<Map<string, number>> {
  const pids = new Map<string, number>();
  for (const spec of fixture.lab().record.processes) pids.set(spec.key, (await readSupervision(spec))?.pid ?? 0);
  return pids;
}

async function service(name: string): Promise<ServiceObject> {
  return (JSON.parse(await ok('service', 'inspect', name)) as ServiceObject[])[0]!;
}

async function runningTasks(name: string): Promise<Task[]> {
  return (JSON.parse(await ok('service', 'ps', name, '--format', 'json')) as Task[]).filter((t) => t.desiredState === 'running' && t.status.state === 'running');
}

/** Runs a command inside the service's first running task. */
async function inTask(name: string, ...cmd: string[]): Promise<string> {
  const [task] = await runningTasks(name);
  return ok('container', 'exec', task!.name, ...cmd);
}

test.before(async () => {
  for (const [key, pid] of await daemonPids()) pidsAtStart.set(key, pid);
});

test.serial('nodes: drain and activate, labels, promote and demote, ls filters, ps, inspect --pretty', async (t) => {
  await ok('node', 'update', '--availability', 'drain', 'h2');
  t.regex(await ok('node', 'ls', '--filter', 'name=h2'), /h2 +Ready +Drain/);
  await ok('node', 'update', '--availability', 'active', '--label-add', 'zone=east', 'h2');
  t.is((await ok('node', 'ls', '-q', '--filter', 'node.label=zone=east')).trim().split('\n').length, 1);
  t.regex(await ok('node', 'ls', '--filter', 'role=manager'), /h1 +Ready/);
  t.regex(await ok('node', 'promote', 'h3'), /h3 promoted to a manager/);
  t.regex(await ok('node', 'demote', 'h3'), /h3 demoted to a worker/);
  t.regex(await ok('node', 'inspect', '--pretty', 'h1'), /Hostname: +h1\n[\s\S]*Leader: +Yes/);
  const bad = await shoal('node', 'ls', '--filter', 'colour=blue');
  t.is(bad.code, 1);
  t.regex(bad.stderr, /"colour" is not a filter here; filters: id, label, node.label, membership, name, role/);
});

test.serial('services across networks: create, scale, update with add/rm pairs, rollback, logs, ps and ls filters', async (t) => {
  await ok('network', 'create', '-d', 'overlay', '--attachable', 'ops-front');
  await ok('network', 'create', '-d', 'overlay', 'ops-back');
  t.regex(await ok('network', 'ls', '--filter', 'driver=overlay', '--filter', 'name=ops-'), /ops-back[\s\S]*ops-front|ops-front[\s\S]*ops-back/);

  await ok('service', 'create', '--name', 'everywhere', '--mode', 'global', '--network', 'ops-front', 'busybox:1.35.0', 'sleep', '600');
  t.is((await runningTasks('everywhere')).length, 3);
  const once = await shoal('service', 'create', '--name', 'once', '--restart-condition', 'none', '--detach', 'busybox:1.35.0', 'true');
  t.is(once.code, 0, once.stderr);
  await ok('service', 'create', '--name', 'limited', '--replicas', '2', '--network', 'ops-front', '--limit-memory', '64m', '--limit-cpu', '0.5', '--reserve-memory', '16m',
    '--env', 'GREETING=hello', '--label', 'team=ops', 'busybox:1.35.0', 'sh', '-c', 'echo "$GREETING from $HOSTNAME"; exec sleep 600');
  await ok('service', 'scale', 'limited=4');
  t.is((await runningTasks('limited')).length, 4);

  // The add/rm pairs and the resource flags of `service update`.
  await ok('service', 'update', '--env-add', 'COLOUR=blue', '--env-rm', 'GREETING', '--label-add', 'tier=back', '--label-rm', 'team',
    '--container-label-add', 'owner=ops', '--mount-add', 'type=tmpfs,target=/scratch', '--network-add', 'ops-back', '--limit-memory', '96m', '--limit-pids', '64',
    '--update-parallelism', '2', 'limited');
  const updated = await service('limited');
  t.deepEqual(updated.spec.container.env, ['COLOUR=blue']);
  t.deepEqual(updated.spec.labels, { tier: 'back' });
  t.deepEqual(updated.spec.container.labels, { owner: 'ops' });
  t.deepEqual(updated.spec.container.networks, ['ops-front', 'ops-back']);
  t.is(updated.spec.container.resources.memoryBytes, 96 * 1024 * 1024);
  t.is(updated.spec.container.resources.pidsLimit, 64);
  t.is(updated.spec.update.parallelism, 2);
  const tasks = await runningTasks('limited');
  t.is(tasks.length, 4);
  t.true(tasks.every((task) => task.attachments?.some((a) => a.networkName === 'ops-back')), 'every new task is on the added network');
  t.regex(await inTask('limited', 'sh', '-c', 'echo $COLOUR; grep " /scratch " /proc/mounts'), /^blue\n.*tmpfs/);

  await ok('service', 'update', '--constraint-add', 'node.hostname==h1', 'limited');
  t.true((await runningTasks('limited')).every((task) => task.node === 'h1'));
  await ok('service', 'update', '--constraint-rm', 'node.hostname==h1', '--network-rm', 'ops-back', '--mount-rm', '/scratch', 'limited');
  t.deepEqual((await service('limited')).spec.placement.constraints, []);

  // Rollback goes back one change, whatever it was.
  await ok('service', 'rollback', 'limited');
  t.deepEqual((await service('limited')).spec.placement.constraints, ['node.hostname==h1']);
  await ok('service', 'scale', 'limited=3');
  await ok('service', 'rollback', 'limited');
  t.is((await service('limited')).spec.replicas, 4, 'a scale is rolled back too, as Docker keeps the previous spec');

  t.is((await ok('service', 'ls', '-q', '--filter', 'mode=global')).trim(), (await service('everywhere')).id.slice(0, 12));
  t.is((await ok('service', 'ls', '-q', '--no-trunc', '--filter', 'name=every')).trim(), (await service('everywhere')).id);
  const shutdown = await ok('service', 'ps', 'limited', '--filter', 'desired-state=shutdown', '--format', 'json');
  t.true((JSON.parse(shutdown) as Task[]).length > 0 && (JSON.parse(shutdown) as Task[]).every((task) => task.desiredState === 'shutdown'));
  t.regex(await ok('service', 'inspect', '--pretty', 'limited'), /Name: +limited[\s\S]*Replicas: +4[\s\S]*Memory: +96MiB/);

  await ok('service', 'create', '--name', 'talker', '--replicas', '1', 'busybox:1.35.0', 'sh', '-c', 'echo one; echo two; exec sleep 600');
  const logs = await eventually(15_000, async () => {
    const out = await ok('service', 'logs', '--timestamps', '--no-task-ids', 'talker');
    return out.includes('two') ? out : undefined;
  });
  t.regex(logs.value, /^\d{4}-\d\d-\d\dT\S+ talker\.1@h\d +\| one$/m);
  t.is(await ok('service', 'logs', '--raw', '--tail', '1', 'talker'), 'two\n');

  // Docker flags Shoal cannot honour are refused with their reason, and nothing changes.
  const group = await shoal('service', 'update', '--group-add', 'staff', 'limited');
  t.is(group.code, 1);
  t.regex(group.stderr, /^shoal: --group-add is not supported: supplementary groups/m);
  // A secret that does not exist is named, and nothing changes either.
  const secret = await shoal('service', 'update', '--secret-add', 'db-password', 'limited');
  t.is(secret.code, 1);
  t.regex(secret.stderr, /secret.*db-password.*not found|no secret.*db-password/i);
  t.regex(secret.stderr, /shoal secret create db-password FILE/);
  const unknownNetwork = await shoal('service', 'update', '--network-rm', 'ops-nowhere', 'limited');
  t.regex(unknownNetwork.stderr, /--network-rm: the service is not on ops-nowhere/);
  const badSubnet = await shoal('network', 'create', '-d', 'overlay', '--subnet', '198.19.300.0/24', 'ops-bad');
  t.is(badSubnet.code, 1);

  for (const name of ['everywhere', 'once', 'limited', 'talker']) await ok('service', 'rm', name);
  await eventually(30_000, async () => {
    const containers = JSON.parse(await ok('container', 'ls', '--format', 'json')) as ContainerRecord[];
    return containers.length === 0 ? true : undefined;
  });
  await ok('network', 'rm', 'ops-front', 'ops-back');
  t.regex(await ok('network', 'rm', '-f', 'ops-front'), /^$/);
});

test.serial('shoal info names the cluster, its leader, the nodes by state and this host\'s kernel features', async (t) => {
  const info = JSON.parse(await ok('info', '--format', 'json')) as {
    cluster: { leader: string; nodes: { total: number; ready: number } };
    host: { runtime: string; features: Array<{ name: string; present: boolean }> };
  };
  t.is(info.cluster.leader, 'h1');
  t.is(info.cluster.nodes.total, 3);
  t.is(info.cluster.nodes.ready, 3);
  t.regex(info.host.runtime, /^runc /);
  const present = Object.fromEntries(info.host.features.map((f) => [f.name, f.present]));
  t.true(present.vxlan);
  t.true(present.bridge);
  // Measured on these machines: no IPVS and no 802.1q. Where a kernel has them, info says so.
  t.is(typeof present.ip_vs, 'boolean');
  t.is(typeof present['8021q'], 'boolean');
});

test.serial('events replays what happened, filtered by type and action, up to --until', async (t) => {
  const out = await ok('events', '--since', '10m', '--until', '1s', '--filter', 'type=service', '--filter', 'event=remove', '--format', 'json');
  const names = out.trim().split('\n').map((line) => (JSON.parse(line) as { name: string; type: string; action: string }));
  t.true(names.every((e) => e.type === 'service' && e.action === 'remove'));
  t.deepEqual(names.map((e) => e.name).sort(), ['everywhere', 'limited', 'once', 'talker']);
});

test.serial('after all that, every daemon is the process it started as, and no log names an unhandled error', async (t) => {
  const now = await daemonPids();
  for (const [key, pid] of pidsAtStart) t.is(now.get(key), pid, `${key} was restarted`);
  for (const spec of fixture.lab().record.processes) {
    const log = await readFile(spec.log, 'utf8');
    t.notRegex(log, /unhandled|Unhandled 'error' event|node:events/i, `${spec.key}'s log (${spec.log})`);
    t.is((await readSupervision(spec))?.restarts, 0, spec.key);
  }
});

test.serial('an agent killed from outside is restarted by the lab, its node is Ready again, its containers adopted once', async (t) => {
  await ok('service', 'create', '--name', 'steady', '--replicas', '3', 'busybox:1.35.0', 'sleep', '600');
  const before = await runningTasks('steady');
  const onH2 = before.find((task) => task.node === 'h2')!;
  const spec = fixture.lab().process('h2/agent');
  const old = (await readSupervision(spec))!;
  // Not `lab kill` (a deliberate host failure): a crash, as a stray kill -9 would be.
  process.kill(old.pid, 'SIGKILL');
  const restarted = await eventually(15_000, async () => {
    const seen = await readSupervision(spec);
    return seen?.state === 'running' && seen.pid !== old.pid ? seen : undefined;
  });
  t.is(restarted.value.restarts, old.restarts + 1);
  t.is(restarted.value.lastExit?.signal, 'SIGKILL');
  t.regex(await ok('lab', 'status', '--name', 'it-daily'), /h2\/agent +\S+ +\d+ +running +1 +SIGKILL at/);
  await eventually(20_000, async () => ((await ok('node', 'ls')).match(/h2 +Ready/) ? true : undefined));
  const after = await runningTasks('steady');
  t.is(after.length, 3);
  t.true(after.some((task) => task.id === onH2.id && task.status.containerId === onH2.status.containerId), 'the task on h2 kept its container');
  // The node can still be Ready from before the kill while the new agent starts: the listing
  // says so, and is read again until h2 answers.
  const listing = await eventually(15_000, async () => {
    const listed = await shoal('container', 'ls', '--format', 'json');
    return listed.code === 0 && !/h2 did not answer/.test(listed.stderr) ? listed.stdout : undefined;
  });
  const containers = (JSON.parse(listing.value) as Array<ContainerRecord & { node: string }>).filter((c) => c.name.startsWith('steady.'));
  t.is(containers.length, 3, 'no container was started twice');
  await ok('service', 'rm', 'steady');
});
