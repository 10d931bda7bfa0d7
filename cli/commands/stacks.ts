import type { Command } from 'commander';
import { loginForImage } from '../registry-logins.ts';
import { encodeRegistryAuth, registryAuthHeader } from '../../shared/registry-auth.ts';
import { ShoalError } from '../../shared/errors.ts';
import type { NetworkObject } from '../../netplug/model.ts';
import { type ServiceObject, type ServiceSpec, stackLabel } from '../../shared/services.ts';
import type { FileObjectView } from '../../shared/secrets.ts';
import type { ApiClient } from '../client.ts';
import type { PolicyObject } from '../../netplug/policy/model.ts';
import type { StackPlan } from '../compose/plan.ts';
import { parseFormat, printList } from '../output.ts';
import { keep, parseFilters } from '../filters.ts';
import { collect, connect, type GlobalOptions } from './common.ts';
import { inParallel } from '../../shared/concurrency.ts';
import { printServices, printTasks, serviceFilterTests, type ServiceRow, taskFilter, type TaskListFlags, type TaskRow, waitForConvergence, withTaskListOptions } from './services.ts';

interface ComposeFlags {
  composeFile: string[];
  envFile?: string;
  /** commander's negation of --skip-interpolation is not used: true when given. */
  skipInterpolation?: boolean;
}

/**
 * Reads the files, checks them for a cluster and maps them onto Shoal's objects. Warnings and
 * what a cluster does not do go to stderr once; any problem stops here, all of them listed.
 */
async function readStack(options: ComposeFlags, stack: string): Promise<{ plan: StackPlan; model: Record<string, unknown> }> {
  // The YAML library loads only for stack commands.
  const { formatProblem, loadCompose } = await import('../compose/load.ts');
  const { checkForCluster } = await import('../compose/cluster-fit.ts');
  const { planStack } = await import('../compose/plan.ts');
  const loaded = await loadCompose(options.composeFile, { ...(options.envFile ? { envFile: options.envFile } : {}), ...(options.skipInterpolation ? { interpolate: false } : {}) });
  const fit = loaded.problems.length === 0 ? checkForCluster(loaded.model, loaded.positions) : { notes: [], problems: [] };
  const plan = loaded.problems.length === 0 ? await planStack(loaded, stack) : { stack, services: [], networks: [], fileObjects: [], policies: [], notes: [], problems: [] };
  for (const warning of loaded.warnings) process.stderr.write(`warning: ${warning}\n`);
  const notes = mergeNotes([...fit.notes, ...plan.notes]);
  if (notes.length > 0) process.stderr.write(`warning: what a cluster does not do:\n${notes.map((n) => `  ${n}`).join('\n')}\n`);
  const seen = new Set<string>();
  const problems = [...loaded.problems, ...fit.problems, ...plan.problems].filter((p) => {
    const key = `${p.file}:${p.line}:${p.column}:${p.message}`;
    return !seen.has(key) && seen.add(key);
  });
  if (problems.length > 0) {
    const files = options.composeFile.length > 1;
    throw new ShoalError('invalid', 'invalid_compose_file', `the compose file${files ? 's' : ''} ${files ? 'have' : 'has'} ${problems.length === 1 ? 'a problem' : `${problems.length} problems`}:\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`, {
      hint: 'fix them and run the command again; nothing was deployed',
    });
  }
  return { plan, model: loaded.model };
}

/** One line per service: the cluster-fit note and the mapping's note about one service become one. */
function mergeNotes(notes: string[]): string[] {
  const byService = new Map<string, string[]>();
  const order: string[] = [];
  for (const note of notes) {
    const at = note.indexOf(': ');
    const subject = at < 0 ? note : note.slice(0, at);
    if (!byService.has(subject)) order.push(subject);
    byService.set(subject, [...(byService.get(subject) ?? []), at < 0 ? '' : note.slice(at + 2)]);
  }
  return order.map((subject) => `${subject}: ${byService.get(subject)!.filter(Boolean).join('; ')}`);
}

/** JSON with keys sorted, so two specs equal in content compare equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v));
}

/**
 * What of a stored spec the stack file sets: the manager fills attachments per task, and
 * gives a port published as 0 a real one, which a file's 0 stands for.
 */
function comparable(spec: ServiceSpec, stored?: ServiceSpec): string {
  const ports = spec.endpoint.ports.map((p) => {
    if (p.publishedPort !== 0) return p;
    const assigned = stored?.endpoint.ports.find((s) => s.targetPort === p.targetPort && s.protocol === p.protocol && s.mode === p.mode);
    return assigned ? { ...p, publishedPort: assigned.publishedPort } : p;
  });
  return canonical({ ...spec, container: { ...spec.container, attachments: [] }, endpoint: { ...spec.endpoint, ports } });
}

const inStack = (labels: Record<string, string> | undefined, stack: string) => labels?.[stackLabel] === stack;

async function stackServices(client: ApiClient, stack: string): Promise<ServiceRow[]> {
  return (await client.call<ServiceRow[]>('GET', '/v1/services')).filter((s) => inStack(s.spec.labels, stack)).sort((a, b) => a.spec.name.localeCompare(b.spec.name));
}

/** --with-registry-auth: each service's request carries the stored login of its image's registry, if there is one. */
async function loginHeaders(image: string, withRegistryAuth: boolean | undefined): Promise<Record<string, string>> {
  const login = withRegistryAuth ? await loginForImage(image) : undefined;
  return login ? { [registryAuthHeader]: encodeRegistryAuth(login) } : {};
}

async function deploy(client: ApiClient, plan: StackPlan, options: { prune?: boolean; detach?: boolean; quiet?: boolean; withRegistryAuth?: boolean }): Promise<void> {
  const say = (line: string) => void (options.quiet || process.stderr.write(`${line}\n`));
  const started = Date.now();
  const networks = await client.call<NetworkObject[]>('GET', '/v1/networks');
  const existing = new Map(networks.map((n) => [n.spec.name, n]));
  const missing = plan.networks.filter((n) => n.external && !existing.has(n.name));
  if (missing.length > 0) {
    throw new ShoalError('not_found', 'external_network_missing', `external network${missing.length > 1 ? 's' : ''} ${missing.map((n) => `"${n.name}"`).join(', ')} ${missing.length > 1 ? 'do' : 'does'} not exist`, {
      hint: `create ${missing.length > 1 ? 'them' : 'it'} first (shoal network create -d overlay ${missing[0]!.name}); nothing was deployed`,
    });
  }
  const held = new Set<string>();
  for (const kind of new Set(plan.fileObjects.map((o) => o.kind))) {
    for (const object of await client.call<FileObjectView[]>('GET', `/v1/${kind}s`)) held.add(`${kind}:${object.spec.name}`);
  }
  const absent = plan.fileObjects.find((o) => o.external && !held.has(`${o.kind}:${o.name}`));
  if (absent) throw new ShoalError('not_found', 'external_object_missing', `external ${absent.kind} "${absent.name}" does not exist`, { hint: `create it first (shoal ${absent.kind} create ${absent.name} FILE); nothing was deployed` });
  // Secrets and configs cannot change: the same data is kept, other data is refused (a new name rolls it out).
  for (const object of plan.fileObjects.filter((o) => !o.external)) {
    if (!held.has(`${object.kind}:${object.name}`)) say(`Creating ${object.kind} ${object.name}`);
    await client.call('POST', `/v1/${object.kind}s`, { name: object.name, labels: object.labels, data: object.data, reuse: true });
  }
  for (const network of plan.networks) {
    if (network.external || !network.spec || existing.has(network.name)) continue;
    say(`Creating network ${network.name}`);
    await client.call('POST', '/v1/networks', network.spec);
  }

  // Policies before services: a task starts under the rules meant for it.
  for (const policy of plan.policies) {
    const applied = await client.call<{ outcome: string }>('PUT', `/v1/policies/${encodeURIComponent(policy.name)}`, policy);
    say(applied.outcome === 'unchanged' ? `Policy ${policy.name} is up to date` : `${applied.outcome === 'created' ? 'Creating' : 'Updating'} policy ${policy.name}`);
  }

  const current = new Map((await client.call<ServiceRow[]>('GET', '/v1/services')).map((s) => [s.spec.name, s]));
  const changed = new Set<string>();
  // A few at a time: each call waits on etcd round trips, and the services do not depend on each other.
  await inParallel(plan.services, 4, async (spec) => {
    const found = current.get(spec.name);
    if (!found) {
      say(`Creating service ${spec.name}`);
      await client.call<ServiceObject>('POST', '/v1/services', spec, await loginHeaders(spec.container.image, options.withRegistryAuth));
      changed.add(spec.name);
      return;
    }
    if (comparable(found.spec) === comparable(spec, found.spec)) {
      say(`Service ${spec.name} is up to date`);
      return;
    }
    say(`Updating service ${spec.name}`);
    const read = await client.call<ServiceObject>('GET', `/v1/services/${encodeURIComponent(found.id)}`);
    await client.call('PATCH', `/v1/services/${encodeURIComponent(found.id)}`, { spec, version: read.version }, await loginHeaders(spec.container.image, options.withRegistryAuth));
    changed.add(spec.name);
  });
  if (options.prune) {
    const wanted = new Set(plan.services.map((s) => s.name));
    for (const service of current.values()) {
      if (!inStack(service.spec.labels, plan.stack) || wanted.has(service.spec.name)) continue;
      say(`Removing service ${service.spec.name}`);
      await client.call('DELETE', `/v1/services/${encodeURIComponent(service.id)}`);
    }
    const policies = new Set(plan.policies.map((p) => p.name));
    for (const policy of await stackPolicyObjects(client, plan.stack)) {
      if (policies.has(policy.spec.name)) continue;
      say(`Removing policy ${policy.spec.name}`);
      await client.call('DELETE', `/v1/policies/${encodeURIComponent(policy.spec.name)}`);
    }
  }
  if (options.detach) return;
  // The services converge together; each is followed in turn until all have.
  for (const name of plan.services.map((s) => s.name).filter((n) => changed.has(n))) await waitForConvergence(client, name, undefined, options.quiet);
  // An update that failed and rolled back converges too, to the old spec: say it, and fail.
  const rolledBack = (await client.call<ServiceRow[]>('GET', '/v1/services'))
    .filter((s) => changed.has(s.spec.name) && s.updateStatus?.state.startsWith('rollback') && Date.parse(s.updateStatus.startedAt) >= started)
    .map((s) => `${s.spec.name}: ${s.updateStatus!.message}`);
  if (rolledBack.length > 0) {
    throw new ShoalError('conflict', 'update_rolled_back', `the update of ${rolledBack.length === 1 ? 'a service' : `${rolledBack.length} services`} failed and was rolled back:\n${rolledBack.map((r) => `  ${r}`).join('\n')}`, {
      hint: 'see why with `shoal service ps SERVICE`; the services run their previous spec',
    });
  }
}

async function stackPolicyObjects(client: ApiClient, stack: string): Promise<PolicyObject[]> {
  return (await client.call<PolicyObject[]>('GET', '/v1/policies')).filter((p) => inStack(p.spec.labels, stack));
}

/** Removes a stack's services and policies, then its networks once their tasks have let go of them. */
async function removeStack(client: ApiClient, stack: string, waitMs: number): Promise<boolean> {
  const services = await stackServices(client, stack);
  const networks = (await client.call<NetworkObject[]>('GET', '/v1/networks')).filter((n) => inStack(n.spec.labels, stack));
  const policies = await stackPolicyObjects(client, stack);
  if (services.length === 0 && networks.length === 0 && policies.length === 0) return false;
  for (const service of services) {
    process.stdout.write(`Removing service ${service.spec.name}\n`);
    await client.call('DELETE', `/v1/services/${encodeURIComponent(service.id)}`);
  }
  for (const policy of policies) {
    process.stdout.write(`Removing policy ${policy.spec.name}\n`);
    await client.call('DELETE', `/v1/policies/${encodeURIComponent(policy.spec.name)}`);
  }
  for (const kind of ['secret', 'config'] as const) {
    for (const object of (await client.call<FileObjectView[]>('GET', `/v1/${kind}s`)).filter((o) => inStack(o.spec.labels, stack))) {
      process.stdout.write(`Removing ${kind} ${object.spec.name}\n`);
      await client.call('DELETE', `/v1/${kind}s/${encodeURIComponent(object.id)}`);
    }
  }
  for (const network of networks) {
    process.stdout.write(`Removing network ${network.spec.name}\n`);
    // The tasks stop first and give their addresses back; wait for that, as long as it takes a task to stop.
    const deadline = Date.now() + waitMs;
    for (;;) {
      try {
        await client.call('DELETE', `/v1/networks/${encodeURIComponent(network.id)}`);
        break;
      } catch (error) {
        const inUse = error instanceof ShoalError && error.kind === 'conflict';
        if (inUse && waitMs === 0) {
          process.stderr.write(`warning: network ${network.spec.name} is still in use by stopping tasks; it stays (remove it later with \`shoal network rm ${network.spec.name}\`)\n`);
          break;
        }
        if (!inUse || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }
  return true;
}

/** `shoal stack`: compose files deployed as stacks of services, as `docker stack` does. */
export function registerStackCommands(program: Command, globals: () => GlobalOptions): void {
  const stack = program.command('stack').description('Compose files as stacks of services');

  const deployCommand = stack
    .command('deploy')
    .alias('up')
    .description('Deploy or update a stack from compose files; waits until its services converge (unless --detach)')
    .argument('<stack>', 'the stack\'s name: its services are named STACK_SERVICE')
    .requiredOption('-c, --compose-file <file>', 'a compose file, or - for stdin; several are merged in order (repeatable)', collect, [])
    .option('--env-file <file>', 'variables to interpolate (default: the .env file beside the first compose file)')
    .option('--prune', 'remove the stack\'s services that are no longer in the files')
    .option('-d, --detach', 'return at once, without waiting for the services')
    .option('-q, --quiet', 'no progress')
    .option('--resolve-image <when>', 'accepted for Docker\'s sake: each node resolves the tag when it pulls')
    .option('--with-registry-auth', 'send the logins of the images\' registries (`shoal login`) to the nodes, sealed in the cluster\'s store');
  deployCommand
    .action(async (name: string, options: ComposeFlags & { prune?: boolean; detach?: boolean; quiet?: boolean; withRegistryAuth?: boolean }) => {
      const { plan } = await readStack(options, name);
      await deploy(await connect(globals()), plan, options);
    });

  stack
    .command('config')
    .description('Print the compose files merged in order, with their variables interpolated and checked, as YAML')
    .requiredOption('-c, --compose-file <file>', 'a compose file; several are merged in order (repeatable)', collect, [])
    .option('--env-file <file>', 'variables to interpolate (default: the .env file beside the first compose file)')
    .option('--skip-interpolation', 'leave ${VAR} as written')
    .action(async (options: ComposeFlags) => {
      const { model } = await readStack(options, 'config');
      const { stringify } = await import('yaml');
      // The `version` key is obsolete (the Compose Specification ignores it).
      const { version: _version, ...rest } = model;
      process.stdout.write(stringify(rest, { version: '1.2', lineWidth: 0 }));
    });

  stack
    .command('ls')
    .alias('list')
    .description('List stacks with their number of services')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { format: string }) => {
      const format = parseFormat(options.format);
      const client = await connect(globals());
      const [services, networks] = await Promise.all([client.call<ServiceRow[]>('GET', '/v1/services'), client.call<NetworkObject[]>('GET', '/v1/networks')]);
      const stacks = new Map<string, { name: string; services: number; networks: number }>();
      const entry = (name: string) => stacks.get(name) ?? stacks.set(name, { name, services: 0, networks: 0 }).get(name)!;
      for (const s of services) if (s.spec.labels[stackLabel]) entry(s.spec.labels[stackLabel]).services++;
      for (const n of networks) if (n.spec.labels[stackLabel]) entry(n.spec.labels[stackLabel]).networks++;
      printList([...stacks.values()].sort((a, b) => a.name.localeCompare(b.name)), [
        { header: 'NAME', value: (s) => s.name, shrinkable: true },
        { header: 'SERVICES', value: (s) => String(s.services) },
        { header: 'NETWORKS', value: (s) => String(s.networks) },
      ], format);
    });

  stack
    .command('services')
    .description('The services of a stack, as `service ls` shows them')
    .argument('<stack>')
    .option('-f, --filter <key=value>', 'id=, label=, mode=replicated|global, name= (repeatable)', collect, [])
    .option('--no-trunc', 'full ids')
    .option('-q, --quiet', 'only ids')
    .option('--format <format>', 'table or json', 'table')
    .action(async (name: string, options: { filter: string[]; trunc: boolean; quiet?: boolean; format: string }) => {
      const format = parseFormat(options.format);
      const filters = parseFilters(options.filter, ['id', 'label', 'mode', 'name']);
      const services = await stackServices(await connect(globals()), name);
      if (services.length === 0) throw new ShoalError('not_found', 'no_such_stack', `nothing found in stack: ${name}`, { hint: 'list stacks with `shoal stack ls`' });
      printServices(keep(services, filters, serviceFilterTests), options, format);
    });

  withTaskListOptions(stack.command('ps').description('The tasks of a stack\'s services').argument('<stack>')).action(async (name: string, options: TaskListFlags) => {
    const client = await connect(globals());
    const services = await stackServices(client, name);
    if (services.length === 0) throw new ShoalError('not_found', 'no_such_stack', `nothing found in stack: ${name}`, { hint: 'list stacks with `shoal stack ls`' });
    const tasks: TaskRow[] = [];
    for (const service of services) tasks.push(...(await client.call<TaskRow[]>('GET', `/v1/services/${encodeURIComponent(service.id)}/tasks`)));
    printTasks(taskFilter(tasks, options.filter), options, parseFormat(options.format), (t) => t.spec.container.image);
  });

  stack
    .command('rm')
    .alias('remove')
    .alias('down')
    .description('Remove stacks: their services, then their networks')
    .argument('<stack...>')
    .option('-d, --detach', 'do not wait for the tasks to stop: networks still in use are left (remove them later with `shoal network rm`)')
    .action(async (names: string[], options: { detach?: boolean }) => {
      const client = await connect(globals());
      const missing: string[] = [];
      for (const name of names) if (!(await removeStack(client, name, options.detach ? 0 : 60_000))) missing.push(name);
      if (missing.length > 0) throw new ShoalError('not_found', 'no_such_stack', `nothing found in stack${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`, { hint: 'list stacks with `shoal stack ls`' });
    });
}
