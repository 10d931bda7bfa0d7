/**
 * A ClusterSource answering with API data recorded from a real lab (test/fixtures/ui/), for
 * the UI's component tests; it records the actions asked of it.
 */
import { readFileSync } from 'node:fs';
import type { NodeAvailability } from '../../shared/schemas.ts';
import type { ClusterSource, UiEvent, UiLogLine, UiNetwork, UiNetworkDetail, UiNode, UiService, UiTask, UiTrace } from '../../cli/ui/source.ts';

const fixtures = new URL('../../../test/fixtures/ui/', import.meta.url);

export function recorded<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`${name}.json`, fixtures), 'utf8')) as T;
}

export class RecordedSource implements ClusterSource {
  readonly label = 'unix:///recorded/shoal.sock';
  nodesAnswer: UiNode[] = recorded('nodes');
  servicesAnswer: UiService[] = recorded('services');
  tasksAnswer: UiTask[] = recorded('tasks');
  networksAnswer: UiNetwork[] = recorded('networks');
  networkAnswer: UiNetworkDetail = recorded('network-healthy');
  eventsAnswer: UiEvent[] = recorded('events');
  /** A trace whose VXLAN probe a firewall on h2 stopped. */
  traceAnswer: UiTrace = recorded('trace-firewalled');
  logLines: UiLogLine[] = [{ task: 'web.1.0d1093764983', node: 'h3', stream: 'stdout', text: 'listening on :80' }];
  /** When set, every call fails as an unreachable manager does. */
  down: Error | undefined;
  readonly actions: string[] = [];
  private followers = new Set<(event: UiEvent) => void>();

  private answer<T>(value: T): Promise<T> {
    return this.down ? Promise.reject(this.down) : Promise.resolve(structuredClone(value));
  }

  nodes = () => this.answer(this.nodesAnswer);
  services = () => this.answer(this.servicesAnswer);
  tasks = (_serviceId: string) => this.answer(this.tasksAnswer);
  networks = () => this.answer(this.networksAnswer);
  network = (_id: string) => this.answer(this.networkAnswer);

  async follow(onEvent: (event: UiEvent) => void, signal: AbortSignal): Promise<void> {
    if (this.down) throw this.down;
    for (const event of this.eventsAnswer) onEvent(event);
    this.followers.add(onEvent);
    try {
      await new Promise<void>((resolve, reject) => {
        signal.addEventListener('abort', () => resolve(), { once: true });
        this.cut = reject;
      });
    } finally {
      this.followers.delete(onEvent);
    }
  }

  private cut: (error: Error) => void = () => undefined;

  /** The manager goes away: the events stream breaks and every call fails until `back()`. */
  goDown(error = new Error('cannot reach a manager (connect ECONNREFUSED)')): void {
    this.down = error;
    this.cut(error);
  }

  back(): void {
    this.down = undefined;
  }

  /** A live event, as the manager would stream it. */
  emit(event: UiEvent): void {
    for (const follower of this.followers) follower(event);
  }

  async logs(_target: { service: string } | { container: string }, onLine: (line: UiLogLine) => void, signal: AbortSignal): Promise<void> {
    for (const line of this.logLines) onLine(line);
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  }

  async scale(serviceId: string, replicas: number): Promise<void> {
    this.actions.push(`scale ${serviceId} ${replicas}`);
  }

  async rollback(serviceId: string): Promise<void> {
    this.actions.push(`rollback ${serviceId}`);
  }

  async removeService(serviceId: string): Promise<void> {
    this.actions.push(`remove ${serviceId}`);
  }

  async setAvailability(nodeId: string, availability: NodeAvailability): Promise<void> {
    this.actions.push(`availability ${nodeId} ${availability}`);
  }

  async trace(from: string, to: string): Promise<UiTrace> {
    this.actions.push(`trace ${from} ${to}`);
    return this.answer(this.traceAnswer);
  }
}
