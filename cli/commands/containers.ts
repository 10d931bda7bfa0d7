import type { Command } from 'commander';
import type { ContainerRecord, ContainerStats, ExecResult, LogLine, PublishedPort } from '../../shared/containers.ts';
import { formatAge, formatBytes } from '../duration.ts';
import { parseFormat, printList, printObject } from '../output.ts';
import { createWriteStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { copiesContents, landArchive, localArchive, parseCopyEnd } from '../copy.ts';
import { runSession, type SessionEnd } from '../session.ts';
import { loginForImage } from '../registry-logins.ts';
import { parseDetachKeys } from '../../shared/session-frames.ts';
import { runFlagsToSpec, type RunFlags, type UpdateFlags, updateFlagsToResources } from '../run-flags.ts';
import { keep, labelMatches, parseFilters } from '../filters.ts';
import { collect, connect, type GlobalOptions, query, getEach } from './common.ts';

type Located<T> = T & { node: string; nodeId: string };

function status(c: ContainerRecord): string {
  if (c.state === 'running') return `Up ${formatAge(c.startedAt).replace(' ago', '')}`;
  if (c.state === 'paused') return `Up ${formatAge(c.startedAt).replace(' ago', '')} (Paused)`;
  if (c.state === 'exited') return `Exited (${c.exitCode ?? '?'})${c.oomKilled ? ' OOM-killed' : ''} ${formatAge(c.finishedAt)}`;
  return c.state[0]!.toUpperCase() + c.state.slice(1);
}


const containerFilters = ['status', 'label', 'name', 'id', 'exited', 'ancestor', 'node'] as const;

/** Docker's `ps --filter` keys, each against what a container record holds. */
const containerFilterTests: Record<string, (c: Located<ContainerRecord>, value: string) => boolean> = {
  status: (c, v) => c.state === v,
  label: (c, v) => labelMatches(c.spec.labels, v),
  name: (c, v) => c.name.includes(v),
  id: (c, v) => c.id.startsWith(v),
  exited: (c, v) => c.state === 'exited' && String(c.exitCode) === v,
  ancestor: (c, v) => c.spec.image === v || c.imageId.startsWith(v) || c.imageId.startsWith(`sha256:${v}`),
  node: (c, v) => c.node === v || c.nodeId.startsWith(v),
};

function containerPath(ref: string): string {
  return `/v1/containers/${encodeURIComponent(ref)}`;
}

function seconds(text: string): number {
  if (!(Number(text) >= 0)) throw new Error(`--time "${text}" is not a number of seconds`);
  return Number(text);
}

/** `docker port` lines: 80/tcp -> 0.0.0.0:8080, for one port when asked. */
export function portLines(publish: readonly PublishedPort[], privatePort?: string): string[] {
  const [port, protocol = 'tcp'] = (privatePort ?? '').split('/');
  return publish
    .filter((p) => !privatePort || (String(p.targetPort) === port && p.protocol === protocol))
    .map((p) => `${p.targetPort}/${p.protocol} -> ${p.hostIp ?? '0.0.0.0'}:${p.publishedPort}`);
}

/** Asks on the terminal; anything but y or yes is no, and so is a stdin that is not a terminal. */
async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) {
    process.stderr.write(`${question.split('\n')[0]}\nshoal: not a terminal to ask on; pass --force\n`);
    return false;
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await prompt.question(question)).trim());
  } finally {
    prompt.close();
  }
}

/** A session's end as the shell sees it: the exit code, or a note that the container runs on. */
async function finishSession(end: SessionEnd, name: string): Promise<void> {
  if (end.detached) {
    process.stderr.write(`\r\nshoal: detached from ${name}; it runs on (\`shoal container attach ${name}\` to come back)\r\n`);
    return;
  }
  process.exitCode = end.exitCode ?? 1;
}

function printLogLine(line: LogLine, timestamps: boolean, prefix = ''): void {
  const text = `${prefix}${timestamps ? `${line.time} ` : ''}${line.text}\n`;
  (line.stream === 'stderr' ? process.stderr : process.stdout).write(text);
}

/** The limits `run`, `create` and `update` take. */
function withLimitFlags(command: Command): Command {
  return command
    .option('-m, --memory <size>', 'memory limit, e.g. 64m')
    .option('--memory-swap <size>', 'memory plus swap limit; -1 unlimited (default twice --memory)')
    .option('--memory-reservation <size>', 'memory soft limit')
    .option('-c, --cpu-shares <n>', 'relative CPU weight')
    .option('--cpus <n>', 'CPU quota in CPUs, e.g. 0.5')
    .option('--cpuset-cpus <list>', 'CPUs allowed, e.g. 0-1')
    .option('--pids-limit <n>', 'maximum number of processes')
    .option('--blkio-weight <n>', 'block IO weight, 10 to 1000');
}

/** Docker's `run` options, which `container create` takes too. */
function withRunFlags(command: Command): Command {
  command
    .option('--name <name>', 'container name')
    .option('-e, --env <NAME=value>', 'environment variable (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory')
    .option('-u, --user <user[:group]>', 'user to run as')
    .option('--hostname <name>', 'container hostname')
    .option('--network <network>', 'join this network: an overlay, or none (repeatable; eth0, eth1, ... in order)', collect, [])
    .option('--ip <address>', 'static address on the first --network (created with --subnet)')
    .option('-p, --publish <port>', 'publish a port on the container\'s host: [ip:]8080:80[/udp] (repeatable)', collect, [])
    .option('--network-alias <name>', 'another DNS name on the first network (repeatable)', collect, [])
    .option('--dns <ip>', 'upstream resolver for names the cluster does not know (repeatable)', collect, [])
    .option('--dns-search <domain>', 'DNS search domain (repeatable)', collect, [])
    .option('--dns-option <option>', 'resolver option, such as ndots:2 (repeatable)', collect, [])
    .option('--add-host <name:ip>', 'an extra /etc/hosts line (repeatable)', collect, [])
    .option('--read-only', 'mount the root filesystem read-only')
    .option('--no-init', 'run the command as pid 1 (no zombie-reaping init)')
    .option('--entrypoint <cmd>', 'replace the image\'s entrypoint')
    .option('-l, --label <key=value>', 'label (repeatable)', collect, []);
  return withLimitFlags(command)
    .option('--device-read-bps <dev:rate>', 'read rate limit, e.g. /dev/vda:1mb (repeatable)', collect, [])
    .option('--device-write-bps <dev:rate>', 'write rate limit (repeatable)', collect, [])
    .option('--device-read-iops <dev:rate>', 'read IO/s limit (repeatable)', collect, [])
    .option('--device-write-iops <dev:rate>', 'write IO/s limit (repeatable)', collect, [])
    .option('-v, --volume <src:dst[:ro]>', 'bind mount (absolute source) or named volume (repeatable)', collect, [])
    .option('--tmpfs <path[:size=64m]>', 'tmpfs mount (repeatable)', collect, [])
    .option('--log-opt <key=value>', 'max-size=10m, max-file=3', collect, []);
}

export function registerContainerCommands(program: Command, globals: () => GlobalOptions): void {
  const container = program.command('container').description('Run and manage single containers on a chosen node');

  withRunFlags(
    container
      .command('run')
      .description('Run a container on a node (pulls the image if needed)')
      .argument('<image>', 'image reference, e.g. busybox:1.35.0')
      .argument('[cmd...]', 'command and arguments')
      .requiredOption('--node <node>', 'node to run on (hostname or id)')
      .option('-d, --detach', 'print the container id and return at once')
      .option('--rm', 'remove the container when it exits (not with --detach)')
      .option('-i, --interactive', 'send this terminal\'s keys to the container (with -t)')
      .option('-t, --tty', 'give the container a pseudo-terminal')
      .option('--detach-keys <keys>', 'keys that leave the container running and return', 'ctrl-p,ctrl-q'),
  )
    .passThroughOptions()
    .action(async (image: string, cmd: string[], options: RunFlags & { node: string; detach?: boolean; rm?: boolean; interactive?: boolean; tty?: boolean; detachKeys: string }) => {
      if (options.interactive && !options.tty) throw new Error('-i without -t (stdin without a terminal) is not supported yet; use -it for an interactive shell');
      const detachKeys = parseDetachKeys(options.detachKeys);
      const client = (await connect(globals())).useRegistryAuth(await loginForImage(image));
      const spec = { ...runFlagsToSpec(image, cmd, options), tty: options.tty ?? false };
      if (options.tty && !options.detach) {
        const created = await client.call<Located<ContainerRecord>>('POST', '/v1/containers/create', { ...spec, node: options.node });
        const path = containerPath(created.id);
        // Attached before it starts: its first output (a prompt) is not missed.
        const session = runSession(client, `${path}/session${query({ node: created.nodeId })}`, { kind: 'attach' }, { detachKeys, stdin: options.interactive ?? false });
        session.catch(() => undefined);
        await client.call('POST', `${path}/start${query({ node: created.nodeId })}`, {});
        await finishSession(await session, created.name);
        if (options.rm && !process.exitCode) await client.call('DELETE', `${path}${query({ node: created.nodeId, force: true })}`);
        return;
      }
      const created = await client.call<Located<ContainerRecord>>('POST', '/v1/containers', { ...spec, node: options.node });
      if (options.detach) {
        process.stdout.write(`${created.id}\n`);
        return;
      }
      const path = `/v1/containers/${created.id}`;
      await client.stream('GET', `${path}/logs${query({ follow: true, node: created.nodeId })}`, undefined, (line) => printLogLine(line as LogLine, false));
      const done = await client.call<Located<ContainerRecord>>('POST', `${path}/wait${query({ node: created.nodeId })}`, {});
      if (options.rm) await client.call('DELETE', `${path}${query({ node: created.nodeId, force: true })}`);
      if (done.oomKilled) process.stderr.write(`shoal: container ${done.name} was killed for running out of memory\n`);
      process.exitCode = done.exitCode ?? 1;
    });

  withRunFlags(
    container
      .command('create')
      .description('Create a container on a node without starting it (`container start` runs it)')
      .argument('<image>', 'image reference, e.g. busybox:1.35.0')
      .argument('[cmd...]', 'command and arguments')
      .requiredOption('--node <node>', 'node to create it on (hostname or id)')
      .option('-i, --interactive', 'accepted with -t: `container start` then `attach` gives the keys')
      .option('-t, --tty', 'give the container a pseudo-terminal'),
  )
    .passThroughOptions()
    .action(async (image: string, cmd: string[], options: RunFlags & { node: string; tty?: boolean }) => {
      const spec = { ...runFlagsToSpec(image, cmd, options), tty: options.tty ?? false };
      const created = await (await connect(globals())).useRegistryAuth(await loginForImage(image)).call<Located<ContainerRecord>>('POST', '/v1/containers/create', { ...spec, node: options.node });
      process.stdout.write(`${created.id}\n`);
    });

  container
    .command('ls')
    .alias('ps')
    .description('List containers on every Ready node (running ones unless --all)')
    .option('-a, --all', 'include stopped containers')
    .option('--node <node>', 'one node only')
    .option('-f, --filter <key=value>', `only these (repeatable): ${containerFilters.join(', ')}`, collect, [])
    .option('-n, --last <n>', 'the n last created, in any state')
    .option('-l, --latest', 'the last created, in any state')
    .option('-q, --quiet', 'ids only')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { all?: boolean; node?: string; filter: string[]; last?: string; latest?: boolean; quiet?: boolean; format: string }) => {
      const format = parseFormat(options.format);
      const filters = parseFilters(options.filter, containerFilters);
      const last = options.latest ? 1 : options.last === undefined ? undefined : Number(options.last);
      if (last !== undefined && !(Number.isInteger(last) && last >= 0)) throw new Error(`--last "${options.last}" is not a number of containers`);
      // As Docker: a status filter, -n and -l look at stopped containers too.
      const all = options.all || filters.has('status') || filters.has('exited') || last !== undefined;
      const listed = await (await connect(globals())).call<Array<Located<ContainerRecord>>>('GET', `/v1/containers${query({ all: all || undefined, node: options.node })}`);
      let containers = keep(listed, filters, containerFilterTests);
      if (last !== undefined) containers = containers.sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, last);
      containers.sort((a, b) => a.node.localeCompare(b.node) || a.createdAt.localeCompare(b.createdAt));
      if (options.quiet) return void process.stdout.write(containers.map((c) => `${c.id.slice(0, 12)}\n`).join(''));
      printList(containers, [
        { header: 'CONTAINER ID', value: (c) => c.id.slice(0, 12) },
        { header: 'NAME', value: (c) => c.name, shrinkable: true },
        { header: 'NODE', value: (c) => c.node },
        { header: 'IMAGE', value: (c) => c.spec.image, shrinkable: true },
        { header: 'COMMAND', value: (c) => JSON.stringify([...(c.spec.entrypoint ?? []), ...(c.spec.cmd ?? [])].join(' ')), shrinkable: true },
        { header: 'STATUS', value: status },
      ], format);
    });

  const byRef = (name: string, description: string) =>
    container.command(name).description(description).option('--node <node>', 'the node holding it, when a name is used on several');

  byRef('inspect', 'Show containers in full (state, pid, exit code, OOM kill, times), as JSON')
    .argument('<container...>', 'id, id prefix or name')
    .option('--format <format>', 'json (the only form)', 'json')
    .action(async (refs: string[], options: { node?: string }) => {
      const client = await connect(globals());
      printObject(await getEach(client, '/v1/containers', refs, query({ node: options.node })));
    });

  byRef('logs', 'Show a container\'s output')
    .argument('<container>', 'id, id prefix or name')
    .option('-f, --follow', 'keep printing new output until the container exits')
    .option('-n, --tail <n>', 'only the last N lines')
    .option('--since <time>', 'only lines at or after this ISO time')
    .option('-t, --timestamps', 'show each line\'s time')
    .action(async (ref: string, options: { node?: string; follow?: boolean; tail?: string; since?: string; timestamps?: boolean }) => {
      const client = await connect(globals());
      await client.stream('GET', `${containerPath(ref)}/logs${query({ node: options.node, follow: options.follow, tail: options.tail, since: options.since })}`, undefined, (line) =>
        printLogLine(line as LogLine, options.timestamps ?? false),
      );
    });

  byRef('exec', 'Run a command in a running container; exits with its exit code')
    .argument('<container>', 'id, id prefix or name')
    .argument('<cmd...>', 'command and arguments')
    .option('-e, --env <NAME=value>', 'environment variable (repeatable)', collect, [])
    .option('-u, --user <user>', 'user to run as')
    .option('-w, --workdir <dir>', 'working directory')
    .option('-i, --interactive', 'send this terminal\'s keys to the command (with -t)')
    .option('-t, --tty', 'give the command a pseudo-terminal')
    .option('--detach-keys <keys>', 'keys that leave the command running and return', 'ctrl-p,ctrl-q')
    .passThroughOptions()
    .action(async (ref: string, cmd: string[], options: { node?: string; env: string[]; user?: string; workdir?: string; interactive?: boolean; tty?: boolean; detachKeys: string }) => {
      if (options.interactive && !options.tty) throw new Error('-i without -t (stdin without a terminal) is not supported yet; use -it for an interactive shell');
      const exec = {
        cmd,
        env: options.env,
        ...(options.user ? { user: options.user } : {}),
        ...(options.workdir ? { workdir: options.workdir } : {}),
      };
      if (options.tty) {
        const detachKeys = parseDetachKeys(options.detachKeys);
        const end = await runSession(await connect(globals()), `${containerPath(ref)}/session${query({ node: options.node })}`, { kind: 'exec', exec }, { detachKeys, stdin: options.interactive ?? false });
        await finishSession(end, ref);
        return;
      }
      const result = await (await connect(globals())).call<ExecResult>('POST', `${containerPath(ref)}/exec${query({ node: options.node })}`, exec);
      process.stdout.write(result.stdout);
      process.stderr.write(result.stderr);
      process.exitCode = result.exitCode;
    });

  byRef('attach', 'Attach this terminal to a running container\'s terminal (or follow its output); the detach keys leave it running')
    .argument('<container>', 'id, id prefix or name')
    .option('--no-stdin', 'do not send keys, only show output')
    .option('--detach-keys <keys>', 'keys that leave the container running and return', 'ctrl-p,ctrl-q')
    .action(async (ref: string, options: { node?: string; stdin: boolean; detachKeys: string }) => {
      const detachKeys = parseDetachKeys(options.detachKeys);
      const end = await runSession(await connect(globals()), `${containerPath(ref)}/session${query({ node: options.node })}`, { kind: 'attach' }, { detachKeys, stdin: options.stdin });
      await finishSession(end, ref);
    });

  byRef('stats', 'CPU, memory, pids and block IO of running containers')
    .argument('<container...>', 'id, id prefix or name')
    .option('--format <format>', 'table or json', 'table')
    .action(async (refs: string[], options: { node?: string; format: string }) => {
      const format = parseFormat(options.format);
      const client = await connect(globals());
      const stats = await Promise.all(refs.map((ref) => client.call<Located<ContainerStats> & { name: string }>('GET', `${containerPath(ref)}/stats${query({ node: options.node })}`)));
      printList(stats, [
        { header: 'CONTAINER ID', value: (s) => s.id.slice(0, 12) },
        { header: 'NAME', value: (s) => s.name, shrinkable: true },
        { header: 'NODE', value: (s) => s.node },
        { header: 'CPU %', value: (s) => `${s.cpuPercent.toFixed(2)}%` },
        { header: 'MEM USAGE / LIMIT', value: (s) => `${formatBytes(s.memoryUsageBytes)} / ${s.memoryLimitBytes > 2 ** 60 ? 'unlimited' : formatBytes(s.memoryLimitBytes)}` },
        { header: 'BLOCK I/O', value: (s) => `${formatBytes(s.blockReadBytes)} / ${formatBytes(s.blockWriteBytes)}` },
        { header: 'PIDS', value: (s) => String(s.pids) },
      ], format);
    });

  byRef('stop', 'Stop running containers (their stop signal, SIGTERM by default, then SIGKILL after the timeout)')
    .argument('<container...>', 'id, id prefix or name')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL (default: the container\'s stop grace period, else 10)')
    .action(async (refs: string[], options: { node?: string; time?: string }) => {
      const client = await connect(globals());
      if (options.time !== undefined && !(Number(options.time) >= 0)) throw new Error(`--time "${options.time}" is not a number of seconds`);
      for (const ref of refs) {
        await client.call('POST', `${containerPath(ref)}/stop${query({ node: options.node })}`, options.time === undefined ? {} : { timeout: Number(options.time) });
        process.stdout.write(`${ref}\n`);
      }
    });

  byRef('start', 'Start created or stopped containers (the same container: its writable layer and networks stay)')
    .argument('<container...>', 'id, id prefix or name')
    .option('-a, --attach', 'print the container\'s output until it exits, and exit with its code (one container)')
    .action(async (refs: string[], options: { node?: string; attach?: boolean }) => {
      const client = await connect(globals());
      if (options.attach && refs.length > 1) throw new Error('--attach takes one container');
      for (const ref of refs) {
        const since = new Date().toISOString();
        const started = await client.call<Located<ContainerRecord>>('POST', `${containerPath(ref)}/start${query({ node: options.node })}`, {});
        if (!options.attach) {
          process.stdout.write(`${ref}\n`);
          continue;
        }
        const path = containerPath(started.id);
        await client.stream('GET', `${path}/logs${query({ follow: true, since, node: started.nodeId })}`, undefined, (line) => printLogLine(line as LogLine, false));
        const done = await client.call<Located<ContainerRecord>>('POST', `${path}/wait${query({ node: started.nodeId })}`, {});
        process.exitCode = done.exitCode ?? 1;
      }
    });

  byRef('restart', 'Restart containers: stop (stop signal, then SIGKILL after the timeout) and start again')
    .argument('<container...>', 'id, id prefix or name')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL (default: the container\'s stop grace period, else 10)')
    .action(async (refs: string[], options: { node?: string; time?: string }) => {
      const client = await connect(globals());
      const body = options.time === undefined ? {} : { timeout: seconds(options.time) };
      for (const ref of refs) {
        await client.call('POST', `${containerPath(ref)}/restart${query({ node: options.node })}`, body);
        process.stdout.write(`${ref}\n`);
      }
    });

  byRef('kill', 'Send a signal to running containers (SIGKILL unless -s names another)')
    .argument('<container...>', 'id, id prefix or name')
    .option('-s, --signal <signal>', 'signal name or number: KILL, TERM, HUP, USR1, 9, ...', 'KILL')
    .action(async (refs: string[], options: { node?: string; signal: string }) => {
      const client = await connect(globals());
      for (const ref of refs) {
        await client.call('POST', `${containerPath(ref)}/kill${query({ node: options.node })}`, { signal: options.signal });
        process.stdout.write(`${ref}\n`);
      }
    });

  for (const [verb, description] of [['pause', 'Freeze every process of running containers (the freezer cgroup)'], ['unpause', 'Thaw paused containers']] as const) {
    byRef(verb, description)
      .argument('<container...>', 'id, id prefix or name')
      .action(async (refs: string[], options: { node?: string }) => {
        const client = await connect(globals());
        for (const ref of refs) {
          await client.call('POST', `${containerPath(ref)}/${verb}${query({ node: options.node })}`, {});
          process.stdout.write(`${ref}\n`);
        }
      });
  }

  byRef('wait', 'Wait until containers stop, then print each one\'s exit code')
    .argument('<container...>', 'id, id prefix or name')
    .action(async (refs: string[], options: { node?: string }) => {
      const client = await connect(globals());
      for (const ref of refs) {
        const done = await client.call<Located<ContainerRecord>>('POST', `${containerPath(ref)}/wait${query({ node: options.node })}`, {});
        process.stdout.write(`${done.exitCode ?? ''}\n`);
      }
    });

  byRef('rename', 'Rename a container')
    .argument('<container>', 'id, id prefix or name')
    .argument('<new-name>', 'its new name')
    .action(async (ref: string, name: string, options: { node?: string }) => {
      await (await connect(globals())).call('POST', `${containerPath(ref)}/rename${query({ node: options.node })}`, { name });
    });

  byRef('top', 'Show a running container\'s processes (the host\'s ps, default -ef, cut to the container)')
    .argument('<container>', 'id, id prefix or name')
    .argument('[ps-options...]', 'options for ps, as `docker top C aux`')
    .option('--format <format>', 'table or json', 'table')
    .passThroughOptions()
    .action(async (ref: string, args: string[], options: { node?: string; format: string }) => {
      const format = parseFormat(options.format);
      const table = await (await connect(globals())).call<{ titles: string[]; processes: string[][] }>('POST', `${containerPath(ref)}/top${query({ node: options.node })}`, { args });
      if (format === 'json') return printObject(table);
      printList(table.processes, table.titles.map((title, i) => ({ header: title, value: (row: string[]) => row[i] ?? '', shrinkable: i === table.titles.length - 1 })), format);
    });

  byRef('port', 'List a container\'s published ports, or the host port of one: 80/tcp -> 0.0.0.0:8080')
    .argument('<container>', 'id, id prefix or name')
    .argument('[private-port]', 'one port, as 80 or 80/udp')
    .action(async (ref: string, privatePort: string | undefined, options: { node?: string }) => {
      const found = await (await connect(globals())).call<Located<ContainerRecord>>('GET', `${containerPath(ref)}${query({ node: options.node })}`);
      const lines = portLines(found.spec.publish, privatePort);
      if (privatePort && lines.length === 0) throw new Error(`no public port for ${privatePort} of container ${found.name}`);
      process.stdout.write(lines.map((line) => `${privatePort ? line.slice(line.indexOf('-> ') + 3) : line}\n`).join(''));
    });

  const update = byRef('update', 'Change the resource limits of containers, running or not')
    .argument('<container...>', 'id, id prefix or name');
  withLimitFlags(update)
    .action(async (refs: string[], options: UpdateFlags & { node?: string }) => {
      const resources = updateFlagsToResources(options);
      const client = await connect(globals());
      for (const ref of refs) {
        await client.call('POST', `${containerPath(ref)}/update${query({ node: options.node })}`, { resources });
        process.stdout.write(`${ref}\n`);
      }
    });

  container
    .command('prune')
    .description('Remove every stopped container (created or exited) on every Ready node; service tasks\' containers are left to their nodes')
    .option('--node <node>', 'one node only')
    .option('--filter <label=key[=value]>', 'only containers with this label (repeatable)', collect, [])
    .option('-f, --force', 'do not ask')
    .action(async (options: { node?: string; filter: string[]; force?: boolean }) => {
      const filters = parseFilters(options.filter, ['label']);
      if (!options.force && !(await confirm('WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] '))) return;
      const results = await (await connect(globals())).call<Array<{ node: string; removed: string[]; reclaimedBytes: number; error?: string }>>('POST', '/v1/containers/prune', {
        ...(options.node ? { node: options.node } : {}),
        labels: filters.get('label') ?? [],
      });
      const removed = results.flatMap((r) => r.removed);
      if (removed.length) process.stdout.write(`Deleted Containers:\n${removed.map((id) => `${id}\n`).join('')}\n`);
      for (const r of results.filter((r) => r.error)) process.stderr.write(`shoal: ${r.node}: ${r.error}\n`);
      process.stdout.write(`Total reclaimed space: ${formatBytes(results.reduce((sum, r) => sum + r.reclaimedBytes, 0))}\n`);
    });

  byRef('cp', 'Copy files between a container and this machine (CONTAINER:PATH on one side; - is a tar on stdin or stdout)')
    .argument('<source>', 'CONTAINER:PATH, a local path, or -')
    .argument('<destination>', 'CONTAINER:PATH, a local path, or -')
    .option('-a, --archive', 'keep the files\' owners (default: root\'s in the container, yours here)')
    .option('-L, --follow-link', 'copy what a local source symlink points to, not the link')
    .option('-q, --quiet', 'print nothing on success')
    .action(async (sourceText: string, destinationText: string, options: { node?: string; archive?: boolean; followLink?: boolean; quiet?: boolean }) => {
      const source = parseCopyEnd(sourceText);
      const destination = parseCopyEnd(destinationText);
      if (Boolean(source.container) === Boolean(destination.container)) {
        throw new Error('name a container on exactly one side, as CONTAINER:PATH (a local path with a colon is written ./a:b)');
      }
      const client = await connect(globals());
      if (source.container) {
        const path = `${containerPath(source.container)}/archive${query({ node: options.node, path: source.path })}`;
        if (destination.path === '-') {
          await client.download(path, process.stdout);
          return;
        }
        await landArchive(destination.path, copiesContents(source.path), options.archive ?? false, (into) => client.download(path, into));
        if (!options.quiet) process.stderr.write(`Successfully copied ${source.container}:${source.path} to ${destination.path}\n`);
        return;
      }
      const target = `${containerPath(destination.container!)}/archive${query({ node: options.node, path: destination.path, keepOwner: options.archive, contents: copiesContents(source.path) || undefined })}`;
      if (source.path !== '-') await lstat(source.path).catch(() => {
        throw new Error(`${source.path}: no such file or directory here`);
      });
      await client.upload('PUT', target, () => (source.path === '-' ? process.stdin : localArchive(source.path, options.followLink ?? false)));
      if (!options.quiet) process.stderr.write(`Successfully copied ${source.path} to ${destination.container}:${destination.path}\n`);
    });

  byRef('commit', 'Make an image of a container\'s changes: its image\'s layers plus one, its config the container\'s')
    .argument('<container>', 'id, id prefix or name')
    .argument('[reference]', 'name the image, e.g. myapp:2')
    .option('-c, --change <instruction>', 'a Dockerfile instruction for the config: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, ... (repeatable)', collect, [])
    .option('-m, --message <text>', 'a comment for the image\'s history')
    .option('-a, --author <name>', 'the author, e.g. "Ann <ann@example.com>"')
    .option('--no-pause', 'do not pause the container while its changes are read')
    .action(async (ref: string, reference: string | undefined, options: { node?: string; change: string[]; message?: string; author?: string; pause: boolean }) => {
      const image = await (await connect(globals())).call<{ id: string; node: string }>('POST', `${containerPath(ref)}/commit${query({ node: options.node })}`, {
        ...(reference ? { reference } : {}),
        changes: options.change,
        ...(options.message ? { message: options.message } : {}),
        ...(options.author ? { author: options.author } : {}),
        pause: options.pause,
      });
      process.stdout.write(`${image.id}\n`);
    });

  byRef('diff', 'List what a container changed in its filesystem: A added, C changed, D deleted')
    .argument('<container>', 'id, id prefix or name')
    .option('--format <format>', 'text or json', 'text')
    .action(async (ref: string, options: { node?: string; format: string }) => {
      const changes = await (await connect(globals())).call<Array<{ kind: string; path: string }>>('GET', `${containerPath(ref)}/changes${query({ node: options.node })}`);
      if (options.format === 'json') return printObject(changes);
      process.stdout.write(changes.map((c) => `${c.kind} ${c.path}\n`).join(''));
    });

  byRef('export', 'Write a container\'s filesystem as a tar (mounts are not in it)')
    .argument('<container>', 'id, id prefix or name')
    .option('-o, --output <file>', 'write to this file, not stdout')
    .action(async (ref: string, options: { node?: string; output?: string }) => {
      if (!options.output && process.stdout.isTTY) throw new Error('refusing to write a tar to a terminal; use -o FILE or a redirect');
      const client = await connect(globals());
      await client.download(`${containerPath(ref)}/export${query({ node: options.node })}`, options.output ? createWriteStream(options.output) : process.stdout);
    });

  byRef('rm', 'Remove containers (with their writable layer, mounts and namespace)')
    .argument('<container...>', 'id, id prefix or name')
    .option('-f, --force', 'stop a running container first')
    .action(async (refs: string[], options: { node?: string; force?: boolean }) => {
      const client = await connect(globals());
      for (const ref of refs) {
        await client.call('DELETE', `${containerPath(ref)}${query({ node: options.node, force: options.force })}`);
        process.stdout.write(`${ref}\n`);
      }
    });
}
