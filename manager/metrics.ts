/**
 * A manager's metrics (docs/metrics.md): its API, the leader's loops and its store writes. The
 * gauges of nodes, tasks and endpoints are counted from the leader's mirrors when scraped; a
 * follower has no mirror and reports none.
 */
import type { Histogram, Registry } from 'prom-client';
import { countedGauge, latencyHistogram, newRegistry } from '../shared/metrics.ts';

/** What the gauges count, each undefined while this manager does not lead. */
export interface ClusterCounts {
  nodesByState(): ReadonlyMap<string, number> | undefined;
  tasksByState(): ReadonlyMap<string, number> | undefined;
  endpointsByNetwork(): ReadonlyMap<string, number> | undefined;
}

export class ManagerMetrics {
  readonly registry: Registry;
  readonly apiRequest: Histogram<'method' | 'route' | 'status'>;
  readonly schedulingDelay: Histogram;
  readonly dispatchDelay: Histogram;
  readonly loopPass: Histogram;
  readonly storeCommit: Histogram<'outcome'>;
  /** Set once the manager runs: what the gauges count. */
  counts: ClusterCounts | undefined;

  constructor() {
    this.registry = newRegistry();
    this.apiRequest = latencyHistogram(this.registry, 'shoal_api_request_duration_seconds', 'API requests by method, route pattern and status code, from the request read to the reply sent.', ['method', 'route', 'status']);
    this.schedulingDelay = latencyHistogram(this.registry, 'shoal_scheduling_delay_seconds', 'Per task: from the moment the leader decided it should exist (its creation time) to its assignment to a node being stored.');
    this.dispatchDelay = latencyHistogram(this.registry, 'shoal_dispatch_delay_seconds', 'Per task: from its assignment being stored to its assignment being handed to its node\'s session.');
    this.loopPass = latencyHistogram(this.registry, 'shoal_control_loop_pass_duration_seconds', 'One pass of the leader\'s control loop: reconcile, schedule, write, dispatch.');
    this.storeCommit = latencyHistogram(this.registry, 'shoal_store_transaction_duration_seconds', 'One etcd transaction of this manager, by outcome (committed, conflict, error).', ['outcome']);
    countedGauge(this.registry, 'shoal_nodes', 'Nodes by state (ready, down, unknown, disconnected), as the leader sees them.', 'state', () => this.counts?.nodesByState());
    countedGauge(this.registry, 'shoal_tasks', 'Tasks by observed state, as the leader sees them.', 'state', () => this.counts?.tasksByState());
    countedGauge(this.registry, 'shoal_network_endpoints', 'Addresses held on each network (task endpoints, containers, VIPs, ingress sandboxes), by network name.', 'network', () => this.counts?.endpointsByNetwork());
  }
}
