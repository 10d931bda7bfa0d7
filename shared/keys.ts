/** The etcd key layout, in one place. Every key Shoal writes lives under /shoal/v1/. */

const root = '/shoal/v1/';

export const keys = {
  root,
  cluster: `${root}cluster`,
  nodes: `${root}nodes/`,
  node: (id: string) => `${root}nodes/${id}`,
  /** Peer ids of removed nodes, which may never connect again (manager/revocations.ts). */
  revokedPeers: `${root}revoked-peers/`,
  revokedPeer: (peerId: string) => `${root}revoked-peers/${peerId}`,
  managers: `${root}managers/`,
  manager: (id: string) => `${root}managers/${id}`,
  leaderElection: 'shoal-v1-leader',
  services: `${root}services/`,
  service: (id: string) => `${root}services/${id}`,
  /** One key per service name, created with the service: names stay unique. */
  serviceName: (name: string) => `${root}service-names/${name}`,
  tasks: `${root}tasks/`,
  task: (id: string) => `${root}tasks/${id}`,
  networks: `${root}networks/`,
  network: (id: string) => `${root}networks/${id}`,
  /** One key per network name, created with the network: names stay unique. */
  networkName: (name: string) => `${root}network-names/${name}`,
  ipam: `${root}ipam/`,
  /** Which subnets and driver resources (VNIs, macvlan parents) are taken, by which network. */
  ipamRegistry: `${root}ipam/registry`,
  /** One key per address held on a network, under one prefix per network. */
  addresses: `${root}ipam/addresses/`,
  networkAddresses: (networkId: string) => `${root}ipam/addresses/${networkId}/`,
  networkAddress: (networkId: string, address: string) => `${root}ipam/addresses/${networkId}/${address}`,
  /** One key per endpoint on a local network (its address is its host's), so a network in use stays. */
  localEndpoints: `${root}ipam/local/`,
  networkLocalEndpoints: (networkId: string) => `${root}ipam/local/${networkId}/`,
  networkLocalEndpoint: (networkId: string, owner: string) => `${root}ipam/local/${networkId}/${owner}`,
  /** One key per node subnet of a network that splits its pool per host (host-gw), by subnet: never given twice. */
  nodeSubnets: `${root}ipam/node-subnets/`,
  networkNodeSubnets: (networkId: string) => `${root}ipam/node-subnets/${networkId}/`,
  networkNodeSubnet: (networkId: string, subnet: string) => `${root}ipam/node-subnets/${networkId}/${subnet.replace('/', '_')}`,
  leases: `${root}leases/`,
  /** Network policies, one key per name. */
  policies: `${root}policies/`,
  policy: (name: string) => `${root}policies/${name}`,
  stacks: `${root}stacks/`,
  secrets: `${root}secrets/`,
  configs: `${root}configs/`,
  /** A secret or config by id, and one key per name (created with it: names stay unique). */
  fileObjects: (kind: 'secret' | 'config') => `${root}${kind}s/`,
  fileObject: (kind: 'secret' | 'config', id: string) => `${root}${kind}s/${id}`,
  fileObjectName: (kind: 'secret' | 'config', name: string) => `${root}${kind}-names/${name}`,
  volumes: `${root}volumes/`,
} as const;

/** The last path segment of a key: the object's id. */
export function idOfKey(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}
