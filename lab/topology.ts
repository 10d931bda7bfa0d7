/** The shape of a lab: pure data, computed from the user's options; no side effects. */

export interface LabOptions {
  name: string;
  hosts: number;
  managers: number;
  etcdMembers: number;
  heartbeatPeriodMs: number;
  /** The resolvers the hosts' resolv.conf names (the embedded DNS's upstreams): lab addresses only. */
  dnsUpstreams?: string[];
}

export interface LabHost {
  name: string;
  netns: string;
  address: string;
  /** Name of this host's veth end in the fabric namespace. */
  fabricPort: string;
  manager: boolean;
}

export interface LabTopology {
  name: string;
  fabricNetns: string;
  infraNetns: string;
  /** The infra namespace's address on the underlay: the registry, and the gateway to etcd. */
  infraAddress: string;
  /** etcd's members, on a subnet of their own that only the managers' hosts have a route to. */
  etcdAddresses: string[];
  hosts: LabHost[];
  prefixLength: number;
}

/**
 * The underlay: 198.18.0.0/24, hosts from .1, the infra namespace (registry) at .250. etcd's
 * members sit behind the infra namespace on 198.18.1.0/24, from .250, routed from the
 * managers' hosts only: a worker, and any workload on it, has no path to etcd at all.
 */
export const defaultLabName = 'lab';
export const underlayPrefix = '198.18.0.';
export const etcdSubnet = '198.18.1.0/24';
const etcdPrefix = '198.18.1.';
export const maxHosts = 200;
export const apiPort = 2377;
export const managerP2pPort = 4240;
export const agentP2pPort = 4241;
/** Prometheus metrics of each host's manager and agent, on its underlay address (9323 is Docker's metrics-addr port). */
export const managerMetricsPort = 9323;
export const agentMetricsPort = 9324;

/** Where each daemon of the lab serves its metrics, to print and to scrape (from inside a host's namespace). */
export function metricsEndpoints(topology: LabTopology): Array<{ host: string; netns: string; role: 'manager' | 'agent'; url: string }> {
  return topology.hosts.flatMap((host) => [
    ...(host.manager ? [{ host: host.name, netns: host.netns, role: 'manager' as const, url: `http://${host.address}:${managerMetricsPort}/metrics` }] : []),
    { host: host.name, netns: host.netns, role: 'agent' as const, url: `http://${host.address}:${agentMetricsPort}/metrics` },
  ]);
}
/** The lab's OCI registry listens on the infra namespace's underlay address. */
export const registryPort = 5000;

export function registryAddress(topology: LabTopology): string {
  return `${topology.infraAddress}:${registryPort}`;
}

/** Beside the open registry: one with TLS from the lab's CA and a login (htpasswd), as users' private registries are. */
export const authRegistryPort = 5443;

export function authRegistryAddress(topology: LabTopology): string {
  return `${topology.infraAddress}:${authRegistryPort}`;
}

export function validateLabOptions(options: LabOptions): string | undefined {
  if (!/^[a-z0-9][a-z0-9-]{0,15}$/.test(options.name)) return `lab name "${options.name}" must be 1-16 lowercase letters, digits or "-"`;
  if (!Number.isInteger(options.hosts) || options.hosts < 1 || options.hosts > maxHosts) return `--hosts must be between 1 and ${maxHosts}`;
  if (!Number.isInteger(options.managers) || options.managers < 1 || options.managers > options.hosts) {
    return `--managers must be between 1 and the number of hosts (${options.hosts})`;
  }
  if (![1, 3, 5].includes(options.etcdMembers)) return '--etcd must be 1, 3 or 5 members';
  if (options.heartbeatPeriodMs < 200) return '--heartbeat-period must be at least 200ms';
  for (const address of options.dnsUpstreams ?? []) {
    if (!/^198\.1[89]\.\d{1,3}\.\d{1,3}$/.test(address)) return `--dns-upstream ${address}: a lab's resolvers are lab addresses (198.18.0.0/15), so no query leaves the machine`;
  }
  if ((options.dnsUpstreams ?? []).length > 3) return '--dns-upstream: at most three (as resolv.conf reads)';
  return undefined;
}

export function netnsPrefix(lab: string): string {
  return `shoal-${lab}-`;
}

export function labTopology(options: LabOptions): LabTopology {
  const prefix = netnsPrefix(options.name);
  return {
    name: options.name,
    fabricNetns: `${prefix}fabric`,
    infraNetns: `${prefix}infra`,
    infraAddress: `${underlayPrefix}250`,
    etcdAddresses: Array.from({ length: options.etcdMembers }, (_, i) => `${etcdPrefix}${250 + i}`),
    prefixLength: 24,
    hosts: Array.from({ length: options.hosts }, (_, i) => ({
      name: `h${i + 1}`,
      netns: `${prefix}h${i + 1}`,
      address: `${underlayPrefix}${i + 1}`,
      fabricPort: `p${i + 1}`,
      manager: i < options.managers,
    })),
  };
}

/** iproute2 batches that build the fabric, the infra namespace and every host: one batch per namespace. */
export interface UnderlayBatches {
  /** Run in the machine's namespace: creates namespaces and veth pairs with both ends already inside them. */
  root: string[];
  /** Run with `ip -n NETNS -batch`: addresses, bridge ports, links up. */
  inNetns: Array<{ netns: string; lines: string[] }>;
}

export function underlayCommands(topology: LabTopology): UnderlayBatches {
  const { fabricNetns: fab, infraNetns: infra, prefixLength } = topology;
  const root = [
    `netns add ${fab}`,
    `netns add ${infra}`,
    ...topology.hosts.map((h) => `netns add ${h.netns}`),
    `link add eth0 netns ${infra} type veth peer name pinfra netns ${fab}`,
    ...topology.hosts.map((h) => `link add eth0 netns ${h.netns} type veth peer name ${h.fabricPort} netns ${fab}`),
  ];
  const fabric = [
    'link add br0 type bridge',
    'link set br0 up',
    ...['pinfra', ...topology.hosts.map((h) => h.fabricPort)].flatMap((port) => [`link set ${port} master br0`, `link set ${port} up`]),
  ];
  const hostLines = (address: string) => [`addr add ${address}/${prefixLength} dev eth0`, 'link set eth0 up', 'link set lo up'];
  return {
    root,
    inNetns: [
      { netns: fab, lines: fabric },
      { netns: infra, lines: [...hostLines(topology.infraAddress), ...topology.etcdAddresses.map((address) => `addr add ${address}/32 dev lo`)] },
      ...topology.hosts.map((h) => ({ netns: h.netns, lines: [...hostLines(h.address), ...(h.manager ? [etcdRoute(topology)] : [])] })),
    ],
  };
}

/** The route to etcd's subnet, which only a manager's host gets (`ip -n NETNS` batch syntax). */
export function etcdRoute(topology: LabTopology): string {
  return `route add ${etcdSubnet} via ${topology.infraAddress}`;
}

/**
 * What brings a host's underlay link back up, as its network configuration would: the link,
 * and on a manager's host the route to etcd, which the kernel drops with the link.
 */
export function linkUpCommands(topology: LabTopology, host: LabHost): string[] {
  return ['link set eth0 up', ...(host.manager ? [etcdRoute(topology).replace(/^route add /, 'route replace ')] : [])];
}
