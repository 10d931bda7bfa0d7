/**
 * The OCI runtime spec (runc's config.json) for a container, from its spec and its image's
 * config: a pure function, so the Docker-compatible rules (entrypoint/cmd merge, env
 * override, memory-swap default, CFS quota from --cpus) are unit-tested without runc.
 */
import { capabilityName, type ContainerSpec, type Resources } from '../../../shared/containers.ts';
import type { ImageConfig } from '../images/oci.ts';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
}

export interface DeviceNumbers {
  major: number;
  minor: number;
}

export interface RuntimeSpecInput {
  id: string;
  spec: ContainerSpec;
  image: ImageConfig;
  rootfs: string;
  /** The network namespace to join; undefined shares the host's (`--network host`). */
  netnsPath?: string;
  hostname: string;
  user: ResolvedUser;
  /** Host paths for the spec's mounts, in the same order (volumes resolved; tmpfs unused). */
  mountSources: string[];
  /** Files the engine writes for the container: /etc/hosts, /etc/hostname and /etc/resolv.conf. */
  etcFiles: { hosts: string; hostname: string; resolvConf: string };
  /** Secrets and configs: files on the container's tmpfs, bound read-only at their targets. */
  fileMounts?: ReadonlyArray<{ target: string; source: string }>;
  /** Device path to its numbers, for the blkio throttles. */
  devices: Record<string, DeviceNumbers>;
  /** The init binary to run as pid 1 (zombie reaping), if spec.init. */
  initPath?: string;
}

export const cfsPeriodUs = 100_000;
const initTarget = '/sbin/shoal-init';

const defaultCapabilities = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** Every capability the kernel defines, for --cap-add ALL. */
const allCapabilities = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** Docker's rule: the default set, less --cap-drop (ALL drops every one), plus --cap-add (ALL adds every one). */
export function capabilitiesOf(spec: Pick<ContainerSpec, 'capAdd' | 'capDrop'>): string[] {
  const drop = (spec.capDrop ?? []).map(capabilityName);
  const add = (spec.capAdd ?? []).map(capabilityName);
  const unknown = [...drop, ...add].filter((c) => c !== 'ALL' && !allCapabilities.includes(c));
  if (unknown.length) throw new Error(`unknown capabilit${unknown.length > 1 ? 'ies' : 'y'}: ${unknown.join(', ')}`);
  const kept = drop.includes('ALL') ? [] : defaultCapabilities.filter((c) => !drop.includes(c));
  const added = add.includes('ALL') ? allCapabilities : add;
  return [...new Set([...kept, ...added])];
}

/** Docker's rule: --entrypoint replaces the image's and drops its Cmd; CMD args replace the image's Cmd. */
export function processArgs(spec: Pick<ContainerSpec, 'entrypoint' | 'cmd'>, image: ImageConfig): string[] {
  const entrypoint = spec.entrypoint ?? image.config?.Entrypoint ?? [];
  const cmd = spec.cmd ?? (spec.entrypoint ? [] : (image.config?.Cmd ?? []));
  return [...entrypoint, ...cmd];
}

/** The image's environment with the container's entries laid over it, by name. */
export function mergeEnv(imageEnv: readonly string[], overrides: readonly string[]): string[] {
  const merged = new Map<string, string>();
  for (const entry of [...imageEnv, ...overrides]) merged.set(entry.slice(0, entry.indexOf('=')), entry);
  if (!merged.has('PATH')) merged.set('PATH', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  return [...merged.values()];
}

function throttle(rates: Resources['deviceReadBps'], devices: Record<string, DeviceNumbers>) {
  return rates.map(({ path, rate }) => {
    const numbers = devices[path];
    if (!numbers) throw new Error(`device ${path} is unknown on this host`);
    return { ...numbers, rate };
  });
}

/** linux.resources from Docker's run options. */
export function linuxResources(resources: Resources, devices: Record<string, DeviceNumbers>): Record<string, unknown> {
  const memory: Record<string, number> = {};
  if (resources.memoryBytes !== undefined) {
    memory.limit = resources.memoryBytes;
    // Docker: unset --memory-swap means as much swap as memory, so memory+swap is twice --memory.
    memory.swap = resources.memorySwapBytes ?? resources.memoryBytes * 2;
  } else if (resources.memorySwapBytes === -1) {
    memory.swap = -1;
  }
  if (resources.memoryReservationBytes !== undefined) memory.reservation = resources.memoryReservationBytes;
  const cpu: Record<string, number | string> = {};
  if (resources.cpuShares !== undefined) cpu.shares = resources.cpuShares;
  if (resources.nanoCpus !== undefined) {
    cpu.period = cfsPeriodUs;
    cpu.quota = Math.round((resources.nanoCpus * cfsPeriodUs) / 1e9);
  }
  if (resources.cpusetCpus !== undefined) cpu.cpus = resources.cpusetCpus;
  const blockIO: Record<string, unknown> = {};
  if (resources.blkioWeight !== undefined) blockIO.weight = resources.blkioWeight;
  if (resources.deviceReadBps.length) blockIO.throttleReadBpsDevice = throttle(resources.deviceReadBps, devices);
  if (resources.deviceWriteBps.length) blockIO.throttleWriteBpsDevice = throttle(resources.deviceWriteBps, devices);
  if (resources.deviceReadIops.length) blockIO.throttleReadIOPSDevice = throttle(resources.deviceReadIops, devices);
  if (resources.deviceWriteIops.length) blockIO.throttleWriteIOPSDevice = throttle(resources.deviceWriteIops, devices);
  return {
    // Deny every device; runc adds its usual allow list (null, zero, full, random, urandom, tty, ptmx, pts).
    devices: [{ allow: false, access: 'rwm' }],
    ...(Object.keys(memory).length ? { memory } : {}),
    ...(Object.keys(cpu).length ? { cpu } : {}),
    ...(resources.pidsLimit !== undefined ? { pids: { limit: resources.pidsLimit } } : {}),
    ...(Object.keys(blockIO).length ? { blockIO } : {}),
  };
}

export function buildRuntimeSpec(input: RuntimeSpecInput): Record<string, unknown> {
  const { spec, image } = input;
  const args = processArgs(spec, image);
  const capabilities = capabilitiesOf(spec);
  if (args.length === 0) throw new Error('no command: the image has no Entrypoint or Cmd and none was given');
  const userMounts = spec.mounts.map((mount, i) =>
    mount.type === 'tmpfs'
      ? { destination: mount.target, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', ...(mount.sizeBytes ? [`size=${mount.sizeBytes}`] : [])] }
      : { destination: mount.target, type: 'bind', source: input.mountSources[i]!, options: ['rbind', mount.readOnly ? 'ro' : 'rw'] },
  );
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: spec.tty,
      user: input.user,
      args: spec.init && input.initPath ? [initTarget, '--', ...args] : args,
      // As Docker: a terminal's programs are told what it is.
      env: mergeEnv(image.config?.Env ?? [], spec.tty && !spec.env.some((e) => e.startsWith('TERM=')) ? ['TERM=xterm', ...spec.env] : spec.env),
      cwd: spec.workdir ?? (image.config?.WorkingDir || '/'),
      capabilities: { bounding: capabilities, effective: capabilities, permitted: capabilities },
      ...((spec.ulimits ?? []).length ? { rlimits: spec.ulimits.map((u) => ({ type: `RLIMIT_${u.name.toUpperCase()}`, soft: u.soft === -1 ? Number.MAX_SAFE_INTEGER : u.soft, hard: u.hard === -1 ? Number.MAX_SAFE_INTEGER : u.hard })) } : {}),
      noNewPrivileges: true,
    },
    root: { path: input.rootfs, readonly: spec.readOnlyRootfs },
    hostname: input.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      { destination: '/etc/hosts', type: 'bind', source: input.etcFiles.hosts, options: ['rbind', 'ro'] },
      { destination: '/etc/hostname', type: 'bind', source: input.etcFiles.hostname, options: ['rbind', 'ro'] },
      { destination: '/etc/resolv.conf', type: 'bind', source: input.etcFiles.resolvConf, options: ['rbind', 'ro'] },
      ...(spec.init && input.initPath ? [{ destination: initTarget, type: 'bind', source: input.initPath, options: ['rbind', 'ro'] }] : []),
      ...userMounts,
      ...(input.fileMounts ?? []).map((f) => ({ destination: f.target, type: 'bind', source: f.source, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] })),
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, ...(input.netnsPath ? [{ type: 'network', path: input.netnsPath }] : [])],
      cgroupsPath: `/shoal/${input.id}`,
      ...(Object.keys(spec.sysctls ?? {}).length ? { sysctl: spec.sysctls } : {}),
      resources: linuxResources(spec.resources, input.devices),
      maskedPaths: ['/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'],
      readonlyPaths: ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** Resolves Docker's --user (name, uid, name:group, uid:gid) against the container's /etc/passwd and /etc/group. */
export function resolveUser(user: string | undefined, passwd: string, group: string): ResolvedUser {
  const [userPart = '0', groupPart] = (user ?? '').split(':');
  const users = passwd.split('\n').map((line) => line.split(':')).filter((f) => f.length >= 4);
  const groups = group.split('\n').map((line) => line.split(':')).filter((f) => f.length >= 3);
  let uid: number;
  let gid: number;
  const byName = users.find((f) => f[0] === userPart);
  if (/^\d+$/.test(userPart || '0')) {
    uid = Number(userPart || '0');
    gid = Number(users.find((f) => f[2] === String(uid))?.[3] ?? 0);
  } else if (byName) {
    uid = Number(byName[2]);
    gid = Number(byName[3]);
  } else {
    throw new Error(`user "${userPart}" is not in the image's /etc/passwd`);
  }
  if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const found = groups.find((f) => f[0] === groupPart);
      if (!found) throw new Error(`group "${groupPart}" is not in the image's /etc/group`);
      gid = Number(found[2]);
    }
  }
  const name = users.find((f) => Number(f[2]) === uid)?.[0];
  const additionalGids = name ? groups.filter((f) => (f[3] ?? '').split(',').includes(name)).map((f) => Number(f[2])) : [];
  return { uid, gid, additionalGids };
}
