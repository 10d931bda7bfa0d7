import test from 'ava';
import { NodeHealthLoop, nodeStateCorrections, nodesToMarkDown } from '../../manager/health/health.ts';
import { registerNode, setNodeState } from '../../manager/nodes.ts';
import { keys } from '../../shared/keys.ts';
import { silentLogger } from '../../shared/log.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { MemoryStore } from '../../shared/store/memory.ts';

const description = hostDescription;
import type { NodeStatus } from '../../shared/schemas.ts';
import { hostDescription } from '../helpers/node-description.ts';

const node = (id: string, state: NodeStatus['state'], createdAt = 0) => ({ id, status: { state, message: '' }, createdAt: new Date(createdAt).toISOString() });

test('a node whose heartbeats stopped longer than the grace period is marked down', (t) => {
  const seen: Record<string, number> = { a: 1_000, b: 9_000 };
  t.deepEqual(nodesToMarkDown([node('a', 'ready'), node('b', 'ready')], (id) => seen[id], 0, 10_000, 5_000), ['a']);
});

test('a node already down is not marked again', (t) => {
  t.deepEqual(nodesToMarkDown([node('a', 'down')], () => 0, 0, 100_000, 5_000), []);
});

test('a new leader gives nodes it has not heard from a full grace period', (t) => {
  t.deepEqual(nodesToMarkDown([node('a', 'ready')], () => undefined, 8_000, 10_000, 5_000), []);
  t.deepEqual(nodesToMarkDown([node('a', 'ready')], () => undefined, 4_000, 10_000, 5_000), ['a']);
});

test('a node that joined a moment ago gets a full grace period to open its session', (t) => {
  // The leader took over long ago; the node joined at 9,000 and has not heartbeated yet.
  t.deepEqual(nodesToMarkDown([node('a', 'unknown', 9_000)], () => undefined, 0, 10_000, 5_000), []);
  t.deepEqual(nodesToMarkDown([node('a', 'unknown', 9_000)], () => undefined, 0, 15_000, 5_000), ['a']);
});

test('a node stored Down while it heartbeats to this leader is corrected to Ready; one stored Ready but silent, to Down', (t) => {
  const seen: Record<string, number> = { a: 9_000 };
  t.deepEqual(nodeStateCorrections([node('a', 'down'), node('b', 'ready')], (id) => seen[id], 0, 10_000, 5_000), [
    { id: 'a', state: 'ready' },
    { id: 'b', state: 'down' },
  ]);
  t.deepEqual(nodeStateCorrections([node('a', 'ready')], (id) => seen[id], 0, 10_000, 5_000), [], 'nothing to correct');
});

async function clusterWithNode(state: 'ready' | 'down') {
  const store = new MemoryStore();
  await registerNode(store, { nodeId: 'n1', role: 'worker', description, labels: {} });
  await setNodeState(store, 'n1', state, 'as written by someone', { fence: [] });
  const term = '/shoal/v1/leader/term-1';
  await store.commit([{ op: 'create', key: term, value: 'm1' }]);
  return { store, fence: [{ op: 'exists' as const, key: term }], term };
}

test('the health loop marks a heartbeating node Ready again, whoever wrote Down', async (t) => {
  const { store, fence } = await clusterWithNode('down');
  const loop = new NodeHealthLoop(store, () => Date.now(), () => 3_000, silentLogger, fence);
  await loop.tick();
  t.is((await store.get<NodeObject>(keys.node('n1')))?.value.status.state, 'ready');
});

test('a deposed leader\'s health pass writes nothing, however late it comes', async (t) => {
  const { store, fence, term } = await clusterWithNode('ready');
  // The node looks dead to this (old) leader; its term ends before the pass writes.
  const loop = new NodeHealthLoop(store, () => undefined, () => 3_000, silentLogger, fence);
  (loop as unknown as { leaderSince: number }).leaderSince = Date.now() - 60_000;
  await store.commit([{ op: 'delete', key: term }]);
  await loop.tick();
  t.is((await store.get<NodeObject>(keys.node('n1')))?.value.status.state, 'ready', 'the Down write was refused by the fence');
  await t.throwsAsync(setNodeState(store, 'n1', 'down', 'late', { fence }), { code: 'deposed' } as never);
});

test('with the leader\'s mirror, a health pass reads no node list from the store and still corrects the stored state', async (t) => {
  const { store, fence } = await clusterWithNode('down');
  const listed: string[] = [];
  const list = store.list.bind(store);
  store.list = (async (prefix: string) => (listed.push(prefix), list(prefix))) as typeof store.list;
  const mirrored = (await store.get<NodeObject>(keys.node('n1')))!.value;
  const loop = new NodeHealthLoop(store, () => Date.now(), () => 3_000, silentLogger, fence, () => undefined, () => [mirrored]);
  await loop.tick();
  t.is((await store.get<NodeObject>(keys.node('n1')))?.value.status.state, 'ready', 'Down while heartbeating: corrected');
  t.deepEqual(listed, [], 'the nodes came from the mirror');
});
