/**
 * The Container Network Model's nouns as the data-plane drivers use them on one host: a
 * Network (what the cluster says of it, plus what its driver's allocator gave it), an Endpoint
 * (one interface of one sandbox on one network) and a Sandbox (a task's network namespace).
 */
import type { NetworkAttachment } from '../shared/containers.ts';

export interface Network {
  id: string;
  name: string;
  /** The driver's type: the name of its folder under netplug/drivers/. */
  driver: string;
  /** The subnet and gateway this host's endpoints use (a node's share of the pool, for host-gw). */
  subnet: string;
  gateway: string;
  internal: boolean;
  /** The user's options, checked by the driver's definition. */
  options: Readonly<Record<string, string>>;
  /** The driver's allocator's data for the network and this node (VNI, node subnet). */
  data: Readonly<Record<string, string>>;
}

export interface Sandbox {
  /** Who holds it: the task or container id. */
  id: string;
  /** The name of its network namespace (under /run/netns). */
  netns: string;
}

export interface Endpoint {
  network: Network;
  /** The sandbox it belongs to (its owner). */
  sandboxId: string;
  address: string;
  mac: string;
  /** Its interface's name inside the sandbox: eth0, eth1, ... */
  ifname: string;
}

export function networkOf(attachment: NetworkAttachment): Network {
  return {
    id: attachment.networkId, name: attachment.networkName, driver: attachment.driver, subnet: attachment.subnet, gateway: attachment.gateway,
    internal: attachment.internal, options: attachment.options, data: attachment.data,
  };
}

export function endpointOf(attachment: NetworkAttachment, ifname: string): Endpoint {
  return { network: networkOf(attachment), sandboxId: attachment.owner, address: attachment.address, mac: attachment.mac, ifname };
}

export const prefixLength = (network: Network) => Number(network.subnet.split('/')[1]);

/** The MTU the user asked for (`-o mtu=`), else `fallback`. */
export const mtuOf = (network: Network, fallback: number) => (network.options.mtu ? Number(network.options.mtu) : fallback);
