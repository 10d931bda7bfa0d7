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
 * Where the stored state of nodes disagrees with what this leader observes, whoever wrote it
 * last (a deposed leader, a race): a node heard within the grace period is Ready, one not
 * heard for longer is Down. A node never heard from under this leader gets the grace period
 * plus `takeoverMs` from the moment the leader took over or the node joined, whichever is
 * later: its agent may still be timing out on the old leader before it finds this one.
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
    const heard = lastSeen(node.id);
    if (heard !== undefined && now - heard <= graceMs) {
      if (node.status.state !== 'ready') corrections.push({ id: node.id, state: 'ready' });
    } else if (node.status.state !== 'down' && (heard !== undefined ? now - heard > graceMs : now - Math.max(leaderSince, Date.parse(node.createdAt) || 0) > graceMs + takeoverMs)) {
      corrections.push({ id: node.id, state: 'down' });
    }
  }
  return corrections;
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
      const nodes = (await listNodes(this.store)).map((n) => n.value);
      const graceMs = this.graceMs();
      for (const { id, state } of nodeStateCorrections(nodes, this.lastSeen, this.leaderSince, Date.now(), graceMs, takeoverGraceMs)) {
        // A pass still running when its leader was stopped is abandoned, not finished.
        if (this.stopped) return;
        // Decided from a snapshot: look again at write time.
        const heard = () => Date.now() - (this.lastSeen(id) ?? -Infinity) <= graceMs;
        const written =
          state === 'down'
            ? await setNodeState(this.store, id, 'down', `no heartbeat for ${Math.round(graceMs / 1000)}s`, {
                unless: () => {
                  const seen = this.lastSeen(id);
                  return seen !== undefined ? Date.now() - seen <= graceMs : Date.now() - this.leaderSince <= graceMs + takeoverGraceMs;
                },
                fence: this.fence,
              })
            : await setNodeState(this.store, id, 'ready', 'heartbeating to the leader', { unless: () => !heard(), fence: this.fence });
        if (written?.status.state === 'down' && state === 'down') {
          this.log.warn('node missed its heartbeats; marked down', { node: id });
          this.onMarkedDown(id);
        } else if (written?.status.state === 'ready' && state === 'ready') {
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
