import type { Command } from 'commander';
import type { NetworkDetail, NetworkView } from '../../manager/api/networks.ts';
import type { TraceAnswer } from '../../manager/api/trace.ts';
import { traceLines } from '../trace-text.ts';
import { ShoalError } from '../../shared/errors.ts';
import { keep, labelMatches, parseFilters } from '../filters.ts';
import { checkInspectFormat, parseFormat, printList, printObject } from '../output.ts';
import type { Column } from '../table.ts';
import { refuseFlags } from '../unsupported.ts';
import { type GlobalOptions, collect, connect, parseLabels, query, getEach } from './common.ts';

const networkColumns = (trunc: boolean): Column<NetworkView>[] => [
  { header: 'NETWORK ID', value: (n) => (trunc ? n.id.slice(0, 12) : n.id) },
  { header: 'NAME', value: (n) => n.spec.name, shrinkable: true },
  { header: 'DRIVER', value: (n) => n.spec.driver },
  { header: 'SCOPE', value: (n) => n.scope },
  { header: 'SUBNET', value: (n) => n.pools.map((p) => p.subnet).join(',') || '-' },
  { header: 'ENDPOINTS', value: (n) => String(n.endpoints) },
];

/** --subnet, --gateway and --ip-range pair up in order, as Docker pairs them. */
function pools(subnets: string[], gateways: string[], ranges: string[]) {
  if (gateways.length > subnets.length || ranges.length > subnets.length) {
    throw new ShoalError('invalid', 'invalid_flags', 'each --gateway and --ip-range belongs to a --subnet, in order', { hint: 'give --subnet before them, once per pool' });
  }
  return subnets.map((subnet, i) => ({ subnet, ...(gateways[i] ? { gateway: gateways[i] } : {}), ...(ranges[i] ? { ipRange: ranges[i] } : {}) }));
}

export function registerNetworkCommands(program: Command, globals: () => GlobalOptions): void {
  const network = program.command('network').description('Networks: local bridges, and overlay, macvlan and host-gw networks across the hosts');

  const create = network
    .command('create')
    .description('Create a network')
    .argument('<name>', 'network name')
    .option('-d, --driver <driver>', 'bridge (one host), overlay (VXLAN across hosts), macvlan (on a host interface\'s LAN), hostgw or calico (routed across hosts on one L2 segment)', 'bridge')
    .option('--subnet <cidr>', 'subnet, such as 198.19.10.0/24 (repeatable)', collect, [])
    .option('--gateway <ip>', 'gateway of the subnet given before it (repeatable)', collect, [])
    .option('--ip-range <cidr>', 'allocate task addresses from this part of the subnet (repeatable)', collect, [])
    .option('--internal', 'no traffic to or from outside the network')
    .option('--attachable', 'standalone containers may join it (overlay)')
    .option('--ingress', 'the routing mesh\'s network (an overlay; the cluster has one, which may be replaced once no service publishes)')
    .option('-o, --opt <key=value>', 'driver option, such as mtu=1400, icc=false, parent=eth0 or host_subnet_size=24 (repeatable)', collect, [])
    .option('--label <key=value>', 'label (repeatable)', collect, [])
    .option('--scope <scope>', 'local or swarm, where the driver takes both (macvlan); bridge is local, overlay and hostgw swarm')
    .option('--config-only', 'only hold subnets and options for networks made with --config-from')
    .option('--config-from <network>', 'take the subnets and options of this config-only network')
    .option('--ipam-driver <driver>', 'default (the only one: the manager\'s IPAM in etcd, host-local for local networks)');
  refuseFlags(create, [
    { flag: '--ipv6', reason: 'Shoal networks are IPv4 only' },
    { flag: '--aux-address <name=ip>', reason: 'reserving auxiliary addresses is not supported yet; use --ip-range to keep part of the subnet free' },
    { flag: '--ipam-opt <key=value>', reason: 'the default IPAM takes no options' },
  ])
    .action(async (name: string, options: { driver: string; subnet: string[]; gateway: string[]; ipRange: string[]; internal?: boolean; attachable?: boolean; ingress?: boolean; opt: string[]; label: string[]; scope?: string; configOnly?: boolean; configFrom?: string; ipamDriver?: string }) => {
      if (options.ipamDriver !== undefined && options.ipamDriver !== 'default') throw new ShoalError('invalid', 'unsupported_flag', `--ipam-driver ${options.ipamDriver} is not supported: Shoal has one IPAM, "default"`);
      if (options.scope !== undefined && !['local', 'swarm'].includes(options.scope)) throw new ShoalError('invalid', 'invalid_flags', `--scope ${options.scope}: use local or swarm`);
      const created = await (await connect(globals())).call<NetworkView>('POST', '/v1/networks', {
        name,
        driver: options.driver,
        ipam: { pools: pools(options.subnet, options.gateway, options.ipRange) },
        internal: options.internal ?? false,
        attachable: options.attachable ?? false,
        ingress: options.ingress ?? false,
        options: parseLabels(options.opt),
        labels: parseLabels(options.label),
        ...(options.scope ? { scope: options.scope } : {}),
        ...(options.configOnly ? { configOnly: true } : {}),
        ...(options.configFrom ? { configFrom: options.configFrom } : {}),
      });
      process.stdout.write(`${created.id}\n`);
    });

  network
    .command('ls')
    .alias('list')
    .description('List networks')
    .option('-f, --filter <key=value>', 'driver=, id=, label=, name=, scope=local|swarm, type=custom|builtin (repeatable)', collect, [])
    .option('--no-trunc', 'full ids')
    .option('-q, --quiet', 'only ids')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { filter: string[]; trunc: boolean; quiet?: boolean; format: string }) => {
      const format = parseFormat(options.format);
      const filters = parseFilters(options.filter, ['driver', 'id', 'label', 'name', 'scope', 'type']);
      const networks = keep(await (await connect(globals())).call<NetworkView[]>('GET', '/v1/networks'), filters, {
        driver: (n, v) => n.spec.driver === v,
        id: (n, v) => n.id.startsWith(v),
        label: (n, v) => labelMatches(n.spec.labels, v),
        name: (n, v) => n.spec.name.includes(v),
        scope: (n, v) => n.scope === v,
        type: (n, v) => (v === 'builtin' ? n.builtin : v === 'custom' ? !n.builtin : false),
      });
      if (options.quiet) return void process.stdout.write(networks.map((n) => `${options.trunc ? n.id.slice(0, 12) : n.id}\n`).join(''));
      printList(networks, networkColumns(options.trunc), format);
    });

  network
    .command('inspect')
    .description('Show networks in full, with their endpoints, as JSON')
    .argument('<network...>', 'network name, id or id prefix')
    .option('-v, --verbose', 'also each host\'s kernel state (VTEP, FDB and neighbour entries, DNS records, VIP rules) and where it differs from what the leader intends')
    .option('-f, --format <format>', 'json (the default)')
    .action(async (references: string[], options: { verbose?: boolean; format?: string }) => {
      checkInspectFormat(options.format, false);
      const client = await connect(globals());
      const found = await getEach<NetworkDetail>(client, '/v1/networks', references, query({ verbose: options.verbose }));
      printObject(found);
    });

  network
    .command('trace')
    .description('Why A can or cannot reach B: each hop from each agent\'s view (entries, routes, MTU, policy, the reply path) and a live probe; exit 0 only when the path works')
    .argument('<from>', 'a task (service.slot.id) or container')
    .argument('<to>', 'a task, container, or service (through its VIP)')
    .option('--port <port>', 'probe this port (TCP unless --proto says otherwise)')
    .option('--proto <protocol>', 'tcp, udp or icmp (icmp without --port)')
    .option('--size <bytes>', 'the probe\'s payload size (ICMP), to find MTU black holes')
    .option('--format <format>', 'table or json', 'table')
    .action(async (from: string, to: string, options: { port?: string; proto?: string; size?: string; format: string }) => {
      const format = parseFormat(options.format);
      const number = (flag: string, value: string | undefined, max: number) => {
        if (value === undefined) return undefined;
        if (!/^\d+$/.test(value) || Number(value) > max) throw new ShoalError('invalid', 'invalid_flags', `${flag} "${value}" is not a number from 0 to ${max}`);
        return Number(value);
      };
      if (options.proto !== undefined && !['tcp', 'udp', 'icmp'].includes(options.proto)) throw new ShoalError('invalid', 'invalid_flags', `--proto "${options.proto}": use tcp, udp or icmp`);
      const answer = await (await connect(globals())).call<TraceAnswer>('POST', '/v1/networks/trace', {
        from, to,
        ...(options.proto ? { protocol: options.proto } : {}),
        ...(options.port !== undefined ? { port: number('--port', options.port, 65535) } : {}),
        ...(options.size !== undefined ? { size: number('--size', options.size, 65000) } : {}),
      });
      if (format === 'json') process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
      else process.stdout.write(traceLines(answer).map((line) => `${line.text}\n`).join(''));
      if (!answer.ok) process.exitCode = 1;
    });

  network
    .command('check')
    .description('Compare every host\'s kernel state of networks with what the cluster intends (peer entries, routes, DNS records, VIP rules, policy tables); exit 1 while something differs')
    .argument('[network...]', 'network names or ids (all by default)')
    .option('--repair', 'program what differs again through the drivers, then check once more')
    .option('--format <format>', 'table or json', 'table')
    .action(async (references: string[], options: { repair?: boolean; format: string }) => {
      const format = parseFormat(options.format);
      const client = await connect(globals());
      const names = references.length > 0 ? references : (await client.call<NetworkView[]>('GET', '/v1/networks')).map((n) => n.spec.name).sort();
      const check = async (name: string) => {
        const detail = await client.call<NetworkDetail>('GET', `/v1/networks/${encodeURIComponent(name)}?verbose=true`);
        const hosts = (detail.hosts ?? []).flatMap((h) => [...h.problems, ...(h.error ? [`not asked: ${h.error}`] : [])].map((problem) => ({ host: h.hostname, problem })));
        return { network: detail.spec.name, problems: hosts };
      };
      const results: Array<{ network: string; problems: Array<{ host: string; problem: string }>; repaired?: Array<{ host: string; problem: string }> }> = [];
      for (const name of names) {
        const before = await check(name);
        if (!options.repair || before.problems.length === 0) {
          results.push(before);
          continue;
        }
        await client.call('POST', `/v1/networks/${encodeURIComponent(name)}/repair`);
        // What the repair fixed shows in the kernel at once; a moment for the last writes.
        let after = await check(name);
        for (let i = 0; i < 10 && after.problems.length > 0; i++) {
          await new Promise((resolve) => setTimeout(resolve, 300));
          after = await check(name);
        }
        results.push({ network: name, problems: after.problems, repaired: before.problems.filter((p) => !after.problems.some((a) => a.host === p.host && a.problem === p.problem)) });
      }
      if (format === 'json') process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      else {
        for (const result of results) {
          const fixed = result.repaired ?? [];
          if (result.problems.length === 0) process.stdout.write(`✓ ${result.network}: every host holds what the cluster intends${fixed.length ? ` (repaired ${fixed.length})` : ''}\n`);
          else process.stdout.write(`✗ ${result.network}: ${result.problems.length} difference${result.problems.length > 1 ? 's' : ''}${options.repair ? ' left after the repair' : ''}\n`);
          for (const item of fixed) process.stdout.write(`    repaired on ${item.host}: ${item.problem}\n`);
          for (const item of result.problems) process.stdout.write(`    ${item.host}: ${item.problem}\n`);
        }
        if (!options.repair && results.some((r) => r.problems.length > 0)) process.stdout.write('(shoal network check --repair programs them again)\n');
      }
      if (results.some((r) => r.problems.length > 0)) process.exitCode = 1;
    });

  const connectCommand = network
    .command('connect')
    .description('Join a running container to a network (an overlay must be --attachable)')
    .argument('<network>', 'network name or id')
    .argument('<container>', 'container name or id')
    .option('--ip <address>', 'static address (the network must have been created with --subnet)')
    .option('--node <node>', 'the node the container runs on, when its name is on several')
    .option('--alias <alias>', 'another name it answers to on this network, through the embedded DNS (repeatable)', collect, []);
  refuseFlags(connectCommand, [
    { flag: '--ip6 <address>', reason: 'Shoal networks are IPv4 only' },
    { flag: '--link <container>', reason: 'legacy links are not supported; containers on one network reach each other by address' },
    { flag: '--link-local-ip <address>', reason: 'link-local addresses are not supported' },
    { flag: '--driver-opt <key=value>', reason: 'no driver takes per-endpoint options yet' },
    { flag: '--gw-priority <n>', reason: 'the default gateway is always the first network\'s' },
  ])
    .action(async (reference: string, container: string, options: { ip?: string; node?: string; alias: string[] }) => {
      const record = await (await connect(globals())).call<{ spec: { attachments: Array<{ networkName: string; address: string }> } }>(
        'POST',
        `/v1/networks/${encodeURIComponent(reference)}/connect`,
        { container, ...(options.ip ? { ip: options.ip } : {}), ...(options.node ? { node: options.node } : {}), ...(options.alias.length ? { aliases: options.alias } : {}) },
      );
      const joined = record.spec.attachments.at(-1);
      process.stdout.write(`${container}: ${joined?.networkName ?? reference} ${joined?.address ?? ''}\n`);
    });

  network
    .command('disconnect')
    .description('Take a container off a network')
    .argument('<network>', 'network name or id')
    .argument('<container>', 'container name or id')
    .option('--node <node>', 'the node the container runs on, when its name is on several')
    .option('-f, --force', 'accepted for Docker\'s sake: a disconnect is always forced')
    .action(async (reference: string, container: string, options: { node?: string }) => {
      await (await connect(globals())).call('POST', `/v1/networks/${encodeURIComponent(reference)}/disconnect`, { container, ...(options.node ? { node: options.node } : {}) });
    });

  network
    .command('rm')
    .alias('remove')
    .description('Remove networks; refused while something uses them')
    .argument('<network...>', 'network name, id or id prefix')
    .option('-f, --force', 'no error for a network that does not exist')
    .action(async (references: string[], options: { force?: boolean }) => {
      const client = await connect(globals());
      for (const reference of references) {
        const removed = await client.call<NetworkView>('DELETE', `/v1/networks/${encodeURIComponent(reference)}`).catch((error: unknown) => {
          if (options.force && error instanceof ShoalError && error.kind === 'not_found') return undefined;
          throw error;
        });
        if (removed) process.stdout.write(`${removed.spec.name}\n`);
      }
    });

  const prune = network
    .command('prune')
    .description('Remove every network nothing uses (built-in ones stay)')
    .option('-f, --force', 'accepted for Docker\'s sake: prune does not ask');
  refuseFlags(prune, [{ flag: '--filter <key=value>', reason: 'prune removes every unused network; it takes no filters yet' }])
    .action(async () => {
      const { removed } = await (await connect(globals())).call<{ removed: string[] }>('POST', '/v1/networks/prune');
      process.stdout.write(removed.length ? `Deleted Networks:\n${removed.join('\n')}\n` : 'No networks to remove\n');
    });
}
