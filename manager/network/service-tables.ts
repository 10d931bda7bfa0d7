/**
 * What the embedded DNS and the VIPs of every node should hold, from the store: per network, the
 * names (services, their aliases, `tasks.NAME`, task and container names) with their addresses,
 * and each service's VIP with its backends; plus the routing mesh's ports. A task counts only
 * while it should run, runs, is not failing its health check and its node is ready: a task being
 * stopped (scaled away, replaced by an update, unhealthy) leaves every table at once.
 */
import type { IngressTable, NameRecord, ServiceTable, VirtualAddress } from '../../shared/p2p/protocol.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { isUp, type ServiceObject, type TaskObject, taskName } from '../../shared/services.ts';
import type { AddressLease, NetworkObject } from '../../netplug/model.ts';
import { attachmentFor } from '../networks.ts';
import { ingressSandboxOwner } from './lease-owners.ts';

export interface ServiceTableInput {
  services: readonly ServiceObject[];
  tasks: readonly TaskObject[];
  /** Live leases (those of ended tasks left out). */
  leases: readonly AddressLease[];
  nodes: readonly NodeObject[];
  networks: readonly NetworkObject[];
}

export interface NodeServiceTables {
  tables: ServiceTable[];
  ingress?: IngressTable;
}

/** A task that may take connections: it should run, runs, is healthy or has no check, on a ready node. */
export function takesTraffic(task: TaskObject, readyNodes: ReadonlySet<string>): boolean {
  return (
    task.desiredState === 'running' &&
    isUp(task) &&
    task.nodeId !== undefined &&
    readyNodes.has(task.nodeId)
  );
}

/** Whether any service publishes a port in ingress mode (then every node gets an ingress sandbox). */
export function meshWanted(services: readonly ServiceObject[]): boolean {
  return services.some((s) => (s.spec.endpoint?.ports ?? []).some((p) => p.mode === 'ingress'));
}

export function serviceTablesFrom(input: ServiceTableInput): Map<string, NodeServiceTables> {
  const readyNodes = new Set(input.nodes.filter((n) => n.status.state === 'ready').map((n) => n.id));
  const tasksOf = new Map<string, TaskObject[]>();
  for (const task of input.tasks) {
    if (!takesTraffic(task, readyNodes)) continue;
    const list = tasksOf.get(task.serviceId);
    if (list) list.push(task);
    else tasksOf.set(task.serviceId, [task]);
  }
  const addressOn = (task: TaskObject, networkId: string) => task.attachments?.find((a) => a.networkId === networkId)?.address;
  const records = new Map<string, NameRecord[]>();
  const vips = new Map<string, VirtualAddress[]>();
  const push = <T>(map: Map<string, T[]>, key: string, item: T) => {
    const list = map.get(key);
    if (list) list.push(item);
    else map.set(key, [item]);
  };
  const ingressPorts: IngressTable['ports'] = [];
  for (const service of input.services) {
    const live = tasksOf.get(service.id) ?? [];
    const name = service.spec.name.toLowerCase();
    for (const network of service.endpoint?.networks ?? []) {
      const backends = live.flatMap((t) => addressOn(t, network.networkId) ?? []).sort();
      if (network.ingress) {
        for (const port of service.spec.endpoint.ports.filter((p) => p.mode === 'ingress')) {
          ingressPorts.push({ protocol: port.protocol, publishedPort: port.publishedPort, targetPort: port.targetPort, service: service.spec.name, backends });
        }
        continue;
      }
      const answer: NameRecord = network.vip ? { name, addresses: [network.vip] } : { name, addresses: backends, shuffle: true };
      push(records, network.networkId, answer);
      const aliases = service.spec.container.aliases[network.networkName] ?? service.spec.container.aliases[network.networkId] ?? [];
      // As libnetwork: each alias answers too, and so does tasks.ALIAS (a stack's `tasks.web`).
      for (const alias of aliases) {
        push(records, network.networkId, { ...answer, name: alias.toLowerCase() });
        push(records, network.networkId, { name: `tasks.${alias.toLowerCase()}`, addresses: backends, shuffle: true });
      }
      push(records, network.networkId, { name: `tasks.${name}`, addresses: backends, shuffle: true });
      for (const task of live) {
        const address = addressOn(task, network.networkId);
        if (address) push(records, network.networkId, { name: taskName(task).toLowerCase(), addresses: [address] });
      }
      if (network.vip) push(vips, network.networkId, { address: network.vip, service: service.spec.name, backends });
    }
  }
  // Standalone containers on attachable overlays answer to their names.
  for (const lease of input.leases) {
    if (!lease.names?.length || !lease.nodeId || !readyNodes.has(lease.nodeId)) continue;
    for (const name of lease.names) push(records, lease.networkId, { name: name.toLowerCase(), addresses: [lease.address] });
  }
  const ingressNetwork = input.networks.find((n) => n.spec.ingress);
  const networksOf = new Map<string, Set<string>>();
  const sandboxes = new Map<string, AddressLease>();
  for (const lease of input.leases) {
    if (!lease.nodeId) continue;
    if (!networksOf.has(lease.nodeId)) networksOf.set(lease.nodeId, new Set());
    networksOf.get(lease.nodeId)!.add(lease.networkId);
    if (ingressNetwork && lease.networkId === ingressNetwork.id && lease.owner === ingressSandboxOwner(lease.nodeId)) sandboxes.set(lease.nodeId, lease);
  }
  const sandboxAddresses = [...sandboxes.values()].map((l) => l.address).sort();
  const result = new Map<string, NodeServiceTables>();
  for (const node of input.nodes) {
    const tables = [...(networksOf.get(node.id) ?? [])]
      .filter((id) => id !== ingressNetwork?.id)
      .sort()
      .map((networkId) => ({
        networkId,
        records: (records.get(networkId) ?? []).sort((a, b) => a.name.localeCompare(b.name)),
        vips: (vips.get(networkId) ?? []).sort((a, b) => a.address.localeCompare(b.address)),
      }));
    const sandbox = sandboxes.get(node.id);
    const ingress =
      ingressNetwork && sandbox && ingressPorts.length > 0 ? { attachment: attachmentFor(ingressNetwork, sandbox.owner, sandbox.address), ports: ingressPorts, sandboxes: sandboxAddresses } : undefined;
    result.set(node.id, { tables, ...(ingress ? { ingress } : {}) });
  }
  return result;
}
