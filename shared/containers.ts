/** The container objects the engine, the API and the CLI share: one schema each, types from them. */
import { constants } from 'node:os';
import { z } from 'zod';
import { Labels } from './schemas.ts';
import { FileReference } from './secrets.ts';

const MiB = 1024 * 1024;

export const DeviceRate = z.object({
  path: z.string().startsWith('/', 'a device is a path such as /dev/vda'),
  rate: z.number().int().positive(),
});
export type DeviceRate = z.infer<typeof DeviceRate>;

const ResourceFields = z.object({
    memoryBytes: z.number().int().min(6 * MiB, 'memory must be at least 6MiB (as in Docker)').optional(),
    /** Memory plus swap; -1 is unlimited; unset means twice the memory, as Docker does. */
    memorySwapBytes: z.number().int().min(-1).optional(),
    memoryReservationBytes: z.number().int().min(6 * MiB, 'a memory reservation must be at least 6MiB').optional(),
    cpuShares: z.number().int().min(2).max(262_144).optional(),
    /** CPUs as billionths (Docker's NanoCPUs): --cpus 1.5 is 1.5e9. */
    nanoCpus: z.number().int().min(1_000_000, '--cpus must be at least 0.001').optional(),
    cpusetCpus: z.string().regex(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, 'a cpuset is like 0-2,4').optional(),
    pidsLimit: z.number().int().optional(),
    blkioWeight: z.number().int().min(10, 'blkio weight is 10 to 1000').max(1000, 'blkio weight is 10 to 1000').optional(),
    deviceReadBps: z.array(DeviceRate).default([]),
    deviceWriteBps: z.array(DeviceRate).default([]),
    deviceReadIops: z.array(DeviceRate).default([]),
    deviceWriteIops: z.array(DeviceRate).default([]),
  });

export const Resources = ResourceFields
  .refine((r) => r.memorySwapBytes === undefined || r.memorySwapBytes === -1 || r.memoryBytes !== undefined, {
    message: '--memory-swap needs --memory',
    path: ['memorySwapBytes'],
  })
  .refine((r) => r.memorySwapBytes === undefined || r.memorySwapBytes === -1 || r.memorySwapBytes >= (r.memoryBytes ?? 0), {
    message: '--memory-swap must be at least --memory (or -1 for unlimited)',
    path: ['memorySwapBytes'],
  })
  .refine((r) => r.memoryReservationBytes === undefined || r.memoryBytes === undefined || r.memoryReservationBytes <= r.memoryBytes, {
    message: '--memory-reservation must not exceed --memory',
    path: ['memoryReservationBytes'],
  });
export type Resources = z.infer<typeof Resources>;

/** `container update`: the limits a running container's cgroup can take anew (device throttles stay as created). */
export const ResourceUpdate = ResourceFields.pick({
  memoryBytes: true, memorySwapBytes: true, memoryReservationBytes: true, cpuShares: true, nanoCpus: true, cpusetCpus: true, pidsLimit: true, blkioWeight: true,
})
  .partial()
  .refine((update) => Object.values(update).some((value) => value !== undefined), { message: 'give at least one limit to change, such as --memory or --cpus' });
export type ResourceUpdate = z.infer<typeof ResourceUpdate>;

export const Mount = z.discriminatedUnion('type', [
  z.object({ type: z.literal('bind'), source: z.string().startsWith('/', 'a bind source is an absolute path'), target: z.string().startsWith('/'), readOnly: z.boolean().default(false) }),
  z.object({ type: z.literal('volume'), source: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a volume name is letters, digits, "_", "." and "-"'), target: z.string().startsWith('/'), readOnly: z.boolean().default(false) }),
  z.object({ type: z.literal('tmpfs'), target: z.string().startsWith('/'), sizeBytes: z.number().int().positive().optional() }),
]);
export type Mount = z.infer<typeof Mount>;

export const LogOptions = z.object({
  maxSizeBytes: z.number().int().min(1024).default(10 * MiB),
  maxFiles: z.number().int().min(1).max(100).default(3),
});
export type LogOptions = z.infer<typeof LogOptions>;

/** Docker's HEALTHCHECK: a command run inside the container at an interval. */
export const HealthCheck = z.object({
  /** Run as is (CMD form); `sh -c` it yourself for a shell line. An empty list disables the image's check. */
  cmd: z.array(z.string()),
  intervalMs: z.number().int().min(100).default(30_000),
  timeoutMs: z.number().int().min(100).default(30_000),
  retries: z.number().int().min(1).default(3),
  startPeriodMs: z.number().int().min(0).default(0),
});
export type HealthCheck = z.infer<typeof HealthCheck>;

/**
 * A published port: `-p 8080:80/udp`, `--publish published=8080,target=80,mode=host`. For a
 * service, ingress mode publishes on every node (the routing mesh) and host mode only where a
 * task runs; a standalone container's ports are host mode, on its own host.
 */
export const PublishedPort = z.object({
  protocol: z.enum(['tcp', 'udp']).default('tcp'),
  targetPort: z.number().int().min(1).max(65_535),
  /** 0 (services, ingress mode): the cluster picks one from 30000-32767 and stores it here. */
  publishedPort: z.number().int().min(0).max(65_535),
  mode: z.enum(['ingress', 'host']).default('ingress'),
  /** Standalone containers: publish on this host address only (`-p 198.18.0.1:8080:80`). */
  hostIp: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, 'a host address is IPv4, such as 198.18.0.1').optional(),
});
export type PublishedPort = z.infer<typeof PublishedPort>;
export type PublishedPortInput = z.input<typeof PublishedPort>;

/** A capability as the kernel names it (CAP_NET_ADMIN), from any case, with or without CAP_; ALL stays ALL. */
export function capabilityName(name: string): string {
  return name.toUpperCase() === 'ALL' ? 'ALL' : `CAP_${name.toUpperCase().replace(/^CAP_/, '')}`;
}

const capability = z.string().regex(/^(CAP_)?[A-Z_]+$|^ALL$/i, 'a capability is a name such as NET_ADMIN, or ALL');

/** Docker's --ulimit names, each an RLIMIT_ of the kernel's. */
export const ulimitNames = ['as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'] as const;
export const Ulimit = z
  .object({ name: z.enum(ulimitNames, { error: `a ulimit is one of ${ulimitNames.join(', ')}` }), soft: z.number().int().min(-1), hard: z.number().int().min(-1) })
  .refine((u) => u.hard === -1 || (u.soft !== -1 && u.soft <= u.hard), { message: 'a ulimit\'s soft limit cannot be above its hard one' });
export type Ulimit = z.infer<typeof Ulimit>;

const dnsName = z.string().regex(/^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?$/, 'a name is letters, digits, "_", "." and "-"');

/** What a container is asked to be: Docker's run options. */
/**
 * A network the container joins, as the manager resolved it: the agent's driver needs no
 * further lookup to plumb it.
 */
export const NetworkAttachment = z.object({
  networkId: z.string(),
  networkName: z.string(),
  driver: z.string(),
  /** swarm: addressed by the cluster, its endpoints on several hosts; local: one host's business. */
  scope: z.enum(['local', 'swarm']).default('local'),
  /** The subnet and gateway this endpoint uses: the network's, or its node's share of it (host-gw). */
  subnet: z.string(),
  gateway: z.string(),
  address: z.string(),
  mac: z.string(),
  internal: z.boolean(),
  /** The options the user gave the network (its driver's, already checked). */
  options: z.record(z.string(), z.string()).default({}),
  /**
   * What the manager's allocator of the driver gave the network and this endpoint's node, as
   * libnetwork's NetworkAllocate: overlay's VNI, host-gw's node subnet. Only the driver reads it.
   */
  data: z.record(z.string(), z.string()).default({}),
  /** Who holds the address lease, so that removing the container gives it back. */
  owner: z.string(),
});
export type NetworkAttachment = z.infer<typeof NetworkAttachment>;

/** A container's name, as Docker allows it. */
export const ContainerName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'a container name is letters, digits, "_", "." and "-"');

export const ContainerSpec = z.object({
  image: z.string().min(1),
  name: ContainerName.optional(),
  /** Replaces the image's Entrypoint when set ([] clears it). */
  entrypoint: z.array(z.string()).optional(),
  /** Replaces the image's Cmd when set. */
  cmd: z.array(z.string()).optional(),
  env: z.array(z.string().regex(/^[^=]+=/, 'an environment entry is NAME=value')).default([]),
  workdir: z.string().startsWith('/').optional(),
  user: z.string().optional(),
  hostname: z.string().max(63).optional(),
  readOnlyRootfs: z.boolean().default(false),
  init: z.boolean().default(true),
  labels: Labels.default({}),
  resources: Resources.default({ deviceReadBps: [], deviceWriteBps: [], deviceReadIops: [], deviceWriteIops: [] }),
  mounts: z.array(Mount).default([]),
  log: LogOptions.default({ maxSizeBytes: 10 * MiB, maxFiles: 3 }),
  healthcheck: HealthCheck.optional(),
  /** A task's service, as network policy's selectors see it (its name and labels); none for a standalone container. */
  workload: z.object({ service: z.string(), serviceLabels: Labels }).optional(),
  /** Networks by name or id; none means loopback only, as `--network none`. */
  networks: z.array(z.string().min(1)).default([]),
  /** A static address on the first network (which must have been created with --subnet). */
  ip: z.string().optional(),
  /** More names per network (`--network name=N,alias=A`, `--network-alias`), keyed as `networks` names it. */
  aliases: z.record(z.string(), z.array(dnsName)).default({}),
  /** Upstream resolvers for names the cluster does not know (`--dns`); the host's when empty. */
  dns: z.array(z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, 'a DNS server is an IPv4 address')).max(3, 'at most three DNS servers (as resolv.conf reads)').default([]),
  dnsSearch: z.array(dnsName).max(6).default([]),
  dnsOptions: z.array(z.string().regex(/^[a-z-]+(:\d+)?$/, 'a resolver option reads like ndots:2 or edns0')).default([]),
  /** Extra /etc/hosts lines, `name:address` (`--add-host`). */
  extraHosts: z.array(z.string().regex(/^[A-Za-z0-9_.-]+:\d{1,3}(\.\d{1,3}){3}$/, 'an extra host reads name:address, such as db:198.19.0.9')).default([]),
  /** Host-mode published ports (`container run -p`; a service's host-mode ports, per task). */
  publish: z.array(PublishedPort.refine((p) => p.publishedPort > 0, { message: 'a container\'s published port is given, not picked (write 8080:80)', path: ['publishedPort'] })).default([]),
  /** The signal that asks the container to stop (Docker's --stop-signal): a name such as SIGQUIT, or a number. */
  stopSignal: z.string().regex(/^((SIG)?[A-Z][A-Z0-9+-]*|\d{1,2})$/, 'a signal is a name such as SIGTERM or QUIT, or a number').optional(),
  /** How long a stop waits after that signal before SIGKILL (Docker's --stop-grace-period); 10 s when unset. */
  stopGracePeriodMs: z.number().int().min(0).optional(),
  /** Capabilities over Docker's default set: names such as NET_ADMIN or CAP_NET_ADMIN, or ALL. */
  capAdd: z.array(capability).default([]),
  capDrop: z.array(capability).default([]),
  /** Namespaced kernel parameters (net.*, kernel.shm*, kernel.msg*, fs.mqueue.*), as runc allows them. */
  sysctls: z.record(z.string().regex(/^[a-z][a-z0-9_./-]*$/, 'a sysctl name reads like net.ipv4.ip_forward'), z.string()).default({}),
  /** Resource limits of the container's processes (--ulimit nofile=1024:2048). */
  ulimits: z.array(Ulimit).default([]),
  /** Services: secrets and configs mounted read-only at their targets (secrets on a tmpfs). */
  secrets: z.array(FileReference).default([]),
  configs: z.array(FileReference).default([]),
  /** Filled in by the manager from `networks`. */
  attachments: z.array(NetworkAttachment).default([]),
  /**
   * Filled in by the manager from `networks`: "private" (a namespace of its own), "host" (the
   * host's), or "container:<id>" (another container's on the same node, as Docker's).
   */
  networkMode: z.string().regex(/^(private|host|container:[0-9a-f]{64})$/).default('private'),
  /** `-t`: a pseudo-terminal for the process (its stdin, stdout and stderr), which `attach` reaches. */
  tty: z.boolean().default(false),
});
export type ContainerSpec = z.infer<typeof ContainerSpec>;
export type ContainerSpecInput = z.input<typeof ContainerSpec>;

/** A signal as `kill -s` takes it (KILL, SIGKILL, kill, 9), as runc kill wants it: the bare name or the number. */
export const SignalName = z
  .string()
  .trim()
  .transform((text, context) => {
    const name = text.toUpperCase().replace(/^SIG/, '');
    if (/^\d+$/.test(name) && Number(name) >= 1 && Number(name) <= 64) return String(Number(name));
    if (`SIG${name}` in constants.signals) return name;
    context.addIssue({ code: 'custom', message: `"${text}" is not a signal; give a name such as TERM, KILL, HUP or USR1, or a number` });
    return z.NEVER;
  });

export const ContainerState = z.enum(['created', 'running', 'paused', 'exited', 'dead']);
export type ContainerState = z.infer<typeof ContainerState>;

/** What the engine knows of a container: its spec and what it observed. */
export interface ContainerRecord {
  id: string;
  name: string;
  spec: ContainerSpec;
  imageId: string;
  state: ContainerState;
  pid?: number;
  exitCode?: number;
  oomKilled: boolean;
  error?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  node?: string;
}

/** POST /v1/containers: a spec plus the node to run on. */
export const ContainerRunRequest = ContainerSpec.extend({ node: z.string().min(1) });
export type ContainerRunRequest = z.infer<typeof ContainerRunRequest>;

export const ExecRequest = z.object({
  cmd: z.array(z.string()).min(1, 'exec needs a command'),
  env: z.array(z.string()).default([]),
  user: z.string().optional(),
  workdir: z.string().optional(),
});
export type ExecRequest = z.infer<typeof ExecRequest>;

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface ContainerStats {
  id: string;
  cpuPercent: number;
  memoryUsageBytes: number;
  memoryLimitBytes: number;
  pids: number;
  blockReadBytes: number;
  blockWriteBytes: number;
}

export interface LogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  text: string;
}
