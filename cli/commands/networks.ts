import type { Command } from 'commander';
import type { NetworkDetail, NetworkView } from '../../manager/api/networks.ts';
import { ShoalError } from '../../shared/errors.ts';
import { printList, printObject, parseFormat } from '../output.ts';
import type { Column } from '../table.ts';
import { type GlobalOptions, collect, connect, parseLabels, query } from './common.ts';

const networkColumns: Column<NetworkView>[] = [
  { header: 'NETWORK ID', value: (n) => n.id.slice(0, 12) },
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
  const network = program.command('network').description('Networks: local bridges and overlays across the hosts');

  network
    .command('create')
    .description('Create a network')
    .argument('<name>', 'network name')
    .option('-d, --driver <driver>', 'bridge (one host) or overlay (across hosts)', 'bridge')
    .option('--subnet <cidr>', 'subnet, such as 198.19.10.0/24 (repeatable)', collect, [])
    .option('--gateway <ip>', 'gateway of the subnet given before it (repeatable)', collect, [])
    .option('--ip-range <cidr>', 'allocate task addresses from this part of the subnet (repeatable)', collect, [])
    .option('--internal', 'no traffic to or from outside the network')
    .option('--attachable', 'standalone containers may join it (overlay)')
    .option('-o, --opt <key=value>', 'driver option, such as mtu=1400 or icc=false (repeatable)', collect, [])
    .option('--label <key=value>', 'label (repeatable)', collect, [])
    .action(async (name: string, options: { driver: string; subnet: string[]; gateway: string[]; ipRange: string[]; internal?: boolean; attachable?: boolean; opt: string[]; label: string[] }) => {
      const created = await (await connect(globals())).call<NetworkView>('POST', '/v1/networks', {
        name,
        driver: options.driver,
        ipam: { pools: pools(options.subnet, options.gateway, options.ipRange) },
        internal: options.internal ?? false,
        attachable: options.attachable ?? false,
        options: parseLabels(options.opt),
        labels: parseLabels(options.label),
      });
      process.stdout.write(`${created.id}\n`);
    });

  network
    .command('ls')
    .alias('list')
    .description('List networks')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { format: string }) => {
      const format = parseFormat(options.format);
      printList(await (await connect(globals())).call<NetworkView[]>('GET', '/v1/networks'), networkColumns, format);
    });

  network
    .command('inspect')
    .description('Show networks in full, with their endpoints, as JSON')
    .argument('<network...>', 'network name, id or id prefix')
    .option('-v, --verbose', 'also each host\'s kernel state (VTEP, FDB and neighbour entries) and where it differs from its peer table')
    .action(async (references: string[], options: { verbose?: boolean }) => {
      const client = await connect(globals());
      const found: NetworkDetail[] = [];
      for (const reference of references) {
        found.push(await client.call<NetworkDetail>('GET', `/v1/networks/${encodeURIComponent(reference)}${query({ verbose: options.verbose })}`));
      }
      printObject(found);
    });

  network
    .command('connect')
    .description('Join a running container to a network (an overlay must be --attachable)')
    .argument('<network>', 'network name or id')
    .argument('<container>', 'container name or id')
    .option('--ip <address>', 'static address (the network must have been created with --subnet)')
    .option('--node <node>', 'the node the container runs on, when its name is on several')
    .action(async (reference: string, container: string, options: { ip?: string; node?: string }) => {
      const record = await (await connect(globals())).call<{ spec: { attachments: Array<{ networkName: string; address: string }> } }>(
        'POST',
        `/v1/networks/${encodeURIComponent(reference)}/connect`,
        { container, ...(options.ip ? { ip: options.ip } : {}), ...(options.node ? { node: options.node } : {}) },
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
    .action(async (reference: string, container: string, options: { node?: string }) => {
      await (await connect(globals())).call('POST', `/v1/networks/${encodeURIComponent(reference)}/disconnect`, { container, ...(options.node ? { node: options.node } : {}) });
    });

  network
    .command('rm')
    .alias('remove')
    .description('Remove networks; refused while something uses them')
    .argument('<network...>', 'network name, id or id prefix')
    .action(async (references: string[]) => {
      const client = await connect(globals());
      for (const reference of references) {
        const removed = await client.call<NetworkView>('DELETE', `/v1/networks/${encodeURIComponent(reference)}`);
        process.stdout.write(`${removed.spec.name}\n`);
      }
    });

  network
    .command('prune')
    .description('Remove every network nothing uses (built-in ones stay)')
    .action(async () => {
      const { removed } = await (await connect(globals())).call<{ removed: string[] }>('POST', '/v1/networks/prune');
      process.stdout.write(removed.length ? `Deleted Networks:\n${removed.join('\n')}\n` : 'No networks to remove\n');
    });
}
