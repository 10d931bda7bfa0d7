import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { Libp2p, PrivateKey } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { createLibp2p } from 'libp2p';

/**
 * A manager is the hub every agent dials: libp2p's defaults (a few hundred connections, ten
 * handshakes at a time, five new connections per second from one address) would turn away a
 * thousand agents starting together, or many agents behind one address.
 */
const hubConnections = {
  maxConnections: 20_000,
  maxIncomingPendingConnections: 256,
  inboundConnectionThreshold: 1_000,
};

/** A libp2p peer as managers and agents run it: TCP, noise, yamux. */
export async function createP2pNode(options: { privateKey: PrivateKey; listen: string[]; hub?: boolean }): Promise<Libp2p> {
  return createLibp2p({
    privateKey: options.privateKey,
    addresses: { listen: options.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(options.hub ? { connectionManager: hubConnections } : {}),
  });
}
