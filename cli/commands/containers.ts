import type { Command } from 'commander';
import type { ContainerRecord, ContainerStats, ExecResult, LogLine } from '../../shared/containers.ts';
import { formatAge, formatBytes } from '../duration.ts';
import { parseFormat, printList, printObject } from '../output.ts';
import { runFlagsToSpec, type RunFlags } from '../run-flags.ts';
import { collect, connect, type GlobalOptions, query, getEach } from './common.ts';

type Located<T> = T & { node: string; nodeId: string };

function status(c: ContainerRecord): string {
  if (c.state === 'running') return `Up ${formatAge(c.startedAt).replace(' ago', '')}`;
  if (c.state === 'exited') return `Exited (${c.exitCode ?? '?'})${c.oomKilled ? ' OOM-killed' : ''} ${formatAge(c.finishedAt)}`;
  return c.state[0]!.toUpperCase() + c.state.slice(1);
}


function printLogLine(line: LogLine, timestamps: boolean, prefix = ''): void {
  const text = `${prefix}${timestamps ? `${line.time} ` : ''}${line.text}\n`;
  (line.stream === 'stderr' ? process.stderr : process.stdout).write(text);
}

export function registerContainerCommands(program: Command, globals: () => GlobalOptions): void {
  const container = program.command('container').description('Run and manage single containers on a chosen node');

  container
    .command('run')
    .description('Run a container on a node (pulls the image if needed)')
    .argument('<image>', 'image reference, e.g. busybox:1.35.0')
    .argument('[cmd...]', 'command and arguments')
    .requiredOption('--node <node>', 'node to run on (hostname or id)')
    .option('-d, --detach', 'print the container id and return at once')
    .option('--rm', 'remove the container when it exits (not with --detach)')
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
    .option('-l, --label <key=value>', 'label (repeatable)', collect, [])
    .option('-m, --memory <size>', 'memory limit, e.g. 64m')
    .option('--memory-swap <size>', 'memory plus swap limit; -1 unlimited (default twice --memory)')
    .option('--memory-reservation <size>', 'memory soft limit')
    .option('-c, --cpu-shares <n>', 'relative CPU weight')
    .option('--cpus <n>', 'CPU quota in CPUs, e.g. 0.5')
    .option('--cpuset-cpus <list>', 'CPUs allowed, e.g. 0-1')
    .option('--pids-limit <n>', 'maximum number of processes')
    .option('--blkio-weight <n>', 'block IO weight, 10 to 1000')
    .option('--device-read-bps <dev:rate>', 'read rate limit, e.g. /dev/vda:1mb (repeatable)', collect, [])
    .option('--device-write-bps <dev:rate>', 'write rate limit (repeatable)', collect, [])
    .option('--device-read-iops <dev:rate>', 'read IO/s limit (repeatable)', collect, [])
    .option('--device-write-iops <dev:rate>', 'write IO/s limit (repeatable)', collect, [])
    .option('-v, --volume <src:dst[:ro]>', 'bind mount (absolute source) or named volume (repeatable)', collect, [])
    .option('--tmpfs <path[:size=64m]>', 'tmpfs mount (repeatable)', collect, [])
    .option('--log-opt <key=value>', 'max-size=10m, max-file=3', collect, [])
    .passThroughOptions()
    .action(async (image: string, cmd: string[], options: RunFlags & { node: string; detach?: boolean; rm?: boolean }) => {
      const client = await connect(globals());
      const spec = runFlagsToSpec(image, cmd, options);
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

  container
    .command('ls')
    .alias('ps')
    .description('List containers on every Ready node (running ones unless --all)')
    .option('-a, --all', 'include stopped containers')
    .option('--node <node>', 'one node only')
    .option('-q, --quiet', 'ids only')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { all?: boolean; node?: string; quiet?: boolean; format: string }) => {
      const format = parseFormat(options.format);
      const containers = await (await connect(globals())).call<Array<Located<ContainerRecord>>>('GET', `/v1/containers${query({ all: options.all, node: options.node })}`);
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
      await client.stream('GET', `/v1/containers/${encodeURIComponent(ref)}/logs${query({ node: options.node, follow: options.follow, tail: options.tail, since: options.since })}`, undefined, (line) =>
        printLogLine(line as LogLine, options.timestamps ?? false),
      );
    });

  byRef('exec', 'Run a command in a running container; exits with its exit code')
    .argument('<container>', 'id, id prefix or name')
    .argument('<cmd...>', 'command and arguments')
    .option('-e, --env <NAME=value>', 'environment variable (repeatable)', collect, [])
    .option('-u, --user <user>', 'user to run as')
    .option('-w, --workdir <dir>', 'working directory')
    .passThroughOptions()
    .action(async (ref: string, cmd: string[], options: { node?: string; env: string[]; user?: string; workdir?: string }) => {
      const result = await (await connect(globals())).call<ExecResult>('POST', `/v1/containers/${encodeURIComponent(ref)}/exec${query({ node: options.node })}`, {
        cmd,
        env: options.env,
        ...(options.user ? { user: options.user } : {}),
        ...(options.workdir ? { workdir: options.workdir } : {}),
      });
      process.stdout.write(result.stdout);
      process.stderr.write(result.stderr);
      process.exitCode = result.exitCode;
    });

  byRef('stats', 'CPU, memory, pids and block IO of running containers')
    .argument('<container...>', 'id, id prefix or name')
    .option('--format <format>', 'table or json', 'table')
    .action(async (refs: string[], options: { node?: string; format: string }) => {
      const format = parseFormat(options.format);
      const client = await connect(globals());
      const stats = await Promise.all(refs.map((ref) => client.call<Located<ContainerStats> & { name: string }>('GET', `/v1/containers/${encodeURIComponent(ref)}/stats${query({ node: options.node })}`)));
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
        await client.call('POST', `/v1/containers/${encodeURIComponent(ref)}/stop${query({ node: options.node })}`, options.time === undefined ? {} : { timeout: Number(options.time) });
        process.stdout.write(`${ref}\n`);
      }
    });

  byRef('rm', 'Remove containers (with their writable layer, mounts and namespace)')
    .argument('<container...>', 'id, id prefix or name')
    .option('-f, --force', 'stop a running container first')
    .action(async (refs: string[], options: { node?: string; force?: boolean }) => {
      const client = await connect(globals());
      for (const ref of refs) {
        await client.call('DELETE', `/v1/containers/${encodeURIComponent(ref)}${query({ node: options.node, force: options.force })}`);
        process.stdout.write(`${ref}\n`);
      }
    });
}
