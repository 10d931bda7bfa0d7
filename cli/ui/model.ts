/**
 * The UI's picture of the cluster, kept live: the events stream only marks what is stale, and
 * the stale lists are fetched again, no more often than the last fetch's own cost allows (a
 * 10,000-task list is not fetched ten times a second). When the manager goes, the state says so
 * and the model reconnects, fetching everything afresh. Views read snapshots; nothing here
 * knows about ink.
 */
import type { ClusterSource, UiEvent, UiLogLine, UiNetwork, UiNetworkDetail, UiNode, UiService, UiTask } from './source.ts';
import { inBackground } from '../../shared/concurrency.ts';

export type Connection = { state: 'connecting' } | { state: 'live' } | { state: 'unreachable'; error: string; retryInMs: number };

export interface ClusterState {
  connection: Connection;
  nodes: UiNode[];
  services: UiService[];
  networks: UiNetwork[];
  /** The tasks of the service being looked at. */
  tasks: { serviceId?: string; list: UiTask[] };
  /** The network being looked at, with each host's kernel state. */
  network?: UiNetworkDetail;
  events: UiEvent[];
  logs: { key?: string; lines: UiLogLine[] };
  /** What the last action did, or why it failed. */
  notice?: { text: string; error: boolean };
}

type Part = 'nodes' | 'services' | 'networks' | 'tasks' | 'network';

const keptEvents = 500;
const keptLogLines = 2_000;
/** Kernel state changes with no event (an entry deleted by hand): the network detail is asked again this often. */
const networkPollMs = 2_000;
/** Node usage comes with heartbeats, not events. */
const nodesPollMs = 5_000;

/**
 * What of a task can change while it keeps its id: its record's last write, and the status
 * fields a write can rewrite without moving that time (a waiting task's reason).
 */
const taskVersion = (t: UiTask): string =>
  `${t.updatedAt}|${t.node ?? ''}|${t.desiredState}|${t.status.state}|${t.status.timestamp}|${t.status.health ?? ''}|${t.status.error ?? ''}|${t.status.message ?? ''}`;

/** Each kept item's version, computed once: the kept ones are compared again at every fetch. */
const versions = new WeakMap<object, string>();

/**
 * The fetched list with every item whose version is unchanged replaced by the object it had.
 * Views keep their cells with the object, so a refresh of 10,000 tasks redraws the rows that
 * changed; and the fetched copies of the rest die young, where collecting them is cheap.
 */
export function keepUnchanged<T extends { id: string }>(previous: readonly T[], fetched: readonly T[], version: (item: T) => string): T[] {
  const before = new Map(previous.map((item) => [item.id, item]));
  return fetched.map((item) => {
    const had = before.get(item.id);
    if (had === undefined) return item;
    let was = versions.get(had);
    if (was === undefined) versions.set(had, (was = version(had)));
    return version(item) === was ? had : item;
  });
}

export class ClusterModel {
  private state: ClusterState = { connection: { state: 'connecting' }, nodes: [], services: [], networks: [], tasks: { list: [] }, events: [], logs: { lines: [] } };
  private readonly listeners = new Set<() => void>();
  private readonly abort = new AbortController();
  private readonly dirty = new Set<Part>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing = false;
  private earliestNext = new Map<Part, number>();
  private pollTimers: NodeJS.Timeout[] = [];
  private logs: AbortController | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly source: ClusterSource) {}

  get label(): string {
    return this.source.label;
  }

  /** For React's useSyncExternalStore. */
  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly snapshot = (): ClusterState => this.state;

  private set(patch: Partial<ClusterState>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of this.listeners) listener();
  }

  start(): void {
    this.running ??= this.followForever();
    this.pollTimers.push(
      setInterval(() => this.mark('nodes'), nodesPollMs),
      setInterval(() => {
        if (this.state.network) this.mark('network');
      }, networkPollMs),
    );
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.logs?.abort();
    clearTimeout(this.flushTimer);
    for (const timer of this.pollTimers) clearInterval(timer);
    await this.running;
  }

  /** Follows the events stream; each time it opens, everything is fetched afresh. */
  private async followForever(): Promise<void> {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      try {
        await this.refreshAll();
        this.set({ connection: { state: 'live' } });
        failures = 0;
        await this.source.follow((event) => this.onEvent(event), this.abort.signal);
      } catch (error) {
        if (this.abort.signal.aborted) return;
        failures++;
        const retryInMs = Math.min(1_000 * failures, 5_000);
        this.set({ connection: { state: 'unreachable', error: (error as Error).message, retryInMs } });
        await new Promise((resolve) => setTimeout(resolve, retryInMs));
      }
    }
  }

  private async refreshAll(): Promise<void> {
    const [nodes, services, networks] = await Promise.all([this.source.nodes(), this.source.services(), this.source.networks()]);
    this.set({ nodes, services, networks });
    if (this.state.tasks.serviceId) this.mark('tasks');
    if (this.state.network) this.mark('network');
  }

  private onEvent(event: UiEvent): void {
    this.set({ events: [...this.state.events.slice(-(keptEvents - 1)), event] });
    if (event.type === 'node') this.mark('nodes');
    if (event.type === 'service') this.mark('services', 'tasks');
    if (event.type === 'task') this.mark('services', 'tasks', 'nodes');
    if (event.type === 'network') this.mark('networks');
  }

  /** Marks parts stale; they are fetched together shortly. */
  mark(...parts: Part[]): void {
    for (const part of parts) this.dirty.add(part);
    this.flushTimer ??= setTimeout(() => inBackground(this.flush(), this.fetchFailed), 50);
  }

  private readonly fetchFailed = (error: unknown): void => this.set({ notice: { text: `refresh failed: ${(error as Error).message}`, error: true } });

  private async flush(): Promise<void> {
    this.flushTimer = undefined;
    if (this.flushing || this.abort.signal.aborted) return;
    this.flushing = true;
    try {
      const now = Date.now();
      const due = [...this.dirty].filter((part) => (this.earliestNext.get(part) ?? 0) <= now);
      for (const part of due) this.dirty.delete(part);
      await Promise.all(due.map((part) => this.fetch(part)));
    } finally {
      this.flushing = false;
      if (this.dirty.size > 0) {
        const wait = Math.max(50, Math.min(...[...this.dirty].map((p) => (this.earliestNext.get(p) ?? 0) - Date.now())));
        this.flushTimer ??= setTimeout(() => inBackground(this.flush(), this.fetchFailed), wait);
      }
    }
  }

  private async fetch(part: Part): Promise<void> {
    const started = Date.now();
    try {
      if (part === 'nodes') this.set({ nodes: await this.source.nodes() });
      if (part === 'services') this.set({ services: await this.source.services() });
      if (part === 'networks') this.set({ networks: await this.source.networks() });
      const serviceId = this.state.tasks.serviceId;
      if (part === 'tasks' && serviceId) {
        const list = await this.source.tasks(serviceId);
        if (this.state.tasks.serviceId === serviceId) this.set({ tasks: { serviceId, list: keepUnchanged(this.state.tasks.list, list, taskVersion) } });
      }
      const networkId = this.state.network?.id;
      if (part === 'network' && networkId) {
        const network = await this.source.network(networkId);
        if (this.state.network?.id === networkId) this.set({ network });
      }
    } catch {
      // A single failed fetch is tried again; while the manager is away, the reconnection
      // fetches everything anyway.
      if (this.state.connection.state === 'live') this.dirty.add(part);
    } finally {
      // A list that takes long to fetch is fetched less often: the UI stays responsive.
      this.earliestNext.set(part, Date.now() + Math.max(250, 2 * (Date.now() - started)));
    }
  }

  /** Starts (or stops, with undefined) following one service's tasks. */
  showTasks(serviceId: string | undefined): void {
    if (this.state.tasks.serviceId === serviceId) return;
    this.set({ tasks: { ...(serviceId ? { serviceId } : {}), list: [] } });
    if (serviceId) this.mark('tasks');
  }

  /** Starts (or stops) following one network's detail. */
  showNetwork(network: UiNetwork | undefined): void {
    if (this.state.network?.id === network?.id) return;
    // Until the detail comes, the listing's fields with no endpoints and no hosts yet.
    this.set({ network: network ? { ...network, endpoints: [], vips: [], hosts: [] } : undefined });
    if (network) this.mark('network');
  }

  /** Follows the logs of a service or of one task's container (or stops, with undefined). */
  showLogs(target: { service: string } | { container: string } | undefined): void {
    const key = target ? JSON.stringify(target) : undefined;
    if (this.state.logs.key === key) return;
    this.logs?.abort();
    this.logs = undefined;
    this.set({ logs: { ...(key ? { key } : {}), lines: [] } });
    if (!target) return;
    const controller = new AbortController();
    this.logs = controller;
    let pending: UiLogLine[] = [];
    let timer: NodeJS.Timeout | undefined;
    // Lines come in bursts; the view is updated once per burst.
    const flush = () => {
      timer = undefined;
      if (controller.signal.aborted) return;
      this.set({ logs: { key: key!, lines: [...this.state.logs.lines, ...pending].slice(-keptLogLines) } });
      pending = [];
    };
    void this.source
      .logs(target, (line) => {
        pending.push(line);
        timer ??= setTimeout(flush, 50);
      }, controller.signal)
      .catch((error: unknown) => {
        if (!controller.signal.aborted) this.set({ notice: { text: `logs: ${(error as Error).message}`, error: true } });
      });
  }

  /** Runs an action the user confirmed, saying what happened. */
  async act(description: string, action: (source: ClusterSource) => Promise<void>): Promise<void> {
    this.set({ notice: { text: `${description}...`, error: false } });
    try {
      await action(this.source);
      this.set({ notice: { text: `${description}: done`, error: false } });
      this.mark('services', 'tasks', 'nodes');
    } catch (error) {
      this.set({ notice: { text: `${description}: ${(error as Error).message}`, error: true } });
    }
  }
}
