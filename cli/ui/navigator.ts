/**
 * What the user is looking at and what the keys do: the stack of views, the selected row of
 * each, the open prompt or confirmation. Keys change it synchronously, so keys typed faster
 * than the screen redraws all count (a React state read from a stale render would drop them).
 */
import type { Key } from 'ink';
import type { ClusterModel, ClusterState } from './model.ts';
import type { ClusterSource, UiNetwork, UiNode, UiService, UiTask, UiTrace } from './source.ts';
import { networkPicture, type PictureEndpoint } from './network-picture.ts';
import { inBackground } from '../../shared/concurrency.ts';

export type View =
  | { kind: 'nodes' }
  | { kind: 'services' }
  | { kind: 'networks' }
  | { kind: 'events' }
  | { kind: 'tasks'; serviceId: string; serviceName: string }
  | { kind: 'network'; network: UiNetwork }
  | { kind: 'logs'; target: { service: string } | { container: string }; title: string };

export type Modal =
  | { kind: 'help' }
  | { kind: 'command'; text: string }
  | { kind: 'scale'; service: UiService; text: string }
  | { kind: 'confirm'; question: string; description: string; run: (source: ClusterSource) => Promise<void> }
  /** A trace between two endpoints of the network shown: running until its answer or error comes. */
  | { kind: 'trace'; from: string; to: string; answer?: UiTrace; error?: string };

export interface Navigation {
  stack: View[];
  /** Per view: the selected row; for logs, how many lines up from the newest (0 follows). */
  cursors: Record<string, number>;
  modal?: Modal;
  /** In a network's view: the endpoint a trace starts from (marked with space or a first t). */
  traceFrom?: PictureEndpoint;
}

export const rootViews: Record<string, View> = { '1': { kind: 'nodes' }, '2': { kind: 'services' }, '3': { kind: 'networks' }, '4': { kind: 'events' } };

const viewNames: Record<string, View['kind']> = {
  nodes: 'nodes', node: 'nodes', no: 'nodes',
  services: 'services', service: 'services', svc: 'services',
  tasks: 'tasks', task: 'tasks', ps: 'tasks',
  networks: 'networks', network: 'networks', net: 'networks',
  events: 'events', event: 'events', ev: 'events',
  logs: 'logs', log: 'logs',
};

export function viewTitle(view: View): string {
  if (view.kind === 'tasks') return `Tasks of ${view.serviceName}`;
  if (view.kind === 'network') return `Network ${view.network.spec.name}`;
  if (view.kind === 'logs') return `Logs of ${view.title}`;
  return view.kind[0]!.toUpperCase() + view.kind.slice(1);
}

export const viewKey = (view: View) => (view.kind === 'tasks' ? `tasks:${view.serviceId}` : view.kind === 'network' ? `network:${view.network.id}` : view.kind);

/** The rows a view lists, in order. */
export function rowsOf(view: View, state: ClusterState): readonly unknown[] {
  if (view.kind === 'nodes') return state.nodes;
  if (view.kind === 'services') return state.services;
  if (view.kind === 'networks') return state.networks;
  if (view.kind === 'events') return state.events;
  if (view.kind === 'tasks') return state.tasks.serviceId === view.serviceId ? state.tasks.list : [];
  if (view.kind === 'logs') return state.logs.lines;
  // A network's endpoints in the order its detail draws them: host by host.
  if (view.kind === 'network') return state.network?.id === view.network.id ? networkPicture(state.network).hosts.flatMap((h) => h.endpoints) : [];
  return [];
}

/** The selected row of a list view, kept inside the list; the events view starts at the newest. */
export function cursorOf(navigation: Navigation, view: View, count: number): number {
  const raw = navigation.cursors[viewKey(view)] ?? (view.kind === 'events' ? count - 1 : 0);
  return Math.max(0, Math.min(raw, count - 1));
}

export class Navigator {
  private navigation: Navigation;
  private readonly listeners = new Set<() => void>();
  /** Rows in a page (PgUp, PgDn), from the terminal's height at the last draw. */
  pageSize = 10;

  constructor(
    private readonly model: ClusterModel,
    private readonly exit: () => void,
    initial: View = { kind: 'services' },
  ) {
    this.navigation = { stack: [initial], cursors: {} };
    this.follow();
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  readonly snapshot = (): Navigation => this.navigation;

  get view(): View {
    return this.navigation.stack.at(-1)!;
  }

  private update(patch: Partial<Navigation>): void {
    const before = this.view;
    this.navigation = { ...this.navigation, ...patch };
    if (this.view !== before && this.navigation.traceFrom) this.navigation = { ...this.navigation, traceFrom: undefined };
    if (this.view !== before) this.follow();
    for (const listener of this.listeners) listener();
  }

  /** The model follows what the top view shows, and nothing else. */
  private follow(): void {
    const view = this.view;
    this.model.showTasks(view.kind === 'tasks' ? view.serviceId : undefined);
    this.model.showNetwork(view.kind === 'network' ? view.network : undefined);
    this.model.showLogs(view.kind === 'logs' ? view.target : undefined);
  }

  private push(view: View): void {
    this.update({ stack: [...this.navigation.stack, view] });
  }

  private setCursor(value: number): void {
    this.update({ cursors: { ...this.navigation.cursors, [viewKey(this.view)]: value } });
  }

  private rows(): readonly unknown[] {
    return rowsOf(this.view, this.model.snapshot());
  }

  private selected<T>(): T | undefined {
    const rows = this.rows();
    return rows[cursorOf(this.navigation, this.view, rows.length)] as T | undefined;
  }

  /** The service an action applies to: the selected one, or the one whose tasks are shown. */
  private targetService(): UiService | undefined {
    const view = this.view;
    if (view.kind === 'services') return this.selected<UiService>();
    if (view.kind === 'tasks') return this.model.snapshot().services.find((s) => s.id === view.serviceId);
    return undefined;
  }

  private refuse(what: string, why: string): void {
    inBackground(this.model.act(what, () => Promise.reject(new Error(why))), () => undefined);
  }

  private confirm(question: string, description: string, run: (source: ClusterSource) => Promise<void>): void {
    this.update({ modal: { kind: 'confirm', question, description, run } });
  }

  private scaleTo(service: UiService, replicas: number): void {
    if (service.spec.mode === 'global') return this.refuse(`scale ${service.spec.name}`, 'a global service runs one task per node; it does not scale');
    this.confirm(`Scale ${service.spec.name} from ${service.spec.replicas} to ${replicas}?`, `scale ${service.spec.name} to ${replicas}`, (source) => source.scale(service.id, replicas));
  }

  private openByName(name: string): void {
    const kind = viewNames[name.trim().toLowerCase()];
    if (kind === 'tasks' || kind === 'logs') {
      const service = this.targetService();
      if (!service) return this.refuse(`:${name}`, 'select a service first');
      return this.push(kind === 'tasks' ? { kind: 'tasks', serviceId: service.id, serviceName: service.spec.name } : { kind: 'logs', target: { service: service.id }, title: service.spec.name });
    }
    if (!kind) return this.refuse(`:${name}`, `no view "${name}"; try nodes, services, tasks, networks, events or logs`);
    this.update({ stack: [{ kind } as View] });
  }

  private onModalKey(input: string, key: Key, modal: Modal): void {
    if (modal.kind === 'help' || modal.kind === 'trace') return this.update({ modal: undefined });
    if (modal.kind === 'confirm') {
      if (input === 'y' || key.return) inBackground(this.model.act(modal.description, modal.run), () => undefined);
      if (input === 'y' || input === 'n' || key.return || key.escape) this.update({ modal: undefined });
      return;
    }
    if (key.escape) return this.update({ modal: undefined });
    if (key.backspace || key.delete) return this.update({ modal: { ...modal, text: modal.text.slice(0, -1) } });
    if (key.return) {
      this.update({ modal: undefined });
      if (modal.kind === 'command') return this.openByName(modal.text);
      if (!/^\d+$/.test(modal.text)) return this.refuse(`scale ${modal.service.spec.name}`, `"${modal.text}" is not a number of replicas`);
      return this.scaleTo(modal.service, Number(modal.text));
    }
    if (input && !key.ctrl && !key.meta) this.update({ modal: { ...modal, text: modal.text + input } });
  }

  /**
   * What the terminal sent: one key, or several typed faster than they were read (which ink
   * hands over as one string, as it does a paste); each of those counts as its own key.
   */
  key(input: string, key: Key): void {
    if (input.length <= 1 || key.ctrl || key.meta) return this.keyPress(input, key);
    for (const character of input) {
      this.keyPress(character === '\r' ? '' : character, { ...key, return: character === '\r', backspace: character === '\x7f' });
    }
  }

  private keyPress(input: string, key: Key): void {
    const modal = this.navigation.modal;
    if (modal) return this.onModalKey(input, key, modal);
    if (input === 'q' || (key.ctrl && input === 'c')) return this.exit();
    if (input === '?') return this.update({ modal: { kind: 'help' } });
    if (input === ':') return this.update({ modal: { kind: 'command', text: '' } });
    if (rootViews[input]) return this.update({ stack: [rootViews[input]] });
    if (key.escape || key.backspace || key.delete || key.leftArrow) {
      if (key.escape && this.navigation.traceFrom) return this.update({ traceFrom: undefined });
      if (this.navigation.stack.length > 1) this.update({ stack: this.navigation.stack.slice(0, -1) });
      return;
    }
    const view = this.view;
    const count = this.rows().length;
    const page = Math.max(1, this.pageSize);
    if (view.kind === 'logs') {
      const up = Math.min(this.navigation.cursors[viewKey(view)] ?? 0, count);
      const moves: Record<string, number> = { up: up + 1, down: up - 1, pageUp: up + page, pageDown: up - page, top: count, bottom: 0 };
      const move = key.upArrow || input === 'k' ? 'up' : key.downArrow || input === 'j' ? 'down' : key.pageUp ? 'pageUp' : key.pageDown ? 'pageDown' : input === 'g' ? 'top' : input === 'G' ? 'bottom' : undefined;
      if (move) this.setCursor(Math.max(0, Math.min(count, moves[move]!)));
      return;
    }
    const cursor = cursorOf(this.navigation, view, count);
    if (key.upArrow || input === 'k') return this.setCursor(Math.max(0, cursor - 1));
    if (key.downArrow || input === 'j') return this.setCursor(Math.min(count - 1, cursor + 1));
    if (key.pageUp) return this.setCursor(Math.max(0, cursor - page));
    if (key.pageDown) return this.setCursor(Math.min(count - 1, cursor + page));
    if (input === 'g') return this.setCursor(0);
    if (input === 'G') return this.setCursor(count - 1);
    if (key.return || key.rightArrow) return this.open();
    if (view.kind === 'network' && (input === 't' || input === ' ')) return this.traceKey(input);
    const service = this.targetService();
    if (service) {
      if (input === '+') return this.scaleTo(service, service.spec.replicas + 1);
      if (input === '-') return this.scaleTo(service, Math.max(0, service.spec.replicas - 1));
      if (input === 's') return this.update({ modal: { kind: 'scale', service, text: '' } });
      if (input === 'r') return this.confirm(`Roll ${service.spec.name} back to its previous spec?`, `roll back ${service.spec.name}`, (source) => source.rollback(service.id));
      if (input === 'x') return this.confirm(`Remove service ${service.spec.name} and stop its tasks?`, `remove ${service.spec.name}`, (source) => source.removeService(service.id));
      if (input === 'l') {
        const task = view.kind === 'tasks' ? this.selected<UiTask>() : undefined;
        return this.push(task ? { kind: 'logs', target: { container: task.id }, title: task.name } : { kind: 'logs', target: { service: service.id }, title: service.spec.name });
      }
    }
    const node = view.kind === 'nodes' ? this.selected<UiNode>() : undefined;
    const availability = ({ d: 'drain', a: 'active', p: 'pause' } as const)[input as 'd' | 'a' | 'p'];
    if (node && availability) {
      const verb = { drain: 'Drain', active: 'Activate', pause: 'Pause' }[availability];
      this.confirm(`${verb} node ${node.description.hostname}?`, `${verb.toLowerCase()} ${node.description.hostname}`, (source) => source.setAvailability(node.id, availability));
    }
  }

  /**
   * In a network's view, space marks the selected endpoint as where a trace starts (again:
   * unmarks it); t marks it when none is marked, or traces from the marked one to the selected.
   */
  private traceKey(input: string): void {
    const selected = this.selected<PictureEndpoint>();
    if (!selected) return;
    const from = this.navigation.traceFrom;
    if (input === ' ' || !from) {
      const unmark = input === ' ' && from?.owner === selected.owner;
      this.update({ traceFrom: unmark ? undefined : selected });
      return;
    }
    if (from.owner === selected.owner) return this.refuse(`trace from ${from.name}`, 'select the other end first (↑↓), then press t');
    const pending: Modal = { kind: 'trace', from: from.name, to: selected.name };
    this.update({ modal: pending });
    inBackground(
      this.model.act(`trace ${from.name} -> ${selected.name}`, async (source) => {
        const answer = await source.trace(from.owner, selected.owner).catch((error: Error) => {
          if (this.navigation.modal === pending) this.update({ modal: { ...pending, error: error.message } });
          throw error;
        });
        if (this.navigation.modal === pending) this.update({ modal: { ...pending, answer } });
      }),
      () => undefined,
    );
  }

  /** Enter: a service's tasks, a network's hosts, a task's logs. */
  private open(): void {
    const view = this.view;
    if (view.kind === 'services') {
      const service = this.selected<UiService>();
      if (service) this.push({ kind: 'tasks', serviceId: service.id, serviceName: service.spec.name });
    }
    if (view.kind === 'networks') {
      const network = this.selected<UiNetwork>();
      if (network) this.push({ kind: 'network', network });
    }
    if (view.kind === 'tasks') {
      const task = this.selected<UiTask>();
      if (task) this.push({ kind: 'logs', target: { container: task.id }, title: task.name });
    }
  }
}
