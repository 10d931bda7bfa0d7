/**
 * An agent's metrics (docs/metrics.md): its engine calls, the stages of its task starts, the
 * delay of the endpoint announcements it hears, and the endpoints it holds per network.
 */
import type { Histogram, Registry } from 'prom-client';
import { countedGauge, latencyHistogram, newRegistry } from '../shared/metrics.ts';

export class AgentMetrics {
  readonly registry: Registry;
  readonly engineCall: Histogram<'method' | 'outcome'>;
  readonly taskStart: Histogram<'stage'>;
  readonly gossipDelay: Histogram;
  /** Set once the network plug-in runs: this host's endpoints per network name. */
  endpoints: (() => ReadonlyMap<string, number>) | undefined;

  constructor() {
    this.registry = newRegistry();
    this.engineCall = latencyHistogram(this.registry, 'shoal_engine_call_duration_seconds', 'Engine calls from managers (create, start, exec, pull, ...), by method and outcome (ok, error); streams count until they end.', ['method', 'outcome']);
    this.taskStart = latencyHistogram(this.registry, 'shoal_task_start_stage_seconds', 'The stages of starting a service task on this node: prepare (image, filesystem, bundle), start (network and runc), total.', ['stage']);
    this.gossipDelay = latencyHistogram(this.registry, 'shoal_gossip_message_delay_seconds', 'From another host\'s endpoint announcement being published to it being heard here (wall clocks of both hosts).');
    countedGauge(this.registry, 'shoal_network_endpoints', 'Endpoints this host holds on each network (tasks and containers), by network name.', 'network', () => this.endpoints?.());
  }
}
