import test from 'ava';
import { initCluster } from '../../manager/cluster.ts';
import { buildApi } from '../../manager/api/server.ts';
import { registerNode, setNodeState } from '../../manager/nodes.ts';
import { silentLogger } from '../../shared/log.ts';
import type { NodeDescription, NodeView } from '../../shared/schemas.ts';
import { MemoryStore } from '../../shared/store/memory.ts';
import { testClusterKeys } from '../helpers/cluster-keys.ts';

const description: NodeDescription = {
  hostname: 'h1', address: '198.18.0.1', cpus: 2, memoryBytes: 1 << 30, kernel: '6', os: 'linux', arch: 'x64',
  runtime: { name: 'runc', version: '1' }, engineLabels: {}, agentVersion: '0.1.0', p2pAddrs: [],
};

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
