import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { errors } from '../shared/errors.ts';
import type { AddressPools } from '../shared/schemas.ts';
import type { Logger } from '../shared/log.ts';
import { loadOrCreateIdentity } from '../shared/p2p/identity.ts';
import { createP2pNode } from '../shared/p2p/node.ts';
import { EtcdStore } from '../shared/store/etcd.ts';
import { now } from '../shared/store/objects.ts';
import { roleForJoinToken } from '../shared/tokens.ts';
import { heartbeatsBeforeDown, shoalVersion } from '../shared/version.ts';
import { buildApi } from './api/server.ts';
import { initCluster, readCluster } from './cluster.ts';
import { Dispatcher } from './dispatcher/dispatcher.ts';
import { EngineClient } from './engine/client.ts';
import { EventLog } from './event-log.ts';
import { NodeHealthLoop } from './health/health.ts';
import { ControlLoop } from './orchestrator/loop.ts';
import { Leadership } from './leadership.ts';
import { PeerTableLoop } from './network/peer-tables.ts';
import { ensureBuiltinNetworks } from './networks.ts';
import { ManagerPresence } from './managers.ts';
import { inBackground } from '../shared/concurrency.ts';

export interface ManagerOptions {
  etcd: string[];
  stateDir: string;
  /** libp2p listen multiaddrs for agents. */
  p2pListen: string[];
  /** host:port for the HTTP API over TCP, if any. */
  apiListen?: string;
  /** Path of a Unix socket for the HTTP API, if any. */
  apiSocket?: string;
  /** Heartbeat period written into the cluster at init; ignored once the cluster exists. */
  heartbeatPeriodMs: number;
  /** Default address pools written into the cluster at init; ignored once it exists. */
  addressPools?: AddressPools;
  /** The manager join token, required to add a manager to an existing cluster. */
  joinToken?: string;
  leaderTtlSeconds: number;
  log: Logger;
}

export interface RunningManager {
  id: string;
  stop(): Promise<void>;
}

async function waitForStore(store: EtcdStore, log: Logger): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (let attempt = 0; ; attempt++) {
    try {
      await store.get('/shoal/v1/ping');
      return;
    } catch (error) {
      if (Date.now() > deadline) throw errors.unavailable('etcd did not answer within 60s', error);
      if (attempt % 5 === 0) log.warn('waiting for etcd', { error: String(error) });
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** Checks that this manager may serve the cluster, and returns the API token if it created it. */
async function joinCluster(store: EtcdStore, options: ManagerOptions): Promise<string | undefined> {
  const memberFile = join(options.stateDir, 'member-of');
  const member = await readFile(memberFile, 'utf8').catch(() => undefined);
  const existing = await store.get('/shoal/v1/cluster');
  if (!existing) {
    const init = await initCluster(store, { heartbeatPeriodMs: options.heartbeatPeriodMs, addressPools: options.addressPools });
    await writeFile(memberFile, init.cluster.id);
    return init.apiToken;
  }
  const cluster = await readCluster(store);
  if (member?.trim() === cluster.id) return undefined;
  if (!options.joinToken || roleForJoinToken(options.joinToken, cluster.joinTokens) !== 'manager') {
    throw errors.badJoinToken();
  }
  await writeFile(memberFile, cluster.id);
  return undefined;
}

export async function runManager(options: ManagerOptions): Promise<RunningManager> {
  const log = options.log;
  await mkdir(options.stateDir, { recursive: true });
  const store = new EtcdStore(options.etcd);
  await waitForStore(store, log);
  const apiToken = await joinCluster(store, options);
  await ensureBuiltinNetworks(store, await readCluster(store));
  if (apiToken) {
    const tokenFile = join(options.stateDir, 'api-token');
    await writeFile(tokenFile, `${apiToken}\n`, { mode: 0o600 });
    log.info('cluster initialised; API token written', { tokenFile });
  }

  const privateKey = await loadOrCreateIdentity(options.stateDir);
  const p2p = await createP2pNode({ privateKey, listen: options.p2pListen, hub: true });
  const id = p2p.peerId.toString();
  const managerLog = log.child(id.slice(-8));
  const presence = new ManagerPresence(
    store.client,
    {
      id,
      hostname: hostname(),
      apiAddress: options.apiListen,
      p2pAddrs: p2p.getMultiaddrs().map((a) => a.toString()),
      peerId: id,
      startedAt: now(),
    },
    Math.max(options.leaderTtlSeconds, 3),
    managerLog,
  );
  await presence.start();

  const leadership = new Leadership(store.client, id, options.leaderTtlSeconds, managerLog.child('leadership'));
  const dispatcher = new Dispatcher(p2p, store, leadership, managerLog.child('dispatcher'));
  let heartbeatPeriodMs = (await readCluster(store)).heartbeatPeriodMs;
  let health: NodeHealthLoop | undefined;
  let control: ControlLoop | undefined;
  let peerTables: PeerTableLoop | undefined;
  leadership.on('elected', () => {
    health = new NodeHealthLoop(
      store,
      (node) => dispatcher.lastSeen(node),
      () => heartbeatsBeforeDown * heartbeatPeriodMs,
      managerLog.child('health'),
      leadership.fence(),
      (node) => dispatcher.nodeMarkedDown(node),
    );
    health.start();
    const starting = new ControlLoop(store, dispatcher, managerLog.child('control'), leadership.fence());
    control = starting;
    void starting
      .start()
      .then(() => {
        if (control === starting) dispatcher.statuses.mirror = starting.state;
      })
      .catch((error: unknown) => {
        if (control === starting) leadership.stepDown(`the control loop did not start: ${String(error)}`);
      });
    const startingPeers = new PeerTableLoop(store, dispatcher, managerLog.child('peers'));
    peerTables = startingPeers;
    inBackground(startingPeers.start(), (error: unknown) => {
      if (peerTables === startingPeers) leadership.stepDown(`the peer tables did not start: ${String(error)}`);
    });
    inBackground(readCluster(store).then((c) => (heartbeatPeriodMs = c.heartbeatPeriodMs)), (error: unknown) => managerLog.warn('cluster settings not read', { error: String(error) }));
  });
  leadership.on('deposed', () => {
    const stopping = health;
    health = undefined;
    const failed = (what: string) => (error: unknown) => managerLog.warn(`${what} did not stop cleanly after losing leadership`, { error: String(error) });
    if (stopping) inBackground(stopping.stop(), failed('node health'));
    const stoppingControl = control;
    control = undefined;
    dispatcher.statuses.mirror = undefined;
    if (peerTables) inBackground(peerTables.stop(), failed('the peer-table loop'));
    peerTables = undefined;
    if (stoppingControl) inBackground(stoppingControl.stop(), failed('the control loop'));
    inBackground(dispatcher.redirectAll(), failed('redirecting agents to the new leader'));
  });
  await dispatcher.start();
  await leadership.start();

  const servers: FastifyInstance[] = [];
  const engines = new EngineClient(p2p, store);
  const events = new EventLog(store);
  await events.start();
  const context = { store, leadership, engines, events, usageOf: (nodeId: string) => dispatcher.usageOf(nodeId), managerId: id, version: shoalVersion, log: managerLog.child('api'), backup: () => store.snapshot(), reachesStore: () => presence.reachesStore };
  if (options.apiSocket) {
    await rm(options.apiSocket, { force: true });
    const app = await buildApi(context);
    await app.listen({ path: options.apiSocket });
    servers.push(app);
  }
  if (options.apiListen) {
    const [host, port] = splitHostPort(options.apiListen);
    const app = await buildApi(context);
    await app.listen({ host, port });
    servers.push(app);
  }
  managerLog.info('manager started', {
    id,
    p2p: p2p.getMultiaddrs().map((a) => a.toString()),
    apiSocket: options.apiSocket,
    apiListen: options.apiListen,
  });

  return {
    id,
    async stop() {
      await Promise.all(servers.map((s) => s.close()));
      await events.stop();
      await health?.stop();
      await control?.stop();
      await peerTables?.stop();
      await dispatcher.stop();
      await leadership.stop();
      await presence.stop();
      await p2p.stop();
      await store.close();
    },
  };
}

function splitHostPort(address: string): [string, number] {
  const index = address.lastIndexOf(':');
  const port = Number(address.slice(index + 1));
  if (index <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw errors.invalid(`"${address}" is not host:port`, 'write it like 198.18.0.1:2377');
  }
  return [address.slice(0, index).replace(/^\[|\]$/g, ''), port];
}
