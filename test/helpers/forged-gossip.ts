/**
 * A stranger on the gossip layer, for the doors test: a libp2p peer of its own (not a node of
 * the cluster) that dials an agent, joins a network's topic and publishes signed announcements
 * claiming an endpoint, for a while. Run inside a lab host's namespace:
 *   node forged-gossip.js AGENT_MULTIADDR NETWORK_ID ADDRESS MAC DURATION_MS
 * Prints its peer id first, then how many announcements it published.
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import { createGossipingP2pNode } from '../../shared/p2p/node.ts';
import { networkTopic } from '../../shared/p2p/protocol.ts';

const [target, networkId, address, mac, duration] = process.argv.slice(2);
if (!target || !networkId || !address || !mac) {
  process.stderr.write('usage: forged-gossip AGENT_MULTIADDR NETWORK_ID ADDRESS MAC [DURATION_MS]\n');
  process.exit(2);
}
const p2p = await createGossipingP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/0.0.0.0/tcp/0'] });
process.stdout.write(`${p2p.peerId.toString()}\n`);
const topic = networkTopic(networkId);
p2p.services.pubsub.subscribe(topic);
await p2p.dial(multiaddr(target), { signal: AbortSignal.timeout(5_000) });
const until = Date.now() + Number(duration ?? 5_000);
let published = 0;
while (Date.now() < until) {
  const announcement = { networkId, seq: Date.now(), endpoints: [{ address, mac }] };
  const { recipients } = await p2p.services.pubsub.publish(topic, new TextEncoder().encode(JSON.stringify(announcement))).catch(() => ({ recipients: [] }));
  if (recipients.length > 0) published++;
  await new Promise((resolve) => setTimeout(resolve, 300));
}
process.stdout.write(`${published}\n`);
await p2p.stop();
