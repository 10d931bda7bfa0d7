import test from 'ava';
import { etcdctlFlags } from '../../lab/lab.ts';
import { readSupervision } from '../../lab/processes.ts';
import { run } from '../../shared/exec.ts';
import type { ManagerView, NodeView } from '../../shared/schemas.ts';
import { cutFromEtcd } from '../chaos/faults.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

// 3 hosts, each with a manager, and 3 etcd members: the store's faults, one at a time.
const fixture = useLab(test, { name: 'it-etcd', hosts: 3, managers: 3, etcdMembers: 3, heartbeatPeriodMs: 1000 });
const { ok, shoal } = fixture;

async function running(service: string): Promise<number> {
  const tasks = JSON.parse(await ok('service', 'ps', service, '--format', 'json')) as Array<{ desiredState: string; status: { state: string } }>;
  return tasks.filter((task) => task.desiredState === 'running' && task.status.state === 'running').length;
}

async function converged(service: string, replicas: number, timeoutMs = 60_000): Promise<number> {
  return (await eventually(timeoutMs, async () => ((await running(service)) === replicas ? true : undefined))).ms;
}

async function leaderHost(): Promise<string | undefined> {
  return (JSON.parse(await ok('manager', 'ls', '--format', 'json')) as ManagerView[]).find((m) => m.leader)?.hostname;
}

/** The restarts of every Shoal daemon of the lab: a fault of the store must not need one. */
async function shoalRestarts(): Promise<number> {
  let restarts = 0;
  for (const spec of fixture.lab().record.processes.filter((p) => p.key.includes('/'))) restarts += (await readSupervision(spec))?.restarts ?? 0;
  return restarts;
}

test.serial.before(async () => {
  await ok('service', 'create', '--name', 'web', '--replicas', '4', 'busybox:1.35.0', 'sleep', '600');
  await converged('web', 4);
});

test.serial('one etcd member of three killed: the cluster carries on, and the member catches up when it is back', async (t) => {
  const lab = fixture.lab();
  await lab.kill('etcd0');
  t.teardown(() => lab.start('etcd0').catch(() => undefined));
  await ok('service', 'scale', 'web=6', '--detach');
  t.log(`6 running ${await converged('web', 6)} ms after the scale, with etcd0 down`);
  await lab.start('etcd0');
  const caughtUp = await eventually(30_000, async () => {
    const status = JSON.parse(await run('ip', ['netns', 'exec', lab.record.topology.infraNetns, 'etcdctl', ...etcdctlFlags(lab.record), 'endpoint', 'status', '-w', 'json'])) as Array<{ Status: { header: { revision: number } } }>;
    const revisions = new Set(status.map((s) => s.Status.header.revision));
    return status.length === 3 && revisions.size === 1 ? [...revisions][0] : undefined;
  });
  t.log(`all three members at revision ${caughtUp.value} ${caughtUp.ms} ms after etcd0 was started again`);
  t.is(await shoalRestarts(), 0, 'no Shoal process was restarted');
});

test.serial('every etcd member stopped for 10 s: the API says so with a 503 instead of hanging, and everything resumes', async (t) => {
  const lab = fixture.lab();
  const members = lab.record.topology.etcdAddresses.map((_, i) => `etcd${i}`);
  for (const member of members) await lab.kill(member);
  t.teardown(async () => {
    for (const member of members) await lab.start(member).catch(() => undefined);
  });
  const stoppedAt = Date.now();
  const answer = await shoal('service', 'ls');
  const answeredMs = Date.now() - stoppedAt;
  t.not(answer.code, 0);
  t.regex(answer.stderr, /cluster store \(etcd\) is unavailable/, 'the CLI says the store is down');
  t.true(answeredMs < 20_000, `answered in ${answeredMs} ms (every manager tried)`);
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, 10_000 - (Date.now() - stoppedAt))));
  for (const member of members) await lab.start(member);
  const back = await eventually(60_000, async () => ((await shoal('service', 'scale', 'web=8', '--detach')).code === 0 ? true : undefined));
  t.log(`the API took writes again ${back.ms} ms after etcd was started`);
  t.log(`8 running ${await converged('web', 8, 90_000)} ms later`);
  const ready = await eventually(30_000, async () => ((JSON.parse(await ok('node', 'ls', '--format', 'json')) as NodeView[]).every((n) => n.status.state === 'ready') ? true : undefined));
  t.log(`every node Ready ${ready.ms} ms later`);
  const leads = await eventually(10_000, () => leaderHost());
  t.log(`${leads.value} named as the leader by the answering manager ${leads.ms} ms later`);
  t.is(await shoalRestarts(), 0, 'no Shoal process was restarted');
});

test.serial('the leader cut off from etcd stops leading and answers 503; healed, it follows the new leader', async (t) => {
  const lab = fixture.lab();
  const old = (await leaderHost())!;
  const host = lab.record.topology.hosts.find((h) => h.name === old)!;
  const heal = await cutFromEtcd(lab.record.topology, host);
  t.teardown(heal);
  const moved = await eventually(60_000, async () => {
    const now = await leaderHost().catch(() => undefined);
    return now && now !== old ? now : undefined;
  }).catch(async (error: unknown) => {
    // What each manager said, to tell a missing election from a stale view.
    const views = await Promise.all(lab.record.topology.hosts.map(async (h) => `${h.name}: ${(await runShoalOn(lab.record.dir, h.name, ['manager', 'ls'])).stdout || 'no answer'}`));
    throw new Error(`${(error as Error).message}; the managers say:\n${views.join('\n')}`);
  });
  t.log(`${moved.value} leads ${moved.ms} ms after ${old} lost etcd`);
  const direct = await runShoalOn(lab.record.dir, old, ['service', 'ls']);
  t.not(direct.code, 0);
  t.regex(direct.stderr, /cluster store \(etcd\) is unavailable/, `${old} says it cannot reach the store`);
  await ok('service', 'scale', 'web=5', '--detach');
  await converged('web', 5);
  await heal();
  const rejoined = await eventually(30_000, async () => {
    const managers = JSON.parse(await ok('manager', 'ls', '--format', 'json')) as ManagerView[];
    return managers.filter((m) => m.reachable).length === 3 && managers.filter((m) => m.leader).length === 1 ? managers : undefined;
  });
  t.log(`all three managers reachable ${rejoined.ms} ms after the heal`);
  t.is((await runShoalOn(lab.record.dir, old, ['service', 'ls'])).code, 0, `${old} answers again`);
  t.is(await shoalRestarts(), 0, 'no Shoal process was restarted');
});

function runShoalOn(labDir: string, hostname: string, args: string[]) {
  return shoal('--host', `unix://${labDir}/${hostname}/shoal.sock`, ...args);
}
