/**
 * What TLS costs, side by side in one run:
 * - the API: the same Fastify app (the manager's buildApi on a memory store) served over plain
 *   HTTP and over TLS with client certificates, the latter as the lab and `--api-client-certs`
 *   run it; GET /v1/nodes, once on a new connection per request (what one CLI command does,
 *   handshake included) and once on a kept-alive connection;
 * - etcd: one member listening on a plain and on a TLS client URL (with --client-cert-auth),
 *   Shoal's store doing the same revision-checked writes through each.
 * Blocks alternate so that drift in the machine's load hits both alike.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { buildApi } from '../manager/api/server.ts';
import { initCluster } from '../manager/cluster.ts';
import { registerNode } from '../manager/nodes.ts';
import { fileURLToPath } from 'node:url';
import { labDown, labUp, tcpContextFile } from '../lab/lab.ts';
import { startLocalEtcd } from '../lab/local-etcd.ts';
import { run } from '../shared/exec.ts';
import { silentLogger } from '../shared/log.ts';
import { caDigest } from '../shared/pki/certificates.ts';
import { ensureCa, ensureIssued, readSealKey } from '../shared/pki/pki-dir.ts';
import { EtcdStore } from '../shared/store/etcd.ts';
import { MemoryStore } from '../shared/store/memory.ts';
import { ratio, summarise, timeMs } from './stats.ts';

const rounds = 10;
const perBlock = 50;

type Get = (agent: HttpAgent | HttpsAgent | false) => Promise<void>;

function getter(url: string, token: string, tls?: { ca: string; cert: string; key: string }): Get {
  return (agent) =>
    new Promise<void>((resolve, reject) => {
      const request = (tls ? httpsRequest : httpRequest)(
        `${url}/v1/nodes`,
        { agent, headers: { authorization: `Bearer ${token}` }, ...(tls ?? {}) },
        (response) => {
          response.resume();
          response.on('end', () => (response.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${response.statusCode}`))));
        },
      );
      request.on('error', reject);
      request.end();
    });
}

async function apiLatency(pki: string) {
  const store = new MemoryStore();
  const keys = { caCertificate: (await ensureCa(pki)).ca.certificate, caDigest: '', sealKey: await readSealKey(pki) };
  keys.caDigest = caDigest(keys.caCertificate);
  const { apiToken } = await initCluster(store, { heartbeatPeriodMs: 5000, keys });
  for (let i = 0; i < 10; i++) {
    await registerNode(store, {
      nodeId: `node-${i}`, role: 'worker', labels: {},
      description: { hostname: `h${i}`, address: `198.18.0.${i + 1}`, cpus: 2, memoryBytes: 1 << 30, kernel: '6', os: 'linux', arch: 'x64', runtime: { name: 'runc', version: '1' }, engineLabels: {}, agentVersion: 'bench', p2pAddrs: [] },
    });
  }
  const context = { store, leadership: { leaderId: 'm1', isLeader: true, readLeader: async () => 'm1' }, managerId: 'm1', version: 'bench', log: silentLogger, clusterKeys: keys };
  const server = await ensureIssued(pki, 'api', { commonName: 'api', ips: ['127.0.0.1'], usage: 'server' });
  const client = await ensureIssued(pki, 'cli', { commonName: 'cli', usage: 'client' });
  const plainApp = await buildApi(context);
  const tlsApp = await buildApi(context, { key: server.privateKey, cert: server.certificate, ca: keys.caCertificate, requestCert: true, rejectUnauthorized: true });
  await plainApp.listen({ host: '127.0.0.1', port: 0 });
  await tlsApp.listen({ host: '127.0.0.1', port: 0 });
  const port = (app: typeof plainApp) => (app.server.address() as AddressInfo).port;
  const plain = getter(`http://127.0.0.1:${port(plainApp)}`, apiToken!);
  const tls = getter(`https://127.0.0.1:${port(tlsApp)}`, apiToken!, { ca: keys.caCertificate, cert: client.certificate, key: client.privateKey });
  const plainAgent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  const tlsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 1 });
  const samples = { plainNew: [] as number[], tlsNew: [] as number[], plainKept: [] as number[], tlsKept: [] as number[] };
  try {
    for (let i = 0; i < 30; i++) {
      await plain(false);
      await tls(false);
      await plain(plainAgent);
      await tls(tlsAgent);
    }
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < perBlock; i++) samples.plainNew.push(await timeMs(() => plain(false)));
      for (let i = 0; i < perBlock; i++) samples.tlsNew.push(await timeMs(() => tls(false)));
      for (let i = 0; i < perBlock; i++) samples.plainKept.push(await timeMs(() => plain(plainAgent)));
      for (let i = 0; i < perBlock; i++) samples.tlsKept.push(await timeMs(() => tls(tlsAgent)));
    }
  } finally {
    plainAgent.destroy();
    tlsAgent.destroy();
    await plainApp.close();
    await tlsApp.close();
  }
  const pair = (a: number[], b: number[]) => {
    const plainSummary = summarise(a);
    const tlsSummary = summarise(b);
    return { plain: plainSummary, tls: tlsSummary, ratioP50: ratio(tlsSummary.p50Ms, plainSummary.p50Ms), ratioP99: ratio(tlsSummary.p99Ms, plainSummary.p99Ms) };
  };
  return { newConnectionPerRequest: pair(samples.plainNew, samples.tlsNew), keptAlive: pair(samples.plainKept, samples.tlsKept) };
}

async function etcdRoundTrips(pki: string) {
  const etcd = await startLocalEtcd({ tls: pki });
  const ca = await ensureCa(pki);
  const client = await ensureIssued(pki, 'etcd-client', { commonName: 'bench', usage: 'client' });
  const plain = new EtcdStore([etcd.endpoint]);
  const tls = new EtcdStore([etcd.tlsEndpoint!], { rootCertificate: Buffer.from(ca.ca.certificate), certChain: Buffer.from(client.certificate), privateKey: Buffer.from(client.privateKey) });
  const value = { spec: { availability: 'active', labels: { zone: 'a' } }, status: { state: 'ready' } };
  const samples = { plain: [] as number[], tls: [] as number[] };
  const readThenWrite = async (store: EtcdStore, key: string) => {
    const current = await store.get(key);
    await store.commit(current ? [{ op: 'update', key, value, version: current.version }] : [{ op: 'create', key, value }]);
  };
  try {
    for (let i = 0; i < 50; i++) {
      await readThenWrite(plain, `/bench/warm/p${i}`);
      await readThenWrite(tls, `/bench/warm/t${i}`);
    }
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < perBlock * 2; i++) samples.plain.push(await timeMs(() => readThenWrite(plain, `/bench/plain/${i}`)));
      for (let i = 0; i < perBlock * 2; i++) samples.tls.push(await timeMs(() => readThenWrite(tls, `/bench/tls/${i}`)));
    }
  } finally {
    await plain.close();
    await tls.close();
    await etcd.stop();
  }
  const plainSummary = summarise(samples.plain);
  const tlsSummary = summarise(samples.tls);
  return { plain: plainSummary, tls: tlsSummary, ratioP50: ratio(tlsSummary.p50Ms, plainSummary.p50Ms), ratioP99: ratio(tlsSummary.p99Ms, plainSummary.p99Ms) };
}

/**
 * Container start through the API on a one-host lab, from inside the host's namespace: over
 * the Unix socket (no TLS) and over the TCP API (TLS with client certificates), in
 * alternating blocks. Both go on to etcd over TLS and to the agent over libp2p alike.
 */
async function containerStarts() {
  const lab = await labUp({ name: 'bench-tls', hosts: 1, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 5000 });
  try {
    const host = lab.record.topology.hosts[0]!;
    await (await lab.client()).stream('POST', '/v1/images/pull', { ref: 'busybox:1.35.0', node: host.name }, () => undefined);
    const helper = fileURLToPath(new URL('helpers/api-starts.js', import.meta.url));
    const starts = async (context: string) => JSON.parse(await run('nsenter', [`--net=/run/netns/${host.netns}`, '--', process.execPath, helper, context, host.name, '5'], { timeoutMs: 120_000 })) as number[];
    await starts(lab.record.contextFile);
    await starts(tcpContextFile(lab.record.dir));
    const samples = { socket: [] as number[], tls: [] as number[] };
    for (let round = 0; round < 6; round++) {
      samples.socket.push(...(await starts(lab.record.contextFile)));
      samples.tls.push(...(await starts(tcpContextFile(lab.record.dir))));
    }
    const socket = summarise(samples.socket);
    const tls = summarise(samples.tls);
    return { socket, tls, ratioP50: ratio(tls.p50Ms, socket.p50Ms), ratioP99: ratio(tls.p99Ms, socket.p99Ms) };
  } finally {
    await labDown('bench-tls');
  }
}

export default async function tlsCost(): Promise<Record<string, unknown>> {
  const scratch = await mkdtemp(join(tmpdir(), 'shoal-bench-tls-'));
  try {
    const pki = join(scratch, 'pki');
    await ensureCa(pki);
    return {
      description:
        'TLS against plain, same run. api: GET /v1/nodes (10 nodes) from the manager\'s API on a memory store, plain HTTP vs TLS with client certificates (ECDSA P-256), on a new connection per request (handshake included, as one CLI command) and kept alive. etcd: get then revision-checked put through Shoal\'s store, one etcd member on loopback reached over its plain and its TLS (--client-cert-auth) client URL. containerStartThroughApi: POST /v1/containers on a one-host lab from inside the host, over the Unix socket vs the TCP API with TLS and client certificates (a new client per block of 5, one connection per call)',
      api: await apiLatency(pki),
      etcd: await etcdRoundTrips(pki),
      containerStartThroughApi: await containerStarts(),
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
