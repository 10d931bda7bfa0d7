import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, hostname } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { errors } from '../shared/errors.ts';
import type { AddressPools, NodeObject } from '../shared/schemas.ts';
import type { ServiceObject, TaskObject } from '../shared/services.ts';
import type { Logger } from '../shared/log.ts';
import { peerIdFromString } from '@libp2p/peer-id';
import { loadOrCreateIdentity } from '../shared/p2p/identity.ts';
import { createP2pNode } from '../shared/p2p/node.ts';
import { ManagerMetrics } from './metrics.ts';
import { StoreMirror } from '../shared/store/mirror.ts';
import { keys } from '../shared/keys.ts';
import { serveMetrics } from '../shared/metrics.ts';
import { EtcdStore } from '../shared/store/etcd.ts';
import type { WriteOp } from '../shared/store/store.ts';
import { now } from '../shared/store/objects.ts';
import { roleForJoinToken } from '../shared/tokens.ts';
import { heartbeatsBeforeDown, shoalVersion } from '../shared/version.ts';
import { buildApi } from './api/server.ts';
import { apiCertificate, identityCertificate, loadManagerPki } from './credentials.ts';
import { RevokedPeers } from './revocations.ts';
import { type ClusterKeys, initCluster, readCluster } from './cluster.ts';
import { Dispatcher } from './dispatcher/dispatcher.ts';
import { EngineClient } from './engine/client.ts';
import { EventLog } from './event-log.ts';
import { NodeHealthLoop } from './health/health.ts';
import { TaskFileSource } from './orchestrator/task-files.ts';
import { ControlLoop } from './orchestrator/loop.ts';
import { Leadership } from './leadership.ts';
import { PeerTableLoop } from './network/peer-tables.ts';
import { ensureBuiltinNetworks } from './networks.ts';
import { ManagerPresence } from './managers.ts';
import { inBackground } from '../shared/concurrency.ts';
// The network drivers this manager knows: each folder under netplug/drivers/ registers itself.
import '../netplug/drivers/index.ts';

export interface ManagerOptions {
  etcd: string[];
  stateDir: string;
  /** libp2p listen multiaddrs for agents. */
  p2pListen: string[];
  /** host:port for the HTTP API over TCP, if any. */
  apiListen?: string;
  /** Path of a Unix socket for the HTTP API, if any. */
  apiSocket?: string;
  /** The group that may use the socket besides root (mode 0660); root's group when absent. */
  apiSocketGroup?: string;
  /** Whether the TCP API also demands a client certificate from the cluster CA (mutual TLS). */
  apiClientCerts?: boolean;
  /** The manager's PKI directory (ca.crt, ca.key, seal.key, and what it issues from them). */
  pkiDir: string;
  /** Heartbeat period written into the cluster at init; ignored once the cluster exists. */
  heartbeatPeriodMs: number;
  /** Default address pools written into the cluster at init; ignored once it exists. */
  addressPools?: AddressPools;
  /** The manager join token, required to add a manager to an existing cluster. */
  joinToken?: string;
  leaderTtlSeconds: number;
  /** HOST:PORT to serve Prometheus metrics on (GET /metrics); none when absent. */
  metricsListen?: string;
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
async function joinCluster(store: EtcdStore, options: ManagerOptions, clusterKeys: ClusterKeys): Promise<string | undefined> {
  const memberFile = join(options.stateDir, 'member-of');
  const member = await readFile(memberFile, 'utf8').catch(() => undefined);
  const existing = await store.get('/shoal/v1/cluster');
  if (!existing) {
    const init = await initCluster(store, { heartbeatPeriodMs: options.heartbeatPeriodMs, addressPools: options.addressPools, keys: clusterKeys });
    await writeFile(memberFile, init.cluster.id);
    return init.apiToken;
  }
  const cluster = await readCluster(store);
  if (cluster.ca.digest !== clusterKeys.caDigest) {
    throw errors.invalid(`the PKI directory ${options.pkiDir} holds another CA than the cluster's`, 'copy the first manager\'s PKI directory (ca.crt, ca.key, seal.key) to this host');
  }
  if (member?.trim() === cluster.id) return undefined;
  if (!options.joinToken || roleForJoinToken(options.joinToken, cluster.joinTokens) !== 'manager') {
    throw errors.badJoinToken();
  }
  await writeFile(memberFile, cluster.id);
  return undefined;
}

/**
 * On a host of two cores or fewer, old-generation marking runs on the event loop's thread, in
 * small steps, instead of on helper threads beside it. Measured in the scale simulation (a
 * manager with 30,000 tasks, 2 cores): each old-generation collection with concurrent marking
 * held the event loop 200-240 ms in all (where the collection reported a 20-50 ms pause), the
 * slowest services' assignments waited it out; without it, no hold over 140 ms.
 */
function markOnTheLoopOnSmallHosts(log: Logger): void {
  if (availableParallelism() > 2) return;
  setFlagsFromString('--no-concurrent-marking');
  log.debug('old-generation marking on the main thread (two cores or fewer)');
}

export async function runManager(options: ManagerOptions): Promise<RunningManager> {
  const log = options.log;
  markOnTheLoopOnSmallHosts(log);
  await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  await chmod(options.stateDir, 0o700);
  const pki = await loadManagerPki(options.pkiDir, log);
  const etcdTls = options.etcd.every((url) => url.startsWith('https://'));
  if (!etcdTls) log.warn('etcd is reached without TLS: whoever reaches its address can change every service', { etcd: options.etcd });
  const store = new EtcdStore(options.etcd, etcdTls ? pki.etcd : undefined);
  const metrics = new ManagerMetrics();
  store.onCommit = (seconds, outcome) => metrics.storeCommit.observe({ outcome }, seconds);
  await waitForStore(store, log);
  const clusterKeys: ClusterKeys = { caCertificate: pki.caCertificate, caDigest: pki.caDigest, sealKey: pki.sealKey };
  const apiToken = await joinCluster(store, options, clusterKeys);
  await ensureBuiltinNetworks(store, await readCluster(store));
  if (apiToken) {
    const tokenFile = join(options.stateDir, 'api-token');
    // Written aside and renamed: whoever waits for the file never reads it half written.
    await writeFile(`${tokenFile}.tmp`, `${apiToken}\n`, { mode: 0o600 });
    await rename(`${tokenFile}.tmp`, tokenFile);
    log.info('cluster initialised; API token written', { tokenFile });
  }

  const privateKey = await loadOrCreateIdentity(options.stateDir);
  const revoked = new RevokedPeers(store, log.child('revocations'));
  await revoked.start();
  const p2p = await createP2pNode({ privateKey, listen: options.p2pListen, hub: true });
  // A node removed while connected is cut off at once; its joins and sessions are refused
  // from then on, with a message that says why (a connection gater would only drop them).
  revoked.onRevoke((peerId) => inBackground(p2p.hangUp(peerIdFromString(peerId)), () => undefined));
  const id = p2p.peerId.toString();
  const managerLog = log.child(id.slice(-8));
  const certificate = await identityCertificate(pki, id);
  const presence = new ManagerPresence(
    store.client,
    {
      id,
      hostname: hostname(),
      apiAddress: options.apiListen,
      p2pAddrs: p2p.getMultiaddrs().map((a) => a.toString()),
      peerId: id,
      startedAt: now(),
      certificate,
    },
    Math.max(options.leaderTtlSeconds, 3),
    managerLog,
  );
  await presence.start();

  const leadership = new Leadership(store.client, id, options.leaderTtlSeconds, managerLog.child('leadership'));
  const dispatcher = new Dispatcher(p2p, store, leadership, managerLog.child('dispatcher'), { caCertificate: pki.caCertificate, certificate }, revoked);
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
      () => control?.state?.values<NodeObject>(keys.nodes).map((n) => n.value),
    );
    health.start();
    const starting = new ControlLoop(store, dispatcher, managerLog.child('control'), leadership.fence(), new TaskFileSource(store, clusterKeys.sealKey, managerLog.child('files')), metrics);
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
  metrics.counts = {
    nodesByState: () => control?.countByState<NodeObject>(keys.nodes, (node) => node.status.state),
    tasksByState: () => control?.countByState<TaskObject>(keys.tasks, (task) => task.status.state),
    endpointsByNetwork: () => peerTables?.endpointsByNetwork(),
  };
  await dispatcher.start();
  await leadership.start();

  const servers: FastifyInstance[] = [];
  const nodeTable = await StoreMirror.open(store, [keys.nodes]);
  const engines = new EngineClient(p2p, store, nodeTable);
  const events = new EventLog(store);
  await events.start();
  const context = { store, leadership, engines, events, usageOf: (nodeId: string) => dispatcher.usageOf(nodeId), managerId: id, version: shoalVersion, log: managerLog.child('api'), backup: () => store.snapshot(), clusterKeys, reachesStore: () => presence.reachesStore, metrics,
    storeWithTasks: async (service: ServiceObject, ops: WriteOp[]) => control?.storeWithTasks(service, ops),
  };
  if (options.apiSocket) {
    await rm(options.apiSocket, { force: true });
    const app = await buildApi(context);
    await app.listen({ path: options.apiSocket });
    await restrictSocket(options.apiSocket, options.apiSocketGroup);
    servers.push(app);
  }
  if (options.apiListen) {
    const [host, port] = splitHostPort(options.apiListen);
    const certificate = await apiCertificate(pki, host);
    // TLS only: the bearer token never crosses a network in clear.
    const app = await buildApi(context, {
      key: certificate.privateKey,
      cert: certificate.certificate,
      ca: pki.caCertificate,
      requestCert: options.apiClientCerts === true,
      rejectUnauthorized: options.apiClientCerts === true,
    });
    await app.listen({ host, port });
    servers.push(app);
  }
  const metricsServer = options.metricsListen ? await serveMetrics(metrics.registry, options.metricsListen, managerLog) : undefined;
  managerLog.info('manager started', {
    id,
    p2p: p2p.getMultiaddrs().map((a) => a.toString()),
    apiSocket: options.apiSocket,
    apiListen: options.apiListen && `https://${options.apiListen}`,
    apiClientCerts: options.apiClientCerts === true,
    etcdTls,
  });

  return {
    id,
    async stop() {
      await Promise.all(servers.map((s) => s.close()));
      metricsServer?.close();
      await events.stop();
      await nodeTable.close();
      await health?.stop();
      await control?.stop();
      await peerTables?.stop();
      await dispatcher.stop();
      await leadership.stop();
      await presence.stop();
      await p2p.stop();
      await revoked.stop();
      await store.close();
    },
  };
}

/** The socket for root and one group only (0660), as Docker's is for the docker group. */
async function restrictSocket(path: string, group: string | undefined): Promise<void> {
  await chmod(path, 0o660);
  if (group === undefined) return;
  const gid = /^\d+$/.test(group) ? Number(group) : groupId(group);
  await chown(path, 0, gid);
}

function groupId(name: string): number {
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((entry) => entry.split(':')[0] === name);
  if (!line) throw errors.invalid(`--api-socket-group: no group "${name}" on this host`, 'create it with `groupadd`, or name an existing group');
  return Number(line.split(':')[2]);
}

function splitHostPort(address: string): [string, number] {
  const index = address.lastIndexOf(':');
  const port = Number(address.slice(index + 1));
  if (index <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw errors.invalid(`"${address}" is not host:port`, 'write it like 198.18.0.1:2377');
  }
  return [address.slice(0, index).replace(/^\[|\]$/g, ''), port];
}
