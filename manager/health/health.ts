import type { NodeObject, NodeState } from '../../shared/schemas.ts';
import type { Logger } from '../../shared/log.ts';
import { isShoalError } from '../../shared/errors.ts';
import type { Store, WriteOp } from '../../shared/store/store.ts';
import { listNodes, setNodeState } from '../nodes.ts';

export interface NodeStateCorrection {
  id: string;
  state: Extract<NodeState, 'ready' | 'down'>;
}

/**
 * What this leader observes of a node: Ready if it was heard within the grace period, Down if
 * it has been silent for longer, and nothing yet while it may still be looking for this
 * leader. A node never heard from under this leader gets the grace period plus `takeoverMs`
 * from `since` (the moment the leader took over or the node joined, whichever is later): its
 * agent may still be timing out on the old leader.
 */
export function observedState(heard: number | undefined, since: number, now: number, graceMs: number, takeoverMs: number): 'ready' | 'down' | undefined {
  if (heard !== undefined) return now - heard <= graceMs ? 'ready' : 'down';
  return now - since > graceMs + takeoverMs ? 'down' : undefined;
}

/**
 * Where the stored state of nodes disagrees with what this leader observes, whoever wrote it
 * last (a deposed leader, a race).
 */
export function nodeStateCorrections(
  nodes: readonly Pick<NodeObject, 'id' | 'status' | 'createdAt'>[],
  lastSeen: (nodeId: string) => number | undefined,
  leaderSince: number,
  now: number,
  graceMs: number,
  takeoverMs = 0,
): NodeStateCorrection[] {
  const corrections: NodeStateCorrection[] = [];
  for (const node of nodes) {
    const observed = observedState(lastSeen(node.id), sinceFor(node, leaderSince), now, graceMs, takeoverMs);
    if (observed && observed !== node.status.state) corrections.push({ id: node.id, state: observed });
  }
  return corrections;
}

function sinceFor(node: Pick<NodeObject, 'createdAt'>, leaderSince: number): number {
  return Math.max(leaderSince, Date.parse(node.createdAt) || 0);
}

/**
 * Measured on a lab: after the leader's host was cut off, an agent spent 5 s on a dial to the
 * old leader (its timeout) before a redirect found the new one; with a 3 s grace the new
 * leader marked it down and moved its tasks, though it was fine. Ten seconds covers that dial
 * and the redirect.
 */
export const takeoverGraceMs = 10_000;

/** Which nodes to mark down (the Down half of the corrections). */
export function nodesToMarkDown(...args: Parameters<typeof nodeStateCorrections>): string[] {
  return nodeStateCorrections(...args).filter((c) => c.state === 'down').map((c) => c.id);
}

/**
 * The leader's node-health loop, level-triggered: every second it sets each node's stored
 * state to what the leader observes. Its writes carry the fence of the term it was started in,
 * so once this manager is deposed none of them lands.
 */
export class NodeHealthLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private leaderSince = 0;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly lastSeen: (nodeId: string) => number | undefined,
    private readonly graceMs: () => number,
    private readonly log: Logger,
    private readonly fence: readonly WriteOp[],
    /** Tells the dispatcher, so the node's next heartbeat marks it ready again. */
    private readonly onMarkedDown: (nodeId: string) => void = () => undefined,
    /**
     * The nodes as the leader's mirror holds them (undefined until it is open). Listing them
     * from etcd every second was 1-2 MB to decode each second with a thousand nodes; each
     * correction is checked against etcd when it is written anyway.
     */
    private readonly mirroredNodes: () => NodeObject[] | undefined = () => undefined,
  ) {}

  start(): void {
    this.leaderSince = Date.now();
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.tick().finally(() => (this.running = undefined));
    }, 1000);
  }

  /** One pass; exposed for tests. */
  async tick(): Promise<void> {
    try {
      const nodes = this.mirroredNodes() ?? (await listNodes(this.store)).map((n) => n.value);
      const graceMs = this.graceMs();
      const byId = new Map(nodes.map((n) => [n.id, n]));
      for (const { id, state } of nodeStateCorrections(nodes, this.lastSeen, this.leaderSince, Date.now(), graceMs, takeoverGraceMs)) {
        // A pass still running when its leader was stopped is abandoned, not finished.
        if (this.stopped) return;
        // Decided from a snapshot: the same rule again at write time, as a session may have opened since.
        const since = sinceFor(byId.get(id)!, this.leaderSince);
        const unless = () => observedState(this.lastSeen(id), since, Date.now(), graceMs, takeoverGraceMs) !== state;
        const message = state === 'down' ? `no heartbeat for ${Math.round(graceMs / 1000)}s` : 'heartbeating to the leader';
        const written = await setNodeState(this.store, id, state, message, { unless, fence: this.fence });
        if (written?.status.state !== state) continue;
        if (state === 'down') {
          this.log.warn('node missed its heartbeats; marked down', { node: id });
          this.onMarkedDown(id);
        } else {
          this.log.info('node heartbeats to the leader but was not stored Ready; marked ready', { node: id });
        }
      }
    } catch (error) {
      if (isShoalError(error) && error.code === 'deposed') this.log.info('node health pass abandoned: no longer the leader');
      else this.log.warn('node health check failed', { error: String(error) });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
