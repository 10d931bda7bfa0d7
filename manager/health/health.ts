import type { NodeObject } from '../../shared/schemas.ts';
import type { Logger } from '../../shared/log.ts';
import type { Store } from '../../shared/store/store.ts';
import { listNodes, setNodeState } from '../nodes.ts';

/**
 * Which nodes to mark down: those not marked down yet whose last heartbeat is older than the
 * grace period. A node never heard from under this leader gets the grace period from the
 * moment the leader took over or the node joined, whichever is later: a node that joined a
 * moment ago is still opening its session.
 */
export function nodesToMarkDown(
  nodes: readonly Pick<NodeObject, 'id' | 'status' | 'createdAt'>[],
  lastSeen: (nodeId: string) => number | undefined,
  leaderSince: number,
  now: number,
  graceMs: number,
): string[] {
  return nodes
    .filter((node) => node.status.state !== 'down')
    .filter((node) => now - (lastSeen(node.id) ?? Math.max(leaderSince, Date.parse(node.createdAt) || 0)) > graceMs)
    .map((node) => node.id);
}

/** The leader's node-health loop: marks nodes down when their heartbeats stop. */
export class NodeHealthLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private leaderSince = 0;

  constructor(
    private readonly store: Store,
    private readonly lastSeen: (nodeId: string) => number | undefined,
    private readonly graceMs: () => number,
    private readonly log: Logger,
    /** Tells the dispatcher, so the node's next heartbeat marks it ready again. */
    private readonly onMarkedDown: (nodeId: string) => void = () => undefined,
  ) {}

  start(): void {
    this.leaderSince = Date.now();
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.tick().finally(() => (this.running = undefined));
    }, 1000);
  }

  private async tick(): Promise<void> {
    try {
      const nodes = (await listNodes(this.store)).map((n) => n.value);
      const graceMs = this.graceMs();
      for (const id of nodesToMarkDown(nodes, this.lastSeen, this.leaderSince, Date.now(), graceMs)) {
        // Decided from a snapshot: a session may have opened since, so look again at write time.
        const heardSince = () => Date.now() - (this.lastSeen(id) ?? this.leaderSince) <= graceMs;
        const written = await setNodeState(this.store, id, 'down', `no heartbeat for ${Math.round(graceMs / 1000)}s`, undefined, heardSince);
        if (written?.status.state === 'down') {
          this.log.warn('node missed its heartbeats; marked down', { node: id });
          this.onMarkedDown(id);
        }
      }
    } catch (error) {
      this.log.warn('node health check failed', { error: String(error) });
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
