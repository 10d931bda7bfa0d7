/**
 * The leader's table loop on an in-memory store, with a dispatcher that records what it is
 * asked to send: a node in no table (no address, host subnet or task on a network) that joins
 * or opens a session gets its own tables alone, and nothing is computed for the others; a node
 * that holds an endpoint changes everyone's tables as before.
 */
import test from 'ava';
import type { Dispatcher, PeerTables } from '../../manager/dispatcher/dispatcher.ts';
import { PeerTableLoop } from '../../manager/network/peer-tables.ts';
import { keys } from '../../shared/keys.ts';
import { silentLogger } from '../../shared/log.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { MemoryStore } from '../../shared/store/memory.ts';

const time = '2026-01-01T00:00:00.000Z';
const node = (id: string, state: NodeObject['status']['state'] = 'ready') => ({ id, description: { hostname: id, address: `198.18.0.${id.charCodeAt(0)}`, p2pAddrs: [] }, status: { state } }) as unknown as NodeObject;

function recordingDispatcher() {
  const sent: Array<{ type: 'peers' | 'services' | 'policy'; nodeId: string; tables: unknown }> = [];
  let onOpen: (nodeId: string) => void = () => undefined;
  const dispatcher = {
    sendPeerTables: (nodeId: string, tables: unknown) => sent.push({ type: 'peers', nodeId, tables }),
    sendServiceTables: (nodeId: string, tables: unknown) => sent.push({ type: 'services', nodeId, tables }),
    sendPolicyTable: (nodeId: string, tables: unknown) => sent.push({ type: 'policy', nodeId, tables }),
    resendTables: () => undefined,
    onSessionOpen: (listener: (nodeId: string) => void) => ((onOpen = listener), () => undefined),
  } as unknown as Dispatcher;
  return { dispatcher, sent, open: (nodeId: string) => onOpen(nodeId) };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

async function cluster(t: import('ava').ExecutionContext) {
  const store = new MemoryStore();
  await store.commit([
    { op: 'create', key: keys.node('a'), value: node('a') },
    { op: 'create', key: keys.node('b'), value: node('b') },
    { op: 'create', key: keys.networkAddress('app', '198.19.0.3'), value: { networkId: 'app', address: '198.19.0.3', owner: 'task-1', nodeId: 'a', allocatedAt: time } },
    { op: 'create', key: keys.networkAddress('app', '198.19.0.4'), value: { networkId: 'app', address: '198.19.0.4', owner: 'task-2', nodeId: 'b', allocatedAt: time } },
  ]);
  const recorder = recordingDispatcher();
  const loop = new PeerTableLoop(store, recorder.dispatcher, silentLogger);
  await loop.start();
  t.teardown(() => loop.stop());
  // Past the periodic resend's first tick (a quarter second in), which computes everything;
  // its next is ten seconds on.
  await new Promise((resolve) => setTimeout(resolve, 400));
  const peersOfA = recorder.sent.filter((s) => s.type === 'peers' && s.nodeId === 'a').at(-1)?.tables as PeerTables;
  t.deepEqual(peersOfA[0]!.peers.map((p) => p.address), ['198.19.0.4'], 'a starts with b\'s endpoint in its table');
  recorder.sent.length = 0;
  return { store, ...recorder };
}

test('a node in no table that joins gets its own tables, and no other node\'s are computed', async (t) => {
  const { store, sent, open } = await cluster(t);
  await store.commit([{ op: 'create', key: keys.node('c'), value: node('c') }]);
  await settle();
  t.deepEqual([...new Set(sent.map((s) => s.nodeId))], ['c'], 'only the new node was sent anything');
  t.deepEqual(sent.find((s) => s.type === 'peers')?.tables, [], 'it holds no endpoint, so it has no peers');
  t.deepEqual((sent.find((s) => s.type === 'services')?.tables as { tables: unknown[] }).tables, []);
  t.truthy(sent.find((s) => s.type === 'policy'), 'and it gets the cluster\'s policy table');
  sent.length = 0;
  open('c');
  await settle();
  t.deepEqual([...new Set(sent.map((s) => s.nodeId))], ['c'], 'its session opening sends it its tables, and nobody else\'s');
});

test('a node holding an endpoint that goes down changes the others\' tables', async (t) => {
  const { store, sent } = await cluster(t);
  const current = await store.get<NodeObject>(keys.node('b'));
  await store.commit([{ op: 'update', key: keys.node('b'), version: current!.version, value: node('b', 'down') }]);
  await settle();
  const peersOfA = sent.filter((s) => s.type === 'peers' && s.nodeId === 'a').at(-1)?.tables as PeerTables | undefined;
  t.truthy(peersOfA, 'every node\'s tables were computed again');
  t.deepEqual(peersOfA![0]!.peers, [], 'b\'s endpoint left a\'s table');
});
