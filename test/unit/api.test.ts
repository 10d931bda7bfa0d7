import test from 'ava';
import { initCluster } from '../../manager/cluster.ts';
import { ensureBuiltinNetworks } from '../../manager/networks.ts';
import { keys } from '../../shared/keys.ts';
import type { ServiceObject } from '../../shared/services.ts';
import { buildApi } from '../../manager/api/server.ts';
import { registerNode, setNodeState } from '../../manager/nodes.ts';
import { silentLogger } from '../../shared/log.ts';
import { ClusterRecord, type NodeView } from '../../shared/schemas.ts';
import { MemoryStore } from '../../shared/store/memory.ts';
import { testClusterKeys } from '../helpers/cluster-keys.ts';
import { hostDescription } from '../helpers/node-description.ts';

const description = hostDescription;

async function api() {
  const store = new MemoryStore();
  const clusterKeys = await testClusterKeys();
  const { apiToken } = await initCluster(store, { heartbeatPeriodMs: 5000, keys: clusterKeys });
  await registerNode(store, { nodeId: 'node-one', role: 'worker', description, labels: {} });
  const app = await buildApi({ store, leadership: { leaderId: 'm1', isLeader: true, readLeader: async () => 'm1' }, managerId: 'm1', version: 'test', log: silentLogger, clusterKeys });
  const headers = { authorization: `Bearer ${apiToken}` };
  return { app, headers, store };
}

test('requests without the bearer token are refused with 401 and a code', async (t) => {
  const { app } = await api();
  const response = await app.inject({ method: 'GET', url: '/v1/nodes' });
  t.is(response.statusCode, 401);
  t.is(response.json().code, 'unauthorized');
  const wrong = await app.inject({ method: 'GET', url: '/v1/nodes', headers: { authorization: 'Bearer nope' } });
  t.is(wrong.statusCode, 401);
});

test('node update changes availability and labels, found by hostname', async (t) => {
  const { app, headers } = await api();
  const response = await app.inject({ method: 'PATCH', url: '/v1/nodes/h1', headers, payload: { availability: 'drain', labelAdd: { zone: 'a' } } });
  t.is(response.statusCode, 200);
  const node = response.json<NodeView>();
  t.is(node.spec.availability, 'drain');
  t.deepEqual(node.spec.labels, { zone: 'a' });
});

test('an invalid node update is a 400 that names the field, and changes nothing', async (t) => {
  const { app, headers } = await api();
  const response = await app.inject({ method: 'PATCH', url: '/v1/nodes/h1', headers, payload: { availability: 'sleep' } });
  t.is(response.statusCode, 400);
  t.is(response.json().code, 'invalid_request');
  t.regex(response.json().message, /availability/);
  const node = (await app.inject({ method: 'GET', url: '/v1/nodes/h1', headers })).json<NodeView>();
  t.is(node.spec.availability, 'active');
});

test('an unknown node is a 404 with code node_not_found', async (t) => {
  const { app, headers } = await api();
  const response = await app.inject({ method: 'GET', url: '/v1/nodes/nosuch', headers });
  t.is(response.statusCode, 404);
  t.is(response.json().code, 'node_not_found');
});

test('rotating a join token replaces it', async (t) => {
  const { app, headers } = await api();
  const before = (await app.inject({ method: 'GET', url: '/v1/join-tokens/worker', headers })).json().token;
  const rotated = (await app.inject({ method: 'POST', url: '/v1/join-tokens/worker/rotate', headers })).json().token;
  t.not(before, rotated);
  t.is((await app.inject({ method: 'GET', url: '/v1/join-tokens/worker', headers })).json().token, rotated);
  t.is((await app.inject({ method: 'GET', url: '/v1/join-tokens/admin', headers })).statusCode, 400);
});

test('a ready node is removed only with force', async (t) => {
  const { app, headers, store } = await api();
  await setNodeState(store, 'node-one', 'ready', 'session open', { fence: [] });
  const refused = await app.inject({ method: 'DELETE', url: '/v1/nodes/h1', headers });
  t.is(refused.statusCode, 409);
  t.regex(refused.json().hint, /--force/);
  t.is((await app.inject({ method: 'GET', url: '/v1/nodes/h1', headers })).statusCode, 200);
  t.is((await app.inject({ method: 'DELETE', url: '/v1/nodes/h1?force=true', headers })).statusCode, 200);
  t.is((await app.inject({ method: 'GET', url: '/v1/nodes/h1', headers })).statusCode, 404);
});

test('a port published as 0 gets the lowest free one from 30000, kept across an update; a host-mode one must be given', async (t) => {
  const { app, headers, store } = await api();
  await ensureBuiltinNetworks(store, ClusterRecord.parse((await store.get(keys.cluster))!.value));
  const create = (name: string, ports: unknown[]) => app.inject({ method: 'POST', url: '/v1/services', headers, payload: { name, container: { image: 'busybox' }, endpoint: { ports } } });
  const first = (await create('a', [{ targetPort: 80, publishedPort: 0 }, { targetPort: 81, publishedPort: 30000 }])).json<ServiceObject>();
  t.deepEqual(first.spec.endpoint.ports.map((p) => p.publishedPort), [30001, 30000], 'the picked port skips one the service gives itself');
  const second = (await create('b', [{ targetPort: 80, publishedPort: 0 }])).json<ServiceObject>();
  t.is(second.spec.endpoint.ports[0]!.publishedPort, 30002);
  const read = (await app.inject({ method: 'GET', url: '/v1/services/b', headers })).json<ServiceObject>();
  const spec = { ...read.spec, replicas: 2, endpoint: { ...read.spec.endpoint, ports: [{ targetPort: 80, publishedPort: 0, protocol: 'tcp', mode: 'ingress' }] } };
  const updated = (await app.inject({ method: 'PATCH', url: '/v1/services/b', headers, payload: { spec, version: read.version } })).json<ServiceObject>();
  t.is(updated.spec.endpoint.ports[0]!.publishedPort, 30002, 'an update that leaves it to the cluster keeps the port');
  t.is(updated.specVersion, read.specVersion, 'and the tasks are not rolled for it');
  const host = await create('c', [{ targetPort: 80, publishedPort: 0, mode: 'host' }]);
  t.is(host.statusCode, 400);
  t.regex(host.json<{ message: string }>().message, /host-mode port needs its published port/);
});

test('a taken service name is a 409 that holds no address; a service on no network is one store round trip', async (t) => {
  const { app, headers, store } = await api();
  await ensureBuiltinNetworks(store, ClusterRecord.parse((await store.get(keys.cluster))!.value));
  t.is((await app.inject({ method: 'POST', url: '/v1/networks', headers, payload: { name: 'front', driver: 'overlay' } })).statusCode, 201);
  const create = (name: string, networks: string[]) => app.inject({ method: 'POST', url: '/v1/services', headers, payload: { name, container: { image: 'busybox', networks } } });
  t.is((await create('web', ['front'])).statusCode, 200);
  const leases = async () => (await store.list(keys.addresses)).length;
  const held = await leases();
  // What a create costs: a user waits for each of these in turn.
  const calls: string[] = [];
  for (const method of ['get', 'list', 'commit'] as const) {
    const original = store[method].bind(store) as (...args: unknown[]) => Promise<unknown>;
    (store as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => (calls.push(method), original(...args));
  }
  t.is((await create('solo', [])).statusCode, 200);
  t.deepEqual(calls, ['commit'], 'a service on no network is stored by one transaction, its name checked by it');
  for (const networks of [[], ['front']]) {
    const again = await create('web', networks);
    t.is(again.statusCode, 409, `with networks [${networks.join()}]`);
    t.regex(again.json<{ message: string }>().message, /a service named "web" exists already/);
  }
  t.is(await leases(), held, 'the refused creates hold no virtual address');
});

test('a secret is sealed in the store, never shown, refused while a service uses it; a config shows its data', async (t) => {
  const { app, headers, store } = await api();
  const data = Buffer.from('hunter2').toString('base64');
  const created = await app.inject({ method: 'POST', url: '/v1/secrets', headers, payload: { name: 'pw', data } });
  t.is(created.statusCode, 201);
  t.false(created.body.includes(data));
  const raw = JSON.stringify(await store.list(keys.fileObjects('secret')));
  t.regex(raw, /"sealed":"v1\./);
  t.false(raw.includes(data) || raw.includes('hunter2'));
  const again = await app.inject({ method: 'POST', url: '/v1/secrets', headers, payload: { name: 'pw', data, reuse: true } });
  t.is(again.statusCode, 200, 'the same data under reuse is the same secret');
  const other = await app.inject({ method: 'POST', url: '/v1/secrets', headers, payload: { name: 'pw', data: Buffer.from('x').toString('base64'), reuse: true } });
  t.is(other.statusCode, 409);
  await app.inject({ method: 'POST', url: '/v1/services', headers, payload: { name: 'db', container: { image: 'busybox', secrets: [{ source: 'pw', target: '/run/secrets/pw' }] } } });
  const inUse = await app.inject({ method: 'DELETE', url: '/v1/secrets/pw', headers });
  t.is(inUse.statusCode, 409);
  t.regex(inUse.json<{ message: string }>().message, /in use by service db/);
  const missing = await app.inject({ method: 'POST', url: '/v1/services', headers, payload: { name: 'x', container: { image: 'busybox', secrets: [{ source: 'nope', target: '/run/secrets/nope' }] } } });
  t.is(missing.statusCode, 404);
  const config = await app.inject({ method: 'POST', url: '/v1/configs', headers, payload: { name: 'c', data } });
  t.is(config.json<{ data: string }>().data, data);
});
