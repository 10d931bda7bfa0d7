import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../../lab/lab.ts';
import { currentPid } from '../../lab/processes.ts';
import { netnsPrefix } from '../../lab/topology.ts';
import type { NetworkObject } from '../../netplug/model.ts';
import { run } from '../../shared/exec.ts';
import type { ManagerView, NodeView } from '../../shared/schemas.ts';
import type { ServiceObject, TaskObject } from '../../shared/services.ts';

export type ListedService = ServiceObject & { running: number; desired: number };
export type ListedTask = Omit<TaskObject, 'spec'> & { name: string; node: string | null; image: string };

/** A container as its host's runc and the engine's state file tell it, not as the store does. */
export interface HostContainer {
  host: string;
  id: string;
  status: string;
  name: string;
  taskId?: string;
}

export interface ContainerInterface {
  host: string;
  container: string;
  address: string;
  mac: string;
}

export interface PeerEntry {
  host: string;
  vni: number;
  kind: 'fdb' | 'neighbour';
  mac: string;
  /** The remote VTEP (FDB) or the endpoint's address (neighbour). */
  target: string;
}

/** What the hosts' kernels and runc hold, read directly, and what the store says. */
export interface ClusterPicture {
  containers: HostContainer[];
  interfaces: ContainerInterface[];
  peers: PeerEntry[];
  containerNamespaces: string[];
  /** Mount points under a container's directory, by host. */
  mounts: Array<{ host: string; container: string; mountPoint: string }>;
  agentsRunning: string[];
  managersRunning: string[];
  /** Managers as the API lists them: reachable means its presence lease is held in etcd. */
  managers: Array<{ hostname: string; reachable: boolean }>;
  nodes: NodeView[];
  services: ListedService[];
  tasks: ListedTask[];
  networks: Array<{ id: string; name: string; driver: string; scope: string; subnets: string[] }>;
}

async function json<T>(command: string, args: string[], empty: T): Promise<T> {
  const text = (await run(command, args)).trim();
  return text === '' || text === 'null' ? empty : (JSON.parse(text) as T);
}

async function hostContainers(lab: Lab, host: string): Promise<HostContainer[]> {
  const engine = join(lab.record.dir, host, 'agent', 'engine');
  const listed = await json<Array<{ id: string; status: string }>>('runc', ['--root', join(engine, 'runc'), 'list', '-f', 'json'], []);
  return Promise.all(
    listed.map(async ({ id, status }) => {
      const state = await readFile(join(engine, 'containers', id, 'state.json'), 'utf8').then(
        (text) => JSON.parse(text) as { spec: { name: string; labels: Record<string, string> } },
        () => undefined,
      );
      const taskId = state?.spec.labels['shoal.task.id'];
      return { host, id, status, name: state?.spec.name ?? '?', ...(taskId ? { taskId } : {}) };
    }),
  );
}

interface IpAddr {
  ifname: string;
  address?: string;
  addr_info?: Array<{ family: string; local: string }>;
}

async function namespaceInterfaces(netns: string): Promise<Array<{ address: string; mac: string }>> {
  const links = await json<IpAddr[]>('ip', ['-n', netns, '-j', 'addr', 'show'], []).catch(() => []);
  return links.filter((l) => l.ifname !== 'lo').flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => ({ address: a.local, mac: l.address ?? '' })));
}

async function overlayPeers(netns: string, host: string, vni: number): Promise<PeerEntry[]> {
  const device = `svx-${vni}`;
  const fdb = await json<Array<{ mac: string; dst?: string }>>('bridge', ['-n', netns, '-j', 'fdb', 'show', 'dev', device], []).catch(() => []);
  const neighbours = await json<Array<{ dst: string; lladdr?: string }>>('ip', ['-n', netns, '-j', '-4', 'neigh', 'show', 'dev', device], []).catch(() => []);
  return [
    ...fdb.filter((e) => e.dst && e.mac !== '00:00:00:00:00:00').map((e): PeerEntry => ({ host, vni, kind: 'fdb', mac: e.mac, target: e.dst! })),
    ...neighbours.filter((n) => n.lladdr).map((n): PeerEntry => ({ host, vni, kind: 'neighbour', mac: n.lladdr!, target: n.dst })),
  ];
}

/** Reads every host of the lab: runc, namespaces, interfaces, FDB and neighbour tables, mounts; then the store through the CLI's API. */
export async function observe(lab: Lab): Promise<ClusterPicture> {
  const hosts = lab.record.topology.hosts;
  const prefix = netnsPrefix(lab.name);
  const containers = (await Promise.all(hosts.map((h) => hostContainers(lab, h.name)))).flat();
  const namespaces = (await run('ip', ['netns', 'list'])).split('\n').map((line) => line.split(' ')[0]!).filter((name) => name.startsWith(prefix));
  const containerNamespaces = namespaces.filter((name) => name.startsWith(`${prefix}c-`));
  const interfaces: ContainerInterface[] = [];
  for (const netns of containerNamespaces) {
    const short = netns.slice(`${prefix}c-`.length);
    const owner = containers.find((c) => c.id.startsWith(short));
    for (const found of await namespaceInterfaces(netns)) interfaces.push({ host: owner?.host ?? '?', container: owner?.name ?? netns, ...found });
  }
  const peers: PeerEntry[] = [];
  for (const netns of namespaces) {
    const match = new RegExp(`^${prefix}n-(\\d+)-(.+)$`).exec(netns);
    if (!match) continue;
    const host = hosts.find((h) => h.address === match[2])?.name ?? match[2]!;
    peers.push(...(await overlayPeers(netns, host, Number(match[1]))));
  }
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const mounts = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .flatMap((mountPoint) => {
      const match = /\/([^/]+)\/agent\/engine\/containers\/([0-9a-f]{64})\//.exec(mountPoint);
      return match && mountPoint.startsWith(lab.record.dir) ? [{ host: match[1]!, container: match[2]!, mountPoint }] : [];
    });
  const agentsRunning: string[] = [];
  for (const host of hosts) if (await currentPid(lab.process(`${host.name}/agent`))) agentsRunning.push(host.name);
  const managersRunning: string[] = [];
  for (const host of hosts.filter((h) => h.manager)) if (await currentPid(lab.process(`${host.name}/manager`))) managersRunning.push(host.name);
  const client = await lab.client();
  const managers = (await client.call<ManagerView[]>('GET', '/v1/managers')).map((m) => ({ hostname: m.hostname, reachable: m.reachable }));
  const [nodes, services, networks] = await Promise.all([
    client.call<NodeView[]>('GET', '/v1/nodes'),
    client.call<ListedService[]>('GET', '/v1/services'),
    client.call<NetworkObject[]>('GET', '/v1/networks'),
  ]);
  const tasks = await client.call<ListedTask[]>('GET', '/v1/tasks');
  return {
    containers,
    interfaces,
    peers,
    containerNamespaces,
    mounts,
    agentsRunning,
    managersRunning,
    managers,
    nodes,
    services,
    tasks,
    networks: networks.map((n) => ({ id: n.id, name: n.spec.name, driver: n.spec.driver, scope: n.scope, subnets: n.pools.map((p) => p.subnet) })),
  };
}
