/**
 * SIMULATION. Nodes without an engine, to measure the control plane alone at scale.
 *
 * Each simulated node is a real libp2p peer with its own identity. It joins through the real
 * join protocol and holds a real dispatcher session (the agent's own AgentSession), so the
 * managers and etcd see exactly what they see from agents. Instead of running containers it
 * reports every task it is assigned as running at once, and every task it is told to stop as
 * shut down.
 */
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Libp2p } from '@libp2p/interface';
import { AgentSession } from '../../agent/session.ts';
import { inParallel } from '../../shared/concurrency.ts';
import { silentLogger, type Logger } from '../../shared/log.ts';
import type { TaskStatusReport } from '../../shared/p2p/protocol.ts';
import { createP2pNode } from '../../shared/p2p/node.ts';
import type { NodeDescription } from '../../shared/schemas.ts';
import type { TaskAssignment } from '../../shared/services.ts';
import { shoalVersion } from '../../shared/version.ts';

export interface SimulationOptions {
  count: number;
  /** Manager multiaddrs, each with /p2p/<peer id>. */
  join: string[];
  token: string;
  /** Where each node keeps its membership file (one subdirectory per node). */
  stateDir: string;
  cpus?: number;
  memoryBytes?: number;
  /**
   * Called once every node is built (its key and libp2p peer made), just before the joins
   * start: on real hosts each node does that on its own CPU, in parallel.
   */
  onBuilt?: () => void;
  /**
   * Joins in flight at once. Real nodes started together each do their side of the handshake
   * on their own CPU; here one core does all of them, and a thousand at once take longer than
   * an agent waits for its dial (measured: 12-16 s to join, with retries, against 10-11 s).
   */
  joinConcurrency?: number;
  log?: Logger;
}

/** One simulated node: its session, and the state it last reported per task. */
class SimulatedNode {
  private readonly reported = new Map<string, 'running' | 'shutdown'>();
  readonly session: AgentSession;

  constructor(
    readonly p2p: Libp2p,
    readonly description: NodeDescription,
    options: SimulationOptions,
    stateDir: string,
  ) {
    this.session = new AgentSession({
      p2p,
      stateDir,
      join: options.join,
      token: options.token,
      labels: { simulated: 'true' },
      describe: async () => this.description,
      onAssignments: (tasks) => this.follow(tasks),
      // A new session (after a leader change) gets the current truth again.
      onSessionOpen: () => this.reported.clear(),
      log: silentLogger,
    });
  }

  /** Runs what should run and stops what should stop, instantly. */
  private follow(tasks: TaskAssignment[]): void {
    const reports: TaskStatusReport[] = [];
    const assigned = new Set<string>();
    for (const task of tasks) {
      assigned.add(task.id);
      const want = task.desiredState === 'running' ? 'running' : 'shutdown';
      if (this.reported.get(task.id) === want) continue;
      this.reported.set(task.id, want);
      reports.push({ taskId: task.id, state: want, message: want === 'running' ? 'running (simulated)' : 'shut down (simulated)' });
    }
    for (const id of this.reported.keys()) if (!assigned.has(id)) this.reported.delete(id);
    if (reports.length > 0 && !this.session.sendStatuses(reports)) for (const report of reports) this.reported.delete(report.taskId);
  }

  /** Tasks this node reports running. */
  get running(): number {
    let count = 0;
    for (const state of this.reported.values()) if (state === 'running') count++;
    return count;
  }
}

export class SimulatedNodes {
  private constructor(private readonly nodes: SimulatedNode[]) {}

  get size(): number {
    return this.nodes.length;
  }

  /** Tasks all simulated nodes report running. */
  get running(): number {
    return this.nodes.reduce((sum, node) => sum + node.running, 0);
  }

  /** Starts the nodes and waits until each holds a session with the leader. */
  static async start(options: SimulationOptions): Promise<SimulatedNodes> {
    const log = options.log ?? silentLogger;
    const nodes: SimulatedNode[] = [];
    const simulation = new SimulatedNodes(nodes);
    try {
      for (let i = 0; i < options.count; i++) {
        const hostname = `sim-${String(i + 1).padStart(4, '0')}`;
        const p2p = await createP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: [] });
        nodes.push(
          new SimulatedNode(
            p2p,
            {
              hostname,
              // A label, never dialled: simulated nodes have no underlay.
              address: `198.19.${(i >> 8) & 255}.${i & 255}`,
              cpus: options.cpus ?? 8,
              memoryBytes: options.memoryBytes ?? 32 * 1024 ** 3,
              kernel: 'simulated',
              os: 'linux',
              arch: 'amd64',
              runtime: { name: 'simulated', version: '0' },
              engineLabels: { simulated: 'true' },
              agentVersion: shoalVersion,
              p2pAddrs: [],
            },
            options,
            join(options.stateDir, hostname),
          ),
        );
      }
      options.onBuilt?.();
      await inParallel(nodes, options.joinConcurrency ?? 256, async (node) => {
        await node.session.start();
        await node.session.ready;
      });
      log.info('simulated nodes joined', { count: nodes.length });
      return simulation;
    } catch (error) {
      await simulation.stop();
      throw error;
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.map(async (node) => {
        await node.session.stop();
        await node.p2p.stop();
      }),
    );
  }
}
