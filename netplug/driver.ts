/** The verbs every data-plane driver implements on an agent, libnetwork's in small. */
import type { NetworkAttachment } from '../shared/containers.ts';

/** A remote endpoint of a network, as the peer table carries it. */
export interface Peer {
  address: string;
  mac: string;
  /** The underlay address of the host it lives on (its VTEP, for overlays). */
  host: string;
}

export interface NetworkDriver {
  /** Plumbs the container's namespace into the network, creating the network on this host if it is the first endpoint here. */
  join(attachment: NetworkAttachment, netns: string, ifname: string): Promise<void>;
  /** Undoes join; the host leaves the network's data plane with its last endpoint. */
  leave(attachment: NetworkAttachment): Promise<void>;
  /** Makes the kernel hold exactly these remote endpoints (for drivers that need them). */
  setPeers?(networkId: string, peers: Peer[]): Promise<void>;
  /** The kernel state the driver owns for this network on this host. */
  diagnose(networkId: string): Promise<unknown>;
}
