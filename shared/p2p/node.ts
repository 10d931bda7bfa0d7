import { yamux } from '@chainsafe/libp2p-yamux';
import { type GossipSub, gossipsub } from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';
import type { Libp2p, PrivateKey } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { createLibp2p } from 'libp2p';
import { SpreadConnectionMonitor } from './spread-monitor.ts';
import { libp2pLogger, mendConnectionListing, mendedNoise, mendYamuxWindowUpdates } from './library-mends.ts';

/**
 * A manager is the hub every agent dials: libp2p's defaults (a few hundred connections, ten
 * handshakes at a time, five new connections per second from one address) would turn away a
 * thousand agents starting together, or many agents behind one address. With room for 256
 * handshakes, a thousand nodes starting at once were refused by the hundred and waited out
 * their retries (12-16 s to join against 9-11 s with room for all of them).
 */
const hubConnections = {
  maxConnections: 20_000,
  maxIncomingPendingConnections: 1_024,
  inboundConnectionThreshold: 1_000,
};

interface P2pOptions {
  privateKey: PrivateKey;
  listen: string[];
  hub?: boolean;
}

const base = (options: P2pOptions) => ({
  privateKey: options.privateKey,
  addresses: { listen: options.listen },
  transports: [tcp()],
  connectionEncrypters: [mendedNoise()],
  streamMuxers: [yamux()],
  // Connections are checked spread over the period (SpreadConnectionMonitor), not all at once.
  connectionMonitor: { enabled: false },
  ...(options.hub ? { connectionManager: hubConnections } : {}),
  logger: libp2pLogger(),
});

mendYamuxWindowUpdates();

/** The library's mends, and the connection check that replaces its monitor. */
function mended<T extends Libp2p>(node: T): T {
  mendConnectionListing(node);
  const monitor = new SpreadConnectionMonitor(node);
  monitor.start();
  node.addEventListener('stop', () => monitor.stop());
  return node;
}

/** A libp2p peer as managers and agents run it: TCP, noise, yamux. */
export async function createP2pNode(options: P2pOptions): Promise<Libp2p> {
  return mended(await createLibp2p(base(options)));
}

export type GossipingP2p = Libp2p<{ pubsub: GossipSub }>;

/**
 * An agent's peer: also gossipsub (with identify, through which peers learn who speaks it).
 * Publishing with no subscriber yet is no error: an agent alone on a network announces anyway.
 */
export async function createGossipingP2pNode(options: P2pOptions): Promise<GossipingP2p> {
  return mended(
    await createLibp2p({
      ...base(options),
      services: { identify: identify(), pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false }) },
    }),
  );
}
