import test from 'ava';
import { settingsOnlyCluster } from '../helpers/cluster-keys.ts';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type LocalEtcd, startLocalEtcd, sweepOrphanedLocalEtcds } from '../../lab/local-etcd.ts';
import { isAlive, stopProcesses } from '../../lab/processes.ts';
import { run } from '../../shared/exec.ts';
import { allocateAddress, createNetwork } from '../../manager/networks.ts';
import { NetworkSpec } from '../../netplug/model.ts';
import { keys } from '../../shared/keys.ts';
import { defaultAddressPools } from '../../shared/schemas.ts';
import { EtcdStore } from '../../shared/store/etcd.ts';
import { updateObject } from '../../shared/store/objects.ts';
import { storeConformance } from '../helpers/store-conformance.ts';
import { eventually } from '../helpers/cli.ts';

let etcd: LocalEtcd | undefined;
let store: EtcdStore | undefined;

test.before(async () => {
  etcd = await startLocalEtcd();
  store = new EtcdStore([etcd.endpoint]);
});

test.after.always(async () => {
  await store?.close();
  await etcd?.stop();
});

storeConformance(test, 'etcd store', () => store!);

test('etcd store: concurrent read-modify-writes lose no update', async (t) => {
  const key = `/conformance/counter-${process.pid}`;
  await store!.commit([{ op: 'create', key, value: 0 }]);
  await Promise.all(Array.from({ length: 10 }, () => updateObject<number>(store!, key, (n) => n + 1, 50)));
  t.is((await store!.get<number>(key))?.value, 10);
});

test('etcd: 50 concurrent address allocations, from two stores as two managers would, never hand one out twice', async (t) => {
  const second = new EtcdStore([etcd!.endpoint]);
  t.teardown(() => second.close());
  const cluster = settingsOnlyCluster(defaultAddressPools);
  const network = await createNetwork(store!, cluster, NetworkSpec.parse({ name: `busy-${Date.now()}`, driver: 'overlay', ipam: { pools: [{ subnet: '198.19.90.0/24' }] } }));
  const leases = await Promise.all(Array.from({ length: 50 }, (_, i) => allocateAddress(i % 2 ? second : store!, network, `task${i}`)));
  t.is(new Set(leases.map((l) => l.address)).size, 50);
  t.is((await store!.list(keys.networkAddresses(network.id))).length, 50);
});

test('etcd: watchers of one key share one parsed value, which is let go once each has it', async (t) => {
  const local = new EtcdStore([etcd!.endpoint]);
  t.teardown(() => local.close());
  const prefix = `/shared-parse-${process.pid}/`;
  const seen: unknown[][] = [[], [], []];
  const watches = await Promise.all(seen.map((into) => local.watch(prefix, (event) => event.type === 'put' && into.push(event.value))));
  t.teardown(() => Promise.all(watches.map((w) => w.close())));
  await local.commit([{ op: 'create', key: `${prefix}a`, value: { n: 1 } }]);
  await eventually(5_000, async () => (seen.every((values) => values.length === 1) ? true : undefined));
  t.deepEqual(seen[0], [{ n: 1 }]);
  t.is(seen[1]![0], seen[0]![0], 'parsed once, the same object for each watcher');
  t.is(seen[2]![0], seen[0]![0]);
  // Kept after the last watcher took it, every value would outlive young collections.
  t.is((local as unknown as { recentlyParsed: Map<string, unknown> }).recentlyParsed.size, 0);
  // A closed watch is not waited for.
  await watches[2]!.close();
  await local.commit([{ op: 'update', key: `${prefix}a`, value: { n: 2 }, version: (await local.get(`${prefix}a`))!.version }]);
  await eventually(5_000, async () => (seen[0]!.length === 2 && seen[1]!.length === 2 ? true : undefined));
  t.is((local as unknown as { recentlyParsed: Map<string, unknown> }).recentlyParsed.size, 0);
});

test('a local etcd left running by a test that died is swept by the next start; one still owned is not', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-etcd-'));
  // Its starter, a process that is gone (a shell that has exited), as a test's killed worker is.
  const gone = Number((await run('sh', ['-c', 'echo $$'])).trim());
  await writeFile(join(dir, 'owner'), String(gone));
  const [client, peer] = [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
  const shell = `etcd --name orphan --data-dir ${join(dir, 'data')} --listen-client-urls ${client} --advertise-client-urls ${client} --listen-peer-urls ${peer} --initial-advertise-peer-urls ${peer} --initial-cluster orphan=${peer} >/dev/null 2>&1 & echo $!`;
  const pid = Number((await run('sh', ['-c', shell])).trim());
  t.teardown(async () => {
    await stopProcesses([pid]);
    await rm(dir, { recursive: true, force: true });
  });
  t.true(isAlive(pid));
  await sweepOrphanedLocalEtcds();
  t.false(isAlive(pid), 'the orphan is stopped');
  t.false(existsSync(dir), 'and its directory removed');
  t.true(await store!.get('/anything').then(() => true), "this file's own etcd, started by this process, still answers");
});
