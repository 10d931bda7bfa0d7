/**
 * The leader's policy table: every policy, and every workload endpoint of the cluster with the
 * labels policy's selectors see on it (current service labels: a label change reaches the
 * verdicts without replacing a task). The same table goes to every node; each agent compiles
 * it for its own workloads. With no policy there is nothing to send but an empty table.
 */
import type { NodeObject } from '../../shared/schemas.ts';
import type { ServiceObject, TaskObject } from '../../shared/services.ts';
import type { AddressLease, NetworkObject } from '../../netplug/model.ts';
import { workloadLabels } from '../../netplug/policy/labels.ts';
import type { PolicyObject, PolicyTable, WorkloadEndpoint } from '../../netplug/policy/model.ts';
import { leaseHolder } from './lease-owners.ts';

export interface PolicyTableInput {
  policies: readonly PolicyObject[];
  services: readonly ServiceObject[];
  tasks: readonly TaskObject[];
  /** Live address leases (those of ended tasks left out). */
  leases: readonly AddressLease[];
  nodes: readonly NodeObject[];
  networks: readonly NetworkObject[];
}

export function policyTableFrom(input: PolicyTableInput): PolicyTable {
  if (input.policies.length === 0) return { policies: [], workloads: [] };
  const services = new Map(input.services.map((s) => [s.id, s]));
  const tasks = new Map(input.tasks.map((t) => [t.id, t]));
  const nodes = new Map(input.nodes.map((n) => [n.id, n.description.hostname]));
  const networks = new Map(input.networks.map((n) => [n.id, n.spec.name]));
  const workloads: WorkloadEndpoint[] = [];
  for (const lease of input.leases) {
    if (leaseHolder(lease.owner).kind !== 'endpoint') continue;
    const task = tasks.get(lease.owner);
    const service = task && services.get(task.serviceId);
    workloads.push({
      address: lease.address,
      labels: workloadLabels({
        ...(task ? { containerLabels: task.spec.container.labels, serviceLabels: service?.spec.labels ?? task.spec.labels, service: task.serviceName } : { containerLabels: lease.labels }),
        network: networks.get(lease.networkId) ?? lease.networkId,
        node: (lease.nodeId && nodes.get(lease.nodeId)) || '',
      }),
    });
  }
  return { policies: input.policies.map((p) => p.spec), workloads: workloads.sort((a, b) => a.address.localeCompare(b.address)) };
}
