import test from 'ava';
import type { ContainerRecord } from '../../shared/containers.ts';
import { ipBatch, run } from '../../shared/exec.ts';
import { linkUpCommands } from '../../lab/topology.ts';
import type { ManagerView, NodeView } from '../../shared/schemas.ts';
import type { TaskObject } from '../../shared/services.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

// 3 hosts, each with a manager, 1 s heartbeats (grace 3 s): the leader's host loses its link.
const fixture = useLab(test, { name: 'it-faults', hosts: 3, managers: 3, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { ok } = fixture;
type Task = TaskObject & { name: string; node: string | null };

async function nodes(): Promise<NodeView[]> {
  return JSON.parse(await ok('node', 'ls', '--format', 'json')) as NodeView[];
}

test.serial('a leader\'s host cut off for 20 s: only it is marked down, its tasks move to the others, and on heal every node is Ready and no slot runs twice', async (t) => {
  await ok('service', 'create', '--name', 'web', '--replicas', '9', 'busybox:1.35.0', 'sleep', '600');
  const leader = (JSON.parse(await ok('manager', 'ls', '--format', 'json')) as ManagerView[]).find((m) => m.leader)!;
  const cut = fixture.lab().record.topology.hosts.find((h) => h.name === leader.hostname)!;
  const others = fixture.lab().record.topology.hosts.filter((h) => h !== cut).map((h) => h.name);
  const downEver = new Set<string>();
  const watch = setInterval(() => {
    nodes().then(
      (list) => list.filter((n) => n.status.state === 'down').forEach((n) => downEver.add(n.description.hostname)),
      () => undefined,
    );
  }, 500);
  t.teardown(() => clearInterval(watch));
  await run('ip', ['-n', cut.netns, 'link', 'set', 'eth0', 'down']);
  const linkUp = () => ipBatch(linkUpCommands(fixture.lab().record.topology, cut), cut.netns);
  t.teardown(() => linkUp().then(() => undefined, () => undefined));
  // The others elect a leader and move the cut host's tasks to themselves.
  const moved = await eventually(30_000, async () => {
    const tasks = (JSON.parse(await ok('service', 'ps', 'web', '--format', 'json')) as Task[]).filter((task) => task.desiredState === 'running' && task.status.state === 'running');
    return tasks.length === 9 && tasks.every((task) => task.node !== cut.name) ? tasks : undefined;
  });
  t.log(`tasks off ${cut.name} ${moved.ms} ms after its link went down`);
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, 20_000 - moved.ms)));
  await linkUp();
  const healed = await eventually(20_000, async () => ((await nodes()).every((n) => n.status.state === 'ready') ? true : undefined));
  t.log(`every node Ready ${healed.ms} ms after the link came back`);
  clearInterval(watch);
  t.deepEqual([...downEver], [cut.name], 'only the cut host was ever marked down');
  const perHost = (list: Array<{ node: string | null }>) => {
    const counts: Record<string, number> = {};
    for (const item of list) counts[item.node ?? '-'] = (counts[item.node ?? '-'] ?? 0) + 1;
    return counts;
  };
  const spread = perHost(moved.value);
  t.true(others.every((name) => (spread[name] ?? 0) > 0), `tasks on both healthy hosts: ${JSON.stringify(spread)}`);
  // The cut host's old copies are stopped once it is back: 9 containers in all, one per slot.
  const containers = await eventually(20_000, async () => {
    const list = (JSON.parse(await ok('container', 'ls', '--format', 'json')) as Array<ContainerRecord & { node: string }>).filter((c) => c.name.startsWith('web.'));
    return list.length === 9 ? list : undefined;
  });
  const slots = containers.value.map((c) => c.name.split('.')[1]);
  t.is(new Set(slots).size, 9, `one container per slot: ${slots.join(',')}`);
  // The cut manager is back too (its host's route to etcd came back with the link).
  const managers = await eventually(20_000, async () => {
    const list = JSON.parse(await ok('manager', 'ls', '--format', 'json')) as ManagerView[];
    return list.filter((m) => m.reachable).length === 3 ? list : undefined;
  });
  t.log(`all three managers reachable ${managers.ms} ms after the containers settled`);
});

