import type { Command } from 'commander';
import type { ServiceObject, ServiceSpecInput, TaskObject, UpdateConfig } from '../../shared/services.ts';
import type { ApiClient } from '../client.ts';
import { formatAge, parseDuration } from '../duration.ts';
import { parseFormat, printList, printObject } from '../output.ts';
import { capital } from '../table.ts';
import { parseBytes, type RunFlags, runFlagsToSpec } from '../run-flags.ts';
import { collect, connect, type GlobalOptions, query } from './common.ts';

type ServiceRow = ServiceObject & { running: number; desired: number };

interface CreateFlags {
  name?: string;
  network: string[];
  healthCmd?: string;
  healthInterval: string;
  healthTimeout: string;
  healthRetries: string;
  healthStartPeriod: string;
  healthcheck: boolean;
  replicas: string;
  mode: string;
  env: string[];
  constraint: string[];
  placementPref: string[];
  reserveCpu?: string;
  reserveMemory?: string;
  limitMemory?: string;
  limitCpu?: string;
  restartCondition: string;
  restartDelay: string;
  restartMaxAttempts: string;
  restartWindow: string;
  label: string[];
  detach?: boolean;
}
type TaskRow = TaskObject & { name: string; node: string | null };


/**
 * Follows a service until its tasks converge, printing "web: 2/3 running" as Docker does;
 * fails with the reason when tasks cannot be placed or keep failing.
 */
export async function waitForConvergence(client: ApiClient, reference: string, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
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
    if (line !== last) process.stderr.write(`${line}\n`);
    last = line;
    const leftovers = tasks.filter((t) => (t.desiredState !== 'running' || !inScale(t)) && t.status.state === 'running').length;
    if (running === desired && stale === 0 && leftovers === 0) return;
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

/** Adds the --update-* or --rollback-* flags (Docker's names) to a command. */
function withUpdateOptions(command: Command, prefix: 'update' | 'rollback'): Command {
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
function updateConfig(options: Record<string, string | undefined>, prefix: 'update' | 'rollback'): Partial<UpdateConfig> {
  const get = (name: string) => options[`${prefix}${name}`];
  return {
    ...(get('Parallelism') !== undefined ? { parallelism: Number(get('Parallelism')) } : {}),
    ...(get('Delay') !== undefined ? { delayMs: parseDuration(get('Delay')!) } : {}),
    ...(get('FailureAction') !== undefined ? { failureAction: get('FailureAction') as UpdateConfig['failureAction'] } : {}),
    ...(get('Monitor') !== undefined ? { monitorMs: parseDuration(get('Monitor')!) } : {}),
    ...(get('MaxFailureRatio') !== undefined ? { maxFailureRatio: Number(get('MaxFailureRatio')) } : {}),
    ...(get('Order') !== undefined ? { order: get('Order') as UpdateConfig['order'] } : {}),
  };
}

export function registerServiceCommands(program: Command, globals: () => GlobalOptions): void {
  const service = program.command('service').description('Services: replicated or global tasks across the nodes');

  const create = service
    .command('create')
    .description('Create a service and wait until its tasks run (unless --detach)')
    .argument('<image>', 'image reference')
    .argument('[cmd...]', 'command and arguments')
    .option('--name <name>', 'service name (default: from the image)')
    .option('--replicas <n>', 'number of tasks', '1')
    .option('--mode <mode>', 'replicated or global', 'replicated')
    .option('-e, --env <NAME=value>', 'environment variable (repeatable)', collect, [])
    .option('--network <network>', 'overlay network the tasks join (repeatable)', collect, [])
    .option('--constraint <expr>', 'placement constraint, e.g. node.hostname==h1 (repeatable)', collect, [])
    .option('--placement-pref <pref>', 'spread=node.labels.zone (repeatable)', collect, [])
    .option('--reserve-cpu <n>', 'CPUs reserved per task')
    .option('--reserve-memory <size>', 'memory reserved per task')
    .option('--limit-memory <size>', 'memory limit per task')
    .option('--limit-cpu <n>', 'CPU limit per task')
    .option('--restart-condition <c>', 'none, on-failure or any', 'any')
    .option('--restart-delay <duration>', 'delay between restarts', '5s')
    .option('--restart-max-attempts <n>', 'restarts before giving up (0: no limit)', '0')
    .option('--restart-window <duration>', 'window the attempts are counted in (0: all time)', '0s')
    .option('-l, --label <key=value>', 'service label (repeatable)', collect, [])
    .option('--health-cmd <cmd>', 'health check, run with sh -c inside the container')
    .option('--health-interval <duration>', 'time between checks', '30s')
    .option('--health-timeout <duration>', 'time a check may take', '30s')
    .option('--health-retries <n>', 'failures in a row that make the task unhealthy', '3')
    .option('--health-start-period <duration>', 'grace before failures count', '0s')
    .option('--no-healthcheck', 'disable the image\'s health check')
    .option('-d, --detach', 'return at once, without waiting for the tasks')
    .passThroughOptions();
  withUpdateOptions(withUpdateOptions(create, 'update'), 'rollback')
    .action(async (image: string, cmd: string[], options: CreateFlags) => {
      const flags: RunFlags = {
        env: options.env, init: true, label: [], deviceReadBps: [], deviceWriteBps: [], deviceReadIops: [], deviceWriteIops: [], volume: [], tmpfs: [], logOpt: [],
        network: options.network,
        ...(options.limitMemory ? { memory: options.limitMemory } : {}),
        ...(options.limitCpu ? { cpus: options.limitCpu } : {}),
      };
      const container = {
        ...runFlagsToSpec(image, cmd, flags),
        ...(options.healthCmd
          ? {
              healthcheck: {
                cmd: ['sh', '-c', options.healthCmd],
                intervalMs: parseDuration(options.healthInterval),
                timeoutMs: parseDuration(options.healthTimeout),
                retries: Number(options.healthRetries),
                startPeriodMs: parseDuration(options.healthStartPeriod),
              },
            }
          : options.healthcheck === false
            ? { healthcheck: { cmd: [] } }
            : {}),
      };
      const name = options.name || image.split('/').pop()!.split(/[:@]/)[0]!;
      const spec: ServiceSpecInput = {
        name,
        mode: options.mode as 'replicated' | 'global',
        replicas: Number(options.replicas),
        labels: Object.fromEntries(options.label.map((l) => l.split('=', 2) as [string, string])),
        container,
        reservations: {
          nanoCpus: options.reserveCpu ? Math.round(Number(options.reserveCpu) * 1e9) : 0,
          memoryBytes: options.reserveMemory ? parseBytes(options.reserveMemory, '--reserve-memory') : 0,
        },
        placement: { constraints: options.constraint, preferences: options.placementPref },
        restartPolicy: {
          condition: options.restartCondition as 'none' | 'on-failure' | 'any',
          delayMs: parseDuration(options.restartDelay),
          maxAttempts: Number(options.restartMaxAttempts),
          windowMs: parseDuration(options.restartWindow),
        },
        update: updateConfig(options as unknown as Record<string, string | undefined>, 'update'),
        rollback: updateConfig(options as unknown as Record<string, string | undefined>, 'rollback'),
      };
      const client = await connect(globals());
      const created = await client.call<ServiceObject>('POST', '/v1/services', spec);
      process.stdout.write(`${created.id}\n`);
      if (!options.detach) await waitForConvergence(client, created.id);
    });

  service
    .command('ls')
    .alias('list')
    .description('List services with their running and desired tasks')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { format: string }) => {
      const format = parseFormat(options.format);
      const services = await (await connect(globals())).call<ServiceRow[]>('GET', '/v1/services');
      printList(services, [
        { header: 'ID', value: (s) => s.id.slice(0, 12) },
        { header: 'NAME', value: (s) => s.spec.name, shrinkable: true },
        { header: 'MODE', value: (s) => s.spec.mode },
        { header: 'REPLICAS', value: (s) => `${s.running}/${s.spec.mode === 'global' ? s.desired : s.spec.replicas}` },
        { header: 'IMAGE', value: (s) => s.spec.container.image, shrinkable: true },
      ], format);
    });

  service
    .command('ps')
    .description('The tasks of a service: node, desired and current state, error')
    .argument('<service>', 'name or id')
    .option('--format <format>', 'table or json', 'table')
    .action(async (reference: string, options: { format: string }) => {
      const format = parseFormat(options.format);
      const tasks = await (await connect(globals())).call<TaskRow[]>('GET', `/v1/services/${encodeURIComponent(reference)}/tasks`);
      printList(tasks, [
        { header: 'ID', value: (t) => t.id.slice(0, 12) },
        { header: 'NAME', value: (t) => `${t.desiredState === 'running' ? '' : ' \\_ '}${t.name}`, shrinkable: true },
        { header: 'IMAGE', value: (t) => t.spec.container.image, shrinkable: true },
        { header: 'NODE', value: (t) => t.node ?? '' },
        { header: 'DESIRED STATE', value: (t) => capital(t.desiredState) },
        { header: 'CURRENT STATE', value: (t) => `${capital(t.status.state)} ${formatAge(t.status.timestamp)}${t.status.health ? ` (${t.status.health})` : ''}` },
        { header: 'ERROR', value: (t) => t.status.error ?? (t.status.state === 'pending' ? t.status.message : ''), shrinkable: true },
      ], format);
    });

  service
    .command('inspect')
    .description('Show services in full, as JSON')
    .argument('<service...>', 'name or id')
    .action(async (references: string[]) => {
      const client = await connect(globals());
      const found = [];
      for (const reference of references) found.push(await client.call('GET', `/v1/services/${encodeURIComponent(reference)}`));
      printObject(found);
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
    .description('Change a service: image, env, replicas, constraints; tasks roll over one at a time')
    .argument('<service>', 'name or id')
    .option('--image <image>', 'new image')
    .option('--replicas <n>', 'number of tasks')
    .option('--env <NAME=value>', 'replace the environment (repeatable)', collect, [])
    .option('--constraint <expr>', 'replace the constraints (repeatable)', collect, [])
    .option('--force', 'replace the tasks even if nothing changed')
    .option('-d, --detach', 'return at once');
  withUpdateOptions(update, 'update')
    .action(async (reference: string, options: { image?: string; replicas?: string; env: string[]; constraint: string[]; force?: boolean; detach?: boolean }) => {
      const settings = updateConfig(options as unknown as Record<string, string | undefined>, 'update');
      const client = await connect(globals());
      await client.call('PATCH', `/v1/services/${encodeURIComponent(reference)}`, {
        ...(options.image ? { image: options.image } : {}),
        ...(options.replicas ? { replicas: Number(options.replicas) } : {}),
        ...(options.env.length ? { env: options.env } : {}),
        ...(options.constraint.length ? { constraints: options.constraint } : {}),
        ...(options.force ? { force: true } : {}),
        ...(Object.keys(settings).length ? { update: settings } : {}),
      });
      process.stdout.write(`${reference}\n`);
      if (!options.detach) await waitForConvergence(client, reference);
    });

  service
    .command('rollback')
    .description('Go back to the spec before the last update; tasks roll over')
    .argument('<service>', 'name or id')
    .option('-d, --detach', 'return at once')
    .action(async (reference: string, options: { detach?: boolean }) => {
      const client = await connect(globals());
      await client.call('POST', `/v1/services/${encodeURIComponent(reference)}/rollback`, {});
      process.stdout.write(`${reference}\n`);
      if (!options.detach) await waitForConvergence(client, reference);
    });

  service
    .command('logs')
    .description('Output of every task of a service, each line prefixed by task and node')
    .argument('<service>', 'name or id')
    .option('-f, --follow', 'keep printing new output')
    .option('-n, --tail <n>', 'only the last N lines of each task')
    .action(async (reference: string, options: { follow?: boolean; tail?: string }) => {
      await (await connect(globals())).stream('GET', `/v1/services/${encodeURIComponent(reference)}/logs${query({ follow: options.follow, tail: options.tail })}`, undefined, (event) => {
        const line = event as { task: string; node: string; stream: string; text: string };
        (line.stream === 'stderr' ? process.stderr : process.stdout).write(`${line.task}@${line.node}    | ${line.text}\n`);
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
