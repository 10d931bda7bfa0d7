import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import type { NodeView } from '../../shared/schemas.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

const fixture = useLab(test, { name: 'it-backup', hosts: 2, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { ok, shoal } = fixture;

interface Listed {
  spec: { name: string; replicas: number };
  running: number;
}

const services = async () => (JSON.parse(await ok('service', 'ls', '--format', 'json')) as Listed[]).map((s) => `${s.spec.name}:${s.spec.replicas}`).sort();
const networks = async () => (JSON.parse(await ok('network', 'ls', '--format', 'json')) as Array<{ name?: string; spec?: { name: string } }>).map((n) => n.spec?.name ?? n.name).sort();

test.serial('a backup restored brings back the services and networks it holds, drops what came after, and the agents rejoin', async (t) => {
  await ok('network', 'create', '--driver', 'overlay', 'kept');
  await ok('service', 'create', '--name', 'web', '--replicas', '3', '--network', 'kept', 'busybox:1.35.0', 'sleep', '600');
  const file = join(fixture.scratch(), 'cluster.snapshot');
  const backedUp = await ok('cluster', 'backup', file);
  t.regex(backedUp, /Backed up the cluster to .* keys at revision \d+/);
  t.is((await stat(file)).mode & 0o777, 0o600, 'the backup (it holds the tokens) is its owner\'s only');
  const before = { services: await services(), networks: await networks() };

  // After the backup: a service scaled away, one more made, a network removed and one added.
  await ok('service', 'scale', 'web=1');
  await ok('service', 'create', '--name', 'later', '--replicas', '1', 'busybox:1.35.0', 'sleep', '600');
  await ok('network', 'create', '--driver', 'overlay', 'after');

  await ok('lab', 'restore', '--name', fixture.lab().name, file);
  t.deepEqual(await services(), before.services, 'the services are those of the backup');
  t.deepEqual(await networks(), before.networks, 'the networks are those of the backup');
  const ready = await eventually(60_000, async () => ((JSON.parse(await ok('node', 'ls', '--format', 'json')) as NodeView[]).every((n) => n.status.state === 'ready') ? true : undefined));
  t.log(`both agents rejoined ${ready.ms} ms after the restore`);
  // What runs on the hosts, not only what the restored store says: three web containers, no later.
  const containers = await eventually(60_000, async () => {
    const list = (JSON.parse(await ok('container', 'ls', '--format', 'json')) as Array<{ name: string; state: string }>).filter((c) => c.state === 'running').map((c) => c.name);
    return list.filter((name) => name.startsWith('web.')).length === 3 && !list.some((name) => name.startsWith('later.')) ? list : undefined;
  });
  t.log(`3 web containers and none of later running ${containers.ms} ms later: ${containers.value.join(', ')}`);
  // The restored cluster still takes work, with the same API token as before.
  await ok('service', 'scale', 'web=4');
});

test.serial('a file that is not a backup is refused before anything is stopped', async (t) => {
  const file = join(fixture.scratch(), 'not-a-snapshot');
  await writeFile(file, 'hello\n');
  const result = await shoal('lab', 'restore', '--name', fixture.lab().name, file);
  t.not(result.code, 0);
  t.regex(result.stderr, /snapshot status failed/);
  t.is((await shoal('service', 'ls')).code, 0, 'the cluster still answers');
});
