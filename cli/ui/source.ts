/**
 * Where the terminal UI gets the cluster from: the manager's API, behind a few verbs that say
 * what the UI needs. Component tests pass recorded answers instead.
 */
import type { NetworkDetail, NetworkView } from '../../manager/api/networks.ts';
import type { ClusterEvent } from '../../manager/event-log.ts';
import type { TraceAnswer } from '../../manager/api/trace.ts';
import type { NodeAvailability, NodeView } from '../../shared/schemas.ts';
import type { ServiceObject, TaskObject } from '../../shared/services.ts';
import type { ApiClient } from '../client.ts';

export type UiNode = NodeView;
export type UiService = ServiceObject & { running: number; desired: number };
/** A task as the UI lists it: without its spec (the service's). */
export type UiTask = Omit<TaskObject, 'spec'> & { name: string; node: string | null };
export type UiNetwork = NetworkView;
export type UiTrace = TraceAnswer;
export type UiNetworkDetail = NetworkDetail;
export type UiEvent = ClusterEvent;
export interface UiLogLine {
  task?: string;
  node?: string;
  stream: string;
  text: string;
}

export interface ClusterSource {
  /** Where the manager is, for the header. */
  readonly label: string;
  nodes(): Promise<UiNode[]>;
  services(): Promise<UiService[]>;
  tasks(serviceId: string): Promise<UiTask[]>;
  networks(): Promise<UiNetwork[]>;
  /** With each host's kernel state set against its peer table. */
  network(id: string): Promise<UiNetworkDetail>;
  /** Follows the events stream until it ends (rejects when the manager goes) or `signal` aborts. */
  follow(onEvent: (event: UiEvent) => void, signal: AbortSignal): Promise<void>;
  /** Follows a service's logs (all its tasks), or one task's container. */
  logs(target: { service: string } | { container: string }, onLine: (line: UiLogLine) => void, signal: AbortSignal): Promise<void>;
  scale(serviceId: string, replicas: number): Promise<void>;
  rollback(serviceId: string): Promise<void>;
  removeService(serviceId: string): Promise<void>;
  setAvailability(nodeId: string, availability: NodeAvailability): Promise<void>;
  /** `shoal network trace FROM TO`: tasks or containers by name or id. */
  trace(from: string, to: string): Promise<UiTrace>;
}

const path = (id: string) => encodeURIComponent(id);

/** The cluster through the manager's API. */
export class ApiSource implements ClusterSource {
  constructor(
    private readonly client: ApiClient,
    readonly label: string,
  ) {}

  nodes = () => this.client.call<UiNode[]>('GET', '/v1/nodes?summary=true');
  services = () => this.client.call<UiService[]>('GET', '/v1/services');
  tasks = (serviceId: string) => this.client.call<UiTask[]>('GET', `/v1/services/${path(serviceId)}/tasks?summary=true`);
  networks = () => this.client.call<UiNetwork[]>('GET', '/v1/networks');
  network = (id: string) => this.client.call<UiNetworkDetail>('GET', `/v1/networks/${path(id)}?verbose=true`);

  async follow(onEvent: (event: UiEvent) => void, signal: AbortSignal): Promise<void> {
    await this.client.stream('GET', '/v1/events', undefined, (event) => onEvent(event as UiEvent), signal);
    // The stream ended without being asked to: the manager went away.
    if (!signal.aborted) throw new Error('the events stream ended');
  }

  async logs(target: { service: string } | { container: string }, onLine: (line: UiLogLine) => void, signal: AbortSignal): Promise<void> {
    const url = 'service' in target ? `/v1/services/${path(target.service)}/logs?follow=true&tail=200` : `/v1/containers/${path(target.container)}/logs?follow=true&tail=200`;
    await this.client.stream('GET', url, undefined, (line) => onLine(line as UiLogLine), signal);
  }

  async scale(serviceId: string, replicas: number): Promise<void> {
    await this.client.call('PATCH', `/v1/services/${path(serviceId)}`, { replicas });
  }

  async rollback(serviceId: string): Promise<void> {
    await this.client.call('POST', `/v1/services/${path(serviceId)}/rollback`);
  }

  async removeService(serviceId: string): Promise<void> {
    await this.client.call('DELETE', `/v1/services/${path(serviceId)}`);
  }

  async setAvailability(nodeId: string, availability: NodeAvailability): Promise<void> {
    await this.client.call('PATCH', `/v1/nodes/${path(nodeId)}`, { availability });
  }

  trace = (from: string, to: string) => this.client.call<UiTrace>('POST', '/v1/networks/trace', { from, to });
}
