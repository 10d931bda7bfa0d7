/**
 * Docker's `service create` and `service update` flags, defined once: which options each
 * command takes, and pure functions from their values to a service spec (so every flag's
 * meaning is unit-tested without a cluster).
 */
import type { Command } from 'commander';
import { parse as shellWords } from 'shell-quote';
import { capabilityName, type Mount, type PublishedPortInput, Ulimit } from '../shared/containers.ts';
import { ShoalError } from '../shared/errors.ts';
import type { ServiceSpec, ServiceSpecInput, UpdateConfig } from '../shared/services.ts';
import { absoluteTarget, type FileObjectKind, type FileReferenceInput } from '../shared/secrets.ts';
import { parseDuration } from './duration.ts';
import { parseBytes } from './run-flags.ts';
import type { RefusedFlag } from './unsupported.ts';
import { collect, parseLabels } from './commands/common.ts';
import { networksAndAliases, parseExtraHost, parsePublish, publishKey } from './publish-flags.ts';

function invalid(flag: string, message: string): ShoalError {
  return new ShoalError('invalid', 'invalid_flags', `${flag}: ${message}`);
}

/** A flag's words, split as a shell would ("sh -c 'echo hi'" is three). */
export function words(text: string, flag: string): string[] {
  const parsed = shellWords(text);
  if (parsed.some((w) => typeof w !== 'string')) throw invalid(flag, `"${text}" has shell operators; quote them`);
  return parsed as string[];
}

/**
 * --mount type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=64m], as
 * Docker's long form; `src`/`dst`/`destination`/`ro` are accepted too.
 */
export function parseMountFlag(text: string): Mount {
  const fields = new Map<string, string>();
  for (const part of text.split(',')) {
    const index = part.indexOf('=');
    fields.set((index < 0 ? part : part.slice(0, index)).trim().toLowerCase(), index < 0 ? 'true' : part.slice(index + 1).trim());
  }
  const type = fields.get('type') ?? 'volume';
  const source = fields.get('source') ?? fields.get('src');
  const target = fields.get('target') ?? fields.get('dst') ?? fields.get('destination');
  const readOnlyText = fields.get('readonly') ?? fields.get('ro');
  const readOnly = readOnlyText !== undefined && readOnlyText !== 'false' && readOnlyText !== '0';
  if (!target) throw invalid('--mount', `"${text}" has no target; write it like type=volume,source=data,target=/data`);
  if (type === 'tmpfs') {
    const size = fields.get('tmpfs-size');
    return { type: 'tmpfs', target, ...(size ? { sizeBytes: parseBytes(size, '--mount tmpfs-size') } : {}) };
  }
  if (type !== 'bind' && type !== 'volume') throw invalid('--mount', `type "${type}" is not bind, volume or tmpfs`);
  if (!source) throw invalid('--mount', `"${text}" has no source`);
  return { type, source, target, readOnly } as Mount;
}

/**
 * --secret / --config: a name, or source=NAME[,target=T][,uid=U][,gid=G][,mode=0400] as
 * Docker's. A secret's relative target is under /run/secrets, a config's under /.
 */
export function parseFileReference(kind: FileObjectKind, text: string): FileReferenceInput {
  const flag = `--${kind}`;
  if (!text.includes('=')) return { source: text, target: absoluteTarget(kind, text) };
  const fields = new Map<string, string>();
  for (const part of text.split(',')) {
    const at = part.indexOf('=');
    if (at < 0) throw invalid(flag, `"${part}" is not KEY=VALUE (source=, target=, uid=, gid=, mode=)`);
    const key = part.slice(0, at).trim();
    if (!['source', 'src', 'target', 'uid', 'gid', 'mode'].includes(key)) throw invalid(flag, `"${key}" is not source, target, uid, gid or mode`);
    fields.set(key === 'src' ? 'source' : key, part.slice(at + 1).trim());
  }
  const source = fields.get('source');
  if (!source) throw invalid(flag, `"${text}" has no source; write it like source=db_password,target=password`);
  const mode = fields.get('mode');
  if (mode !== undefined && !/^0?[0-7]{1,3}$/.test(mode)) throw invalid(flag, `mode "${mode}" is not an octal mode such as 0400`);
  for (const id of ['uid', 'gid'] as const) if (fields.has(id) && !/^\d+$/.test(fields.get(id)!)) throw invalid(flag, `${id} "${fields.get(id)}" is not a number`);
  return {
    source,
    target: absoluteTarget(kind, fields.get('target') ?? source),
    ...(fields.has('uid') ? { uid: fields.get('uid')! } : {}),
    ...(fields.has('gid') ? { gid: fields.get('gid')! } : {}),
    ...(mode !== undefined ? { mode: Number.parseInt(mode, 8) } : {}),
  };
}

/** --ulimit nofile=1024:2048 (soft:hard) or nofile=1024 (both), as Docker's. */
export function parseUlimit(text: string, flag = '--ulimit'): Ulimit {
  const match = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(text.trim());
  if (!match) throw invalid(flag, `"${text}" is not NAME=SOFT[:HARD] (such as nofile=1024:2048)`);
  const parsed = Ulimit.safeParse({ name: match[1], soft: Number(match[2]), hard: Number(match[3] ?? match[2]) });
  if (!parsed.success) throw invalid(flag, `"${text}": ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

/** --sysctl net.core.somaxconn=1024 */
export function parseSysctl(text: string, flag = '--sysctl'): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw invalid(flag, `"${text}" is not NAME=VALUE (such as net.core.somaxconn=1024)`);
  return [text.slice(0, at).trim(), text.slice(at + 1).trim()];
}

function optionalBoolean(value: string | boolean | undefined, flag: string): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  if (['true', '1', 'yes'].includes(value)) return true;
  if (['false', '0', 'no'].includes(value)) return false;
  throw invalid(flag, `"${value}" is not true or false`);
}

function whole(value: string, flag: string, min = 0): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < min) throw invalid(flag, `"${value}" is not a whole number${min > 0 ? ` of at least ${min}` : ''}`);
  return number;
}

function cpus(value: string, flag: string): number {
  const number = Number(value);
  if (!(number >= 0)) throw invalid(flag, `"${value}" is not a number of CPUs such as 0.5`);
  return Math.round(number * 1e9);
}

/** The values commander gives for the flags both commands share (strings as typed). */
export interface SharedServiceFlags {
  withRegistryAuth?: boolean;
  workdir?: string;
  user?: string;
  hostname?: string;
  entrypoint?: string;
  readOnly?: string | boolean;
  init?: string | boolean;
  limitCpu?: string;
  limitMemory?: string;
  limitPids?: string;
  reserveCpu?: string;
  reserveMemory?: string;
  restartCondition?: string;
  restartDelay?: string;
  restartMaxAttempts?: string;
  restartWindow?: string;
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  /** commander's negation of --no-healthcheck: false when given. */
  healthcheck?: boolean;
  logDriver?: string;
  logOpt: string[];
  endpointMode?: string;
  stopSignal?: string;
  stopGracePeriod?: string;
  replicasMaxPerNode?: string;
  capAdd: string[];
  capDrop: string[];
  quiet?: boolean;
  detach?: boolean;
  [updateOrRollback: string]: unknown;
}

export interface CreateServiceFlags extends SharedServiceFlags {
  name?: string;
  replicas?: string;
  mode: string;
  env: string[];
  envFile: string[];
  label: string[];
  containerLabel: string[];
  constraint: string[];
  placementPref: string[];
  mount: string[];
  network: string[];
  publish: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOption: string[];
  host: string[];
  secret: string[];
  config: string[];
  sysctl: string[];
  ulimit: string[];
}

export interface UpdateServiceFlags extends SharedServiceFlags {
  image?: string;
  replicas?: string;
  args?: string;
  envAdd: string[];
  envRm: string[];
  labelAdd: string[];
  labelRm: string[];
  containerLabelAdd: string[];
  containerLabelRm: string[];
  constraintAdd: string[];
  constraintRm: string[];
  placementPrefAdd: string[];
  placementPrefRm: string[];
  mountAdd: string[];
  mountRm: string[];
  networkAdd: string[];
  networkRm: string[];
  publishAdd: string[];
  publishRm: string[];
  dnsAdd: string[];
  dnsRm: string[];
  dnsSearchAdd: string[];
  dnsSearchRm: string[];
  dnsOptionAdd: string[];
  dnsOptionRm: string[];
  hostAdd: string[];
  hostRm: string[];
  secretAdd: string[];
  secretRm: string[];
  configAdd: string[];
  configRm: string[];
  sysctlAdd: string[];
  sysctlRm: string[];
  ulimitAdd: string[];
  ulimitRm: string[];
  force?: boolean;
  rollback?: boolean;
}

/** Docker's flags of these commands that Shoal cannot honour yet, each with why. */
export const refusedServiceFlags: RefusedFlag[] = [
  { flag: '--group <group>', reason: 'supplementary groups are not supported yet; use --user uid:gid' },
  { flag: '-t, --tty', reason: 'pseudo-terminals for tasks are not supported yet' },
  { flag: '--health-start-interval <duration>', reason: 'checks run every --health-interval during the start period too' },
  { flag: '--oom-score-adj <n>', reason: 'the OOM score of tasks cannot be set yet' },
  { flag: '--max-concurrent <n>', reason: 'job services (replicated-job, global-job) are not supported' },
  { flag: '--generic-resource <resource>', reason: 'generic resources (GPUs and the like) are not scheduled by Shoal' },
  { flag: '--credential-spec <spec>', reason: 'credential specs are for Windows containers' },
  { flag: '--isolation <isolation>', reason: 'isolation modes are for Windows containers; Shoal runs Linux containers with runc' },
];

/** Create flags whose `service update` form is an --X-add/--X-rm pair. */
const pairedOnUpdate = ['publish', 'dns', 'dns-option', 'dns-search', 'host', 'secret', 'config', 'sysctl', 'ulimit', 'group', 'generic-resource'];

/** `service update`'s refused flags: the create ones, with Docker's add/rm pairs where update has them. */
export const refusedUpdateFlags: RefusedFlag[] = refusedServiceFlags.flatMap((r) => {
  const name = /--([\w-]+)/.exec(r.flag)![1]!;
  if (!pairedOnUpdate.includes(name)) return [r];
  const value = /<[^>]+>/.exec(r.flag)![0];
  return [{ flag: `--${name}-add ${value}`, reason: r.reason }, { flag: `--${name}-rm ${value}`, reason: r.reason }];
});

/** Flags both commands take with the same meaning (update's leave the spec as it is when absent). */
export function withSharedServiceOptions(command: Command, creating: boolean): Command {
  return command
    .option('--with-registry-auth', 'send the login of the image\'s registry (`shoal login`) to the nodes, sealed in the cluster\'s store')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user>', 'user[:group] the task runs as')
    .option('--hostname <name>', 'container hostname')
    .option('--entrypoint <command>', 'replace the image\'s entrypoint (split as a shell would)')
    .option('--read-only', 'mount the container\'s root filesystem read-only')
    .option('--no-read-only', 'a writable root filesystem again (Docker: --read-only=false)')
    .option('--init', 'run an init inside the container that forwards signals and reaps zombies (Shoal\'s default)')
    .option('--no-init', 'no init: the command is the container\'s first process (Docker: --init=false)')
    .option('--limit-cpu <n>', 'CPU limit per task')
    .option('--limit-memory <size>', 'memory limit per task')
    .option('--limit-pids <n>', 'process limit per task (0: none)')
    .option('--reserve-cpu <n>', 'CPUs reserved per task')
    .option('--reserve-memory <size>', 'memory reserved per task')
    .option('--restart-condition <c>', 'none, on-failure or any')
    .option('--restart-delay <duration>', 'delay between restarts')
    .option('--restart-max-attempts <n>', 'restarts before giving up (0: no limit)')
    .option('--restart-window <duration>', 'window the attempts are counted in (0: all time)')
    .option('--health-cmd <cmd>', 'health check, run with sh -c inside the container')
    .option('--health-interval <duration>', `time between checks${creating ? ' (default 30s)' : ''}`)
    .option('--health-timeout <duration>', `time a check may take${creating ? ' (default 30s)' : ''}`)
    .option('--health-retries <n>', `failures in a row that make the task unhealthy${creating ? ' (default 3)' : ''}`)
    .option('--health-start-period <duration>', 'grace before failures count')
    .option('--no-healthcheck', 'disable the image\'s health check')
    .option('--log-driver <driver>', 'json-file (the only one; local is taken as json-file)')
    .option('--log-opt <key=value>', 'max-size=10m, max-file=3 (repeatable)', collect, [])
    .option('--replicas-max-per-node <n>', `at most this many tasks of the service on one node${creating ? ' (default 0: no limit)' : ''}`)
    .option('--stop-signal <signal>', `signal that asks a task to stop${creating ? ' (default SIGTERM)' : ''}`)
    .option('--stop-grace-period <duration>', `time a task gets to stop before SIGKILL${creating ? ' (default 10s)' : ''}`)
    .option('--cap-add <capability>', creating ? 'add a Linux capability to Docker\'s default set, or ALL (repeatable)' : 'add a Linux capability (repeatable; undoes a --cap-drop of it)', collect, [])
    .option('--cap-drop <capability>', creating ? 'drop a Linux capability, or ALL (repeatable)' : 'drop a Linux capability (repeatable; undoes a --cap-add of it)', collect, [])
    .option('--endpoint-mode <mode>', `vip (one virtual address per network, balanced by the kernel) or dnsrr (the name answers every task's address)${creating ? '; default vip' : ''}`)
    .option('-q, --quiet', 'print nothing but the service id; no progress')
    .option('-d, --detach', 'return at once, without waiting for the tasks');
}

/** Adds the --update-* or --rollback-* flags (Docker's names) to a command. */
export function withUpdateOptions(command: Command, prefix: 'update' | 'rollback'): Command {
  const doing = prefix === 'update' ? 'update' : 'rollback';
  return command
    .option(`--${prefix}-parallelism <n>`, `tasks replaced at once during an ${doing} (0: all)`)
    .option(`--${prefix}-delay <duration>`, `delay between ${doing} batches`)
    .option(`--${prefix}-failure-action <action>`, prefix === 'update' ? 'pause, continue or rollback' : 'pause or continue')
    .option(`--${prefix}-monitor <duration>`, `how long a new task must run before the ${doing} counts it good`)
    .option(`--${prefix}-max-failure-ratio <ratio>`, `failures tolerated during an ${doing}, 0 to 1`)
    .option(`--${prefix}-order <order>`, 'stop-first or start-first');
}

/** --update-* or --rollback-* flags into the settings they name (only those given). */
export function updateConfig(options: Record<string, unknown>, prefix: 'update' | 'rollback'): Partial<UpdateConfig> {
  const get = (name: string) => options[`${prefix}${name}`] as string | undefined;
  const flag = (name: string) => `--${prefix}-${name}`;
  const failureAction = get('FailureAction');
  const order = get('Order');
  if (failureAction !== undefined && !['pause', 'continue', ...(prefix === 'update' ? ['rollback'] : [])].includes(failureAction)) {
    throw invalid(flag('failure-action'), `"${failureAction}" is not ${prefix === 'update' ? 'pause, continue or rollback' : 'pause or continue'}`);
  }
  if (order !== undefined && !['stop-first', 'start-first'].includes(order)) throw invalid(flag('order'), `"${order}" is not stop-first or start-first`);
  const ratio = get('MaxFailureRatio');
  if (ratio !== undefined && !(Number(ratio) >= 0 && Number(ratio) <= 1)) throw invalid(flag('max-failure-ratio'), `"${ratio}" is not a number from 0 to 1`);
  return {
    ...(get('Parallelism') !== undefined ? { parallelism: whole(get('Parallelism')!, flag('parallelism')) } : {}),
    ...(get('Delay') !== undefined ? { delayMs: parseDuration(get('Delay')!) } : {}),
    ...(failureAction !== undefined ? { failureAction: failureAction as UpdateConfig['failureAction'] } : {}),
    ...(get('Monitor') !== undefined ? { monitorMs: parseDuration(get('Monitor')!) } : {}),
    ...(ratio !== undefined ? { maxFailureRatio: Number(ratio) } : {}),
    ...(order !== undefined ? { order: order as UpdateConfig['order'] } : {}),
  };
}

type Spec = ServiceSpecInput & { container: NonNullable<ServiceSpecInput['container']> };

/** The shared flags applied over a spec: each given flag replaces its field, absent ones leave it. */
function applyShared(spec: ServiceSpec | Spec, flags: SharedServiceFlags): Spec {
  const container = { ...spec.container };
  const resources = { ...(container.resources ?? {}) } as NonNullable<Spec['container']['resources']>;
  if (flags.workdir !== undefined) container.workdir = flags.workdir;
  if (flags.user !== undefined) container.user = flags.user;
  if (flags.hostname !== undefined) container.hostname = flags.hostname;
  if (flags.entrypoint !== undefined) container.entrypoint = flags.entrypoint === '' ? [] : words(flags.entrypoint, '--entrypoint');
  const readOnly = optionalBoolean(flags.readOnly, '--read-only');
  if (readOnly !== undefined) container.readOnlyRootfs = readOnly;
  const init = optionalBoolean(flags.init, '--init');
  if (init !== undefined) container.init = init;
  if (flags.limitCpu !== undefined) {
    const nano = cpus(flags.limitCpu, '--limit-cpu');
    if (nano === 0) delete resources.nanoCpus;
    else resources.nanoCpus = nano;
  }
  if (flags.limitMemory !== undefined) {
    const bytes = parseBytes(flags.limitMemory, '--limit-memory');
    if (bytes === 0) delete resources.memoryBytes;
    else resources.memoryBytes = bytes;
  }
  if (flags.limitPids !== undefined) {
    const pids = whole(flags.limitPids, '--limit-pids');
    if (pids === 0) delete resources.pidsLimit;
    else resources.pidsLimit = pids;
  }
  container.resources = resources;
  const reservations = { nanoCpus: 0, memoryBytes: 0, ...spec.reservations };
  if (flags.reserveCpu !== undefined) reservations.nanoCpus = cpus(flags.reserveCpu, '--reserve-cpu');
  if (flags.reserveMemory !== undefined) reservations.memoryBytes = parseBytes(flags.reserveMemory, '--reserve-memory');
  const restart = { condition: 'any' as const, delayMs: 5000, maxAttempts: 0, windowMs: 0, ...spec.restartPolicy };
  if (flags.restartCondition !== undefined) {
    if (!['none', 'on-failure', 'any'].includes(flags.restartCondition)) throw invalid('--restart-condition', `"${flags.restartCondition}" is not none, on-failure or any`);
    restart.condition = flags.restartCondition as typeof restart.condition;
  }
  if (flags.restartDelay !== undefined) restart.delayMs = parseDuration(flags.restartDelay);
  if (flags.restartMaxAttempts !== undefined) restart.maxAttempts = whole(flags.restartMaxAttempts, '--restart-max-attempts');
  if (flags.restartWindow !== undefined) restart.windowMs = parseDuration(flags.restartWindow);
  if (flags.healthcheck === false) container.healthcheck = { cmd: [] };
  else if (flags.healthCmd !== undefined || flags.healthInterval !== undefined || flags.healthTimeout !== undefined || flags.healthRetries !== undefined || flags.healthStartPeriod !== undefined) {
    const before = container.healthcheck?.cmd.length ? container.healthcheck : undefined;
    const cmd = flags.healthCmd !== undefined ? ['sh', '-c', flags.healthCmd] : before?.cmd;
    if (!cmd) throw invalid('--health-interval', 'the service has no health check to tune; give --health-cmd too');
    container.healthcheck = {
      cmd,
      intervalMs: flags.healthInterval !== undefined ? parseDuration(flags.healthInterval) : (before?.intervalMs ?? 30_000),
      timeoutMs: flags.healthTimeout !== undefined ? parseDuration(flags.healthTimeout) : (before?.timeoutMs ?? 30_000),
      retries: flags.healthRetries !== undefined ? whole(flags.healthRetries, '--health-retries', 1) : (before?.retries ?? 3),
      startPeriodMs: flags.healthStartPeriod !== undefined ? parseDuration(flags.healthStartPeriod) : (before?.startPeriodMs ?? 0),
    };
  }
  if (flags.logDriver !== undefined && !['json-file', 'local'].includes(flags.logDriver)) {
    throw invalid('--log-driver', `"${flags.logDriver}" is not supported; Shoal keeps task logs as json-file (rotated with --log-opt max-size, max-file)`);
  }
  if (flags.logOpt.length) {
    const log = { maxSizeBytes: 10 * 1024 * 1024, maxFiles: 3, ...container.log };
    for (const option of flags.logOpt) {
      const [key, value] = option.split('=', 2) as [string, string | undefined];
      if (key === 'max-size' && value) log.maxSizeBytes = parseBytes(value, '--log-opt max-size');
      else if (key === 'max-file' && value) log.maxFiles = whole(value, '--log-opt max-file', 1);
      else throw invalid('--log-opt', `"${option}" is not max-size=SIZE or max-file=N`);
    }
    container.log = log;
  }
  const placement = { constraints: [], preferences: [], maxReplicas: 0, ...spec.placement };
  if (flags.replicasMaxPerNode !== undefined) placement.maxReplicas = whole(flags.replicasMaxPerNode, '--replicas-max-per-node');
  if (flags.stopSignal !== undefined) container.stopSignal = flags.stopSignal.toUpperCase();
  if (flags.stopGracePeriod !== undefined) container.stopGracePeriodMs = parseDuration(flags.stopGracePeriod);
  const endpoint = { mode: 'vip' as const, ports: [], ...spec.endpoint };
  if (flags.endpointMode !== undefined) {
    if (flags.endpointMode !== 'vip' && flags.endpointMode !== 'dnsrr') throw invalid('--endpoint-mode', `"${flags.endpointMode}" is not vip or dnsrr`);
    endpoint.mode = flags.endpointMode;
  }
  return {
    ...spec,
    container,
    endpoint,
    reservations,
    restartPolicy: restart,
    placement,
    update: { ...spec.update, ...updateConfig(flags, 'update') },
    rollback: { ...spec.rollback, ...updateConfig(flags, 'rollback') },
  };
}

/** `service create IMAGE [CMD...]` flags into the spec to create. */
export function serviceCreateSpec(image: string, cmd: string[], flags: CreateServiceFlags, envFiles: Record<string, string> = {}): ServiceSpecInput {
  if (flags.mode !== 'replicated' && flags.mode !== 'global') throw invalid('--mode', `"${flags.mode}" is not replicated or global (job modes are not supported)`);
  if (flags.mode === 'global' && flags.replicas !== undefined) throw invalid('--replicas', 'a global service runs one task per node; leave out --replicas');
  const fromFiles = flags.envFile.flatMap((file) => envFileEntries(envFiles[file] ?? '', file));
  const { networks, aliases } = networksAndAliases(flags.network);
  const base: Spec = {
    name: flags.name || image.split('/').pop()!.split(/[:@]/)[0]!,
    mode: flags.mode,
    replicas: flags.replicas === undefined ? 1 : whole(flags.replicas, '--replicas'),
    labels: parseLabels(flags.label),
    container: {
      image,
      ...(cmd.length ? { cmd } : {}),
      env: [...fromFiles, ...flags.env.map((e) => (e.includes('=') ? e : `${e}=${process.env[e] ?? ''}`))],
      labels: parseLabels(flags.containerLabel),
      networks,
      aliases,
      dns: flags.dns,
      dnsSearch: flags.dnsSearch,
      dnsOptions: flags.dnsOption,
      extraHosts: flags.host.map((h) => parseExtraHost(h, '--host')),
      mounts: flags.mount.map(parseMountFlag),
      capAdd: flags.capAdd ?? [],
      capDrop: flags.capDrop ?? [],
      sysctls: Object.fromEntries((flags.sysctl ?? []).map((v) => parseSysctl(v))),
      ulimits: (flags.ulimit ?? []).map((v) => parseUlimit(v)),
      secrets: (flags.secret ?? []).map((r) => parseFileReference('secret', r)),
      configs: (flags.config ?? []).map((r) => parseFileReference('config', r)),
      init: true,
    },
    endpoint: { mode: 'vip', ports: flags.publish.flatMap((p) => parsePublish(p, '--publish', { assignable: true })) },
    placement: { constraints: flags.constraint, preferences: flags.placementPref },
  };
  return applyShared(base, flags);
}

/** Lines of an env file (NAME=value, comments and blank lines skipped, a bare NAME from this shell). */
export function envFileEntries(text: string, file: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      if (!/^[A-Za-z_][A-Za-z0-9_.-]*(=|$)/.test(line)) throw invalid('--env-file', `${file}: "${line}" is not NAME=value`);
      return line.includes('=') ? line : `${line}=${process.env[line] ?? ''}`;
    });
}

const envName = (entry: string) => entry.split('=', 1)[0]!;
/** An extra host's name: `--host-rm db` and `--host-rm db:198.19.0.9` both remove db. */
const hostName = (entry: string) => entry.split(/[:=]/, 1)[0]!;
const compact = (constraint: string) => constraint.replace(/\s+/g, '');

/** Adds entries keyed by `key`, replacing those with the same key, after removing `rm` keys. */
function addRemove<T>(list: readonly T[], add: readonly T[], rm: readonly string[], key: (item: T) => string): T[] {
  const kept = list.filter((item) => !rm.includes(key(item)) && !add.some((a) => key(a) === key(item)));
  return [...kept, ...add];
}

function addFiles(list: readonly FileReferenceInput[], add: readonly FileReferenceInput[], rm: readonly string[]): FileReferenceInput[] {
  const kept = list.filter((r) => !rm.includes(r.source) && !add.some((a) => a.target === r.target));
  return [...kept, ...add];
}

function removeLabels(labels: Record<string, string>, add: string[], rm: string[]): Record<string, string> {
  const next = { ...labels };
  for (const key of rm) delete next[key.split('=', 1)[0]!];
  return { ...next, ...parseLabels(add) };
}

/**
 * `service update` flags over the service's current spec, as Docker's CLI does: each
 * --X-add/--X-rm pair edits its list (rm first, then add), other flags replace their field.
 */
export function applyServiceUpdate(spec: ServiceSpec, flags: UpdateServiceFlags): ServiceSpecInput {
  const added = networksAndAliases(flags.networkAdd, '--network-add');
  if (flags.replicas !== undefined && spec.mode === 'global') throw invalid('--replicas', 'a global service runs one task per node');
  const container = {
    ...spec.container,
    ...(flags.image !== undefined ? { image: flags.image } : {}),
    ...(flags.args !== undefined ? { cmd: words(flags.args, '--args') } : {}),
    env: addRemove(spec.container.env, flags.envAdd.map((e) => (e.includes('=') ? e : `${e}=${process.env[e] ?? ''}`)), flags.envRm.map(envName), envName),
    labels: removeLabels(spec.container.labels, flags.containerLabelAdd, flags.containerLabelRm),
    mounts: addRemove(spec.container.mounts, flags.mountAdd.map(parseMountFlag), flags.mountRm, (m) => m.target),
    networks: addRemove(spec.container.networks, added.networks, flags.networkRm, (n) => n),
    aliases: { ...Object.fromEntries(Object.entries(spec.container.aliases).filter(([n]) => !flags.networkRm.includes(n))), ...added.aliases },
    dns: addRemove(spec.container.dns, flags.dnsAdd, flags.dnsRm, (d) => d),
    dnsSearch: addRemove(spec.container.dnsSearch, flags.dnsSearchAdd, flags.dnsSearchRm, (d) => d),
    dnsOptions: addRemove(spec.container.dnsOptions, flags.dnsOptionAdd, flags.dnsOptionRm, (d) => d),
    extraHosts: addRemove(spec.container.extraHosts, flags.hostAdd.map((h) => parseExtraHost(h, '--host-add')), flags.hostRm.map(hostName), hostName),
    // As Docker's: --cap-add undoes a drop of the same capability and --cap-drop an add.
    capAdd: addRemove(spec.container.capAdd ?? [], flags.capAdd ?? [], (flags.capDrop ?? []).map(capabilityName), capabilityName),
    capDrop: addRemove(spec.container.capDrop ?? [], flags.capDrop ?? [], (flags.capAdd ?? []).map(capabilityName), capabilityName),
    sysctls: {
      ...Object.fromEntries(Object.entries(spec.container.sysctls ?? {}).filter(([name]) => !(flags.sysctlRm ?? []).includes(name))),
      ...Object.fromEntries((flags.sysctlAdd ?? []).map((v) => parseSysctl(v, '--sysctl-add'))),
    },
    ulimits: addRemove(spec.container.ulimits ?? [], (flags.ulimitAdd ?? []).map((v) => parseUlimit(v, '--ulimit-add')), flags.ulimitRm ?? [], (u) => u.name),
    // As Docker's: --secret-rm and --config-rm name the object, --X-add replaces one of the same target.
    secrets: addFiles(spec.container.secrets ?? [], (flags.secretAdd ?? []).map((r) => parseFileReference('secret', r)), flags.secretRm ?? []),
    configs: addFiles(spec.container.configs ?? [], (flags.configAdd ?? []).map((r) => parseFileReference('config', r)), flags.configRm ?? []),
  };
  const portKey = (p: { publishedPort: number; protocol?: string }) => `${p.publishedPort}/${p.protocol ?? 'tcp'}`;
  const removedPorts = flags.publishRm.map((p) => publishKey(p));
  const unknownPorts = removedPorts.filter((key) => !spec.endpoint.ports.some((p) => portKey(p) === key));
  if (unknownPorts.length) throw invalid('--publish-rm', `the service does not publish ${unknownPorts.join(', ')} (it publishes ${spec.endpoint.ports.map(portKey).join(', ') || 'nothing'})`);
  const ports = addRemove<PublishedPortInput>(spec.endpoint.ports, flags.publishAdd.flatMap((p) => parsePublish(p, '--publish-add', { assignable: true })), removedPorts, portKey);
  const unknownNetworks = flags.networkRm.filter((n) => !spec.container.networks.includes(n));
  if (unknownNetworks.length) throw invalid('--network-rm', `the service is not on ${unknownNetworks.join(', ')} (it is on ${spec.container.networks.join(', ') || 'no network'})`);
  const updated: Spec = {
    ...spec,
    endpoint: { ...spec.endpoint, ports },
    ...(flags.replicas !== undefined ? { replicas: whole(flags.replicas, '--replicas') } : {}),
    labels: removeLabels(spec.labels, flags.labelAdd, flags.labelRm),
    container,
    placement: {
      constraints: addRemove(spec.placement.constraints, flags.constraintAdd, flags.constraintRm.map(compact), compact),
      preferences: addRemove(spec.placement.preferences, flags.placementPrefAdd, flags.placementPrefRm, (p) => p),
    },
  };
  return applyShared(updated, flags);
}
