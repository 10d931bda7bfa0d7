import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, watch, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerRecord, ContainerSpec, ContainerStats, ExecRequest, ExecResult, HealthCheck, LogLine, ResourceUpdate } from '../../../shared/containers.ts';
import { errors, ShoalError } from '../../../shared/errors.ts';
import { type CommandError, run } from '../../../shared/exec.ts';
import type { Logger } from '../../../shared/log.ts';
import { mkfifo, mountOverlay, unmount } from '../../../native/mounts.ts';
import { createNetns, deleteNetns } from '../../../native/netns.ts';
import { reap, spawnDetached } from '../../../native/process.ts';
import type { VolumeStore } from '../volumes.ts';
import { closeQuietly, FifoPump, LogFile, openFifoForContainer } from './logs.ts';
import type { NetworkPlumbing } from '../../../netplug/plumbing.ts';
import type { NetworkAttachment } from '../../../shared/containers.ts';
import { buildRuntimeSpec, type DeviceNumbers } from './runtime-spec.ts';
import type { ServiceDiscovery } from '../../../netplug/discovery/discovery.ts';
import { hostsFile, resolvConfFile } from './etc-files.ts';
import { writeTaskFiles } from './task-files.ts';
import type { TaskFile } from '../../../shared/secrets.ts';
import type { PolicyEnforcer } from '../../../netplug/policy/enforcer.ts';
import { workloadLabels } from '../../../netplug/policy/labels.ts';
import { inBackground } from '../../../shared/concurrency.ts';
import { directoryBytes, isLive, type ProcessTable, processTable, runcResources, updatedResources } from './lifecycle.ts';
import { labelMatches } from '../../../shared/schemas.ts';
import { archiveIn, archiveOut, bundleMounts, type Change, changes, changesLayer, type ContainerFs, exportRoot, opaqueDirectories, readSmallFile, resolveUserIn } from './files.ts';
import { checkReference, type CommitOptions, commitConfig, commitImage } from '../images/local-images.ts';
import type { RunConfig } from '../images/dockerfile.ts';
import type { RegistryAuth } from '../registry/auth.ts';
import { stageLayer, type StagedLayer } from '../images/layer-intake.ts';
import type { ImageRecord, ImageStore } from '../images/store.ts';
import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import { Terminal } from './terminal.ts';
import { fetchTerminal } from '../../../native/console.ts';
import type { EngineUpstreamFrame } from '../../../shared/p2p/protocol.ts';

export interface EngineOptions {
  root: string;
  images: ImageStore;
  volumes: VolumeStore;
  /** Prefix of the network namespaces made for containers (the lab sweeps its own prefix). */
  netnsPrefix: string;
  initPath?: string;
  /** The static shim that runs `runc run -d` and keeps the exit status (native/build/shoal-shim). */
  shimPath: string;
  /** The network data plane; without it, containers get loopback only. */
  network?: NetworkPlumbing;
  /** The embedded DNS, VIPs and published ports; without it, containers use the host's resolv.conf. */
  discovery?: ServiceDiscovery;
  /** The host's resolv.conf, copied for containers without the embedded DNS. */
  resolvConf?: string;
  /** Network policy in each container's namespace; without it, nothing is filtered. */
  policy?: PolicyEnforcer;
  /** This host's name, as policy's `node` label gives it. */
  nodeName?: string;
  log: Logger;
}

export interface LogQuery {
  tail?: number;
  since?: string;
  follow?: boolean;
}

interface Live {
  logFile: LogFile;
  pumps: FifoPump[];
  /** A container with a terminal (`-t`): its output comes from there, not from the FIFOs. */
  terminal?: Terminal;
}

/** What an interactive session sends and receives (attach, exec -it). */
export interface SessionIo {
  output: (chunk: Buffer) => Promise<void>;
  input: AsyncIterable<EngineUpstreamFrame>;
  signal: AbortSignal;
}

/** CPUs named in a cpuset string ("0-2,4"). */
export function cpusetCpus(cpuset: string): number[] {
  return cpuset.split(',').flatMap((part) => {
    const [from, to] = part.split('-').map(Number);
    return Array.from({ length: (to ?? from!) - from! + 1 }, (_, i) => from! + i);
  });
}

/** runc writes blkio.weight or blkio.bfq.weight, and silently skips the weight when neither exists. */
export function blkioWeightSupported(): boolean {
  return existsSync('/sys/fs/cgroup/blkio/blkio.weight') || existsSync('/sys/fs/cgroup/blkio/blkio.bfq.weight');
}

/** Resolves with the first of `files` to exist in `dir`, or undefined after the timeout. */
function waitForFile(dir: string, files: string[], timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const found = () => files.find((file) => existsSync(file));
    const watcher = watch(dir, () => {
      const file = found();
      if (file) finish(file);
    });
    // The directory removed under the watch (its container removed): nothing more will appear.
    watcher.on('error', () => finish(found()));
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    const finish = (file: string | undefined) => {
      clearTimeout(timer);
      watcher.close();
      resolve(file);
    };
    const already = found();
    if (already) finish(already);
  });
}

function deviceNumbers(rdev: number): DeviceNumbers {
  return { major: Number((BigInt(rdev) >> 8n) & 0xfffn) | Number((BigInt(rdev) >> 32n) & ~0xfffn), minor: Number(BigInt(rdev) & 0xffn) | Number((BigInt(rdev) >> 12n) & ~0xffn) };
}

/** How often leftovers of failed creates are looked for (`sweepLeftovers`). */
const sweepMs = 10_000;

/**
 * The engine: runs containers with runc from OCI images in the node's store. Each container
 * lives under containers/<id>/ (bundle, overlay dirs, output FIFOs, log, state.json). A small
 * static shim runs `runc run -d` and, as the subreaper that inherits the container, writes its
 * exit status; runc keeps the container's state and cgroup until the engine deletes it, so
 * the OOM-kill count can be read first.
 */
export class Engine {
  private readonly containers = new Map<string, ContainerRecord>();
  private readonly live = new Map<string, Live>();
  private monitor: NodeJS.Timeout | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  /** Creates under way: their directory and namespace are there before their record. */
  private readonly preparing = new Set<string>();
  /** Leftovers already reported: one that cannot go (a read-only disk) is tried again quietly. */
  private readonly reportedLeftovers = new Set<string>();
  /** Shims this process started that have not been reaped yet. */
  private readonly shims = new Set<number>();

  constructor(private readonly options: EngineOptions) {}

  private get runcRoot(): string {
    return join(this.options.root, 'runc');
  }

  private dir(id: string): string {
    return join(this.options.root, 'containers', id);
  }

  private runc(args: string[]): Promise<string> {
    return run('runc', ['--root', this.runcRoot, ...args]);
  }

  /** Loads what earlier runs left: running containers are picked up again, finished ones settled. */
  async init(): Promise<void> {
    await mkdir(join(this.options.root, 'containers'), { recursive: true });
    await mkdir(this.runcRoot, { recursive: true });
    for (const id of await readdir(join(this.options.root, 'containers'))) {
      const text = await readFile(join(this.dir(id), 'state.json'), 'utf8').catch(() => undefined);
      // No record: the sweep below removes it.
      if (!text) continue;
      const record = JSON.parse(text) as ContainerRecord;
      this.containers.set(id, record);
      this.options.network?.adopt(record.spec.attachments ?? [], `${this.options.netnsPrefix}c-${record.id.slice(0, 12)}`);
      if (record.state !== 'exited' && record.state !== 'dead') await this.coverWithPolicy(record.id, record.name, record.spec).catch((error: unknown) => this.options.log.warn('policy not applied to a container', { id: id.slice(0, 12), error: String(error) }));
      if (record.state !== 'exited' && record.state !== 'dead') await this.reopenDiscovery(record);
      if (isLive(record.state)) {
        if (existsSync(join(this.dir(id), 'exit-code'))) await this.settleExit(record);
        else if (record.spec.tty) await this.openTerminal(record).catch((error: unknown) => this.options.log.warn('terminal not reopened', { id: id.slice(0, 12), error: String(error) }));
        else this.attachLogs(record);
      }
    }
    await this.sweepLeftovers();
    this.monitor = setInterval(() => {
      for (const pid of this.shims) if (reap(pid)) this.shims.delete(pid);
      inBackground(this.checkExits(), (error) => this.options.log.warn('exit check failed', { error: String(error) }));
    }, 250);
    this.sweeper = setInterval(() => inBackground(this.sweepLeftovers(), (error) => this.options.log.warn('leftover sweep failed', { error: String(error) })), sweepMs);
  }

  /**
   * What a create's undo could not remove (its directory on a disk that was read-only for a
   * moment, a mount the undo could not see) is not left until the agent's next start: no
   * record names it, so nothing else ever would. Only directories are looked for: namespaces
   * are named by a prefix that several agents on one machine (a lab) share.
   */
  async sweepLeftovers(): Promise<void> {
    for (const id of await readdir(join(this.options.root, 'containers'))) {
      if (this.containers.has(id) || this.preparing.has(id) || existsSync(join(this.dir(id), 'state.json'))) continue;
      await this.removeUnrecorded(id);
    }
  }

  /**
   * A container directory without a record is a create the agent was killed in (after the
   * rootfs was mounted, before the record was written) or one whose undo failed: nothing names
   * it, so its mount, namespace and runc state would stay for good. They go, as a failed
   * create's would; one that cannot (a read-only disk) is warned of once and tried again.
   */
  private async removeUnrecorded(id: string): Promise<void> {
    const message = 'removing a container whose create did not finish';
    if (this.reportedLeftovers.has(id)) this.options.log.debug(message, { id });
    else this.options.log.warn(message, { id });
    this.reportedLeftovers.add(id);
    await this.runc(['delete', '--force', id]).catch(() => undefined);
    await unmount(join(this.dir(id), 'rootfs')).catch(() => undefined);
    await unmount(join(this.dir(id), 'files')).catch(() => undefined);
    await deleteNetns(`${this.options.netnsPrefix}c-${id.slice(0, 12)}`).catch(() => undefined);
    await rm(this.dir(id), { recursive: true, force: true }).catch(() => undefined);
    if (!existsSync(this.dir(id))) this.reportedLeftovers.delete(id);
  }

  /** After a restart: the DNS sockets died with the old agent, the published ports may be gone. */
  private async reopenDiscovery(record: ContainerRecord): Promise<void> {
    const discovery = this.options.discovery;
    if (!discovery || record.spec.networkMode !== 'private') return;
    const netns = `${this.options.netnsPrefix}c-${record.id.slice(0, 12)}`;
    try {
      if (record.spec.attachments.length > 0) await discovery.open(record.id, netns, record.spec.attachments, { ...record.spec, name: record.name });
      if (record.spec.publish.length > 0) await discovery.publish(record.id, record.name, record.spec.publish, record.spec.attachments);
    } catch (error) {
      this.options.log.warn('embedded DNS or published ports not restored for a container', { id: record.id.slice(0, 12), error: String(error) });
    }
  }

  async close(): Promise<void> {
    clearInterval(this.monitor);
    clearInterval(this.sweeper);
    for (const live of this.live.values()) {
      for (const pump of live.pumps) pump.stop();
      live.terminal?.close();
    }
    this.live.clear();
  }

  list(): ContainerRecord[] {
    return [...this.containers.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** By id, unique id prefix, name, or the id (or prefix) of the service task it runs. */
  inspect(reference: string): ContainerRecord {
    const found =
      this.containers.get(reference) ??
      this.list().find((c) => c.name === reference) ??
      (reference.length >= 12 ? this.list().find((c) => c.spec.labels['shoal.task.id']?.startsWith(reference)) : undefined) ??
      (reference.length >= 4 ? this.list().filter((c) => c.id.startsWith(reference)) : []).at(0);
    if (!found) throw errors.notFound('container', reference, 'list containers with `shoal container ls -a`');
    return found;
  }

  /** The container's health check: its own, else its image's HEALTHCHECK (CMD or CMD-SHELL). */
  healthcheckOf(record: ContainerRecord): HealthCheck | undefined {
    if (record.spec.healthcheck) return record.spec.healthcheck.cmd.length ? record.spec.healthcheck : undefined;
    const image = this.options.images.find(record.imageId)?.config.config?.Healthcheck as
      | { Test?: string[]; Interval?: number; Timeout?: number; Retries?: number; StartPeriod?: number }
      | undefined;
    const test = image?.Test ?? [];
    const cmd = test[0] === 'CMD' ? test.slice(1) : test[0] === 'CMD-SHELL' ? ['sh', '-c', test.slice(1).join(' ')] : [];
    if (cmd.length === 0) return undefined;
    const ms = (ns: number | undefined, fallback: number) => (ns ? Math.round(ns / 1e6) : fallback);
    return { cmd, intervalMs: ms(image?.Interval, 30_000), timeoutMs: ms(image?.Timeout, 30_000), retries: image?.Retries || 3, startPeriodMs: ms(image?.StartPeriod, 0) };
  }

  usersOfImage(imageId: string): string[] {
    return this.list().filter((c) => c.imageId === imageId).map((c) => c.name);
  }

  usersOfVolume(name: string): string[] {
    return this.list().filter((c) => c.spec.mounts.some((m) => m.type === 'volume' && m.source === name)).map((c) => c.name);
  }

  /** `network connect`: plumbs one more network into the container's namespace, as its next interface. */
  async connect(reference: string, attachment: NetworkAttachment): Promise<ContainerRecord> {
    const record = this.inspect(reference);
    const network = this.options.network;
    if (!network) throw errors.invalid('this agent has no network data plane');
    if (record.spec.networkMode !== 'private') throw errors.conflict(`container ${record.name} uses another namespace (${record.spec.networkMode}); it cannot join networks`);
    if (record.spec.attachments.some((a) => a.networkId === attachment.networkId)) throw errors.conflict(`container ${record.name} is already on network ${attachment.networkName}`);
    const netns = `${this.options.netnsPrefix}c-${record.id.slice(0, 12)}`;
    const plumbed = await network.attach([attachment], netns, { firstIndex: record.spec.attachments.length, gateway: false });
    const next = { ...record, spec: { ...record.spec, attachments: [...record.spec.attachments, ...plumbed] } };
    await this.save(next);
    await this.coverWithPolicy(next.id, next.name, next.spec);
    return next;
  }

  /** `network disconnect`: removes the container's interface on that network. */
  async disconnect(reference: string, networkId: string): Promise<{ record: ContainerRecord; removed: NetworkAttachment }> {
    const record = this.inspect(reference);
    const removed = record.spec.attachments.find((a) => a.networkId === networkId);
    if (!removed) throw errors.notFound('network attachment', networkId.slice(0, 12), `container ${record.name} is not on that network`);
    await this.options.network?.detach([removed], `${this.options.netnsPrefix}c-${record.id.slice(0, 12)}`);
    const next = { ...record, spec: { ...record.spec, attachments: record.spec.attachments.filter((a) => a !== removed) } };
    await this.save(next);
    await this.coverWithPolicy(next.id, next.name, next.spec);
    return { record: next, removed };
  }

  /** The network namespace of a running container with its own (`network trace` probes from it). */
  netnsOf(reference: string): string {
    const record = this.inspect(reference);
    if (record.state !== 'running') throw errors.conflict(`container ${record.name} is not running`);
    if (record.spec.networkMode !== 'private') throw errors.conflict(`container ${record.name} uses another namespace (${record.spec.networkMode})`);
    return `${this.options.netnsPrefix}c-${record.id.slice(0, 12)}`;
  }

  /** Hands a container's namespace and its endpoints' labels (as policy's selectors see them) to the policy enforcer. */
  private async coverWithPolicy(id: string, name: string, spec: ContainerSpec): Promise<void> {
    const policy = this.options.policy;
    if (!policy || spec.networkMode !== 'private' || spec.attachments.length === 0) return;
    const netns = `${this.options.netnsPrefix}c-${id.slice(0, 12)}`;
    const endpoints = spec.attachments
      .filter((a) => a.address)
      .map((a) => ({
        address: a.address,
        labels: workloadLabels({ containerLabels: spec.labels, serviceLabels: spec.workload?.serviceLabels, service: spec.workload?.service, network: a.networkName, node: this.options.nodeName ?? '' }),
      }));
    await policy.cover({ name, netns, endpoints });
  }

  /** Written synchronously, as the bundle is (see `prepare`): a few kilobytes, once per change. */
  private async save(record: ContainerRecord): Promise<void> {
    this.containers.set(record.id, record);
    writeFileSync(join(this.dir(record.id), 'state.json'), JSON.stringify(record, null, 1));
  }

  /** Checks what only this host can: its CPUs and devices. */
  private async checkHostResources(spec: ContainerSpec): Promise<Record<string, DeviceNumbers>> {
    const cpus = availableParallelism();
    if (spec.resources.cpusetCpus) {
      const missing = cpusetCpus(spec.resources.cpusetCpus).filter((cpu) => cpu >= cpus);
      if (missing.length) throw errors.invalid(`--cpuset-cpus names CPU ${missing.join(', ')}, but this host has CPUs 0-${cpus - 1}`);
    }
    if (spec.resources.nanoCpus !== undefined && spec.resources.nanoCpus > cpus * 1e9) {
      throw errors.invalid(`--cpus ${spec.resources.nanoCpus / 1e9} is more than this host's ${cpus} CPUs`);
    }
    if (spec.resources.blkioWeight !== undefined && !blkioWeightSupported()) {
      throw errors.invalid(
        '--blkio-weight is not supported by this host\'s kernel: its blkio cgroup has no weight file (it needs the BFQ or CFQ I/O scheduler)',
        'leave out --blkio-weight, or use --device-read-bps/--device-write-bps',
      );
    }
    const devices: Record<string, DeviceNumbers> = {};
    const { deviceReadBps, deviceWriteBps, deviceReadIops, deviceWriteIops } = spec.resources;
    for (const { path } of [...deviceReadBps, ...deviceWriteBps, ...deviceReadIops, ...deviceWriteIops]) {
      const info = await stat(path).catch(() => undefined);
      if (!info?.isBlockDevice()) throw errors.invalid(`${path} is not a block device on this host`);
      devices[path] = deviceNumbers(info.rdev);
    }
    return devices;
  }

  /** Creates a container: image pulled if needed, rootfs mounted, namespace and bundle written. */
  async prepare(spec: ContainerSpec, files: readonly TaskFile[] = [], auth?: RegistryAuth): Promise<ContainerRecord> {
    const began = performance.now();
    const devices = await this.checkHostResources(spec);
    if (spec.name && this.list().some((c) => c.name === spec.name)) {
      throw errors.conflict(`the container name "${spec.name}" is already in use`, 'remove that container or pick another name');
    }
    const image = this.options.images.find(spec.image) ?? (await this.options.images.pull(spec.image, undefined, auth));
    // Where the milliseconds go, in the debug log: image, rootfs, network, bundle.
    const stages: Record<string, number> = {};
    let stageStart = began;
    const stage = (name: string) => {
      const now = performance.now();
      stages[name] = Math.round((now - stageStart) * 10) / 10;
      stageStart = now;
    };
    stage('image');
    const id = randomBytes(32).toString('hex');
    this.preparing.add(id);
    const dir = this.dir(id);
    const rootfs = join(dir, 'rootfs');
    const netns = `${this.options.netnsPrefix}c-${id.slice(0, 12)}`;
    const undo: Array<() => Promise<unknown>> = [() => rm(dir, { recursive: true, force: true })];
    // Independent steps overlap (each is a system call on a thread of its own): the container's
    // own namespace is made while its rootfs is mounted.
    const ownNamespace = spec.networkMode === 'private';
    const namespaceMade = ownNamespace ? createNetns(netns).then(() => void undo.push(() => deleteNetns(netns))) : Promise.resolve();
    namespaceMade.catch(() => undefined);
    // The container's directory and its small files are made synchronously: each asynchronous
    // call is a hop to libuv's thread pool and back, and on two cores the nine of a start took
    // 2.7 ms that way against 0.5 ms in line (measured here); none of them waits on a device.
    let fifosMade: Promise<unknown> = Promise.resolve();
    try {
      mkdirSync(dir, { recursive: true });
      for (const sub of ['rootfs', 'upper', 'work']) mkdirSync(join(dir, sub));
      // The mount is asked for before the fifos (native calls, on the same four pool threads as
      // the namespace being made): queued behind them, it finished 3 ms later (measured here).
      const mounted = mountOverlay(this.options.images.layerDirs(image), join(dir, 'upper'), join(dir, 'work'), rootfs);
      fifosMade = Promise.all(['stdout', 'stderr'].map((stream) => mkfifo(join(dir, `${stream}.fifo`))));
      fifosMade.catch(() => undefined);
      await mounted;
      undo.push(() => unmount(rootfs));
      let user;
      try {
        // As Docker: the image's USER unless the container names another.
        user = resolveUserIn(rootfs, spec.user ?? (image.config.config?.User || undefined));
      } catch (error) {
        throw errors.invalid((error as Error).message);
      }
      const mountSources = await Promise.all(spec.mounts.map((m) => (m.type === 'volume' ? this.options.volumes.ensure(m.source) : m.type === 'bind' ? m.source : '')));
      for (const [i, mount] of spec.mounts.entries()) {
        if (mount.type === 'bind' && !existsSync(mountSources[i]!)) throw errors.invalid(`bind source ${mount.source} does not exist on this host`);
      }
      stage('rootfs');
      let netnsPath: string | undefined = `/run/netns/${netns}`;
      if (spec.networkMode === 'host') netnsPath = undefined;
      else if (spec.networkMode.startsWith('container:')) {
        const owner = this.inspect(spec.networkMode.slice('container:'.length));
        if (owner.state !== 'running') throw errors.conflict(`container ${owner.name} is not running; its network namespace cannot be joined`);
        netnsPath = `/run/netns/${this.options.netnsPrefix}c-${owner.id.slice(0, 12)}`;
      }
      await namespaceMade;
      if (spec.attachments.length > 0) {
        if (!this.options.network) throw errors.invalid('this agent has no network data plane');
        const plumbed = await this.options.network.attach(spec.attachments, netns);
        undo.push(() => this.options.network!.detach(plumbed, netns));
        spec = { ...spec, attachments: plumbed };
        // Its policy is in place before its first packet.
        await this.coverWithPolicy(id, spec.name ?? `c-${id.slice(0, 12)}`, spec);
        undo.push(async () => this.options.policy?.release(netns));
      }
      const hostname = spec.hostname ?? id.slice(0, 12);
      const name = spec.name ?? `c-${id.slice(0, 12)}`;
      const discovery = this.options.discovery;
      // The embedded DNS serves every namespace of its own with networks, as Docker's does on user networks.
      const embeddedDns = discovery !== undefined && spec.networkMode === 'private' && spec.attachments.length > 0;
      if (embeddedDns) {
        await discovery.open(id, netns, spec.attachments, { ...spec, name });
        undo.push(() => Promise.resolve(discovery.close(id)));
      }
      if (discovery && spec.publish.length > 0) {
        if (spec.networkMode !== 'private') throw errors.invalid(`ports are published to a container's own namespace; --network ${spec.networkMode} has none`, 'leave out -p, or give the container a network');
        await discovery.publish(id, name, spec.publish, spec.attachments);
        undo.push(() => discovery.unpublish(id));
      }
      // Secrets and configs live on a tmpfs of the container's own: never on the host's disk.
      stage('network');
      const fileMounts = files.length > 0 ? await writeTaskFiles(join(dir, 'files'), files) : [];
      if (fileMounts.length > 0) undo.push(() => unmount(join(dir, 'files')));
      const etcFiles = { hosts: join(dir, 'hosts'), hostname: join(dir, 'hostname'), resolvConf: join(dir, 'resolv.conf') };
      const runtimeSpec = buildRuntimeSpec({
        id, spec, image: image.config, rootfs, ...(netnsPath ? { netnsPath } : {}), hostname, user, mountSources, etcFiles, devices, fileMounts,
        initPath: this.options.initPath,
      });
      writeFileSync(etcFiles.hosts, hostsFile(hostname, name, spec));
      writeFileSync(etcFiles.hostname, `${hostname}\n`);
      writeFileSync(etcFiles.resolvConf, resolvConfFile(embeddedDns, spec, readSmallFile(this.options.resolvConf ?? '/etc/resolv.conf')));
      writeFileSync(join(dir, 'config.json'), JSON.stringify(runtimeSpec, null, 1));
      await fifosMade;
      const record: ContainerRecord = {
        id,
        name: spec.name ?? `c-${id.slice(0, 12)}`,
        spec,
        imageId: image.id,
        state: 'created',
        oomKilled: false,
        createdAt: new Date().toISOString(),
      };
      await this.save(record);
      stage('bundle');
      this.options.log.info('container created', { id: id.slice(0, 12), image: spec.image, ms: Math.round(performance.now() - began) });
      this.options.log.debug('container create stages', { id: id.slice(0, 12), ms: stages });
      return record;
    } catch (error) {
      // A namespace still being made is undone too, once it is; so are fifos, with the directory.
      await Promise.all([namespaceMade, fifosMade].map((step) => step.catch(() => undefined)));
      for (const step of undo.reverse()) await step().catch(() => undefined);
      throw error;
    } finally {
      this.preparing.delete(id);
    }
  }

  private attachLogs(record: ContainerRecord): void {
    if (this.live.has(record.id)) return;
    const logFile = new LogFile(join(this.dir(record.id), 'container.log'), record.spec.log);
    const pumps = (['stdout', 'stderr'] as const).map((stream) => new FifoPump(join(this.dir(record.id), `${stream}.fifo`), stream, logFile));
    for (const pump of pumps) pump.start();
    this.live.set(record.id, { logFile, pumps });
  }

  /** The terminal's master end from the shim that keeps it; its output goes to the log. */
  private async openTerminal(record: ContainerRecord): Promise<Terminal> {
    const known = this.live.get(record.id)?.terminal;
    if (known) return known;
    const fd = await fetchTerminal(this.dir(record.id), 'tty.sock', 5_000);
    const logFile = this.live.get(record.id)?.logFile ?? new LogFile(join(this.dir(record.id), 'container.log'), record.spec.log);
    const terminal = new Terminal(fd, (line) => inBackground(logFile.append(line), () => undefined));
    this.live.set(record.id, { logFile, pumps: [], terminal });
    return terminal;
  }

  private logFile(record: ContainerRecord): LogFile {
    return this.live.get(record.id)?.logFile ?? new LogFile(join(this.dir(record.id), 'container.log'), record.spec.log);
  }

  /**
   * Starts a created container, or an exited one again (as `docker start`): its rootfs, writable
   * layer, namespace and networks stayed, so runc runs the same bundle anew.
   */
  async start(reference: string): Promise<ContainerRecord> {
    const record = this.inspect(reference);
    if (isLive(record.state)) return record;
    if (record.state !== 'created' && record.state !== 'exited') throw errors.conflict(`container ${record.name} is ${record.state}; it cannot be started`, 'remove it and run a new one');
    const began = performance.now();
    const dir = this.dir(record.id);
    if (record.state === 'exited') {
      for (const file of ['exit-code', 'pid', 'pid.started']) await rm(join(dir, file), { force: true });
      // An agent restarted since the exit did not open its DNS and ports again (init skips exited containers).
      if (!this.options.discovery?.serves(record.id)) {
        await this.reopenDiscovery(record);
        await this.coverWithPolicy(record.id, record.name, record.spec);
      }
    }
    const fds = ['stdout', 'stderr'].map((stream) => openFifoForContainer(join(dir, `${stream}.fifo`)));
    if (!record.spec.tty) this.attachLogs(record);
    const pidFile = join(dir, 'pid');
    const startedFile = `${pidFile}.started`;
    // With a terminal the shim takes runc's console socket (relative: the bundle's path is too long for a socket's).
    const console = record.spec.tty ? { shim: ['--console'], runc: ['--console-socket', 'console.sock'] } : { shim: [], runc: [] };
    try {
      const shim = spawnDetached(
        [this.options.shimPath, ...console.shim, join(dir, 'exit-code'), pidFile, '--', 'runc', '--root', this.runcRoot, 'run', '-d', ...console.runc, '--pid-file', pidFile, '--bundle', dir, record.id],
        fds[0]!,
        fds[1]!,
        dir,
      );
      this.shims.add(shim);
    } finally {
      for (const fd of fds) closeQuietly(fd);
    }
    // Running once runc has returned from `run -d`, as for a bare `runc run -d`. Watched with
    // inotify rather than polled: on two cores a polling loop slows runc down.
    const outcome = await waitForFile(dir, [startedFile, join(dir, 'exit-code')], 30_000);
    if (!outcome) throw new ShoalError('temporary', 'start_timeout', `container ${record.name} did not start within 30s`);
    const pid = Number(readSmallFile(pidFile).trim()) || undefined;
    if (!pid) {
      await this.settleExit(record);
      const lines = (await this.logFile(record).readAll()).slice(-3).map((l) => l.text).join(' | ');
      throw new ShoalError('invalid', 'start_failed', `container ${record.name} failed to start: ${lines || 'runc exited'}`);
    }
    if (record.spec.tty) await this.openTerminal(record);
    this.options.log.info('container started', { id: record.id.slice(0, 12), pid, ms: Math.round(performance.now() - began) });
    return this.updateRecord(record.id, { state: 'running', pid, startedAt: new Date().toISOString() });
  }

  private async updateRecord(id: string, change: Partial<ContainerRecord>): Promise<ContainerRecord> {
    const next = { ...this.containers.get(id)!, ...change };
    await this.save(next);
    return next;
  }

  private async checkExits(): Promise<void> {
    for (const record of this.containers.values()) {
      if (isLive(record.state) && existsSync(join(this.dir(record.id), 'exit-code'))) await this.settleExit(record).catch(() => undefined);
    }
  }

  private readonly settling = new Map<string, Promise<ContainerRecord>>();

  /**
   * Records how a container ended (exit code, OOM kill) and lets runc drop its state and
   * cgroup; once per exit, however many callers (monitor, stop, wait) notice it together.
   */
  private settleExit(record: ContainerRecord): Promise<ContainerRecord> {
    const running = this.settling.get(record.id);
    if (running) return running;
    const settling = this.settleExitOnce(record).finally(() => this.settling.delete(record.id));
    this.settling.set(record.id, settling);
    return settling;
  }

  private async settleExitOnce(record: ContainerRecord): Promise<ContainerRecord> {
    if (this.containers.get(record.id)?.state === 'exited') return this.containers.get(record.id)!;
    const dir = this.dir(record.id);
    const code = Number((await readFile(join(dir, 'exit-code'), 'utf8').catch(() => '')).trim());
    const oomControl = await readFile(`/sys/fs/cgroup/memory/shoal/${record.id}/memory.oom_control`, 'utf8').catch(() => '');
    const oomKilled = Number(/oom_kill (\d+)/.exec(oomControl)?.[1] ?? 0) > 0;
    await this.runc(['delete', '--force', record.id]).catch(() => undefined);
    const live = this.live.get(record.id);
    if (live) {
      // Let the pumps drain what the container wrote last before they stop.
      await sleep(50);
      for (const pump of live.pumps) pump.stop();
      live.terminal?.close();
      this.live.delete(record.id);
      await live.logFile.flushed();
    }
    return this.updateRecord(record.id, {
      state: 'exited',
      exitCode: Number.isFinite(code) ? code : undefined,
      oomKilled,
      finishedAt: new Date().toISOString(),
      pid: undefined,
    });
  }

  /** Waits until the container has exited (a created one: until it is started and exits, as `docker wait`). */
  async wait(reference: string, signal?: AbortSignal): Promise<ContainerRecord> {
    const first = this.inspect(reference);
    for (;;) {
      const record = this.containers.get(first.id);
      if (!record) return first;
      if (!isLive(record.state) && record.state !== 'created') return record;
      if (signal?.aborted) throw new ShoalError('temporary', 'aborted', 'wait was cancelled');
      await sleep(100);
    }
  }

  /**
   * The container's stop signal (SIGTERM unless it has one), then SIGKILL after the timeout
   * (its stop grace period, else 10 s), as `docker stop` does.
   */
  async stop(reference: string, timeoutSeconds?: number): Promise<ContainerRecord> {
    const record = this.inspect(reference);
    if (!isLive(record.state)) return record;
    await this.signal(record, (record.spec.stopSignal ?? 'TERM').replace(/^SIG/, '')).catch(() => undefined);
    const graceMs = timeoutSeconds !== undefined ? timeoutSeconds * 1000 : (record.spec.stopGracePeriodMs ?? 10_000);
    if (!(await this.exitWritten(record, graceMs))) await this.runc(['kill', record.id, 'KILL']).catch(() => undefined);
    await this.exitWritten(record);
    return this.settleExit(this.containers.get(record.id)!);
  }

  /** Whether the shim wrote the container's exit status within `timeoutMs` (watched, not polled). */
  private async exitWritten(record: ContainerRecord, timeoutMs = 2 ** 31 - 1): Promise<boolean> {
    return (await waitForFile(this.dir(record.id), [join(this.dir(record.id), 'exit-code')], timeoutMs)) !== undefined;
  }

  /**
   * Sends a signal to the container's init; a paused container is thawed after it, as Docker
   * does, since a frozen process takes no signal, not even SIGKILL, until it runs again.
   */
  private async signal(record: ContainerRecord, signal: string): Promise<void> {
    await this.runc(['kill', record.id, signal]);
    if (this.containers.get(record.id)?.state === 'paused') {
      await this.runc(['resume', record.id]);
      await this.updateRecord(record.id, { state: 'running' });
    }
  }

  /** `docker kill -s`: one signal, no grace period; the container may well keep running. */
  async kill(reference: string, signal: string): Promise<ContainerRecord> {
    const record = this.inspect(reference);
    if (!isLive(record.state)) throw errors.conflict(`container ${record.name} is not running`, `start it with \`shoal container start ${record.name}\``);
    await this.signal(record, signal);
    if (signal === 'KILL' || signal === '9') {
      await this.exitWritten(record);
      return this.settleExit(this.containers.get(record.id)!);
    }
    return this.containers.get(record.id)!;
  }

  /** Freezes every process of the container (the freezer cgroup), or thaws them. */
  async pause(reference: string): Promise<ContainerRecord> {
    const record = this.inspect(reference);
    if (record.state === 'paused') throw errors.conflict(`container ${record.name} is already paused`);
    if (record.state !== 'running') throw errors.conflict(`container ${record.name} is not running`);
    await this.runc(['pause', record.id]);
    return this.updateRecord(record.id, { state: 'paused' });
  }

  async unpause(reference: string): Promise<ContainerRecord> {
    const record = this.inspect(reference);
    if (record.state !== 'paused') throw errors.conflict(`container ${record.name} is not paused`);
    await this.runc(['resume', record.id]);
    return this.updateRecord(record.id, { state: 'running' });
  }

  /** Stops (with the grace period) and starts again: same container, same id, rootfs and networks. */
  async restart(reference: string, timeoutSeconds?: number): Promise<ContainerRecord> {
    const record = await this.stop(reference, timeoutSeconds);
    return this.start(record.id);
  }

  async rename(reference: string, name: string): Promise<ContainerRecord> {
    const record = this.inspect(reference);
    if (record.name === name) return record;
    if (this.list().some((c) => c.name === name)) throw errors.conflict(`the container name "${name}" is already in use`, 'remove that container or pick another name');
    return this.updateRecord(record.id, { name, spec: { ...record.spec, name } });
  }

  /** `docker top`: the host's `ps` with the given options, cut to the container's processes. */
  async top(reference: string, psArgs: string[]): Promise<ProcessTable> {
    const record = this.inspect(reference);
    if (!isLive(record.state)) throw errors.conflict(`container ${record.name} is not running`);
    const pids = JSON.parse(await this.runc(['ps', '--format', 'json', record.id])) as number[];
    const output = await run('ps', psArgs.length > 0 ? psArgs : ['-ef']).catch((error: CommandError) => {
      throw errors.invalid(`ps ${psArgs.join(' ')} failed: ${error.stderr.trim() || error.message}`, 'give options the host\'s ps knows, such as aux or -o pid,comm');
    });
    return processTable(output, new Set(pids));
  }

  /** `docker update`: new limits for a container's cgroup, running or not, kept in its record and bundle. */
  async update(reference: string, change: ResourceUpdate): Promise<ContainerRecord> {
    const record = this.inspect(reference);
    const resources = updatedResources(record.spec.resources, change);
    if (resources.cpusetCpus) await this.checkHostResources({ ...record.spec, resources });
    if (isLive(record.state)) {
      const file = join(this.dir(record.id), 'update.json');
      await writeFile(file, JSON.stringify(runcResources(resources)));
      await this.runc(['update', '--resources', file, record.id]).catch((error: CommandError) => {
        throw errors.invalid(`the kernel refused the new limits: ${error.stderr.trim().split('\n').pop() ?? error.message}`);
      });
    }
    // The bundle too, so that a later start runs with them.
    const bundle = join(this.dir(record.id), 'config.json');
    const spec = JSON.parse(await readFile(bundle, 'utf8')) as { linux?: { resources?: object } };
    spec.linux = { ...spec.linux, resources: { ...spec.linux?.resources, ...runcResources(resources) } };
    await writeFile(bundle, JSON.stringify(spec, null, 1));
    return this.updateRecord(record.id, { spec: { ...record.spec, resources } });
  }

  /**
   * `docker container prune`: every container that is not running (created or exited) goes,
   * but service tasks' containers, which their node's task runner keeps and removes itself.
   */
  async prune(labels: string[]): Promise<{ removed: string[]; reclaimedBytes: number }> {
    const removed: string[] = [];
    let reclaimedBytes = 0;
    for (const record of this.list()) {
      if (isLive(record.state) || record.spec.labels['shoal.task.id']) continue;
      if (!labels.every((label) => labelMatches(record.spec.labels, label))) continue;
      reclaimedBytes += await directoryBytes(join(this.dir(record.id), 'upper'));
      await this.remove(record.id);
      removed.push(record.id);
    }
    return { removed, reclaimedBytes };
  }

  /** Removes a container and everything it had: rootfs mount, writable layer, namespace, log. */
  async remove(reference: string, force = false): Promise<ContainerRecord> {
    const record = this.inspect(reference);
    if (isLive(record.state)) {
      if (!force) throw errors.conflict(`container ${record.name} is ${record.state}`, 'stop it first, or remove it with --force');
      await this.stop(record.id, 0);
    }
    await this.runc(['delete', '--force', record.id]).catch(() => undefined);
    const dir = this.dir(record.id);
    await unmount(join(dir, 'rootfs')).catch(() => undefined);
    await unmount(join(dir, 'files')).catch(() => undefined);
    this.options.discovery?.close(record.id);
    await this.options.discovery?.unpublish(record.id).catch((error: unknown) => this.options.log.warn('published ports not withdrawn', { id: record.id.slice(0, 12), error: String(error) }));
    this.options.policy?.release(`${this.options.netnsPrefix}c-${record.id.slice(0, 12)}`);
    await this.options.network?.detach(record.spec.attachments ?? [], `${this.options.netnsPrefix}c-${record.id.slice(0, 12)}`);
    await deleteNetns(`${this.options.netnsPrefix}c-${record.id.slice(0, 12)}`).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    this.containers.delete(record.id);
    return record;
  }

  /** The container's filesystem as `cp`, `diff` and `export` see it: its rootfs and its bundle's mounts. */
  private async filesystemOf(record: ContainerRecord): Promise<ContainerFs> {
    const dir = this.dir(record.id);
    return { rootfs: join(dir, 'rootfs'), readOnlyRoot: record.spec.readOnlyRootfs, mounts: await bundleMounts(join(dir, 'config.json')) };
  }

  /** `cp C:PATH -`: a tar of PATH, running or not. */
  async archive(reference: string, path: string, sink: (chunk: Buffer) => Promise<void>, signal?: AbortSignal): Promise<void> {
    await archiveOut(await this.filesystemOf(this.inspect(reference)), path, sink, signal);
  }

  /** `cp - C:PATH`: a tar unpacked at PATH, running or not. */
  async extract(reference: string, path: string, input: AsyncIterable<Buffer>, options: { keepOwner: boolean; contents: boolean }): Promise<void> {
    await archiveIn(await this.filesystemOf(this.inspect(reference)), path, input, options);
  }

  /** `export`: the merged root as a tar. */
  async export(reference: string, sink: (chunk: Buffer) => Promise<void>, signal?: AbortSignal): Promise<void> {
    await exportRoot(await this.filesystemOf(this.inspect(reference)), sink, signal);
  }

  /** `diff`: added, changed and deleted paths against the image. */
  async diff(reference: string): Promise<Change[]> {
    return this.changesOf(this.inspect(reference));
  }

  /** The container's changes against its image's layers, runc's mount points left out. */
  private async changesOf(record: ContainerRecord): Promise<Change[]> {
    const image = this.options.images.find(record.imageId);
    const { mounts } = await this.filesystemOf(record);
    return changes(join(this.dir(record.id), 'upper'), image ? this.options.images.layerDirs(image) : [], new Set(mounts.map((m) => m.destination)));
  }

  /**
   * `commit`: the container's changes as a new image on its own image's layers. A running
   * container is paused meanwhile (unless asked not to), so the layer is one moment of it.
   */
  async commit(reference: string, options: CommitOptions & { pause: boolean }): Promise<ImageRecord> {
    const record = this.inspect(reference);
    const images = this.options.images;
    const base = images.find(record.imageId);
    if (!base) throw errors.notFound('image', record.imageId, 'the container\'s image was removed from this node; pull it again');
    checkReference(images, options.reference);
    const overrides = { ...(record.spec.cmd ? { cmd: record.spec.cmd } : {}), ...(record.spec.entrypoint ? { entrypoint: record.spec.entrypoint } : {}), env: record.spec.env, ...(record.spec.workdir ? { workdir: record.spec.workdir } : {}), ...(record.spec.user ? { user: record.spec.user } : {}), labels: Object.fromEntries(Object.entries(record.spec.labels).filter(([key]) => !key.startsWith('shoal.'))) };
    const raw = await images.rawConfig(base);
    // Checked before the layer is made: a bad --change costs nothing.
    commitConfig(raw.config as RunConfig, overrides, options.changes);
    const pause = options.pause && record.state === 'running';
    if (pause) await this.runc(['pause', record.id]);
    let layer;
    try {
      layer = await this.changesAsLayer(record);
    } finally {
      if (pause) await this.runc(['resume', record.id]).catch((error: unknown) => this.options.log.warn('container not resumed after commit', { id: record.id.slice(0, 12), error: String(error) }));
    }
    return commitImage(images, base, raw, layer, overrides, options);
  }

  /**
   * The container's changes against its image as an OCI layer, staged in the image store (none
   * when it changed nothing): what commit and each build step keep.
   */
  async changesAsLayer(reference: string | ContainerRecord): Promise<StagedLayer | undefined> {
    const record = typeof reference === 'string' ? this.inspect(reference) : reference;
    const images = this.options.images;
    const upper = join(this.dir(record.id), 'upper');
    const found = await this.changesOf(record);
    const opaque = await opaqueDirectories(upper);
    if (found.length === 0 && opaque.length === 0) return undefined;
    const markers = images.stagingPath();
    await mkdir(markers, { recursive: true });
    try {
      const tar = new PassThrough();
      const producing = changesLayer(upper, found, opaque, markers, async (chunk) => {
        if (!tar.write(chunk)) await once(tar, 'drain');
      }).then(() => tar.end(), (error: Error) => tar.destroy(error));
      const layer = await stageLayer(tar, images.stagingPath());
      await producing;
      return layer;
    } finally {
      await rm(markers, { recursive: true, force: true });
    }
  }

  /** A container's filesystem (rootfs and mounts), for a build step that copies files in or out. */
  async filesystem(reference: string): Promise<ContainerFs> {
    return this.filesystemOf(this.inspect(reference));
  }

  /**
   * `attach`: the container's terminal, both ways, until it exits (its exit code) or the caller
   * goes (detached: the container runs on). A created container is waited for, so that `run -it`
   * attaches before it starts and misses nothing. Without a terminal, its output only.
   */
  async attach(reference: string, io: SessionIo): Promise<{ exitCode?: number; detached: boolean }> {
    const first = this.inspect(reference);
    while (this.containers.get(first.id)?.state === 'created' && !io.signal.aborted) await sleep(20);
    const record = this.containers.get(first.id) ?? first;
    if (!isLive(record.state)) return { ...(record.exitCode !== undefined ? { exitCode: record.exitCode } : {}), detached: false };
    const unsubscribe: Array<() => void> = [];
    if (record.spec.tty) {
      const terminal = await this.openTerminal(record);
      unsubscribe.push(terminal.subscribe((chunk) => inBackground(io.output(chunk), () => undefined)));
      inBackground(pumpInput(io.input, terminal), (error) => this.options.log.warn('terminal input failed', { id: record.id.slice(0, 12), error: String(error) }));
    } else {
      unsubscribe.push(this.logFile(record).subscribe((line) => inBackground(io.output(Buffer.from(`${line.text}\n`)), () => undefined)));
    }
    try {
      const done = await this.exitOrAbort(record.id, io.signal);
      return done ? { ...(done.exitCode !== undefined ? { exitCode: done.exitCode } : {}), detached: false } : { detached: true };
    } finally {
      for (const stop of unsubscribe) stop();
    }
  }

  /** The record once the container has exited, or undefined when `signal` fires first. */
  private async exitOrAbort(id: string, signal: AbortSignal): Promise<ContainerRecord | undefined> {
    for (;;) {
      const record = this.containers.get(id);
      if (!record || !isLive(record.state)) {
        // The last output reaches the caller before the exit code.
        await sleep(50);
        return this.containers.get(id) ?? record;
      }
      if (signal.aborted) return undefined;
      await sleep(50);
    }
  }

  /**
   * `exec -it`: a command on a terminal of its own. runc gives a console socket only to a
   * process it detaches, so the shim runs `runc exec -d -t` as it runs containers: it inherits
   * the command, keeps its terminal and writes its exit status, in a directory of the exec's own.
   * A caller that goes leaves the command running. (runc exec dials the console socket from the
   * bundle, the container's directory: the path is relative to it, too long otherwise.)
   */
  async execSession(reference: string, request: ExecRequest, io: SessionIo): Promise<{ exitCode?: number; detached: boolean }> {
    const record = this.runningForExec(reference);
    const execName = randomBytes(6).toString('hex');
    const execDir = join(this.dir(record.id), 'execs', execName);
    await mkdir(execDir, { recursive: true });
    const pidFile = join(execDir, 'pid');
    const exitFile = join(execDir, 'exit-code');
    const stderrFd = openSync(join(execDir, 'stderr'), 'w');
    try {
      const args = await this.execArgs(record, request);
      this.shims.add(spawnDetached([this.options.shimPath, '--console', exitFile, pidFile, '--', 'runc', '--root', this.runcRoot, 'exec', '-d', '-t', '--console-socket', `execs/${execName}/console.sock`, '--pid-file', pidFile, ...args], stderrFd, stderrFd, execDir));
    } finally {
      closeQuietly(stderrFd);
    }
    const started = await waitForFile(execDir, [`${pidFile}.started`, exitFile], 10_000);
    if (started !== `${pidFile}.started`) {
      const said = (await readFile(join(execDir, 'stderr'), 'utf8').catch(() => '')).trim().split('\n').pop() ?? '';
      await rm(execDir, { recursive: true, force: true });
      throw errors.invalid(`exec failed: ${said.replace(/^.*msg="(.*)"$/, '$1').replace(/^exec failed: /, '').replaceAll('\\"', '"') || 'runc did not start it'}`);
    }
    const terminal = new Terminal(await fetchTerminal(execDir, 'tty.sock', 5_000));
    const unsubscribe = terminal.subscribe((chunk) => inBackground(io.output(chunk), () => undefined));
    inBackground(pumpInput(io.input, terminal), () => undefined);
    const exited = (async () => {
      await waitForFile(execDir, [exitFile], 2 ** 31 - 1);
      // Its last output first, then the terminal and the exec's directory go.
      await Promise.race([terminal.ended, sleep(200)]);
      terminal.close();
      const code = Number((await readFile(exitFile, 'utf8')).trim());
      await rm(execDir, { recursive: true, force: true });
      return code;
    })();
    exited.catch(() => undefined);
    const aborted = new Promise<undefined>((resolve) => io.signal.addEventListener('abort', () => resolve(undefined), { once: true }));
    const exitCode = await Promise.race([exited, aborted]);
    unsubscribe();
    return exitCode === undefined ? { detached: true } : { exitCode, detached: false };
  }

  /** runc exec's arguments for a request: environment, working directory, user, command. */
  private async execArgs(record: ContainerRecord, request: ExecRequest): Promise<string[]> {
    const args = [...request.env.flatMap((e) => ['--env', e])];
    if (request.workdir) args.push('--cwd', request.workdir);
    if (request.user) {
      const user = resolveUserIn(join(this.dir(record.id), 'rootfs'), request.user);
      args.push('--user', `${user.uid}:${user.gid}`);
    }
    return [...args, record.id, ...request.cmd];
  }

  /** A container a command can be run in: running, and not frozen. */
  private runningForExec(reference: string): ContainerRecord {
    const record = this.inspect(reference);
    if (record.state === 'paused') throw errors.conflict(`container ${record.name} is paused`, `unpause it first: \`shoal container unpause ${record.name}\``);
    if (record.state !== 'running') throw errors.conflict(`container ${record.name} is not running`);
    return record;
  }

  async exec(reference: string, request: ExecRequest, timeoutMs = 60_000): Promise<ExecResult> {
    const record = this.runningForExec(reference);
    const args = ['--root', this.runcRoot, 'exec', ...(await this.execArgs(record, request))];
    return new Promise((resolve, reject) => {
      const child = spawn('runc', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      child.stdout.on('error', () => undefined);
      child.stderr.on('error', () => undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ exitCode: code ?? (signal ? 128 + 9 : 1), stdout, stderr });
      });
    });
  }

  async stats(reference: string): Promise<ContainerStats> {
    const record = this.inspect(reference);
    if (!isLive(record.state)) throw errors.conflict(`container ${record.name} is not running`);
    const sample = async () => {
      const data = (JSON.parse(await this.runc(['events', '--stats', record.id])) as { data: RuncStats }).data;
      return { at: process.hrtime.bigint(), data };
    };
    const first = await sample();
    await sleep(250);
    const second = await sample();
    const cpuDelta = (second.data.cpu?.usage?.total ?? 0) - (first.data.cpu?.usage?.total ?? 0);
    const wallDelta = Number(second.at - first.at);
    const io = second.data.blkio?.ioServiceBytesRecursive ?? [];
    const sum = (op: string) => io.filter((e) => e.op?.toLowerCase() === op).reduce((total, e) => total + (e.value ?? 0), 0);
    return {
      id: record.id,
      cpuPercent: wallDelta > 0 ? Math.round((cpuDelta / wallDelta) * 10_000) / 100 : 0,
      memoryUsageBytes: second.data.memory?.usage?.usage ?? 0,
      memoryLimitBytes: second.data.memory?.usage?.limit ?? 0,
      pids: second.data.pids?.current ?? 0,
      blockReadBytes: sum('read'),
      blockWriteBytes: sum('write'),
    };
  }

  /** Stored lines (after `since`, the last `tail`), then live ones while `follow` and the container runs. */
  async logs(reference: string, query: LogQuery, onLine: (line: LogLine) => void, signal?: AbortSignal): Promise<void> {
    const record = this.inspect(reference);
    const logFile = this.logFile(record);
    const buffered: LogLine[] = [];
    const unsubscribe = query.follow ? logFile.subscribe((line) => buffered.push(line)) : () => undefined;
    try {
      let lines = await logFile.readAll();
      if (query.since) lines = lines.filter((l) => l.time >= query.since!);
      if (query.tail !== undefined) lines = lines.slice(Math.max(0, lines.length - query.tail));
      const seen = new Set(lines.map((l) => `${l.time}${l.stream}${l.text}`));
      for (const line of lines) onLine(line);
      if (!query.follow) return;
      while (!signal?.aborted) {
        for (const line of buffered.splice(0)) if (!seen.has(`${line.time}${line.stream}${line.text}`)) onLine(line);
        if (!isLive(this.containers.get(record.id)?.state)) break;
        await sleep(100);
      }
      for (const line of buffered.splice(0)) if (!seen.has(`${line.time}${line.stream}${line.text}`)) onLine(line);
    } finally {
      unsubscribe();
    }
  }
}

/** A session's keyboard and window sizes onto a terminal. */
async function pumpInput(input: AsyncIterable<EngineUpstreamFrame>, terminal: Terminal): Promise<void> {
  for await (const frame of input) {
    if (frame.type === 'data') await terminal.write(Buffer.from(frame.data, 'base64'));
    else terminal.resize(frame.rows, frame.cols);
  }
}

interface RuncStats {
  cpu?: { usage?: { total?: number } };
  memory?: { usage?: { usage?: number; limit?: number } };
  pids?: { current?: number };
  blkio?: { ioServiceBytesRecursive?: Array<{ op?: string; value?: number }> };
}
