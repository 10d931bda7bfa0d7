import type { Command } from 'commander';
import type { NodeView } from '../../shared/schemas.ts';
import { formatBytes } from '../duration.ts';
import { printList, printObject, parseFormat } from '../output.ts';
import type { Column } from '../table.ts';
import { type GlobalOptions, connect, collect, parseLabels } from './common.ts';

const nodeColumns: Column<NodeView>[] = [
  { header: 'ID', value: (n) => n.id.slice(-12) },
  { header: 'HOSTNAME', value: (n) => n.description.hostname, shrinkable: true },
  { header: 'STATUS', value: (n) => n.status.state[0]!.toUpperCase() + n.status.state.slice(1) },
  { header: 'AVAILABILITY', value: (n) => n.spec.availability[0]!.toUpperCase() + n.spec.availability.slice(1) },
  { header: 'MANAGER STATUS', value: (n) => (n.managerStatus ? n.managerStatus[0]!.toUpperCase() + n.managerStatus.slice(1) : '') },
  { header: 'ADDRESS', value: (n) => n.description.address },
  { header: 'CPUS', value: (n) => String(n.description.cpus) },
  { header: 'MEMORY', value: (n) => formatBytes(n.description.memoryBytes) },
  { header: 'LABELS', value: (n) => Object.entries(n.spec.labels).map(([k, v]) => `${k}=${v}`).join(',') , shrinkable: true },
];

export function registerNodeCommands(program: Command, globals: () => GlobalOptions): void {
  const node = program.command('node').description('Manage the cluster\'s nodes');

  node
    .command('ls')
    .alias('list')
    .description('List nodes, with status, availability and which manager leads')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { format: string }) => {
      const format = parseFormat(options.format);
      const nodes = await (await connect(globals())).call<NodeView[]>('GET', '/v1/nodes');
      nodes.sort((a, b) => a.description.hostname.localeCompare(b.description.hostname));
      printList(nodes, nodeColumns, format);
    });

  node
    .command('inspect')
    .description('Show one or more nodes in full, as JSON')
    .argument('<node...>', 'node id, id prefix or hostname')
    .action(async (references: string[]) => {
      const client = await connect(globals());
      const nodes = [];
      for (const reference of references) nodes.push(await client.call<NodeView>('GET', `/v1/nodes/${encodeURIComponent(reference)}`));
      printObject(nodes);
    });

  node
    .command('update')
    .description('Change a node\'s availability, role or labels')
    .argument('<node>', 'node id, id prefix or hostname')
    .option('--availability <availability>', 'active, pause or drain')
    .option('--role <role>', 'worker or manager')
    .option('--label-add <key=value>', 'add or change a label (repeatable)', collect, [])
    .option('--label-rm <key>', 'remove a label (repeatable)', collect, [])
    .action(async (reference: string, options: { availability?: string; role?: string; labelAdd: string[]; labelRm: string[] }) => {
      const body = {
        ...(options.availability ? { availability: options.availability } : {}),
        ...(options.role ? { role: options.role } : {}),
        ...(options.labelAdd.length ? { labelAdd: parseLabels(options.labelAdd) } : {}),
        ...(options.labelRm.length ? { labelRm: options.labelRm } : {}),
      };
      if (Object.keys(body).length === 0) throw new Error('nothing to update; pass --availability, --role, --label-add or --label-rm');
      const updated = await (await connect(globals())).call<NodeView>('PATCH', `/v1/nodes/${encodeURIComponent(reference)}`, body);
      process.stdout.write(`${updated.id}\n`);
    });

  node
    .command('rm')
    .alias('remove')
    .description('Remove nodes from the cluster')
    .argument('<node...>', 'node id, id prefix or hostname')
    .option('-f, --force', 'remove a node that is still up')
    .action(async (references: string[], options: { force?: boolean }) => {
      const client = await connect(globals());
      for (const reference of references) {
        const removed = await client.call<{ id: string }>('DELETE', `/v1/nodes/${encodeURIComponent(reference)}${options.force ? '?force=true' : ''}`);
        process.stdout.write(`${removed.id}\n`);
      }
    });
}
