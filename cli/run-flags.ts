/** Docker's `run` flags into a container spec: pure, so every conversion is unit-tested. */
import { parseExtraHost, parsePublish } from './publish-flags.ts';
import type { ContainerSpecInput, DeviceRate, Mount, ResourceUpdate } from '../shared/containers.ts';

/** "64m", "1g", "512k", "100b" or plain bytes, as Docker reads sizes (binary units). */
export function parseBytes(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$/i.exec(text.trim());
  if (!match) throw new Error(`${flag}: "${text}" is not a size; write it like 64m or 1g`);
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[match[2]!.toLowerCase()]!;
  return Math.round(Number(match[1]) * unit);
}

function deviceRates(values: string[], flag: string, isBytes: boolean): DeviceRate[] {
  return values.map((value) => {
    const index = value.lastIndexOf(':');
    if (index <= 0) throw new Error(`${flag}: "${value}" must be DEVICE:RATE, like /dev/vda:1mb`);
    const rateText = value.slice(index + 1);
    const rate = isBytes ? parseBytes(rateText, flag) : Number(rateText);
    if (!Number.isInteger(rate) || rate <= 0) throw new Error(`${flag}: "${rateText}" is not a positive rate`);
    return { path: value.slice(0, index), rate };
  });
}

/** -v SOURCE:TARGET[:ro]: an absolute source is a bind mount, a name is a named volume. */
export function parseVolumeFlag(value: string): Mount {
  const parts = value.split(':');
  if (parts.length < 2 || parts.length > 3) throw new Error(`-v "${value}": write it SOURCE:TARGET or SOURCE:TARGET:ro`);
  const [source, target, mode] = parts as [string, string, string | undefined];
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') throw new Error(`-v "${value}": the mode is ro or rw`);
  const readOnly = mode === 'ro';
  return source.startsWith('/') ? { type: 'bind', source, target, readOnly } : { type: 'volume', source, target, readOnly };
}

/** --tmpfs /path[:size=64m]. */
export function parseTmpfsFlag(value: string): Mount {
  const [target, options] = value.split(':', 2) as [string, string | undefined];
  const size = options?.split(',').find((o) => o.startsWith('size='));
  return { type: 'tmpfs', target, ...(size ? { sizeBytes: parseBytes(size.slice(5), '--tmpfs') } : {}) };
}

export interface RunFlags {
  name?: string;
  env: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  readOnly?: boolean;
  init: boolean;
  entrypoint?: string;
  label: string[];
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpuShares?: string;
  cpus?: string;
  cpusetCpus?: string;
  pidsLimit?: string;
  blkioWeight?: string;
  deviceReadBps: string[];
  deviceWriteBps: string[];
  deviceReadIops: string[];
  deviceWriteIops: string[];
  volume: string[];
  tmpfs: string[];
  logOpt: string[];
  /** `container run` only, so far. */
  network?: string[];
  ip?: string;
  publish?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOption?: string[];
  addHost?: string[];
  networkAlias?: string[];
}

function integer(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number)) throw new Error(`${flag}: "${value}" is not a whole number`);
  return number;
}

/** The limits `container update` can change, as `run` spells them. */
export type UpdateFlags = Pick<RunFlags, 'memory' | 'memorySwap' | 'memoryReservation' | 'cpuShares' | 'cpus' | 'cpusetCpus' | 'pidsLimit' | 'blkioWeight'>;

export function updateFlagsToResources(flags: UpdateFlags): ResourceUpdate {
  const cpus = flags.cpus === undefined ? undefined : Number(flags.cpus);
  if (cpus !== undefined && !(cpus > 0)) throw new Error(`--cpus: "${flags.cpus}" must be a positive number such as 0.5`);
  return {
    ...(flags.memory ? { memoryBytes: parseBytes(flags.memory, '--memory') } : {}),
    ...(flags.memorySwap ? { memorySwapBytes: flags.memorySwap === '-1' ? -1 : parseBytes(flags.memorySwap, '--memory-swap') } : {}),
    ...(flags.memoryReservation ? { memoryReservationBytes: parseBytes(flags.memoryReservation, '--memory-reservation') } : {}),
    ...(flags.cpuShares ? { cpuShares: integer(flags.cpuShares, '--cpu-shares') } : {}),
    ...(cpus !== undefined ? { nanoCpus: Math.round(cpus * 1e9) } : {}),
    ...(flags.cpusetCpus ? { cpusetCpus: flags.cpusetCpus } : {}),
    ...(flags.pidsLimit ? { pidsLimit: integer(flags.pidsLimit, '--pids-limit') } : {}),
    ...(flags.blkioWeight ? { blkioWeight: integer(flags.blkioWeight, '--blkio-weight') } : {}),
  };
}

export function runFlagsToSpec(image: string, cmd: string[], flags: RunFlags): ContainerSpecInput {
  const logOptions = Object.fromEntries(flags.logOpt.map((o) => o.split('=', 2) as [string, string]));
  return {
    image,
    ...(cmd.length ? { cmd } : {}),
    ...(flags.name ? { name: flags.name } : {}),
    ...(flags.entrypoint !== undefined ? { entrypoint: flags.entrypoint === '' ? [] : [flags.entrypoint] } : {}),
    env: flags.env.map((entry) => (entry.includes('=') ? entry : `${entry}=${process.env[entry] ?? ''}`)),
    ...(flags.workdir ? { workdir: flags.workdir } : {}),
    ...(flags.user ? { user: flags.user } : {}),
    ...(flags.hostname ? { hostname: flags.hostname } : {}),
    readOnlyRootfs: flags.readOnly ?? false,
    ...(flags.network?.length ? { networks: flags.network } : {}),
    // As `docker run --network-alias`: the aliases are the first network's.
    ...(flags.networkAlias?.length ? { aliases: { [flags.network?.[0] ?? 'bridge']: flags.networkAlias } } : {}),
    publish: (flags.publish ?? []).flatMap((p) => parsePublish(p, '--publish', { hostIp: true, mode: 'host' })),
    dns: flags.dns ?? [],
    dnsSearch: flags.dnsSearch ?? [],
    dnsOptions: flags.dnsOption ?? [],
    extraHosts: (flags.addHost ?? []).map((h) => parseExtraHost(h, '--add-host')),
    ...(flags.ip ? { ip: flags.ip } : {}),
    init: flags.init,
    labels: Object.fromEntries(flags.label.map((l) => (l.includes('=') ? (l.split('=', 2) as [string, string]) : [l, '']))),
    resources: {
      ...updateFlagsToResources(flags),
      deviceReadBps: deviceRates(flags.deviceReadBps, '--device-read-bps', true),
      deviceWriteBps: deviceRates(flags.deviceWriteBps, '--device-write-bps', true),
      deviceReadIops: deviceRates(flags.deviceReadIops, '--device-read-iops', false),
      deviceWriteIops: deviceRates(flags.deviceWriteIops, '--device-write-iops', false),
    },
    mounts: [...flags.volume.map(parseVolumeFlag), ...flags.tmpfs.map(parseTmpfsFlag)],
    log: {
      ...(logOptions['max-size'] ? { maxSizeBytes: parseBytes(logOptions['max-size'], '--log-opt max-size') } : {}),
      ...(logOptions['max-file'] ? { maxFiles: integer(logOptions['max-file'], '--log-opt max-file') } : {}),
    },
  };
}
