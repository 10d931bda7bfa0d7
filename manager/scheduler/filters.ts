/** The scheduler's filters, one per rule, as swarmkit's pipeline has them. */
import type { NodeObject } from '../../shared/schemas.ts';
import type { Reservations, ServiceSpec } from '../../shared/services.ts';

export interface NodeInfo {
  node: NodeObject;
  /** Tasks placed on the node that still hold it (not terminal), by service id. */
  tasksByService: Map<string, number>;
  totalTasks: number;
  reserved: Reservations;
  /** Host-mode ports its tasks publish ("8080/tcp") and how many tasks hold each: a port is the host's, one task at a time. */
  hostPorts: Map<string, number>;
}

/** The host-mode ports a spec publishes, as "8080/tcp". */
export function hostPortsOf(spec: ServiceSpec): string[] {
  return (spec.endpoint?.ports ?? []).filter((p) => p.mode === 'host').map((p) => `${p.publishedPort}/${p.protocol}`);
}

export interface Filter {
  name: string;
  /** The answer changes as tasks are placed (reservations add up); the others depend on the spec alone. */
  dependsOnPlacements?: boolean;
  accepts(node: NodeInfo, spec: ServiceSpec, serviceId: string): boolean;
  /** Why no node passed, for `service ps`. */
  explain(rejected: number, total: number, spec: ServiceSpec): string;
}

function valueOf(node: NodeObject, field: string): string | undefined {
  if (field === 'node.id') return node.id;
  if (field === 'node.hostname') return node.description.hostname;
  if (field === 'node.role') return node.spec.role;
  if (field.startsWith('node.labels.')) return node.spec.labels[field.slice('node.labels.'.length)];
  if (field.startsWith('engine.labels.')) return node.description.engineLabels[field.slice('engine.labels.'.length)];
  return undefined;
}

/** Does the node satisfy one constraint ("node.labels.zone==east", "node.role!=manager")? */
export function satisfies(node: NodeObject, constraint: string): boolean {
  const match = /^\s*([\w.-]+)\s*(==|!=)\s*(\S+)\s*$/.exec(constraint);
  if (!match) return false;
  const actual = valueOf(node, match[1]!);
  return match[2] === '==' ? actual === match[3] : actual !== match[3];
}

export const filters: Filter[] = [
  {
    name: 'ready',
    accepts: ({ node }) => node.status.state === 'ready',
    explain: (rejected, total) => `${rejected} of ${total} nodes are not ready`,
  },
  {
    name: 'availability',
    accepts: ({ node }) => node.spec.availability === 'active',
    explain: (rejected, total) => `${rejected} of ${total} nodes are paused or drained`,
  },
  {
    name: 'constraints',
    accepts: ({ node }, spec) => spec.placement.constraints.every((c) => satisfies(node, c)),
    explain: (rejected, total, spec) => `${rejected} of ${total} nodes fail the constraints ${spec.placement.constraints.join(', ')}`,
  },
  {
    name: 'resources',
    dependsOnPlacements: true,
    accepts: ({ node, reserved }, spec) =>
      reserved.nanoCpus + spec.reservations.nanoCpus <= node.description.cpus * 1e9 &&
      reserved.memoryBytes + spec.reservations.memoryBytes <= node.description.memoryBytes,
    explain: (rejected, total, spec) =>
      `${rejected} of ${total} nodes lack the reserved resources (${spec.reservations.nanoCpus / 1e9} CPUs, ${Math.round(spec.reservations.memoryBytes / 1024 / 1024)} MiB)`,
  },
  {
    name: 'max replicas per node',
    dependsOnPlacements: true,
    accepts: ({ tasksByService }, spec, serviceId) => !spec.placement.maxReplicas || (tasksByService.get(serviceId) ?? 0) < spec.placement.maxReplicas,
    explain: (rejected, total, spec) => `${rejected} of ${total} nodes already run ${spec.placement.maxReplicas} of the service's tasks (max replicas per node)`,
  },
  {
    name: 'host ports',
    dependsOnPlacements: true,
    accepts: ({ hostPorts }, spec) => hostPortsOf(spec).every((port) => !hostPorts.has(port)),
    explain: (rejected, total, spec) => `${rejected} of ${total} nodes already publish host port ${hostPortsOf(spec).join(', ')}`,
  },
  {
    name: 'platform',
    accepts: ({ node }) => node.description.os === 'linux',
    explain: (rejected, total) => `${rejected} of ${total} nodes are not linux`,
  },
];
