/**
 * SIMULATION harness: a real etcd and a real manager process on loopback, with N simulated
 * nodes (a separate process, see main.ts) joined to it. Used by the scale benchmark and by the
 * simulation test; nothing here touches a network namespace.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ApiClient, parseEndpoint } from '../../cli/client.ts';
import { waitFor } from '../../lab/lab.ts';
import { startLocalEtcd } from '../../lab/local-etcd.ts';
import { isAlive, pidsMentioning, shoalCommand, stopProcesses, tailLog } from '../../lab/processes.ts';
import type { ManagerView, NodeView } from '../../shared/schemas.ts';
import { inBackground } from '../../shared/concurrency.ts';

/** Every simulated cluster's files live under a directory whose name starts with this. */
const dirPrefix = 'shoal-sim-';

export interface SimulatedCluster {
  client: ApiClient;
  /** The manager's API socket and token, for a CLI run beside the bench. */
  apiSocket: string;
  apiToken: string;
  etcdEndpoint: string;
  managerPid: number;
  /** The manager's log, for diagnostics. */
  managerLog: string;
  /**
   * From the first join until the manager listed every node Ready. The simulation builds its
   * nodes (keys and libp2p peers, one after another on one core) before that: real nodes do it
   * on their own CPUs, in parallel.
   */
  joinedMs: number;
  /** From starting the simulation process until every node was Ready, the building included. */
  startedMs: number;
  stop(): Promise<void>;
}

export interface SimulatedClusterOptions {
  nodes: number;
  heartbeatPeriod?: string;
  progress?: (line: string) => void;
}

/** SHOAL_SIM_MANAGER_NODE_OPTIONS gives the manager alone Node options (a CPU profile, --heapsnapshot-signal) while the simulation runs without. */
function managerEnv(): NodeJS.ProcessEnv {
  const options = process.env.SHOAL_SIM_MANAGER_NODE_OPTIONS;
  return options === undefined ? process.env : { ...process.env, NODE_OPTIONS: options };
}

/**
 * Starts a process whose stderr goes to `log`; its stdout too, unless the caller reads it
 * (`readStdout`): a pipe nobody reads fills up and blocks the process on its next write.
 */
function spawnLogged(command: string, args: string[], log: string, options: { env?: NodeJS.ProcessEnv; readStdout?: boolean } = {}): ChildProcess {
  const fd = openSync(log, 'a');
  try {
    return spawn(command, args, { stdio: ['ignore', options.readStdout ? 'pipe' : fd, fd], env: options.env ?? process.env });
  } finally {
    closeSync(fd);
  }
}

/** Stops what an earlier simulated cluster left running (a killed benchmark, say). */
export async function sweepSimulations(): Promise<void> {
  await stopProcesses(await pidsMentioning(`/${dirPrefix}`));
}

export async function startSimulatedCluster(options: SimulatedClusterOptions): Promise<SimulatedCluster> {
  const progress = options.progress ?? (() => undefined);
  await sweepSimulations();
  const dir = await mkdtemp(join(tmpdir(), dirPrefix));
  const etcd = await startLocalEtcd();
  const children: ChildProcess[] = [];
  const stop = async () => {
    await stopProcesses(children.map((c) => c.pid).filter((pid) => pid !== undefined), 10_000);
    await etcd.stop();
    if (process.env.SHOAL_SIM_KEEP_LOG) await copyFile(join(dir, 'manager.log'), process.env.SHOAL_SIM_KEEP_LOG).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const shoal = shoalCommand();
    const socket = join(dir, 'shoal.sock');
    const managerLog = join(dir, 'manager.log');
    const manager = spawnLogged(shoal.command, [
      ...shoal.args, 'manager',
      '--etcd', etcd.endpoint,
      '--state-dir', join(dir, 'manager'),
      '--listen-p2p', '/ip4/127.0.0.1/tcp/0',
      '--api-socket', socket,
      '--heartbeat-period', options.heartbeatPeriod ?? '5s',
      // More manager flags for a diagnosis (`--metrics-listen 127.0.0.1:9323`, say).
      ...(process.env.SHOAL_SIM_MANAGER_ARGS?.split(' ').filter(Boolean) ?? []),
    ], managerLog, { env: managerEnv() });
    children.push(manager);
    const managerAlive = async () => {
      if (!isAlive(manager.pid)) throw new Error(`the manager exited; its log ends with:\n${await tailLog(managerLog)}`);
    };
    const token = (
      await waitFor('the manager to initialise the cluster', 60_000, async () => {
        await managerAlive();
        return readFile(join(dir, 'manager', 'api-token'), 'utf8').catch(() => undefined);
      })
    ).trim();
    const client = new ApiClient([parseEndpoint(`unix://${socket}`)], token, 120_000);
    await waitFor('the manager to lead', 30_000, async () => ((await client.call<{ isLeader: boolean }>('GET', '/v1/info')).isLeader ? true : undefined));
    const workerToken = (await client.call<{ token: string }>('GET', '/v1/join-tokens/worker')).token;
    const joinAddresses = (await client.call<ManagerView[]>('GET', '/v1/managers')).flatMap((m) => m.p2pAddrs);
    progress(`manager ready (pid ${manager.pid}); starting ${options.nodes} simulated nodes`);

    const simulationLog = join(dir, 'simulation.log');
    const startedAt = Date.now();
    const simulation = spawnLogged(process.execPath, [
      fileURLToPath(new URL('./main.js', import.meta.url)),
      '--nodes', String(options.nodes),
      ...joinAddresses.flatMap((a) => ['--join', a]),
      '--token', workerToken,
      '--state-dir', join(dir, 'nodes'),
    ], simulationLog, { readStdout: true });
    children.push(simulation);
    let joinsFrom = startedAt;
    const joined = new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: simulation.stdout! });
      lines.on('line', (line) => {
        if (line.includes('"built"')) joinsFrom = Date.now();
        if (line.includes('"joined"')) resolve();
      });
      simulation.once('exit', () => inBackground(tailLog(simulationLog).then((tail) => reject(new Error(`the simulation exited:\n${tail}`))), reject));
    });
    let joinTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      joined,
      new Promise((_, reject) => (joinTimer = setTimeout(() => reject(new Error(`${options.nodes} simulated nodes did not join within 5 minutes`)), 300_000))),
    ]).finally(() => clearTimeout(joinTimer));
    await waitFor(`${options.nodes} nodes to be ready`, 60_000, async () => {
      await managerAlive();
      const nodes = await client.call<NodeView[]>('GET', '/v1/nodes');
      return nodes.filter((n) => n.status.state === 'ready').length === options.nodes ? true : undefined;
    });
    const readyAt = Date.now();
    const joinedMs = readyAt - joinsFrom;
    const startedMs = readyAt - startedAt;
    progress(`${options.nodes} simulated nodes ready ${(joinedMs / 1000).toFixed(1)} s after their joins started (${(startedMs / 1000).toFixed(1)} s after the simulation started)`);
    return { client, apiSocket: socket, apiToken: token.trim(), etcdEndpoint: etcd.endpoint, managerPid: manager.pid!, managerLog, joinedMs, startedMs, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
