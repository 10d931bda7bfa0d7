/**
 * A manager's engine calls to an agent over real libp2p peers on loopback (no lab): the agent
 * side is the real engine server, answering `container.list` from a stand-in engine. What is
 * checked is the spare stream: a call to a node called lately starts on a stream negotiated
 * beforehand, and a spare the agent closed is never used.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Libp2p } from '@libp2p/interface';
import test from 'ava';
import type { EngineServices } from '../../agent/engine/methods.ts';
import { serveEngine } from '../../agent/engine/rpc.ts';
import { EngineClient } from '../../manager/engine/client.ts';
import { silentLogger } from '../../shared/log.ts';
import { createP2pNode } from '../../shared/p2p/node.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import type { Store } from '../../shared/store/store.ts';

async function pair(t: import('ava').ExecutionContext) {
  const manager = await createP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] });
  const agent = await createP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] });
  t.teardown(async () => {
    await manager.stop();
    await agent.stop();
  });
  const calls: string[] = [];
  // How many streams the manager had dialled when the agent worked on each call.
  const dialsWhileWorking: number[] = [];
  const services = { engine: { list: () => (dialsWhileWorking.push(dials), []) } } as unknown as EngineServices;
  await serveEngine(agent, services, (peer) => peer === manager.peerId.toString(), silentLogger, (method) => calls.push(method));
  let dials = 0;
  const dialProtocol = manager.dialProtocol.bind(manager);
  manager.dialProtocol = ((...args: Parameters<Libp2p['dialProtocol']>) => {
    dials++;
    return dialProtocol(...args);
  }) as Libp2p['dialProtocol'];
  const node = {
    id: agent.peerId.toString(),
    description: { hostname: 'h1', p2pAddrs: agent.getMultiaddrs().map((a) => a.toString()) },
    status: { state: 'ready' },
  } as unknown as NodeObject;
  const client = new EngineClient(manager, {} as Store);
  return { client, node, calls, dials: () => dials, dialsWhileWorking, agent };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

test('a call to a node called lately starts on the spare stream: one dial per call, made beforehand', async (t) => {
  const { client, node, calls, dials } = await pair(t);
  t.deepEqual(await client.call(node, 'container.list', { all: true }), []);
  await settle();
  t.is(dials(), 2, 'the call, and the spare for the next');
  for (let i = 0; i < 3; i++) {
    t.deepEqual(await client.call(node, 'container.list', { all: true }), []);
    await settle();
  }
  t.is(dials(), 5, 'each later call took the spare and opened the next one, dialling nothing for itself');
  t.is(calls.length, 4, 'the agent answered every call once');
});

test('the next call\'s stream is opened once a call is answered, not while the agent works on it', async (t) => {
  const { client, node, dialsWhileWorking } = await pair(t);
  for (let i = 0; i < 3; i++) {
    await client.call(node, 'container.list', { all: true });
    await settle();
  }
  // Opened beside the call, the spare's negotiation ran on the agent while it made the container.
  t.deepEqual(dialsWhileWorking, [1, 2, 3], 'each call ran with only its own stream dialled');
});

test('a call to every node keeps no spare: a listing across a thousand nodes opens no second thousand streams', async (t) => {
  const { client, node, dials } = await pair(t);
  const results = await client.fanOut<unknown[]>([node], 'container.list', { all: true });
  t.deepEqual(results.map((r) => r.value), [[]]);
  await settle();
  t.is(dials(), 1, 'the listing\'s own stream only');
  await client.call(node, 'container.list', { all: true });
  await settle();
  t.is(dials(), 3, 'a call to the node alone dials for itself and keeps a spare');
});

test('a spare the agent closed is not used: the call dials afresh and is answered', async (t) => {
  const { client, node, calls, dials, agent } = await pair(t);
  await client.call(node, 'container.list', { all: true });
  await settle();
  // The agent goes away and comes back: the connection, and the spare on it, are gone.
  for (const connection of agent.getConnections()) await connection.close();
  await settle();
  t.deepEqual(await client.call(node, 'container.list', { all: true }), []);
  await settle();
  t.is(dials(), 4, 'the call dialled for itself (and opened the next spare)');
  t.is(calls.length, 2);
});

test('an agent that cannot be reached is named, and leaves no spare behind', async (t) => {
  const { client, node, dials } = await pair(t);
  const gone = { ...node, description: { ...node.description, p2pAddrs: ['/ip4/127.0.0.1/tcp/1/p2p/' + node.id] } } as NodeObject;
  await t.throwsAsync(client.call(gone, 'container.list', { all: true }), { message: /cannot reach the agent on h1/ });
  await settle();
  t.is(dials(), 1, 'no spare is tried for a node whose call could not dial');
  await t.throwsAsync(client.call(gone, 'container.list', { all: true }), { message: /cannot reach the agent on h1/ });
  t.is(dials(), 2);
});
