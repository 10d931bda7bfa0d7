import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { isShoalError } from '../../shared/errors.ts';
import type { ServiceObject, ServiceSpec, TaskObject } from '../../shared/services.ts';
import type { ApiClient } from '../client.ts';
import { formatAge, parseTimeFlag } from '../duration.ts';
import { keep, labelMatches, parseFilters } from '../filters.ts';
import { loginFor } from '../registry-logins.ts';
import { type RegistryAuth, registryOfReference } from '../../shared/registry-auth.ts';
import { checkInspectFormat, parseFormat, printList, printObject } from '../output.ts';
import {
  applyServiceUpdate,
  type CreateServiceFlags,
  refusedServiceFlags,
  refusedUpdateFlags,
  serviceCreateSpec,
  type UpdateServiceFlags,
  withSharedServiceOptions,
  withUpdateOptions,
} from '../service-flags.ts';
import { capital } from '../table.ts';
import { refuseFlags } from '../unsupported.ts';
import { formatPorts, prettyService } from '../pretty.ts';
import { collect, connect, type GlobalOptions, query, getEach } from './common.ts';

export type ServiceRow = ServiceObject & { running: number; desired: number };

export type TaskRow = TaskObject & { name: string; node: string | null };


/**
 * Follows a service until its tasks converge, printing "web: 2/3 running" as Docker does;
 * fails with the reason when tasks cannot be placed or keep failing.
 */
export async function waitForConvergence(client: ApiClient, reference: string, timeoutMs = 180_000, quiet = false): Promise<void> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let last = '';
  for (;;) {
    const service = await client.call<ServiceObject>('GET', `/v1/services/${encodeURIComponent(reference)}`);
    const update = service.updateStatus;
    if (update?.state === 'paused' || update?.state === 'rollback_paused') throw new Error(`${service.spec.name}: ${update.message}`);
    const tasks = await client.call<TaskRow[]>('GET', `/v1/services/${encodeURIComponent(reference)}/tasks`);
    const inScale = (t: TaskRow) => service.spec.mode === 'global' || t.slot <= service.spec.replicas;
    const current = tasks.filter((t) => t.desiredState === 'running' && inScale(t));
    const running = current.filter((t) => t.status.state === 'running' && t.specVersion === service.specVersion).length;
    const desired = service.spec.mode === 'global' ? current.length : service.spec.replicas;
    const stale = tasks.filter((t) => t.desiredState === 'running' && t.specVersion < service.specVersion).length;
    const rolling = update?.state === 'rollback_started' ? ` (${update.message})` : '';
    const line = `${service.spec.name}: ${running}/${desired} running${stale ? `, ${stale} to update` : ''}${rolling}`;
    if (line !== last && !quiet) process.stderr.write(`${line}\n`);
    last = line;
    const leftovers = tasks.filter((t) => (t.desiredState !== 'running' || !inScale(t)) && t.status.state === 'running').length;
    // A global service has no tasks until the leader's first pass makes them: 0/0 is not
    // converged yet, unless it stays so (no node is eligible).
    const globalNotStarted = service.spec.mode === 'global' && desired === 0 && Date.now() - started < 5_000;
    if (running === desired && stale === 0 && leftovers === 0 && !globalNotStarted) return;
    const failures = tasks.filter((t) => ['failed', 'rejected'].includes(t.status.state));
    if (Date.now() > deadline) {
      const pending = current.find((t) => t.status.state === 'pending');
      const reason = pending?.status.message ?? failures[0]?.status.error ?? failures[0]?.status.message ?? 'tasks did not start';
      throw new Error(`${service.spec.name} did not converge within ${timeoutMs / 1000}s: ${reason}`);
    }
    if (failures.length >= Math.max(3, desired * 2)) {
      throw new Error(`${service.spec.name}: tasks keep failing: ${failures[0]!.status.error ?? failures[0]!.status.message}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** --with-registry-auth: the stored login of the image's registry, which must exist. */
async function requiredLogin(image: string): Promise<RegistryAuth> {
  const registry = registryOfReference(image);
  const login = registry ? await loginFor(registry) : undefined;
  if (!login) throw new Error(`--with-registry-auth: no login for ${registry ?? 'the registry of ' + image}; run \`shoal login ${registry ?? 'HOST:PORT'}\` first`);
  return login;
}

export function registerServiceCommands(program: Command, globals: () => GlobalOptions): void {
  const service = program.command('service').description('Services: replicated or global tasks across the nodes');

  const create = service
    .command('create')
    .description('Create a service and wait until its tasks run (unless --detach)')
    .argument('<image>', 'image reference')
    .argument('[cmd...]', 'command and arguments')
    .option('--name <name>', 'service name (default: from the image)')
    .option('--replicas <n>', 'number of tasks (default 1)')
    .option('--mode <mode>', 'replicated or global', 'replicated')
    .option('-e, --env <NAME=value>', 'environment variable (repeatable)', collect, [])
    .option('--env-file <file>', 'read environment variables from a file (repeatable)', collect, [])
    .option('-l, --label <key=value>', 'service label (repeatable)', collect, [])
    .option('--container-label <key=value>', 'container label (repeatable)', collect, [])
    .option('--network <network>', 'network the tasks join: a name, or name=N,alias=A (repeatable)', collect, [])
    .option('-p, --publish <port>', 'publish a port: 8080:80[/udp], or published=8080,target=80[,protocol=udp][,mode=host]; a target alone (80) is published on a port the cluster picks from 30000-32767 (repeatable)', collect, [])
    .option('--dns <ip>', 'upstream resolver for names the cluster does not know (repeatable)', collect, [])
    .option('--dns-search <domain>', 'DNS search domain (repeatable)', collect, [])
    .option('--dns-option <option>', 'resolver option, such as ndots:2 (repeatable)', collect, [])
    .option('--host <name:ip>', 'an extra /etc/hosts line (repeatable)', collect, [])
    .option('--constraint <expr>', 'placement constraint, e.g. node.hostname==h1 (repeatable)', collect, [])
    .option('--placement-pref <pref>', 'spread=node.labels.zone (repeatable)', collect, [])
    .option('--mount <mount>', 'type=volume|bind|tmpfs,source=...,target=...[,readonly] (repeatable)', collect, [])
    .option('--sysctl <name=value>', 'a namespaced kernel parameter, such as net.core.somaxconn=1024 (repeatable)', collect, [])
    .option('--ulimit <name=soft:hard>', 'a resource limit, such as nofile=1024:2048 (repeatable)', collect, [])
    .option('--secret <secret>', 'give the tasks a secret: NAME, or source=NAME,target=FILE[,uid=][,gid=][,mode=0400] (at /run/secrets/FILE; repeatable)', collect, [])
    .option('--config <config>', 'give the tasks a config: NAME, or source=NAME,target=/PATH[,uid=][,gid=][,mode=0444] (repeatable)', collect, [])
    .option('--no-resolve-image', 'accepted for Docker\'s sake: each node resolves the tag when it pulls')
    .passThroughOptions();
  withSharedServiceOptions(create, true);
  refuseFlags(withUpdateOptions(withUpdateOptions(create, 'update'), 'rollback'), refusedServiceFlags).action(async (image: string, cmd: string[], options: CreateServiceFlags) => {
    const envFiles = Object.fromEntries(
      await Promise.all(options.envFile.map(async (file) => [file, await readFile(file, 'utf8').catch((error: Error) => Promise.reject(new Error(`--env-file ${file}: ${error.message}`)))] as const)),
    );
    const spec = serviceCreateSpec(image, cmd, options, envFiles);
    const client = await connect(globals());
    if (options.withRegistryAuth) client.useRegistryAuth(await requiredLogin(image));
    const created = await client.call<ServiceObject>('POST', '/v1/services', spec);
    process.stdout.write(`${created.id}\n`);
    if (!options.detach) await waitForConvergence(client, created.id, undefined, options.quiet);
  });

  service
    .command('ls')
    .alias('list')
    .description('List services with their running and desired tasks')
    .option('-f, --filter <key=value>', 'id=, label=, mode=replicated|global, name= (repeatable)', collect, [])
    .option('--no-trunc', 'full ids')
    .option('-q, --quiet', 'only ids')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { filter: string[]; trunc: boolean; quiet?: boolean; format: string }) => {
      const format = parseFormat(options.format);
      const filters = parseFilters(options.filter, ['id', 'label', 'mode', 'name']);
      const all = await (await connect(globals())).call<ServiceRow[]>('GET', '/v1/services');
      const services = keep(all, filters, serviceFilterTests);
      printServices(services, options, format);
    });

  withTaskListOptions(
    service
      .command('ps')
      .description('The tasks of services: node, desired and current state, error')
      .argument('<service...>', 'names or ids'),
  ).action(async (references: string[], options: TaskListFlags) => {
      const format = parseFormat(options.format);
      const client = await connect(globals());
      const tasks: TaskRow[] = [];
      for (const reference of references) tasks.push(...(await client.call<TaskRow[]>('GET', `/v1/services/${encodeURIComponent(reference)}/tasks`)));
      printTasks(taskFilter(tasks, options.filter), options, format, (t) => t.spec.container.image);
    });

  service
    .command('inspect')
    .description('Show services in full, as JSON (or --pretty)')
    .argument('<service...>', 'name or id')
    .option('--pretty', 'a readable summary instead of JSON')
    .option('-f, --format <format>', 'json (the default)')
    .action(async (references: string[], options: { pretty?: boolean; format?: string }) => {
      checkInspectFormat(options.format, true);
      const client = await connect(globals());
      const found = await getEach<ServiceObject>(client, '/v1/services', references);
      if (options.pretty) process.stdout.write(found.map(prettyService).join('\n'));
      else printObject(found);
    });

  service
    .command('scale')
    .description('Set the number of replicas: service scale web=10 api=3')
    .argument('<service=replicas...>')
    .option('-d, --detach', 'return at once')
    .action(async (pairs: string[], options: { detach?: boolean }) => {
      const client = await connect(globals());
      const parsed = pairs.map((pair) => {
        const [name, count] = pair.split('=');
        if (!name || count === undefined || !/^\d+$/.test(count)) throw new Error(`"${pair}" is not SERVICE=REPLICAS`);
        return { name, replicas: Number(count) };
      });
      for (const { name, replicas } of parsed) {
        await client.call('PATCH', `/v1/services/${encodeURIComponent(name)}`, { replicas });
        process.stdout.write(`${name} scaled to ${replicas}\n`);
      }
      if (!options.detach) for (const { name } of parsed) await waitForConvergence(client, name);
    });

  const update = service
    .command('update')
    .description('Change a service; tasks roll over in batches (--update-parallelism)')
    .argument('<service>', 'name or id')
    .option('--image <image>', 'new image')
    .option('--replicas <n>', 'number of tasks')
    .option('--args <command>', 'replace the command and its arguments (split as a shell would)')
    .option('--env-add <NAME=value>', 'add or change an environment variable (repeatable)', collect, [])
    .option('--env-rm <NAME>', 'remove an environment variable (repeatable)', collect, [])
    .option('--label-add <key=value>', 'add or change a service label (repeatable)', collect, [])
    .option('--label-rm <key>', 'remove a service label (repeatable)', collect, [])
    .option('--container-label-add <key=value>', 'add or change a container label (repeatable)', collect, [])
    .option('--container-label-rm <key>', 'remove a container label (repeatable)', collect, [])
    .option('--constraint-add <expr>', 'add a placement constraint (repeatable)', collect, [])
    .option('--constraint-rm <expr>', 'remove a placement constraint (repeatable)', collect, [])
    .option('--placement-pref-add <pref>', 'add a placement preference (repeatable)', collect, [])
    .option('--placement-pref-rm <pref>', 'remove a placement preference (repeatable)', collect, [])
    .option('--mount-add <mount>', 'add or replace a mount, by target (repeatable)', collect, [])
    .option('--mount-rm <target>', 'remove the mount at this target (repeatable)', collect, [])
    .option('--network-add <network>', 'join a network (repeatable)', collect, [])
    .option('--network-rm <network>', 'leave a network (repeatable)', collect, [])
    .option('--publish-add <port>', 'publish a port, as --publish (repeatable)', collect, [])
    .option('--publish-rm <port>', 'stop publishing a port: 8080, 8080/udp (repeatable)', collect, [])
    .option('--dns-add <ip>', 'add an upstream resolver (repeatable)', collect, [])
    .option('--dns-rm <ip>', 'remove an upstream resolver (repeatable)', collect, [])
    .option('--dns-search-add <domain>', 'add a search domain (repeatable)', collect, [])
    .option('--dns-search-rm <domain>', 'remove a search domain (repeatable)', collect, [])
    .option('--dns-option-add <option>', 'add a resolver option (repeatable)', collect, [])
    .option('--dns-option-rm <option>', 'remove a resolver option (repeatable)', collect, [])
    .option('--host-add <name:ip>', 'add an /etc/hosts line (repeatable)', collect, [])
    .option('--host-rm <name>', 'remove an /etc/hosts line by name (repeatable)', collect, [])
    .option('--sysctl-add <name=value>', 'add or change a kernel parameter (repeatable)', collect, [])
    .option('--sysctl-rm <name>', 'remove a kernel parameter (repeatable)', collect, [])
    .option('--ulimit-add <name=soft:hard>', 'add or change a resource limit (repeatable)', collect, [])
    .option('--ulimit-rm <name>', 'remove a resource limit (repeatable)', collect, [])
    .option('--secret-add <secret>', 'add a secret, as --secret (repeatable)', collect, [])
    .option('--secret-rm <name>', 'remove a secret by name (repeatable)', collect, [])
    .option('--config-add <config>', 'add a config, as --config (repeatable)', collect, [])
    .option('--config-rm <name>', 'remove a config by name (repeatable)', collect, [])
    .option('--force', 'replace the tasks even if nothing changed')
    .option('--rollback', 'go back to the previous spec (as `service rollback`)')
    .option('--no-resolve-image', 'accepted for Docker\'s sake: each node resolves the tag when it pulls')
    .option('--env <NAME=value>', 'the same as --env-add (Shoal\'s older spelling)', collect, []);
  withSharedServiceOptions(update, false);
  refuseFlags(withUpdateOptions(withUpdateOptions(update, 'update'), 'rollback'), refusedUpdateFlags)
    .action(async (reference: string, options: UpdateServiceFlags & { env: string[] }) => {
      const client = await connect(globals());
      if (options.rollback) {
        await client.call('POST', `/v1/services/${encodeURIComponent(reference)}/rollback`, {});
      } else {
        const flags = { ...options, envAdd: [...options.envAdd, ...options.env] };
        // As Docker's CLI: read the spec, apply the flags, send it back with the version read.
        // Someone else's change in between makes the manager refuse; read and apply again.
        for (let attempt = 1; ; attempt++) {
          const current = await client.call<ServiceObject>('GET', `/v1/services/${encodeURIComponent(reference)}`);
          const spec = applyServiceUpdate(current.spec, flags) as ServiceSpec;
          if (options.withRegistryAuth) client.useRegistryAuth(await requiredLogin(spec.container.image));
          try {
            await client.call('PATCH', `/v1/services/${encodeURIComponent(reference)}`, { spec, version: current.version, ...(options.force ? { force: true } : {}) });
            break;
          } catch (error) {
            if (!(isShoalError(error) && error.code === 'version_conflict') || attempt >= 3) throw error;
          }
        }
      }
      process.stdout.write(`${reference}\n`);
      if (!options.detach) await waitForConvergence(client, reference, undefined, options.quiet);
    });

  service
    .command('rollback')
    .description('Go back to the spec before the last update; tasks roll over')
    .argument('<service>', 'name or id')
    .option('-d, --detach', 'return at once')
    .option('-q, --quiet', 'no progress')
    .action(async (reference: string, options: { detach?: boolean; quiet?: boolean }) => {
      const client = await connect(globals());
      await client.call('POST', `/v1/services/${encodeURIComponent(reference)}/rollback`, {});
      process.stdout.write(`${reference}\n`);
      if (!options.detach) await waitForConvergence(client, reference, undefined, options.quiet);
    });

  const logs = service
    .command('logs')
    .description('Output of every task of a service, each line prefixed by task and node')
    .argument('<service>', 'name or id')
    .option('-f, --follow', 'keep printing new output')
    .option('-n, --tail <n>', 'only the last N lines of each task')
    .option('--since <time>', 'only lines since an ISO time, or a duration ago such as 10m')
    .option('-t, --timestamps', 'print each line\'s time')
    .option('--no-task-ids', 'name tasks without their ids')
    .option('--no-trunc', 'full task ids')
    .option('--raw', 'the lines alone, no prefix')
    .option('--no-resolve', 'node ids instead of hostnames in the prefix');
  refuseFlags(logs, [{ flag: '--details', reason: 'log lines carry no extra attributes in Shoal (no log-opt labels or env)' }])
    .action(async (reference: string, options: { follow?: boolean; tail?: string; since?: string; timestamps?: boolean; taskIds: boolean; trunc: boolean; raw?: boolean; resolve: boolean }) => {
      const since = options.since === undefined ? undefined : parseTimeFlag(options.since, '--since');
      await (await connect(globals())).stream('GET', `/v1/services/${encodeURIComponent(reference)}/logs${query({ follow: options.follow, tail: options.tail, since })}`, undefined, (event) => {
        const line = event as { task: string; taskId?: string; node: string; nodeId?: string; stream: string; text: string; time?: string };
        const short = line.task.split('.').slice(0, 2).join('.');
        const name = !options.taskIds ? short : options.trunc || !line.taskId ? line.task : `${short}.${line.taskId}`;
        const prefix = options.raw ? '' : `${name}@${options.resolve === false ? (line.nodeId ?? line.node) : line.node}    | `;
        const time = options.timestamps && line.time ? `${line.time} ` : '';
        (line.stream === 'stderr' ? process.stderr : process.stdout).write(`${time}${prefix}${line.text}\n`);
      });
    });

  service
    .command('rm')
    .alias('remove')
    .description('Remove services; their tasks are stopped')
    .argument('<service...>', 'name or id')
    .action(async (references: string[]) => {
      const client = await connect(globals());
      for (const reference of references) {
        const removed = await client.call<{ name: string }>('DELETE', `/v1/services/${encodeURIComponent(reference)}`);
        process.stdout.write(`${removed.name}\n`);
      }
    });
}

/** `service ls` and `stack services` filters over service rows. */
export const serviceFilterTests: Record<string, (s: ServiceRow, value: string) => boolean> = {
  id: (s, v) => s.id.startsWith(v),
  label: (s, v) => labelMatches(s.spec.labels, v),
  mode: (s, v) => s.spec.mode === v,
  name: (s, v) => s.spec.name.startsWith(v),
};

/** The service table of `service ls` and `stack services`. */
export function printServices(services: ServiceRow[], options: { trunc: boolean; quiet?: boolean }, format: ReturnType<typeof parseFormat>): void {
  const id = (s: ServiceRow) => (options.trunc ? s.id.slice(0, 12) : s.id);
  if (options.quiet) return void process.stdout.write(services.map((s) => `${id(s)}\n`).join(''));
  printList(services, [
    { header: 'ID', value: id },
    { header: 'NAME', value: (s) => s.spec.name, shrinkable: true },
    { header: 'MODE', value: (s) => s.spec.mode },
    { header: 'REPLICAS', value: (s) => `${s.running}/${s.spec.mode === 'global' ? s.desired : s.spec.replicas}` },
    { header: 'IMAGE', value: (s) => s.spec.container.image, shrinkable: true },
    { header: 'PORTS', value: (s) => formatPorts(s), shrinkable: true },
  ], format);
}

export interface TaskListFlags {
  filter: string[];
  trunc: boolean;
  quiet?: boolean;
  resolve: boolean;
  format: string;
}

/** The flags `service ps` and `node ps` share, as Docker's. */
export function withTaskListOptions(command: Command): Command {
  return command
    .option('-f, --filter <key=value>', 'desired-state=running|shutdown|accepted, id=, name=, node= (repeatable)', collect, [])
    .option('--no-trunc', 'full ids and errors')
    .option('-q, --quiet', 'only task ids')
    .option('--no-resolve', 'node ids instead of hostnames')
    .option('--format <format>', 'table or json', 'table');
}

/** `service ps` and `node ps` filters over task rows. */
export function taskFilter<Row extends { id: string; name: string; node: string | null; nodeId?: string; desiredState: string }>(tasks: Row[], values: string[]): Row[] {
  const filters = parseFilters(values, ['desired-state', 'id', 'name', 'node']);
  return keep(tasks, filters, {
    'desired-state': (t, v) => t.desiredState === v,
    id: (t, v) => t.id.startsWith(v),
    name: (t, v) => t.name.startsWith(v),
    node: (t, v) => t.node === v || (t.nodeId ?? '').startsWith(v),
  });
}

/** The task table of `service ps` and `node ps`. */
export function printTasks<Row extends TaskRow | (Omit<TaskRow, 'spec'> & { image: string })>(
  tasks: Row[],
  options: { trunc: boolean; quiet?: boolean; resolve?: boolean },
  format: ReturnType<typeof parseFormat>,
  image: (task: Row) => string,
): void {
  const id = (t: Row) => (options.trunc ? t.id.slice(0, 12) : t.id);
  if (options.quiet) return void process.stdout.write(tasks.map((t) => `${id(t)}\n`).join(''));
  const error = (t: Row) => t.status.error ?? (t.status.state === 'pending' ? t.status.message : '');
  printList(tasks, [
    { header: 'ID', value: id },
    { header: 'NAME', value: (t) => `${t.desiredState === 'running' ? '' : ' \\_ '}${t.name}`, shrinkable: true },
    { header: 'IMAGE', value: image, shrinkable: true },
    { header: 'NODE', value: (t) => (options.resolve === false ? (t.nodeId ?? '') : (t.node ?? '')) },
    { header: 'DESIRED STATE', value: (t) => capital(t.desiredState) },
    { header: 'CURRENT STATE', value: (t) => `${capital(t.status.state)} ${formatAge(t.status.timestamp)}${t.status.health ? ` (${t.status.health})` : ''}` },
    { header: 'ERROR', value: (t) => (options.trunc ? error(t).slice(0, 60) : error(t)), shrinkable: options.trunc },
  ], format);
}
