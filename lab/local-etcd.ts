import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { ensureIssued } from '../shared/pki/pki-dir.ts';
import { isAlive, pidsMentioning, stopProcesses } from './processes.ts';

/** A throwaway single-member etcd on loopback, for store tests and benchmarks. */
export interface LocalEtcd {
  endpoint: string;
  /** With `tls`: the same member on a second client URL, TLS with client certificates of the CA in that directory. */
  tlsEndpoint?: string;
  stop(): Promise<void>;
}

export interface LocalEtcdOptions {
  /** A PKI directory with a CA: etcd gets a server certificate from it and demands client certificates of it. */
  tls?: string;
}

/** A loopback TCP port nothing listens on now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const dirPrefix = join(tmpdir(), 'shoal-etcd-');

/**
 * Local etcds whose test or benchmark died without stopping them (ava's timeout ends a worker
 * without its teardown): each one's directory names the process that started it, and one whose
 * starter is gone is stopped and removed. One still owned (another test file's) is left alone.
 */
export async function sweepOrphanedLocalEtcds(): Promise<void> {
  const orphans: Array<{ pid: number; dir: string }> = [];
  for (const pid of await pidsMentioning(`--data-dir ${dirPrefix}`)) {
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const dir = dirname(args[args.indexOf('--data-dir') + 1] ?? '');
    if (!dir.startsWith(dirPrefix)) continue;
    const owner = Number(await readFile(join(dir, 'owner'), 'utf8').catch(() => '0'));
    if (!isAlive(owner)) orphans.push({ pid, dir });
  }
  await stopProcesses(orphans.map((o) => o.pid));
  for (const { dir } of orphans) await rm(dir, { recursive: true, force: true });
}

export async function startLocalEtcd(options: LocalEtcdOptions = {}): Promise<LocalEtcd> {
  await sweepOrphanedLocalEtcds();
  const dir = await mkdtemp(dirPrefix);
  await writeFile(join(dir, 'owner'), String(process.pid));
  const dataDir = join(dir, 'data');
  const [clientPort, peerPort, tlsPort] = [await freePort(), await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const tlsEndpoint = options.tls ? `https://127.0.0.1:${tlsPort}` : undefined;
  const peer = `http://127.0.0.1:${peerPort}`;
  const tlsArgs: string[] = [];
  if (options.tls) {
    const server = await ensureIssued(options.tls, 'local-etcd', { commonName: 'local-etcd', ips: ['127.0.0.1'], usage: 'server' });
    tlsArgs.push('--client-cert-auth', '--trusted-ca-file', server.caFile, '--cert-file', server.certificateFile, '--key-file', server.keyFile);
  }
  const clientUrls = [endpoint, ...(tlsEndpoint ? [tlsEndpoint] : [])].join(',');
  const child = spawn(
    'etcd',
    ['--name', 'local', '--data-dir', dataDir, '--listen-client-urls', clientUrls, '--advertise-client-urls', clientUrls,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `local=${peer}`,
      ...tlsArgs, '--logger', 'zap', '--log-level', 'error'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk).slice(-2000)));
  // No etcd binary: the exit below reports it (exitCode set) with what was said.
  child.on('error', (error) => (stderr += error.message));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  const client = new Etcd3({ hosts: endpoint, dialTimeout: 1000 });
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`etcd exited at start: ${stderr}`);
      try {
        await client.get('ping').string();
        break;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`etcd did not answer at ${endpoint}: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  } finally {
    client.close();
  }
  return { endpoint, ...(tlsEndpoint ? { tlsEndpoint } : {}), stop };
}
