import { contains, parseIpv4, parsePrefix } from '../../netplug/ipam/ipv4.ts';
import type { ClusterPicture } from './observe.ts';

/** What the suite's operations asked for: the desired state nothing may lose. */
export interface Model {
  services: Map<string, { replicas: number; env: string[] }>;
  /** Networks made by the suite that must exist, and ones it removed that must not. */
  networks: Set<string>;
  removedNetworks: Set<string>;
}

export const invariantNames = ['desired counts met', 'no slot twice', 'no address twice', 'no stale peer entry', 'nodes Ready iff heartbeating', 'managers reachable iff running', 'no desired state lost', 'no orphan'] as const;
export type InvariantName = (typeof invariantNames)[number];

export type Violations = Partial<Record<InvariantName, string[]>>;

const slotOf = (name: string) => name.split('.').slice(0, 2).join('.');

/** Every invariant of the chaos suite, checked against one picture; empty when all hold. */
export function violations(model: Model, picture: ClusterPicture): Violations {
  const found: Violations = {};
  const add = (name: InvariantName, problem: string) => (found[name] ??= []).push(problem);
  const running = picture.containers.filter((c) => c.status === 'running');

  for (const [name, wanted] of model.services) {
    const service = picture.services.find((s) => s.spec.name === name);
    if (!service) continue;
    const inStore = picture.tasks.filter((t) => t.serviceName === name && t.desiredState === 'running' && t.status.state === 'running').length;
    const onHosts = new Set(running.filter((c) => c.name.startsWith(`${name}.`)).map((c) => slotOf(c.name))).size;
    if (inStore !== wanted.replicas || onHosts !== wanted.replicas) add('desired counts met', `${name}: ${wanted.replicas} wanted, ${inStore} running in the store, ${onHosts} slots running on the hosts`);
  }

  const bySlot = new Map<string, string[]>();
  for (const c of running) if (c.taskId) bySlot.set(slotOf(c.name), [...(bySlot.get(slotOf(c.name)) ?? []), `${c.name}@${c.host}`]);
  for (const [slot, copies] of bySlot) if (copies.length > 1) add('no slot twice', `${slot} runs ${copies.length} times: ${copies.join(', ')}`);

  // Addresses of cluster-wide networks only: a host-local bridge hands out the same ones on each host.
  const clusterSubnets = picture.networks.filter((n) => n.scope === 'swarm').flatMap((n) => n.subnets.map((subnet) => parsePrefix(subnet, false)));
  const byAddress = new Map<string, string[]>();
  for (const i of picture.interfaces.filter((i) => clusterSubnets.some((p) => contains(p, parseIpv4(i.address))))) byAddress.set(i.address, [...(byAddress.get(i.address) ?? []), `${i.container}@${i.host}`]);
  for (const [address, holders] of byAddress) if (holders.length > 1) add('no address twice', `${address} is held by ${holders.join(', ')}`);

  const hostAddress = new Map(picture.nodes.map((n) => [n.description.address, n.description.hostname]));
  for (const entry of picture.peers) {
    const live =
      entry.kind === 'neighbour'
        ? picture.interfaces.some((i) => i.address === entry.target && i.mac === entry.mac && i.host !== entry.host)
        : picture.interfaces.some((i) => i.mac === entry.mac && i.host === hostAddress.get(entry.target));
    if (!live) add('no stale peer entry', `${entry.host} vni ${entry.vni}: ${entry.kind} ${entry.mac} -> ${entry.target} names no live endpoint`);
  }

  for (const node of picture.nodes) {
    const host = node.description.hostname;
    const beating = picture.agentsRunning.includes(host);
    if (node.status.state === 'ready' && !beating) add('nodes Ready iff heartbeating', `${host} is Ready with its agent down`);
    if (node.status.state !== 'ready' && beating) add('nodes Ready iff heartbeating', `${host} is ${node.status.state} while its agent runs`);
  }

  // A running manager that holds no presence lease cannot reach etcd: after a heal, it must again.
  for (const manager of picture.managers) {
    const running = picture.managersRunning.includes(manager.hostname);
    if (running && !manager.reachable) add('managers reachable iff running', `${manager.hostname}'s manager runs but is unreachable (no lease on etcd)`);
    if (!running && manager.reachable) add('managers reachable iff running', `${manager.hostname}'s manager is listed reachable while it is down`);
  }

  for (const [name, wanted] of model.services) {
    const service = picture.services.find((s) => s.spec.name === name);
    if (!service) {
      add('no desired state lost', `service ${name} is gone`);
      continue;
    }
    if (service.spec.replicas !== wanted.replicas) add('no desired state lost', `${name} wants ${service.spec.replicas} replicas, not ${wanted.replicas}`);
    for (const variable of wanted.env) if (!service.spec.container.env.includes(variable)) add('no desired state lost', `${name} lost its env ${variable}`);
  }
  for (const service of picture.services) if (!model.services.has(service.spec.name)) add('no desired state lost', `service ${service.spec.name} exists but was removed or never made`);
  const networkNames = new Set(picture.networks.map((n) => n.name));
  for (const name of model.networks) if (!networkNames.has(name)) add('no desired state lost', `network ${name} is gone`);
  for (const name of model.removedNetworks) if (networkNames.has(name)) add('no desired state lost', `network ${name} was removed but exists`);

  const tasks = new Map(picture.tasks.map((t) => [t.id, t]));
  for (const c of picture.containers) {
    const task = c.taskId ? tasks.get(c.taskId) : undefined;
    if (c.status === 'running' && (!task || task.desiredState !== 'running' || task.node !== c.host)) add('no orphan', `container ${c.name} runs on ${c.host} without a task that wants it there`);
  }
  const ids = new Set(picture.containers.map((c) => c.id));
  for (const netns of picture.containerNamespaces) {
    const short = netns.split('-c-').at(-1)!;
    if (![...ids].some((id) => id.startsWith(short))) add('no orphan', `namespace ${netns} has no container`);
  }
  for (const mount of picture.mounts) {
    if (!picture.containers.some((c) => c.id === mount.container && c.host === mount.host)) add('no orphan', `mount ${mount.mountPoint} has no container`);
  }
  return found;
}

export function summarize(found: Violations): string {
  return Object.entries(found)
    .map(([name, problems]) => `${name}: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? ` (+${problems.length - 3} more)` : ''}`)
    .join('\n');
}
