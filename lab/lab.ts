import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { join } from 'node:path';
import { ApiClient, parseEndpoint } from '../cli/client.ts';
import { defaultContextPath, readContext, writeContext, type CliContext } from '../cli/context.ts';
import type { ManagerView, NodeView } from '../shared/schemas.ts';
import { ipBatch, run } from '../shared/exec.ts';
import { ensureCa, ensureIssued, readIssued, sharePki } from '../shared/pki/pki-dir.ts';
import { restoreSnapshot, snapshotStatus } from '../shared/store/snapshot.ts';
import { currentPid, isAlive, type LabProcess, pidsMentioning, readSupervision, shoalCommand, startProcess, stopProcesses, supervisionFile, tailLog } from './processes.ts';
import {
  agentP2pPort,
  agentMetricsPort,
  apiPort,
  managerMetricsPort,
  type LabOptions,
  type LabTopology,
  labTopology,
  managerP2pPort,
  netnsPrefix,
  authRegistryAddress,
  registryAddress,
  underlayCommands,
  validateLabOptions,
} from './topology.ts';

export { defaultLabName } from './topology.ts';

export function labRoot(): string {
  return process.env.SHOAL_LAB_ROOT ?? '/var/lib/shoal/labs';
}

export function labDir(name: string): string {
  return join(labRoot(), name);
}

/** What lab.json records: enough for status, for stopping and restarting processes, and for down. */
export interface LabRecord {
  options: LabOptions;
  topology: LabTopology;
  dir: string;
  contextFile: string;
  processes: LabProcess[];
  createdAt: string;
}

type Progress = (line: string) => void;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
}

/** A running lab: its record plus the verbs tests and the CLI use on it. */
export class Lab {
  constructor(readonly record: LabRecord) {}

  get name(): string {
    return this.record.options.name;
  }

  static async load(name: string): Promise<Lab | undefined> {
    const text = await readFile(join(labDir(name), 'lab.json'), 'utf8').catch(() => undefined);
    return text ? new Lab(JSON.parse(text) as LabRecord) : undefined;
  }

  async save(): Promise<void> {
    await writeFile(join(this.record.dir, 'lab.json'), `${JSON.stringify(this.record, null, 2)}\n`);
  }

  async context(): Promise<CliContext> {
    const context = await readContext(this.record.contextFile);
    if (!context) throw new Error(`lab ${this.name} has no context file yet`);
    return context;
  }

  async client(): Promise<ApiClient> {
    const context = await this.context();
    return new ApiClient(context.hosts.map((h) => parseEndpoint(h, context.tls)), context.token);
  }

  process(key: string): LabProcess {
    const found = this.record.processes.find((p) => p.key === key);
    if (!found) throw new Error(`lab ${this.name} has no process "${key}" (it has ${this.record.processes.map((p) => p.key).join(', ')})`);
    return found;
  }

  /**
   * Kills one of the lab's processes at once (SIGKILL), as a host failure would. Its
   * supervisor holds it down until `start`: a deliberate failure, unlike a crash, which the
   * supervisor answers with a restart.
   */
  async kill(key: string): Promise<void> {
    const spec = this.process(key);
    await writeFile(`${supervisionFile(spec)}.hold`, `${new Date().toISOString()}\n`);
    const pid = (await readSupervision(spec))?.pid ?? spec.pid;
    if (pid && isAlive(pid)) {
      process.kill(pid, 'SIGKILL');
      await waitFor(`${key} to exit`, 5_000, async () => (isAlive(pid) ? undefined : true));
    }
  }

  /** Starts a process again after `kill`, with the command it was first started with. */
  async start(key: string): Promise<void> {
    const spec = this.process(key);
    const seen = await readSupervision(spec);
    if (seen && isAlive(seen.supervisorPid)) {
      await rm(`${supervisionFile(spec)}.hold`, { force: true });
      spec.pid = await waitFor(`${key} to start again`, 10_000, async () => {
        const now = await readSupervision(spec);
        return now?.state === 'running' && isAlive(now.pid) ? now.pid : undefined;
      });
    } else {
      await startProcess(spec);
    }
    await this.save();
  }

  /**
   * Puts a backup back as a whole new etcd cluster: every member stopped, its data directory
   * moved aside, restored from the snapshot, started again; then every manager restarted, so
   * none keeps watching a store that has gone back in time. The agents rejoin by themselves.
   */
  async restore(file: string, progress: Progress = () => undefined): Promise<void> {
    const { topology } = this.record;
    const members = topology.etcdAddresses.map((address, i) => ({ key: `etcd${i}`, address, dataDir: join(this.record.dir, 'infra', `etcd${i}`) }));
    const initialCluster = members.map((m) => `${m.key}=https://${m.address}:2380`).join(',');
    // Checked before anything is stopped: a file that is not a snapshot changes nothing.
    const checked = await snapshotStatus(file);
    for (const member of members) await this.kill(member.key);
    const aside = `before-restore-${Date.now()}`;
    for (const member of members) {
      await rename(member.dataDir, `${member.dataDir}.${aside}`);
      await restoreSnapshot(file, { dataDir: member.dataDir, name: member.key, initialCluster, initialAdvertisePeerUrls: `https://${member.address}:2380`, initialClusterToken: `shoal-${topology.name}-${aside}` }, checked);
      progress(`${member.key}: restored (the old data is in ${member.dataDir}.${aside})`);
    }
    for (const member of members) await this.start(member.key);
    for (const host of topology.hosts.filter((h) => h.manager)) {
      await this.kill(`${host.name}/manager`);
      await this.start(`${host.name}/manager`);
      progress(`${host.name}/manager restarted`);
    }
    const client = await this.client();
    await waitFor('a manager to lead the restored cluster', 60_000, async () => ((await client.call<{ leaderId: string | null }>('GET', '/v1/info')).leaderId ? true : undefined));
  }

  /** Throws with the log's last lines if a process the lab started is not running now. */
  async failIfAnyExited(): Promise<void> {
    for (const spec of this.record.processes) {
      if (!(await currentPid(spec))) throw new Error(`${spec.key} exited; its log (${spec.log}) ends with:\n${await tailLog(spec.log)}`);
    }
  }

  async nodes(): Promise<NodeView[]> {
    return (await this.client()).call<NodeView[]>('GET', '/v1/nodes');
  }

  async managers(): Promise<ManagerView[]> {
    return (await this.client()).call<ManagerView[]>('GET', '/v1/managers');
  }
}

/** The lab's own PKI directory: the CA, etcd's certificates, the CLI's and etcdctl's client certificates. */
export function labPki(dir: string): string {
  return join(dir, 'pki');
}

/** etcdctl's flags for the lab's etcd: its members over TLS, with the lab's client certificate. */
export function etcdctlFlags(record: LabRecord): string[] {
  const pki = labPki(record.dir);
  return [
    '--endpoints', record.topology.etcdAddresses.map((a) => `https://${a}:2379`).join(','),
    '--cacert', join(pki, 'ca.crt'), '--cert', join(pki, 'etcdctl.crt'), '--key', join(pki, 'etcdctl.key'),
  ];
}

function managerProcess(dir: string, topology: LabTopology, host: LabTopology['hosts'][number], options: LabOptions, joinTokenFile?: string): LabProcess {
  const shoal = shoalCommand();
  const etcd = topology.etcdAddresses.map((a) => `https://${a}:2379`).join(',');
  return {
    key: `${host.name}/manager`,
    netns: host.netns,
    hostname: host.name,
    command: shoal.command,
    args: [
      ...shoal.args,
      'manager',
      '--etcd', etcd,
      '--state-dir', join(dir, host.name, 'manager'),
      '--listen-p2p', `/ip4/${host.address}/tcp/${managerP2pPort}`,
      '--api-listen', `${host.address}:${apiPort}`,
      '--api-socket', join(dir, host.name, 'shoal.sock'),
      '--api-client-certs',
      '--metrics-listen', `${host.address}:${managerMetricsPort}`,
      '--pki', join(dir, host.name, 'pki'),
      '--heartbeat-period', `${options.heartbeatPeriodMs}ms`,
      ...(joinTokenFile ? ['--join-token-file', joinTokenFile] : []),
    ],
    log: join(dir, host.name, 'manager.log'),
  };
}

/** The hosts' resolv.conf: the lab's resolvers only (none by default: other names fail at once, nothing leaves the machine). */
export const labResolvConf = (dir: string) => join(dir, 'resolv.conf');

function agentProcess(dir: string, topology: LabTopology, host: LabTopology['hosts'][number], join_: string[], tokenFile: string): LabProcess {
  const shoal = shoalCommand();
  return {
    key: `${host.name}/agent`,
    netns: host.netns,
    hostname: host.name,
    command: shoal.command,
    args: [
      ...shoal.args,
      'agent',
      ...join_.flatMap((address) => ['--join', address]),
      '--token-file', tokenFile,
      '--state-dir', join(dir, host.name, 'agent'),
      '--listen', `/ip4/${host.address}/tcp/${agentP2pPort}`,
      '--advertise-addr', host.address,
      '--registry', registryAddress(topology),
      // The open registry speaks plain HTTP; the other one's CA is in the host's certs.d.
      '--insecure-registry', registryAddress(topology),
      '--registry-certs', join(dir, host.name, 'certs.d'),
      '--netns-prefix', netnsPrefix(topology.name),
      '--resolv-conf', labResolvConf(dir),
      '--metrics-listen', `${host.address}:${agentMetricsPort}`,
    ],
    log: join(dir, host.name, 'agent.log'),
  };
}

/**
 * etcd with TLS on both sides: clients must show a certificate of the cluster CA
 * (--client-cert-auth), and members talk to each other over TLS with theirs.
 */
function etcdProcesses(dir: string, topology: LabTopology): LabProcess[] {
  const cluster = topology.etcdAddresses.map((a, i) => `etcd${i}=https://${a}:2380`).join(',');
  const pki = labPki(dir);
  return topology.etcdAddresses.map((address, i) => ({
    key: `etcd${i}`,
    netns: topology.infraNetns,
    hostname: 'infra',
    command: 'etcd',
    args: [
      '--name', `etcd${i}`,
      '--data-dir', join(dir, 'infra', `etcd${i}`),
      '--listen-client-urls', `https://${address}:2379`,
      '--advertise-client-urls', `https://${address}:2379`,
      '--listen-peer-urls', `https://${address}:2380`,
      '--initial-advertise-peer-urls', `https://${address}:2380`,
      '--client-cert-auth', '--trusted-ca-file', join(pki, 'ca.crt'),
      '--cert-file', join(pki, `etcd${i}.crt`), '--key-file', join(pki, `etcd${i}.key`),
      '--peer-client-cert-auth', '--peer-trusted-ca-file', join(pki, 'ca.crt'),
      '--peer-cert-file', join(pki, `etcd${i}.crt`), '--peer-key-file', join(pki, `etcd${i}.key`),
      '--initial-cluster', cluster,
      '--initial-cluster-token', `shoal-${topology.name}`,
      '--initial-cluster-state', 'new',
      '--logger', 'zap',
      '--log-outputs', 'stderr',
    ],
    log: join(dir, 'infra', `etcd${i}.log`),
  }));
}

/** A Debian docker-registry (Distribution v2) of the lab in the infra namespace, storing under the lab's directory as KEY. */
async function registryOf(dir: string, topology: LabTopology, key: string, address: string, extra: { storage?: string[]; auth?: string[]; http?: string[] } = {}): Promise<LabProcess> {
  const config = join(dir, 'infra', `${key}.yml`);
  const lines = ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'infra', key)}`, ...(extra.storage ?? []), ...(extra.auth ?? []), 'http:', `  addr: ${address}`, ...(extra.http ?? []), ''];
  await writeFile(config, lines.join('\n'));
  return { key, netns: topology.infraNetns, hostname: 'infra', command: 'docker-registry', args: ['serve', config], log: join(dir, 'infra', `${key}.log`) };
}

/** The open registry, plain HTTP: the demo's images. */
function registryProcess(dir: string, topology: LabTopology): Promise<LabProcess> {
  return registryOf(dir, topology, 'registry', registryAddress(topology), { storage: ['  delete:', '    enabled: true'] });
}

/** The lab's authenticated registry's login (user and password), made once per lab. */
export async function labRegistryLogin(dir: string): Promise<{ username: string; password: string }> {
  return JSON.parse(await readFile(join(dir, 'infra', 'registry-login.json'), 'utf8')) as { username: string; password: string };
}

/**
 * The second registry: Debian's docker-registry again, with TLS (a certificate of the lab's CA
 * for the infra address) and htpasswd logins; each agent trusts the CA through its certs.d.
 */
async function authRegistryProcess(dir: string, topology: LabTopology): Promise<LabProcess> {
  const pki = labPki(dir);
  await ensureIssued(pki, 'registry', { commonName: 'registry', ips: [topology.infraAddress], usage: 'server' });
  const loginFile = join(dir, 'infra', 'registry-login.json');
  const login = existsSync(loginFile) ? await labRegistryLogin(dir) : { username: 'shoal', password: randomBytes(12).toString('base64url') };
  await writeFile(loginFile, JSON.stringify(login), { mode: 0o600 });
  await writeFile(join(dir, 'infra', 'registry.htpasswd'), `${login.username}:${bcrypt.hashSync(login.password, 10)}\n`, { mode: 0o600 });
  for (const host of topology.hosts) {
    const certs = join(dir, host.name, 'certs.d', authRegistryAddress(topology));
    await mkdir(certs, { recursive: true });
    await copyFile(join(pki, 'ca.crt'), join(certs, 'ca.crt'));
  }
  return registryOf(dir, topology, 'registry-auth', authRegistryAddress(topology), {
    auth: ['auth:', '  htpasswd:', '    realm: shoal-lab', `    path: ${join(dir, 'infra', 'registry.htpasswd')}`],
    http: ['  tls:', `    certificate: ${join(pki, 'registry.crt')}`, `    key: ${join(pki, 'registry.key')}`],
  });
}

/**
 * The lab's CA, made as an operator's first manager would make it, with etcd's member
 * certificates, client certificates for etcdctl and the CLI, and a copy of the CA for each
 * manager's PKI directory (which each manager issues its own certificates from).
 */
async function makeLabPki(dir: string, topology: LabTopology): Promise<void> {
  const pki = labPki(dir);
  await ensureCa(pki, `Shoal lab ${topology.name} CA`);
  // The members share the infra namespace, so a member's peer connections may leave from any
  // of their addresses: etcd checks a peer's certificate against the address it came from.
  for (const i of topology.etcdAddresses.keys()) {
    await ensureIssued(pki, `etcd${i}`, { commonName: `etcd${i}`, ips: topology.etcdAddresses, usage: 'peer' });
  }
  await ensureIssued(pki, 'etcdctl', { commonName: 'etcdctl', usage: 'client' });
  await ensureIssued(pki, 'cli', { commonName: 'shoal-cli', usage: 'client' });
  for (const host of topology.hosts.filter((h) => h.manager)) await sharePki(pki, join(dir, host.name, 'pki'));
}

async function startAndCheck(lab: Lab, spec: LabProcess): Promise<void> {
  lab.record.processes.push(spec);
  await startProcess(spec);
  await lab.save();
  await sleep(100);
  if ((await readSupervision(spec))?.lastExit) throw new Error(`${spec.key} exited at start; its log (${spec.log}) ends with:\n${await tailLog(spec.log)}`);
}

/** The context for the managers' TCP API (from inside a lab host's namespace): TLS, the CA and a client certificate. */
export function tcpContextFile(dir: string): string {
  return join(dir, 'context-tcp.json');
}

async function tcpContext(dir: string, topology: LabTopology, token: string, lab: string): Promise<CliContext> {
  const client = await readIssued(labPki(dir), 'cli');
  return {
    hosts: topology.hosts.filter((h) => h.manager).map((h) => `https://${h.address}:${apiPort}`),
    token,
    lab,
    tls: { ca: await readFile(client.caFile, 'utf8'), cert: client.certificate, key: client.privateKey },
  };
}

/** Builds the lab: namespaces, etcd, managers, agents; writes the CLI context; waits for Ready nodes. */
export async function labUp(options: LabOptions, progress: Progress = () => undefined): Promise<Lab> {
  const problem = validateLabOptions(options);
  if (problem) throw new Error(problem);
  await labDown(options.name, () => undefined);

  const dir = labDir(options.name);
  const topology = labTopology(options);
  for (const sub of ['infra', ...topology.hosts.map((h) => h.name)]) await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
  const lab = new Lab({ options, topology, dir, contextFile: join(dir, 'context.json'), processes: [], createdAt: new Date().toISOString() });
  await lab.save();

  try {
    const batches = underlayCommands(topology);
    await ipBatch(batches.root);
    await Promise.all(batches.inNetns.map(({ netns, lines }) => ipBatch(lines, netns)));
    progress(`network: ${topology.hosts.length} hosts on 198.18.0.0/24 (namespaces ${netnsPrefix(options.name)}*)`);

    await writeFile(labResolvConf(dir), (options.dnsUpstreams ?? []).map((a) => `nameserver ${a}\n`).join(''));
    await makeLabPki(dir, topology);
    progress(`pki: cluster CA and certificates in ${labPki(dir)}`);
    for (const spec of etcdProcesses(dir, topology)) await startAndCheck(lab, spec);
    progress(`etcd: ${topology.etcdAddresses.length} member(s) at ${topology.etcdAddresses.join(', ')} (TLS, client certificates; routed from the managers' hosts only)`);
    await startAndCheck(lab, await registryProcess(dir, topology));
    await startAndCheck(lab, await authRegistryProcess(dir, topology));
    progress(`registry: http://${registryAddress(topology)} (Distribution API v2)`);

    const managers = topology.hosts.filter((h) => h.manager);
    const first = managers[0]!;
    await startAndCheck(lab, managerProcess(dir, topology, first, options));
    const token = (
      await waitFor('the first manager to initialise the cluster', 60_000, async () => {
        const spec = lab.process(`${first.name}/manager`);
        if ((await readSupervision(spec))?.lastExit) throw new Error(`the manager exited; its log (${spec.log}) ends with:\n${await tailLog(spec.log)}`);
        const text = await readFile(join(dir, first.name, 'manager', 'api-token'), 'utf8').catch(() => '');
        return text.trim() || undefined;
      })
    ).trim();
    const sockets = managers.map((h) => join(dir, h.name, 'shoal.sock'));
    const context: CliContext = { hosts: sockets.map((s) => `unix://${s}`), token, lab: options.name };
    await writeContext(lab.record.contextFile, context);
    await writeContext(tcpContextFile(dir), await tcpContext(dir, topology, token, options.name));
    const client = await lab.client();
    const firstClient = new ApiClient([parseEndpoint(sockets[0]!)], token);
    await waitFor('the first manager to lead', 30_000, async () =>
      (await firstClient.call<{ isLeader: boolean }>('GET', '/v1/info')).isLeader ? true : undefined,
    );
    progress(`manager: ${first.name} leads; API at unix://${sockets[0]}`);

    const managerToken = (await client.call<{ token: string }>('GET', '/v1/join-tokens/manager')).token;
    const workerToken = (await client.call<{ token: string }>('GET', '/v1/join-tokens/worker')).token;
    // Tokens go to the daemons in files (0600), so no command line, lab.json or `ps` shows them.
    const tokenFile = async (host: string, role: string, token: string) => {
      const file = join(dir, host, `${role}-join-token`);
      await writeFile(file, `${token}\n`, { mode: 0o600 });
      return file;
    };
    for (const host of managers.slice(1)) await startAndCheck(lab, managerProcess(dir, topology, host, options, await tokenFile(host.name, 'manager', managerToken)));
    const views = await waitFor(`${managers.length} managers to be reachable`, 60_000, async () => {
      const list = await client.call<ManagerView[]>('GET', '/v1/managers');
      return list.filter((m) => m.reachable).length >= managers.length ? list : undefined;
    });
    if (managers.length > 1) progress(`managers: ${managers.map((m) => m.name).join(', ')} reachable`);

    const joinAddresses = views.filter((m) => m.reachable).flatMap((m) => m.p2pAddrs);
    for (const host of topology.hosts) {
      await startAndCheck(lab, agentProcess(dir, topology, host, joinAddresses, await tokenFile(host.name, host.manager ? 'manager' : 'worker', host.manager ? managerToken : workerToken)));
    }
    let lastReported = -1;
    await waitFor(`${topology.hosts.length} nodes to be Ready`, 90_000, async () => {
      await lab.failIfAnyExited();
      const nodes = await client.call<NodeView[]>('GET', '/v1/nodes');
      const ready = nodes.filter((n) => n.status.state === 'ready').length;
      if (ready !== lastReported) progress(`nodes: ${ready}/${topology.hosts.length} ready`);
      lastReported = ready;
      return ready === topology.hosts.length ? true : undefined;
    });
    // The lab's registry starts empty: give it the demo image the tests and the demo run.
    const built = await client.stream<{ references: string[] }>('POST', '/v1/images/build-base', {}, () => undefined);
    progress(`images: ${built.references.join(', ')}`);
    await writeContext(defaultContextPath(), context);
    return lab;
  } catch (error) {
    progress(`lab up failed; logs are in ${dir} until \`shoal lab down --name ${options.name}\``);
    // What each process said last: enough to see why from a CI log alone.
    const tails = await Promise.all(lab.record.processes.map(async (p) => `--- ${p.key} (${(await currentPid(p)) ? 'running' : 'exited'}):\n${await tailLog(p.log, 6)}`));
    throw new Error(`${(error as Error).message}\n${tails.join('\n')}`, { cause: error });
  }
}

/**
 * Deletes, through runc, every container the lab's agents started: that kills their
 * processes and removes their cgroups, which killing the agents alone would leave behind.
 */
async function removeContainers(dir: string): Promise<number> {
  const hosts = await readdir(dir).catch(() => []);
  let removed = 0;
  for (const host of hosts) {
    const runcRoot = join(dir, host, 'agent', 'engine', 'runc');
    if (!existsSync(runcRoot)) continue;
    const ids = (await run('runc', ['--root', runcRoot, 'list', '-q']).catch(() => '')).split('\n').filter(Boolean);
    for (const id of ids) {
      await run('runc', ['--root', runcRoot, 'delete', '--force', id]).catch(() => undefined);
      removed++;
    }
  }
  const controllers = await readdir('/sys/fs/cgroup').catch(() => []);
  // A container runc no longer knows (its agent killed while starting it) can leave its
  // cgroups: the engine's directory still names it, so its processes are killed and its
  // cgroups removed.
  for (const host of hosts) {
    for (const id of await readdir(join(dir, host, 'agent', 'engine', 'containers')).catch(() => [])) {
      for (const controller of controllers) {
        const cgroup = join('/sys/fs/cgroup', controller, 'shoal', id);
        if (!existsSync(cgroup)) continue;
        const pids = (await readFile(join(cgroup, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        for (let attempt = 0; attempt < 20 && existsSync(cgroup); attempt++) {
          await rmdir(cgroup).catch(() => new Promise((resolve) => setTimeout(resolve, 50)));
        }
      }
    }
  }
  // The parent cgroup is shared by every lab's containers; it goes once the last one is gone.
  await Promise.all(controllers.map((c) => rmdir(join('/sys/fs/cgroup', c, 'shoal')).catch(() => undefined)));
  return removed;
}

/** The mount points under the lab's directory, deepest first. */
/**
 * Mount points under the lab's directory, and mounts elsewhere of a file from it (the chaos
 * suite binds a failing runc over the real one), deepest first.
 */
async function mountsUnder(dir: string): Promise<string[]> {
  const mounts = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const under = (path: string) => path === dir || path.startsWith(`${dir}/`);
  return mounts
    .split('\n')
    .map((line) => line.split(' ').map((field) => field.replace(/\\040/g, ' ')))
    .filter(([, , , root = '', mountPoint = '']) => mountPoint !== '' && (under(mountPoint) || under(root)))
    .map((fields) => fields[4]!)
    .sort((a, b) => b.length - a.length);
}

/**
 * Removes everything a lab of this name made, from its record where there is one and by
 * name and path otherwise, so it also cleans up after a crash: processes, mounts,
 * namespaces, files, and the default CLI context if it points at this lab.
 */
export async function labDown(name: string, progress: Progress = () => undefined): Promise<{ removed: boolean }> {
  const dir = labDir(name);
  const lab = await Lab.load(name);
  // The lab's processes go first: agents still running would start replacements for the
  // containers removed under them (a service's tasks), and those would outlive the lab.
  // Supervisors first in the list, so none of them restarts a daemon stopped under it.
  const supervised = await Promise.all(
    (lab?.record.processes ?? []).map(async (p) => {
      const seen = await readSupervision(p);
      return [seen?.supervisorPid, seen?.pid, p.pid];
    }),
  );
  const recorded = supervised.flat().filter((pid): pid is number => isAlive(pid));
  const stray = existsSync(dir) ? await pidsMentioning(dir) : [];
  const pids = [...new Set([...recorded, ...stray])];
  if (pids.length > 0) {
    await stopProcesses(pids);
    progress(`stopped ${pids.length} process(es)`);
  }
  const containers = await removeContainers(dir);
  if (containers > 0) progress(`removed ${containers} container(s)`);
  for (const mount of await mountsUnder(dir)) await run('umount', ['-l', mount]).catch(() => undefined);
  const namespaces = (await run('ip', ['netns', 'list']))
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((ns) => ns.startsWith(netnsPrefix(name)));
  await ipBatch(namespaces.map((ns) => `netns del ${ns}`));
  if (namespaces.length > 0) progress(`removed ${namespaces.length} network namespace(s)`);
  const existed = existsSync(dir);
  await rm(dir, { recursive: true, force: true });
  const context = await readContext(defaultContextPath()).catch(() => undefined);
  if (context?.lab === name) await rm(defaultContextPath(), { force: true });
  return { removed: existed || pids.length > 0 || namespaces.length > 0 };
}

/** Every lab with a directory under the lab root. */
export async function listLabs(): Promise<string[]> {
  return (await readdir(labRoot()).catch(() => [])).sort();
}
