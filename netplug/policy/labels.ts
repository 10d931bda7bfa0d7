/**
 * The labels a policy's selectors see on a workload endpoint: the container's labels, its
 * service's labels (which reach their tasks), and four Shoal sets itself, which win over a
 * user's label of the same key so no workload can claim another's service or stack.
 */
import { stackLabel } from '../../shared/services.ts';

export const builtinLabelKeys = ['service', 'stack', 'network', 'node'] as const;

export interface WorkloadFacts {
  containerLabels?: Readonly<Record<string, string>>;
  serviceLabels?: Readonly<Record<string, string>>;
  /** The service's name, for a task. */
  service?: string;
  /** The network this endpoint is on, by name. */
  network: string;
  /** The node's hostname. */
  node: string;
}

export function workloadLabels(facts: WorkloadFacts): Record<string, string> {
  const labels: Record<string, string> = { ...facts.containerLabels, ...facts.serviceLabels };
  const stack = facts.serviceLabels?.[stackLabel] ?? facts.containerLabels?.[stackLabel];
  for (const key of builtinLabelKeys) delete labels[key];
  return {
    ...labels,
    ...(facts.service ? { service: facts.service } : {}),
    ...(stack ? { stack } : {}),
    network: facts.network,
    node: facts.node,
  };
}
