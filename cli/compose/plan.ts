/**
 * A loaded compose model as Shoal's objects: one service spec per compose service and the
 * networks they join, named by the stack (`NAME_service`, `NAME_network`) and labelled with
 * `com.docker.stack.namespace`, as `docker stack deploy` does. Each key a cluster does not
 * honour is named once in the notes; each wrong value is a problem at its file, line and column.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import type { z } from 'zod';
import type { Mount, PublishedPortInput } from '../../shared/containers.ts';
import { type ServiceSpec, ServiceSpec as ServiceSpecSchema, type ServiceSpecInput, stackLabel } from '../../shared/services.ts';
import { type NetworkSpec, NetworkSpec as NetworkSpecSchema } from '../../netplug/model.ts';
import { describeIssues } from '../../shared/schemas.ts';
import { parseDuration } from '../duration.ts';
import { parseBytes } from '../run-flags.ts';
import { parsePublish } from '../publish-flags.ts';
import { words } from '../service-flags.ts';
import { parseDotEnv } from './interpolate.ts';
import { type ComposeProblem, type LoadedCompose, nearestPosition } from './load.ts';
import { type ComposeDeploy, ComposeProject, type ComposeService, type ComposeServiceVolume, type listOrMap } from './schema.ts';
import { type PolicySpec, policyNamePattern } from '../../netplug/policy/model.ts';
import { checkPolicies, stackPolicies } from '../policy-file.ts';
import { absoluteTarget, type FileObjectKind, type FileReferenceInput } from '../../shared/secrets.ts';

export interface PlannedNetwork {
  /** The name in the file (`default`, `backend`). */
  key: string;
  /** Its name in the cluster. */
  name: string;
  /** Made outside the stack: it must exist, and `stack rm` leaves it. */
  external: boolean;
  spec?: NetworkSpec;
}

/** A secret or config of the stack: its data read from the file, variable or content the file names. */
export interface PlannedFileObject {
  kind: FileObjectKind;
  key: string;
  name: string;
  external: boolean;
  /** base64; absent for an external one. */
  data?: string;
  labels: Record<string, string>;
}

export interface StackPlan {
  stack: string;
  services: ServiceSpec[];
  networks: PlannedNetwork[];
  fileObjects: PlannedFileObject[];
  /** Its network policies (`x-shoal-policies`), named and scoped to the stack. */
  policies: PolicySpec[];
  /** One line per service (or object) with what a cluster does not do, and what Shoal does instead. */
  notes: string[];
  problems: ComposeProblem[];
}

export const stackNamePattern = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,30}$/;

type Path = Array<string | number>;

export async function planStack(loaded: Pick<LoadedCompose, 'model' | 'positions' | 'workingDir'>, stack: string, env: Readonly<Record<string, string | undefined>> = process.env): Promise<StackPlan> {
  const problems: ComposeProblem[] = [];
  const notes: string[] = [];
  const at = (path: Path, message: string) => void problems.push({ ...nearestPosition(loaded.positions, path), message });
  if (!stackNamePattern.test(stack)) at([], `"${stack}" is not a stack name: up to 31 letters, digits, "_" and "-", starting with a letter or digit`);

  const parsed = ComposeProject.safeParse(loaded.model);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) at([...path, key], `"${key}" is not a key of ${path.length ? `${String(path[path.length - 1])}:` : 'the file'}`);
      } else at(path, `${path.join('.')}: ${issue.message}`);
    }
    return { stack, services: [], networks: [], fileObjects: [], policies: [], notes, problems };
  }
  const project = parsed.data;
  if (project.name !== undefined && project.name !== stack) notes.push(`name: "${project.name}" is not used: the stack is named by the command line ("${stack}")`);

  const declaredNetworks = project.networks ?? {};
  const declaredVolumes = project.volumes ?? {};

  const usedNetworks = new Set<string>();
  const usedFiles = new Set<string>();
  const services: ServiceSpec[] = [];
  const serviceNames = Object.keys(project.services ?? {});
  for (const [key, service] of Object.entries(project.services ?? {})) {
    const path: Path = ['services', key];
    const said: string[] = [];
    const before = problems.length;
    const input = await mapService(key, service, {
      stack, path, at, said, env, workingDir: loaded.workingDir, serviceNames,
      network: (name, where) => {
        if (name !== 'default' && !(name in declaredNetworks)) {
          at(where, `network "${name}" is not declared under the top-level networks:`);
          return undefined;
        }
        usedNetworks.add(name);
        return clusterName(stack, name, declaredNetworks[name]);
      },
      fileObject: (kind, name, where) => {
        const declared = project[`${kind}s`] ?? {};
        if (!(name in declared)) {
          at(where, `${kind} "${name}" is not declared under the top-level ${kind}s:`);
          return undefined;
        }
        usedFiles.add(`${kind}:${name}`);
        return clusterName(stack, name, declared[name]);
      },
      volume: (name, where) => {
        if (!(name in declaredVolumes)) {
          at(where, `volume "${name}" is not declared under the top-level volumes: (a bind mount's source starts with /, ./ or ~)`);
          return undefined;
        }
        return clusterName(stack, name, declaredVolumes[name]);
      },
    });
    if (said.length > 0) notes.push(`service "${key}": ${said.join('; ')}`);
    if (problems.length > before || !input) continue;
    const checked = ServiceSpecSchema.safeParse(input);
    if (checked.success) services.push(checked.data);
    else at(path, `service "${key}": ${describeIssues(checked.error)}`);
  }

  // Two services of the file cannot publish one port (the cluster would refuse the second).
  const publishedBy = new Map<string, string>();
  for (const spec of services) {
    for (const port of spec.endpoint.ports.filter((p) => p.publishedPort > 0)) {
      const key = `${port.publishedPort}/${port.protocol}`;
      const other = publishedBy.get(key);
      if (other && other !== spec.name) at(['services', spec.name.slice(stack.length + 1), 'ports'], `port ${key} is published by service "${other.slice(stack.length + 1)}" too; give one of them another published port`);
      else publishedBy.set(key, spec.name);
    }
  }

  const networks: PlannedNetwork[] = [];
  for (const key of [...usedNetworks].sort()) {
    const network = declaredNetworks[key] ?? null;
    const name = clusterName(stack, key, network);
    if (network?.external) {
      networks.push({ key, name, external: true });
      continue;
    }
    const said: string[] = [];
    if (network?.enable_ipv6) said.push('enable_ipv6 (ignored: networks are IPv4)');
    if (network?.ipam?.driver && network.ipam.driver !== 'default') said.push(`ipam.driver ${network.ipam.driver} (ignored: the cluster's IPAM gives addresses)`);
    if (said.length) notes.push(`network "${key}": ${said.join('; ')}`);
    const spec = NetworkSpecSchema.safeParse({
      name,
      driver: network?.driver ?? 'overlay',
      internal: network?.internal ?? false,
      attachable: network?.attachable ?? false,
      options: Object.fromEntries(Object.entries(network?.driver_opts ?? {}).map(([k, v]) => [k, String(v)])),
      labels: { ...pairs(network?.labels), [stackLabel]: stack },
      ipam: {
        pools: (network?.ipam?.config ?? []).flatMap((pool) => (pool.subnet ? [{ subnet: pool.subnet, ...(pool.gateway ? { gateway: pool.gateway } : {}), ...(pool.ip_range ? { ipRange: pool.ip_range } : {}) }] : [])),
      },
    });
    if (spec.success) networks.push({ key, name, external: false, spec: spec.data });
    else at(key === 'default' && !declaredNetworks.default ? [] : ['networks', key], `network "${key}": ${describeIssues(spec.error)}`);
  }
  for (const [key, volume] of Object.entries(declaredVolumes)) {
    if (volume?.driver && volume.driver !== 'local') notes.push(`volume "${key}": driver ${volume.driver} (ignored: volumes are local to the node a task runs on)`);
    else if (volume?.driver_opts && Object.keys(volume.driver_opts).length > 0) notes.push(`volume "${key}": driver_opts (ignored: volumes are plain folders on the node a task runs on)`);
  }
  const policies = planPolicies(loaded, stack, problems);
  return { stack, services, networks, fileObjects: await planFileObjects(project, usedFiles, { stack, at, env, workingDir: loaded.workingDir }), policies, notes, problems };
}

/** `x-shoal-policies`: a list of network policies, each checked where it was written. */
function planPolicies(loaded: Pick<LoadedCompose, 'model' | 'positions'>, stack: string, problems: ComposeProblem[]): PolicySpec[] {
  const written = loaded.model['x-shoal-policies'];
  if (written === undefined || written === null) return [];
  if (!Array.isArray(written)) {
    problems.push({ ...nearestPosition(loaded.positions, ['x-shoal-policies']), message: 'x-shoal-policies is a list of policies (- name: ..., selector: ..., ingress: [...])' });
    return [];
  }
  const checked = checkPolicies(written, ['x-shoal-policies'], loaded.positions);
  problems.push(...checked.problems);
  const scoped = stackPolicies(checked.policies, stack, stackLabel);
  for (const [index, policy] of scoped.entries()) {
    if (!policyNamePattern.test(policy.name)) problems.push({ ...nearestPosition(loaded.positions, ['x-shoal-policies', index, 'name']), message: `the policy's name in the cluster, "${policy.name}", is longer than 63 characters: shorten it or the stack's name` });
  }
  return scoped;
}

/** The stack's secrets and configs that its services use, with their data. */
async function planFileObjects(
  project: ComposeProject,
  used: ReadonlySet<string>,
  context: { stack: string; at: (path: Path, message: string) => void; env: Readonly<Record<string, string | undefined>>; workingDir: string },
): Promise<PlannedFileObject[]> {
  const planned: PlannedFileObject[] = [];
  for (const kind of ['secret', 'config'] as const) {
    for (const [key, object] of Object.entries(project[`${kind}s`] ?? {})) {
      if (!used.has(`${kind}:${key}`)) continue;
      const path = [`${kind}s`, key];
      const name = clusterName(context.stack, key, object);
      const labels = { ...pairs(object.labels), [stackLabel]: context.stack };
      if (object.external) {
        planned.push({ kind, key, name, external: true, labels });
        continue;
      }
      const sources = (['file', 'environment', 'content'] as const).filter((k) => object[k] !== undefined);
      if (sources.length !== 1) {
        context.at(path, `${kind} "${key}" needs exactly one of file:, environment:${kind === 'config' ? ', content:' : ''} or external: true`);
        continue;
      }
      if (sources[0] === 'content' && kind === 'secret') {
        context.at([...path, 'content'], 'a secret cannot be written inline (content: is for configs); use file: or environment:');
        continue;
      }
      let data: Buffer | undefined;
      if (object.file !== undefined) {
        const file = hostPath(context.workingDir, object.file);
        data = await readFile(file).catch((error: NodeJS.ErrnoException) => {
          context.at([...path, 'file'], `${kind} "${key}": ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
          return undefined;
        });
      } else if (object.environment !== undefined) {
        const value = context.env[object.environment];
        if (value === undefined) context.at([...path, 'environment'], `${kind} "${key}": the variable ${object.environment} is not set`);
        else data = Buffer.from(value);
      } else data = Buffer.from(object.content ?? '');
      if (data) planned.push({ kind, key, name, external: false, data: data.toString('base64'), labels });
    }
  }
  return planned;
}

/** A network's, volume's, secret's or config's name in the cluster: the external name, its `name:`, or STACK_KEY. */
function clusterName(stack: string, key: string, object: { name?: string; external?: boolean | { name?: string } } | null | undefined): string {
  const external = object?.external;
  const externalName = typeof external === 'object' ? external.name : undefined;
  return externalName ?? object?.name ?? (external === true ? key : `${stack}_${key}`);
}

/**
 * A compose file's `mode`: written 0440, which YAML 1.2 reads as the decimal 440; a mode
 * whose digits are all octal is read as octal, as compose means it.
 */
export function composeMode(value: string | number): number | undefined {
  const text = typeof value === 'number' ? String(value) : value.trim().replace(/^0o/, '');
  if (/^[0-7]{1,4}$/.test(text)) return Number.parseInt(text, 8);
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0o777) return value;
  return undefined;
}

interface ServiceContext {
  stack: string;
  path: Path;
  at: (path: Path, message: string) => void;
  /** Keys of this service a cluster does not honour, each with what Shoal does instead. */
  said: string[];
  env: Readonly<Record<string, string | undefined>>;
  workingDir: string;
  serviceNames: readonly string[];
  /** A network's cluster name, or undefined (a problem was reported) when the file does not declare it. */
  network: (key: string, where: Path) => string | undefined;
  volume: (key: string, where: Path) => string | undefined;
  fileObject: (kind: FileObjectKind, key: string, where: Path) => string | undefined;
}

/** `environment`, `labels`: a list of NAME=value or a map, as NAME → value (null: no value given). */
function pairs(value: z.infer<typeof listOrMap> | undefined): Record<string, string> {
  if (!value) return {};
  if (Array.isArray(value)) {
    return Object.fromEntries(value.map((entry) => {
      const at = entry.indexOf('=');
      return at < 0 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)];
    }));
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** The environment: env_file first, then `environment`; a name with no value takes the caller's, as compose does. */
async function environment(service: ComposeService, context: ServiceContext): Promise<string[]> {
  const values = new Map<string, string>();
  const files = service.env_file === undefined ? [] : typeof service.env_file === 'string' ? [service.env_file] : service.env_file;
  for (const [index, entry] of files.entries()) {
    const file = typeof entry === 'string' ? { path: entry, required: true } : { path: entry.path, required: entry.required ?? true };
    const text = await readFile(hostPath(context.workingDir, file.path), 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (file.required || error.code !== 'ENOENT') context.at([...context.path, 'env_file', ...(typeof service.env_file === 'string' ? [] : [index])], `env_file ${file.path}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
      return undefined;
    });
    if (text !== undefined) for (const [name, value] of Object.entries(parseDotEnv(text).values)) values.set(name, value);
  }
  const given = service.environment;
  const entries: Array<[string, string | undefined]> = Array.isArray(given)
    ? given.map((entry) => (entry.includes('=') ? [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)] : [entry, undefined]))
    : Object.entries(given ?? {}).map(([k, v]) => [k, v === null ? undefined : String(v)]);
  for (const [name, value] of entries) {
    if (value !== undefined) values.set(name, value);
    else if (context.env[name] !== undefined) values.set(name, context.env[name]!);
    else values.delete(name);
  }
  return [...values].map(([name, value]) => `${name}=${value}`);
}

/** `command`, `entrypoint`: a list as it is, a string split as a shell would. */
function commandWords(value: string | string[] | null | undefined, key: string, context: ServiceContext): string[] | undefined {
  if (value === undefined || value === null || Array.isArray(value)) return value ?? undefined;
  return attempt(context, [...context.path, key], () => words(value, key));
}

/** A path of the file (a bind source, an env_file, a secret's file): `~` is the home folder, a relative one is against the file's folder. */
function hostPath(workingDir: string, path: string): string {
  return path.startsWith('~') ? resolve(homedir(), path.slice(2)) : isAbsolute(path) ? path : resolve(workingDir, path);
}

/** Runs `parse`, turning what it throws into a problem at `where`. */
function attempt<T>(context: ServiceContext, where: Path, parse: () => T): T | undefined {
  try {
    return parse();
  } catch (error) {
    context.at(where, (error as Error).message);
    return undefined;
  }
}

const bytes = (value: string | number, what: string) => (typeof value === 'number' ? value : parseBytes(value, what));
const cpus = (value: string | number, what: string) => {
  const number = Number(value);
  if (!(number > 0)) throw new Error(`${what}: "${value}" is not a number of CPUs such as 0.5`);
  return Math.round(number * 1e9);
};

async function mapService(key: string, service: ComposeService, context: ServiceContext): Promise<ServiceSpecInput | undefined> {
  const { path, at, said } = context;
  const name = `${context.stack}_${key}`;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_-]*$/.test(key)) at(path, `service "${key}": a service name is letters, digits, "_" and "-" (it names the service ${name})`);
  if (!service.image) {
    // cluster-fit.ts says so when build: is there.
    if (service.build === undefined) at(path, `service "${key}" has no image: (set image: to what its tasks run)`);
    return undefined;
  }
  const deploy: ComposeDeploy = service.deploy ?? {};
  const dpath = [...path, 'deploy'];

  for (const [i, dependency] of (Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {})).entries()) {
    if (!context.serviceNames.includes(dependency)) at([...path, 'depends_on', ...(Array.isArray(service.depends_on) ? [i] : [dependency])], `depends_on: "${dependency}" is not a service of this file`);
  }

  const networks: string[] = [];
  const aliases: Record<string, string[]> = {};
  const declared = service.networks ?? ['default'];
  const entries: Array<[string, { aliases?: string[]; ipv4_address?: string; ipv6_address?: string; priority?: number } | null, Path]> = Array.isArray(declared)
    ? declared.map((n, i) => [n, null, [...path, 'networks', i]])
    : Object.entries(declared).map(([n, v]) => [n, v, [...path, 'networks', n]]);
  for (const [networkKey, options, where] of entries) {
    const real = context.network(networkKey, where);
    if (!real) continue;
    networks.push(real);
    // Every service answers to its short name on its networks, as Docker adds.
    aliases[real] = [...new Set([key, ...(options?.aliases ?? [])])];
    if (options?.ipv4_address || options?.ipv6_address) said.push(`networks.${networkKey}.ipv4_address (ignored: tasks take addresses from the network's pool; the service's VIP is its stable address)`);
    if (options?.priority !== undefined) said.push(`networks.${networkKey}.priority (ignored: networks are joined in the order written)`);
  }

  const ports: PublishedPortInput[] = [];
  for (const [i, port] of (service.ports ?? []).entries()) {
    const where = [...path, 'ports', i];
    if (typeof port === 'number' || typeof port === 'string') {
      // A target alone ("80") is published on a port the cluster picks (30000-32767), as Swarm does.
      const published = attempt(context, where, () => parsePublish(String(port), 'ports', { hostIp: true, assignable: true }));
      for (const p of published ?? []) {
        if (p.hostIp) said.push(`ports "${port}" (the address ${p.hostIp} is ignored: a service publishes on every address of its nodes)`);
        const { hostIp: _ignored, ...rest } = p;
        ports.push(rest);
      }
      continue;
    }
    const given = port.published !== undefined && port.published !== '';
    if (!given && port.mode === 'host') {
      said.push(`ports ${port.target} in host mode (not published: a host-mode port needs its published port; the service reaches it by name on its networks)`);
      continue;
    }
    if (port.host_ip) said.push(`ports ${port.published ?? ''}:${port.target} host_ip (ignored: a service publishes on every address of its nodes)`);
    const long = `${given ? `published=${port.published},` : ''}target=${port.target},protocol=${port.protocol ?? 'tcp'},mode=${port.mode ?? 'ingress'}`;
    ports.push(...(attempt(context, where, () => parsePublish(long, 'ports', { assignable: true })) ?? []));
  }

  const mounts: Mount[] = [];
  const isPath = (source: string) => /^(\/|\.|~)/.test(source);
  const anonymous = (target: string) => {
    said.push(`volumes "${target}" (an anonymous volume: each node keeps one named ${name}_${slug(target)} for the service's tasks on it)`);
    return `${name}_${slug(target)}`;
  };
  for (const [i, volume] of (service.volumes ?? []).entries()) {
    const where = [...path, 'volumes', i];
    const mount = mapVolume(volume, where, { context, isPath, anonymous });
    if (mount) mounts.push(mount);
  }
  for (const [i, entry] of (service.tmpfs === undefined ? [] : typeof service.tmpfs === 'string' ? [service.tmpfs] : service.tmpfs).entries()) {
    const [target, options] = entry.split(':', 2) as [string, string | undefined];
    const size = options?.split(',').find((o) => o.startsWith('size='));
    const sizeBytes = size === undefined ? undefined : attempt(context, [...path, 'tmpfs', i], () => parseBytes(size.slice(5), 'tmpfs size'));
    mounts.push({ type: 'tmpfs', target, ...(sizeBytes ? { sizeBytes } : {}) });
  }

  const health = service.healthcheck;
  let healthcheck: ServiceSpecInput['container']['healthcheck'];
  if (health) {
    const hpath = [...path, 'healthcheck'];
    const test = health.test;
    const cmd = health.disable || (Array.isArray(test) && test[0] === 'NONE')
      ? []
      : typeof test === 'string'
        ? ['sh', '-c', test]
        : Array.isArray(test) && test[0] === 'CMD-SHELL'
          ? ['sh', '-c', test.slice(1).join(' ')]
          : Array.isArray(test) && test[0] === 'CMD'
            ? test.slice(1)
            : undefined;
    if (cmd === undefined && test !== undefined && test !== null) at([...hpath, 'test'], 'healthcheck test: a list starts with CMD, CMD-SHELL or NONE; a string is run with sh -c');
    if (health.start_interval) said.push('healthcheck.start_interval (checks run every interval during the start period too)');
    const ms = (value: string | undefined, field: string) => (value === undefined ? undefined : attempt(context, [...hpath, field], () => parseDuration(value)));
    if (cmd !== undefined || test === undefined) {
      healthcheck = {
        cmd: cmd ?? [],
        ...(health.interval ? { intervalMs: ms(health.interval, 'interval') } : {}),
        ...(health.timeout ? { timeoutMs: ms(health.timeout, 'timeout') } : {}),
        ...(health.retries !== undefined ? { retries: health.retries } : {}),
        ...(health.start_period ? { startPeriodMs: ms(health.start_period, 'start_period') } : {}),
      };
      if (test === undefined && !health.disable) {
        // Settings without a test change the image's check, which the engine does not merge.
        said.push('healthcheck without test (ignored: give test: to change the image\'s check)');
        healthcheck = undefined;
      }
    }
  }

  const stopGracePeriodMs = service.stop_grace_period === undefined ? undefined : attempt(context, [...path, 'stop_grace_period'], () => parseDuration(service.stop_grace_period!));
  const ulimits = Object.entries(service.ulimits ?? {}).map(([limit, value]) => (typeof value === 'number' ? { name: limit, soft: value, hard: value } : { name: limit, ...value }));
  if (service.domainname) said.push('domainname (ignored)');
  const files = (kind: FileObjectKind) => (service[`${kind}s`] ?? []).flatMap((reference, i): FileReferenceInput[] => {
    const where = [...path, `${kind}s`, i];
    const long = typeof reference === 'string' ? { source: reference } : reference;
    const name = context.fileObject(kind, long.source, where);
    if (!name) return [];
    const mode = long.mode === undefined ? undefined : composeMode(long.mode);
    if (long.mode !== undefined && mode === undefined) at([...where, 'mode'], `mode ${long.mode} is not a file mode such as 0440`);
    return [{
      source: name,
      // The target is the name in the file, not the stack's (a service reads /run/secrets/db_password).
      target: absoluteTarget(kind, long.target ?? long.source),
      ...(long.uid !== undefined ? { uid: String(long.uid) } : {}),
      ...(long.gid !== undefined ? { gid: String(long.gid) } : {}),
      ...(mode !== undefined ? { mode } : {}),
    }];
  });
  const secrets = files('secret');
  const configs = files('config');

  const log = service.logging;
  let logOptions: { maxSizeBytes?: number; maxFiles?: number } = {};
  if (log) {
    if (log.driver && log.driver !== 'json-file' && log.driver !== 'local') said.push(`logging.driver ${log.driver} (ignored: task output is kept as json-file on its node)`);
    const options = log.options ?? {};
    const size = options['max-size'];
    const files = options['max-file'];
    logOptions = {
      ...(size !== undefined && size !== null ? { maxSizeBytes: attempt(context, [...path, 'logging', 'options', 'max-size'], () => bytes(size as string | number, 'max-size')) } : {}),
      ...(files !== undefined && files !== null ? { maxFiles: Number(files) } : {}),
    };
  }

  const limits = deploy.resources?.limits;
  const reservations = deploy.resources?.reservations;
  const rpath = [...dpath, 'resources'];
  for (const [set, which] of [[limits, 'limits'], [reservations, 'reservations']] as const) {
    if (set?.generic_resources?.length || set?.devices?.length) said.push(`deploy.resources.${which} generic_resources/devices (ignored: Shoal schedules CPUs and memory only)`);
  }
  if (reservations?.pids !== undefined) said.push('deploy.resources.reservations.pids (ignored: pids are a limit only)');
  if (deploy.mode === 'replicated-job' || deploy.mode === 'global-job') at([...dpath, 'mode'], `deploy.mode ${deploy.mode}: job services are not supported; use replicated with restart_policy condition none`);

  const restart = restartPolicy(service, deploy, context);
  const update = updateSettings(deploy.update_config, [...dpath, 'update_config'], context);
  const rollback = updateSettings(deploy.rollback_config, [...dpath, 'rollback_config'], context);
  if (deploy.rollback_config?.failure_action === 'rollback') at([...dpath, 'rollback_config', 'failure_action'], 'a rollback\'s failure_action is pause or continue');

  const entrypoint = commandWords(service.entrypoint, 'entrypoint', context);
  const cmd = commandWords(service.command, 'command', context);
  const extraHosts = Array.isArray(service.extra_hosts)
    ? service.extra_hosts.map((h) => h.replace('=', ':'))
    : Object.entries(service.extra_hosts ?? {}).map(([host, address]) => `${host}:${String(address)}`);

  return {
    name,
    labels: { ...pairs(deploy.labels), [stackLabel]: context.stack },
    mode: deploy.mode === 'global' ? 'global' : 'replicated',
    replicas: deploy.replicas ?? 1,
    container: {
      image: service.image,
      ...(entrypoint ? { entrypoint } : {}),
      ...(cmd ? { cmd } : {}),
      env: await environment(service, context),
      ...(service.working_dir ? { workdir: service.working_dir } : {}),
      ...(service.user !== undefined ? { user: String(service.user) } : {}),
      ...(service.hostname ? { hostname: service.hostname } : {}),
      readOnlyRootfs: service.read_only ?? false,
      ...(service.init !== undefined ? { init: service.init } : {}),
      labels: { ...pairs(service.labels), [stackLabel]: context.stack },
      resources: {
        ...(limits?.memory !== undefined ? { memoryBytes: attempt(context, [...rpath, 'limits', 'memory'], () => bytes(limits.memory!, 'memory')) } : {}),
        ...(limits?.cpus !== undefined ? { nanoCpus: attempt(context, [...rpath, 'limits', 'cpus'], () => cpus(limits.cpus!, 'cpus')) } : {}),
        ...(limits?.pids !== undefined ? { pidsLimit: limits.pids } : service.pids_limit !== undefined ? { pidsLimit: service.pids_limit } : {}),
      },
      mounts,
      secrets,
      configs,
      ...(service.stop_signal ? { stopSignal: service.stop_signal.toUpperCase() } : {}),
      ...(stopGracePeriodMs !== undefined ? { stopGracePeriodMs } : {}),
      capAdd: service.cap_add ?? [],
      capDrop: service.cap_drop ?? [],
      sysctls: pairs(service.sysctls),
      ulimits,
      log: logOptions,
      ...(healthcheck ? { healthcheck } : {}),
      networks,
      aliases,
      dns: service.dns === undefined ? [] : typeof service.dns === 'string' ? [service.dns] : service.dns,
      dnsSearch: service.dns_search === undefined ? [] : typeof service.dns_search === 'string' ? [service.dns_search] : service.dns_search,
      dnsOptions: service.dns_opt ?? [],
      extraHosts,
    },
    reservations: {
      ...(reservations?.cpus !== undefined ? { nanoCpus: attempt(context, [...rpath, 'reservations', 'cpus'], () => cpus(reservations.cpus!, 'cpus')) } : {}),
      ...(reservations?.memory !== undefined ? { memoryBytes: attempt(context, [...rpath, 'reservations', 'memory'], () => bytes(reservations.memory!, 'memory')) } : {}),
    },
    placement: {
      constraints: deploy.placement?.constraints ?? [],
      preferences: (deploy.placement?.preferences ?? []).map((p) => `spread=${p.spread}`),
      maxReplicas: deploy.placement?.max_replicas_per_node ?? 0,
    },
    ...(restart ? { restartPolicy: restart } : {}),
    update,
    rollback,
    endpoint: { mode: deploy.endpoint_mode ?? 'vip', ports },
  } as ServiceSpecInput;
}

/** A path as part of a volume name: `/var/lib/data` is `var_lib_data`. */
const slug = (target: string) => target.replace(/^\/+/, '').replace(/[^A-Za-z0-9_.-]+/g, '_') || 'root';

function mapVolume(
  volume: ComposeServiceVolume,
  where: Path,
  helpers: { context: ServiceContext; isPath: (source: string) => boolean; anonymous: (target: string) => string },
): Mount | undefined {
  const { context, isPath, anonymous } = helpers;
  if (typeof volume === 'string') {
    const parts = volume.split(':');
    if (parts.length === 1) return { type: 'volume', source: anonymous(parts[0]!), target: parts[0]!, readOnly: false };
    if (parts.length > 3) {
      context.at(where, `volumes "${volume}": write it SOURCE:TARGET[:ro]`);
      return undefined;
    }
    const [source, target, mode = ''] = parts as [string, string, string?];
    const flags = mode.split(',').filter(Boolean);
    const unknown = flags.filter((f) => !['ro', 'rw', 'z', 'Z', 'nocopy', 'cached', 'delegated', 'consistent'].includes(f));
    if (unknown.length) context.at(where, `volumes "${volume}": "${unknown.join(',')}" is not a mode (ro or rw)`);
    const readOnly = flags.includes('ro');
    if (isPath(source)) return { type: 'bind', source: hostPath(context.workingDir, source), target, readOnly };
    const name = context.volume(source, where);
    return name ? { type: 'volume', source: name, target, readOnly } : undefined;
  }
  const readOnly = volume.read_only ?? false;
  switch (volume.type) {
    case 'bind':
      if (!volume.source) return void context.at(where, 'a bind mount needs source:');
      return { type: 'bind', source: hostPath(context.workingDir, volume.source), target: volume.target, readOnly };
    case 'volume': {
      if (!volume.source) return { type: 'volume', source: anonymous(volume.target), target: volume.target, readOnly };
      const name = context.volume(volume.source, where);
      return name ? { type: 'volume', source: name, target: volume.target, readOnly } : undefined;
    }
    case 'tmpfs': {
      const size = volume.tmpfs?.size;
      const sizeBytes = size === undefined ? undefined : attempt(context, [...where, 'tmpfs', 'size'], () => bytes(size, 'tmpfs size'));
      return { type: 'tmpfs', target: volume.target, ...(sizeBytes ? { sizeBytes } : {}) };
    }
    default:
      context.at([...where, 'type'], `volume type ${volume.type} is not supported (bind, volume or tmpfs)`);
      return undefined;
  }
}

function restartPolicy(service: ComposeService, deploy: ComposeDeploy, context: ServiceContext): ServiceSpecInput['restartPolicy'] {
  const policy = deploy.restart_policy;
  const where = [...context.path, 'deploy', 'restart_policy'];
  if (policy) {
    if (service.restart) context.said.push('restart (deploy.restart_policy is used instead)');
    return {
      ...(policy.condition ? { condition: policy.condition } : {}),
      ...(policy.delay ? { delayMs: attempt(context, [...where, 'delay'], () => parseDuration(policy.delay!)) } : {}),
      ...(policy.max_attempts !== undefined ? { maxAttempts: policy.max_attempts } : {}),
      ...(policy.window ? { windowMs: attempt(context, [...where, 'window'], () => parseDuration(policy.window!)) } : {}),
    };
  }
  if (!service.restart) return undefined;
  // As Docker maps it: always and unless-stopped restart on any exit.
  const match = /^(no|always|unless-stopped|on-failure)(?::(\d+))?$/.exec(service.restart);
  if (!match) {
    context.at([...context.path, 'restart'], `restart "${service.restart}" is not no, always, unless-stopped or on-failure[:N]`);
    return undefined;
  }
  const condition = match[1] === 'no' ? 'none' : match[1] === 'on-failure' ? 'on-failure' : 'any';
  return { condition, ...(match[2] ? { maxAttempts: Number(match[2]) } : {}) };
}

function updateSettings(settings: ComposeDeploy['update_config'], where: Path, context: ServiceContext): ServiceSpecInput['update'] {
  if (!settings) return undefined;
  return {
    ...(settings.parallelism !== undefined ? { parallelism: settings.parallelism } : {}),
    ...(settings.delay ? { delayMs: attempt(context, [...where, 'delay'], () => parseDuration(settings.delay!)) } : {}),
    ...(settings.failure_action ? { failureAction: settings.failure_action } : {}),
    ...(settings.monitor ? { monitorMs: attempt(context, [...where, 'monitor'], () => parseDuration(settings.monitor!)) } : {}),
    ...(settings.max_failure_ratio !== undefined ? { maxFailureRatio: settings.max_failure_ratio } : {}),
    ...(settings.order ? { order: settings.order } : {}),
  };
}
