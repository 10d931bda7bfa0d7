import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../shared/log.ts';
import { loadOrCreateIdentity } from '../shared/p2p/identity.ts';
import { createGossipingP2pNode } from '../shared/p2p/node.ts';
import type { Labels } from '../shared/schemas.ts';
import { defaultAddress, describeHost } from './describe.ts';
import { AgentMetrics } from './metrics.ts';
import { serveMetrics } from '../shared/metrics.ts';
import type { Server } from 'node:http';
import { EndpointGossip } from './endpoint-gossip.ts';
import { hostUsageSampler } from './host-usage.ts';
import { NetworkPlumbing } from '../netplug/plumbing.ts';
import { driverRegistry } from '../netplug/drivers/index.ts';
import { HostNamespace } from '../netplug/host.ts';
import { HostLocalIpam } from '../netplug/ipam/host-local.ts';
import type { LeaderTable } from '../netplug/peer-view.ts';
import { findUnderlay } from '../netplug/underlay.ts';
import { Engine } from './engine/containers/engine.ts';
import { ImageStore } from './engine/images/store.ts';
import { RegistryClient } from './engine/registry/client.ts';
import { RegistryAccess } from './engine/registry/auth.ts';
import { serveEngine } from './engine/rpc.ts';
import { VolumeStore } from './engine/volumes.ts';
import { AgentSession } from './session.ts';
import { TaskRunner } from './tasks/runner.ts';
import { inBackground } from '../shared/concurrency.ts';
import { ServiceDiscovery } from '../netplug/discovery/discovery.ts';
import { IngressMesh } from '../netplug/discovery/ingress.ts';
import { PolicyEnforcer } from '../netplug/policy/enforcer.ts';

/** The container init and shim, built with the native addon (dist/agent/main.js -> native/build/). */
const initBinary = fileURLToPath(new URL('../../native/build/shoal-init', import.meta.url));
const shimBinary = fileURLToPath(new URL('../../native/build/shoal-shim', import.meta.url));

export interface AgentOptions {
  stateDir: string;
  /** Registry for references that name none (the lab's registry). */
  defaultRegistry: string;
  /** Registries spoken to over plain HTTP. */
  insecureRegistries?: string[];
  /** CAs of registries, DIR/<host:port>/ca.crt. */
  registryCerts?: string;
  /** Prefix for the network namespaces of containers. */
  netnsPrefix: string;
  join: string[];
  token?: string;
  listen: string[];
  advertiseAddress?: string;
  labels: Labels;
  /** The resolv.conf whose nameservers the embedded DNS forwards to (default /etc/resolv.conf). */
  resolvConf?: string;
  /** Seconds the embedded DNS lets clients cache an answer. */
  dnsTtlSeconds?: number;
  /** HOST:PORT to serve Prometheus metrics on (GET /metrics); none when absent. */
  metricsListen?: string;
  log: Logger;
}

export interface RunningAgent {
  nodeId: string;
  session: AgentSession;
  stop(): Promise<void>;
}

/** The TCP port of a multiaddr (/ip4/A/tcp/PORT/...), or 0. */
function tcpPort(multiaddr: string): number {
  return Number(/\/tcp\/(\d+)/.exec(multiaddr)?.[1] ?? 0);
}

export async function runAgent(options: AgentOptions): Promise<RunningAgent> {
  // Its identity key and membership are in there: root's alone.
  await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
  await chmod(options.stateDir, 0o700);
  const privateKey = await loadOrCreateIdentity(options.stateDir);
  const p2p = await createGossipingP2pNode({ privateKey, listen: options.listen });
  let runner: TaskRunner | undefined;
  const address = options.advertiseAddress ?? defaultAddress();
  const network = await findUnderlay(address).then(
    (underlay) =>
      new NetworkPlumbing(
        { host: new HostNamespace(), underlay, netnsPrefix: options.netnsPrefix, nodeName: hostname(), hostIpam: new HostLocalIpam(join(options.stateDir, 'network', 'ipam')), stateDir: join(options.stateDir, 'network') },
        driverRegistry,
        [...options.listen, ...options.join].map(tcpPort).filter((p) => p > 0),
      ),
    (error: unknown) => void options.log.warn('no network data plane: containers get loopback only', { error: String(error) }),
  );
  const resolvConf = options.resolvConf ?? '/etc/resolv.conf';
  const discovery = network
    ? new ServiceDiscovery({
        resolvConf,
        ttlSeconds: options.dnsTtlSeconds ?? 5,
        upstreamTimeoutMs: 2000,
        log: options.log.child('dns'),
        onApplied: (revision) => session.sendTablesApplied(revision),
      })
    : undefined;
  const policy = network ? new PolicyEnforcer(options.log.child('policy')) : undefined;
  const applyTables = (tables: LeaderTable[]) => {
    if (network) inBackground(network.setPeers(tables), (error: unknown) => options.log.warn('peer tables not applied', { error: String(error) }));
  };
  const metrics = new AgentMetrics();
  let metricsServer: Server | undefined;
  const gossip = new EndpointGossip(
    p2p,
    (nodeId, announcement) => {
      // The sequence number is the publisher's clock in milliseconds when it published.
      metrics.gossipDelay.observe(Math.max(0, Date.now() - announcement.seq) / 1000);
      if (network) inBackground(network.hear(nodeId, announcement), (error: unknown) => options.log.warn('announced endpoints not applied', { error: String(error) }));
    },
    options.log.child('gossip'),
  );
  const session: AgentSession = new AgentSession({
    p2p,
    stateDir: options.stateDir,
    join: options.join,
    token: options.token,
    labels: options.labels,
    describe: () =>
      describeHost({ address, engineLabels: options.labels, p2pAddrs: p2p.getMultiaddrs().map((a) => a.toString()) }),
    onAssignments: (tasks) => runner?.setAssignments(tasks),
    onPeerTables: applyTables,
    onPolicyTable: (table) => {
      if (policy) inBackground(policy.setTable(table), (error: unknown) => options.log.warn('policy table not applied', { error: String(error) }));
    },
    // A host without a data plane has nothing to apply: it holds any revision at once.
    onServiceTables: (tables, ingress, revision) => (discovery ? discovery.setTables(tables, ingress, revision) : revision !== undefined && session.sendTablesApplied(revision)),
    onTablesSettled: (revision) => discovery?.settle(revision),
    onSessionOpen: () => runner?.resendAll(),
    usage: hostUsageSampler(),
    log: options.log.child('session'),
  });
  const registry = new RegistryClient(60_000, new RegistryAccess({ insecure: options.insecureRegistries ?? [], ...(options.registryCerts ? { certsDir: options.registryCerts } : {}) }));
  const engineRoot = join(options.stateDir, 'engine');
  const images = new ImageStore(join(engineRoot, 'images'), registry, options.defaultRegistry);
  const volumes = new VolumeStore(join(engineRoot, 'volumes'));
  const engine = new Engine({
    root: engineRoot,
    images,
    volumes,
    netnsPrefix: options.netnsPrefix,
    initPath: existsSync(initBinary) ? initBinary : undefined,
    shimPath: shimBinary,
    ...(network ? { network } : {}),
    ...(discovery ? { discovery } : {}),
    ...(policy ? { policy } : {}),
    nodeName: hostname(),
    resolvConf,
    log: options.log.child('engine'),
  });
  try {
    await images.init();
    await engine.init();
    gossip.start();
    network?.announceThrough(gossip);
    if (network && discovery) {
      // Named by the underlay address as the overlay's namespaces are: lab hosts share one /run/netns.
      discovery.useMesh(new IngressMesh(network, discovery, `${options.netnsPrefix}ingress-sbox-${address}`, options.log.child('mesh')));
    }
    runner = new TaskRunner(engine, (reports) => session.sendStatuses(reports), options.log.child('tasks'), discovery, (stage, seconds) => metrics.taskStart.observe({ stage }, seconds));
    runner.start();
    metrics.endpoints = () => {
      const counts = new Map<string, number>();
      for (const record of engine.list()) {
        if (record.state !== 'running') continue;
        for (const attachment of record.spec.attachments) counts.set(attachment.networkName, (counts.get(attachment.networkName) ?? 0) + 1);
      }
      return counts;
    };
    await serveEngine(
      p2p,
      { engine, images, volumes, registry, ...(network ? { network } : {}), ...(discovery ? { discovery } : {}), ...(policy ? { policy } : {}) },
      (peer) => session.isManager(peer),
      options.log.child('engine'),
      (method, seconds, ok) => metrics.engineCall.observe({ method, outcome: ok ? 'ok' : 'error' }, seconds),
    );
    metricsServer = options.metricsListen ? await serveMetrics(metrics.registry, options.metricsListen, options.log) : undefined;
    await session.start();
  } catch (error) {
    metricsServer?.close();
    gossip.stop();
    await engine.close();
    await p2p.stop();
    throw error;
  }
  options.log.info('agent started', { nodeId: p2p.peerId.toString(), listen: p2p.getMultiaddrs().map((a) => a.toString()) });
  return {
    nodeId: p2p.peerId.toString(),
    session,
    async stop() {
      metricsServer?.close();
      await runner?.stop();
      await session.stop();
      gossip.stop();
      await engine.close();
      discovery?.closeAll();
      network?.close();
      await p2p.stop();
    },
  };
}
