import { collect } from './common.ts';
import type { Command } from 'commander';
import { defaultLabName, type LabTopology, metricsEndpoints } from '../../lab/topology.ts';
import { parseDuration } from '../duration.ts';
import { parseFormat, printList } from '../output.ts';

/** The lab's code (etcd's client, the native addon) loads only for lab commands: other commands start faster. */
const labCode = async () => ({ ...(await import('../../lab/lab.ts')), ...(await import('../../lab/processes.ts')), ...(await import('../../native/netns.ts')) });

function progress(line: string): void {
  process.stderr.write(`  ${line}\n`);
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('the lab creates network namespaces and needs root; run it with sudo');
}

async function loadLab(name: string) {
  const { Lab, listLabs } = await labCode();
  const lab = await Lab.load(name);
  if (!lab) {
    const labs = await listLabs();
    throw new Error(`no lab named "${name}"${labs.length ? ` (labs: ${labs.join(', ')})` : ''}; start one with \`shoal lab up\``);
  }
  return lab;
}

export function registerLabCommands(program: Command): void {
  const lab = program.command('lab').description('A cluster of several hosts on this machine, made of network namespaces');

  lab
    .command('up')
    .description('Build a lab: hosts, etcd, managers and agents, and point the CLI at it')
    .option('--hosts <n>', 'number of hosts', '3')
    .option('--managers <n>', 'how many of the hosts run a manager', '1')
    .option('--etcd <n>', 'etcd members (1, 3 or 5)', '1')
    .option('--name <name>', 'lab name', defaultLabName)
    .option('--heartbeat-period <duration>', 'agents\' heartbeat period', '5s')
    .option('--dns-upstream <ip>', 'a resolver in the lab for names the cluster does not know (repeatable, at most 3)', collect, [])
    .action(async (options: { hosts: string; managers: string; etcd: string; name: string; heartbeatPeriod: string; dnsUpstream: string[] }) => {
      requireRoot();
      process.stderr.write(`Bringing up lab "${options.name}"\n`);
      const started = Date.now();
      const { labUp } = await labCode();
      const up = await labUp(
        {
          name: options.name,
          hosts: Number(options.hosts),
          managers: Number(options.managers),
          etcdMembers: Number(options.etcd),
          heartbeatPeriodMs: parseDuration(options.heartbeatPeriod),
          dnsUpstreams: options.dnsUpstream,
        },
        progress,
      );
      process.stdout.write(
        [
          `Lab "${up.name}" is up in ${((Date.now() - started) / 1000).toFixed(1)}s.`,
          `  context: ${up.record.contextFile} (also the CLI's default now; SHOAL_CONTEXT=${up.record.contextFile} picks this lab)`,
          `  logs:    ${up.record.dir}/<host>/*.log (see \`shoal lab status --name ${up.name}\`)`,
          ...metricsLines(up.record.topology),
          '  try:     shoal node ls',
          '',
        ].join('\n'),
      );
    });

  lab
    .command('down')
    .description('Remove every namespace, process, mount and file of a lab')
    .option('--name <name>', 'lab name', defaultLabName)
    .action(async (options: { name: string }) => {
      requireRoot();
      const { labDown } = await labCode();
      const result = await labDown(options.name, progress);
      process.stdout.write(result.removed ? `Lab "${options.name}" removed.\n` : `No lab "${options.name}" was up; nothing to remove.\n`);
    });

  lab
    .command('status')
    .description('Show a lab\'s hosts, processes and where their logs are')
    .option('--name <name>', 'lab name', defaultLabName)
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { name: string; format: string }) => {
      const format = parseFormat(options.format);
      const found = await loadLab(options.name);
      const { readSupervision, isAlive, listLinks, netnsPath } = await labCode();
      const rows = await Promise.all(
        found.record.processes.map(async (p) => {
          const seen = await readSupervision(p);
          const supervised = seen !== undefined && isAlive(seen.supervisorPid);
          const running = seen ? seen.state === 'running' && isAlive(seen.pid) : isAlive(p.pid);
          return {
            process: p.key,
            netns: p.netns,
            pid: running ? ((seen?.pid || p.pid) ?? null) : null,
            running,
            state: !supervised ? (running ? 'running' : 'stopped') : seen.state === 'held' ? 'killed (held until lab start)' : seen.state,
            restarts: seen?.restarts ?? 0,
            lastExit: seen?.lastExit ?? null,
            log: p.log,
          };
        }),
      );
      // The underlay as the kernel has it now, read inside each host's namespace.
      const hosts = await Promise.all(
        found.record.topology.hosts.map(async (host) => {
          const links = await listLinks(netnsPath(host.netns)).catch(() => undefined);
          const eth0 = links?.find((l) => l.name === 'eth0');
          return { host: host.name, netns: host.netns, manager: host.manager, address: host.address, underlay: eth0 ? `${eth0.up ? 'up' : 'down'} ${eth0.addresses.filter((a) => a.includes('.')).join(' ')} mtu ${eth0.mtu}` : 'missing' };
        }),
      );
      if (format === 'json') {
        process.stdout.write(`${JSON.stringify({ name: found.name, dir: found.record.dir, context: found.record.contextFile, hosts, processes: rows }, null, 2)}\n`);
        return;
      }
      process.stdout.write(`Lab "${found.name}" in ${found.record.dir}\ncontext: ${found.record.contextFile}\n\n`);
      printList(hosts, [
        { header: 'HOST', value: (h) => h.host },
        { header: 'NETNS', value: (h) => h.netns },
        { header: 'ROLE', value: (h) => (h.manager ? 'manager' : 'worker') },
        { header: 'ETH0 (KERNEL)', value: (h) => h.underlay, shrinkable: true },
      ], 'table');
      process.stdout.write('\n');
      printList(rows, [
        { header: 'PROCESS', value: (r) => r.process },
        { header: 'NETNS', value: (r) => r.netns },
        { header: 'PID', value: (r) => String(r.pid ?? '-') },
        { header: 'STATE', value: (r) => r.state },
        { header: 'RESTARTS', value: (r) => String(r.restarts) },
        { header: 'LAST EXIT', value: (r) => (r.lastExit ? `${r.lastExit.signal ?? `code ${r.lastExit.code}`} at ${r.lastExit.at.slice(11, 19)}` : '-') },
        { header: 'LOG', value: (r) => r.log, shrinkable: true },
      ], 'table');
    });

  lab
    .command('kill')
    .description('Fail one lab process (SIGKILL) and keep it down until `lab start`: e.g. `shoal lab kill h2/agent`')
    .argument('<process>', 'etcd0, h1/manager, h2/agent, ...')
    .option('--name <name>', 'lab name', defaultLabName)
    .action(async (key: string, options: { name: string }) => {
      await (await loadLab(options.name)).kill(key);
      process.stdout.write(`${key} killed\n`);
    });

  lab
    .command('start')
    .description('Start a lab process again after `lab kill`')
    .argument('<process>', 'etcd0, h1/manager, h2/agent, ...')
    .option('--name <name>', 'lab name', defaultLabName)
    .action(async (key: string, options: { name: string }) => {
      await (await loadLab(options.name)).start(key);
      process.stdout.write(`${key} started\n`);
    });

  lab
    .command('exec')
    .description('Run a command inside a lab: on its infra namespace (outside the cluster, on the underlay; the default) or on one of its hosts')
    .argument('<command...>', 'the command and its arguments (put -- before them)')
    .option('--name <name>', 'lab name (default: $SHOAL_LAB, else lab)')
    .option('--on <where>', 'infra, or a host such as h2', 'infra')
    .passThroughOptions()
    .action(async (command: string[], options: { name?: string; on: string }) => {
      requireRoot();
      const { topology } = (await loadLab(options.name ?? process.env.SHOAL_LAB ?? defaultLabName)).record;
      const netns = options.on === 'infra' ? topology.infraNetns : topology.hosts.find((h) => h.name === options.on)?.netns;
      if (!netns) throw new Error(`--on ${options.on}: not infra or a host of the lab (${topology.hosts.map((h) => h.name).join(', ')})`);
      const { spawn } = await import('node:child_process');
      const child = spawn('ip', ['netns', 'exec', netns, ...command], { stdio: 'inherit' });
      const code = await new Promise<number>((resolve) => {
        child.on('error', (error) => {
          process.stderr.write(`${command[0]}: ${error.message}\n`);
          resolve(127);
        });
        child.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 128 : 1)));
      });
      process.exitCode = code;
    });

  lab
    .command('restore')
    .description('Restore a lab from `shoal cluster backup`: etcd rebuilt from the snapshot, managers restarted, agents rejoin')
    .argument('<file>', 'the backup')
    .option('--name <name>', 'lab name', defaultLabName)
    .action(async (file: string, options: { name: string }) => {
      await (await loadLab(options.name)).restore(file, (line) => process.stdout.write(`  ${line}\n`));
      process.stdout.write(`Lab "${options.name}" restored from ${file}.\n`);
    });
}

/** Where each daemon's metrics are, one line per host (reachable from inside the lab's namespaces). */
function metricsLines(topology: LabTopology): string[] {
  const byHost = new Map<string, string[]>();
  for (const endpoint of metricsEndpoints(topology)) byHost.set(endpoint.host, [...(byHost.get(endpoint.host) ?? []), `${endpoint.role} ${endpoint.url}`]);
  return [...byHost].map(([host, urls], i) => `  ${i === 0 ? 'metrics:' : '        '} ${host}: ${urls.join(', ')}${i === 0 ? ` (inside the host: \`ip netns exec ${topology.hosts[0]!.netns} curl ...\`)` : ''}`);
}
