/** Endpoint gossip between real libp2p peers on loopback (no lab). */
import { generateKeyPair } from '@libp2p/crypto/keys';
import test from 'ava';
import { EndpointGossip } from '../../agent/endpoint-gossip.ts';
import { silentLogger } from '../../shared/log.ts';
import { createGossipingP2pNode, type GossipingP2p } from '../../shared/p2p/node.ts';
import type { EndpointAnnouncement, NetworkMember } from '../../shared/p2p/protocol.ts';

interface Agent {
  p2p: GossipingP2p;
  gossip: EndpointGossip;
  heard: Array<{ from: string; announcement: EndpointAnnouncement }>;
  member: NetworkMember;
}

async function agents(t: import('ava').ExecutionContext, count: number): Promise<Agent[]> {
  const made: Agent[] = [];
  for (let i = 0; i < count; i++) {
    const p2p = await createGossipingP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] });
    const heard: Agent['heard'] = [];
    const gossip = new EndpointGossip(p2p, (from, announcement) => heard.push({ from, announcement }), silentLogger);
    gossip.start();
    const member = { nodeId: p2p.peerId.toString(), host: `198.18.0.${i + 1}`, p2pAddrs: p2p.getMultiaddrs().map((a) => a.toString()) };
    made.push({ p2p, gossip, heard, member });
  }
  t.teardown(async () => {
    for (const agent of made) {
      agent.gossip.stop();
      await agent.p2p.stop();
    }
  });
  return made;
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<number> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return performance.now() - start;
}

const endpoint = { address: '198.19.0.2', mac: '02:42:c6:13:00:02' };

test('members of a network hear each other\'s endpoints, signed by the announcing node, and its withdrawal', async (t) => {
  const [a, b, c] = await agents(t, 3);
  for (const agent of [a!, b!, c!]) agent.gossip.meet([a!.member, b!.member, c!.member]);
  b!.gossip.announce('n1', [{ address: '198.19.0.3', mac: '02:42:c6:13:00:03' }]);
  c!.gossip.announce('n1', [{ address: '198.19.0.4', mac: '02:42:c6:13:00:04' }]);
  a!.gossip.announce('n1', [endpoint]);
  const ms = await until(() => [b!, c!].every((agent) => agent.heard.some((h) => h.from === a!.member.nodeId && h.announcement.endpoints.length === 1)));
  t.log(`heard on both other hosts ${ms.toFixed(0)} ms after the announcement`);
  t.deepEqual(b!.heard.find((h) => h.from === a!.member.nodeId)!.announcement.endpoints, [endpoint]);
  t.false(a!.heard.some((h) => h.from === a!.member.nodeId), 'an agent does not hear itself');

  a!.gossip.announce('n1', []);
  // An earlier announcement still in flight may come after this one: the newest by sequence counts, as in PeerView.
  const newestFromA = (agent: Agent) =>
    agent.heard.filter((h) => h.from === a!.member.nodeId).reduce<Agent['heard'][number] | undefined>((best, h) => (!best || h.announcement.seq > best.announcement.seq ? h : best), undefined);
  await until(() => [b!, c!].every((agent) => newestFromA(agent)?.announcement.endpoints.length === 0));
  const seqs = b!.heard.filter((h) => h.from === a!.member.nodeId).map((h) => h.announcement.seq);
  t.is(new Set(seqs).size, seqs.length, 'each announcement of one node has its own sequence number');
});

test('a host that joins a network later hears the endpoints already there at once, not at the next repeat', async (t) => {
  const [a, b] = await agents(t, 2);
  a!.gossip.announce('n1', [endpoint]);
  b!.gossip.meet([a!.member]);
  // b subscribes only now, with its first endpoint: a answers the subscription.
  b!.gossip.announce('n1', [{ address: '198.19.0.3', mac: '02:42:c6:13:00:03' }]);
  const ms = await until(() => b!.heard.some((h) => h.from === a!.member.nodeId), 5_000);
  t.log(`heard ${ms.toFixed(0)} ms after subscribing`);
  t.deepEqual(b!.heard.at(-1)!.announcement.endpoints, [endpoint]);
});

test('a network the agent is not on is not heard', async (t) => {
  const [a, b] = await agents(t, 2);
  b!.gossip.meet([a!.member]);
  b!.gossip.announce('n2', [{ address: '198.19.1.3', mac: '02:42:c6:13:01:03' }]);
  a!.gossip.announce('n1', [endpoint]);
  a!.gossip.announce('n2', [{ address: '198.19.1.2', mac: '02:42:c6:13:01:02' }]);
  await until(() => b!.heard.some((h) => h.announcement.networkId === 'n2'));
  t.false(b!.heard.some((h) => h.announcement.networkId === 'n1'));
});
