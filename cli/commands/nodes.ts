import { hostname } from 'node:os';
import type { Command } from 'commander';
import type { NodeView } from '../../shared/schemas.ts';
import { formatBytes } from '../duration.ts';
import { keep, labelMatches, parseFilters } from '../filters.ts';
import { checkInspectFormat, parseFormat, printList, printObject } from '../output.ts';
import { prettyNode } from '../pretty.ts';
import type { Column } from '../table.ts';
import { type GlobalOptions, connect, collect, parseLabels } from './common.ts';
import { printTasks, taskFilter, type TaskListFlags, type TaskRow, withTaskListOptions } from './services.ts';

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
    .option('-f, --filter <key=value>', 'id=, label= (engine), node.label=, membership=accepted, name=, role=manager|worker (repeatable)', collect, [])
    .option('-q, --quiet', 'only ids')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { filter: string[]; quiet?: boolean; format: string }) => {
      const format = parseFormat(options.format);
      const filters = parseFilters(options.filter, ['id', 'label', 'node.label', 'membership', 'name', 'role']);
      const all = await (await connect(globals())).call<NodeView[]>('GET', '/v1/nodes');
      const nodes = keep(all, filters, {
        id: (n, v) => n.id.startsWith(v),
        label: (n, v) => labelMatches(n.description.engineLabels, v),
        'node.label': (n, v) => labelMatches(n.spec.labels, v),
        // Every stored node has been accepted: a join token admits it at once.
        membership: (_n, v) => v === 'accepted',
        name: (n, v) => n.description.hostname.startsWith(v),
        role: (n, v) => n.spec.role === v,
      });
      nodes.sort((a, b) => a.description.hostname.localeCompare(b.description.hostname));
      if (options.quiet) return void process.stdout.write(nodes.map((n) => `${n.id}\n`).join(''));
      printList(nodes, nodeColumns, format);
    });

  withTaskListOptions(
    node
      .command('ps')
      .description('Tasks running on nodes (default: every node)')
      .argument('[node...]', 'node id, id prefix or hostname'),
  ).action(async (references: string[], options: TaskListFlags) => {
      const format = parseFormat(options.format);
      const client = await connect(globals());
      type NodeTask = Omit<TaskRow, 'spec'> & { image: string };
      const tasks: NodeTask[] = [];
      if (references.length === 0) tasks.push(...(await client.call<NodeTask[]>('GET', '/v1/tasks')).filter((t) => t.nodeId));
      for (const reference of references) tasks.push(...(await client.call<NodeTask[]>('GET', `/v1/tasks?node=${encodeURIComponent(reference)}`)));
      printTasks(taskFilter(tasks, options.filter), options, format, (t) => t.image);
    });

  node
    .command('inspect')
    .description('Show one or more nodes in full, as JSON (or --pretty); "self" is the node of this host')
    .argument('<node...>', 'node id, id prefix or hostname')
    .option('--pretty', 'a readable summary instead of JSON')
    .option('-f, --format <format>', 'json (the default)')
    .action(async (references: string[], options: { pretty?: boolean; format?: string }) => {
      checkInspectFormat(options.format, true);
      const client = await connect(globals());
      const nodes: NodeView[] = [];
      for (const reference of references) nodes.push(await client.call<NodeView>('GET', `/v1/nodes/${encodeURIComponent(reference === 'self' ? hostname() : reference)}`));
      if (options.pretty) process.stdout.write(nodes.map(prettyNode).join('\n'));
      else printObject(nodes);
    });

  for (const [verb, role] of [['promote', 'manager'], ['demote', 'worker']] as const) {
    node
      .command(verb)
      .description(`Set nodes' role to ${role} (the same as node update --role ${role})`)
      .argument('<node...>', 'node id, id prefix or hostname')
      .action(async (references: string[]) => {
        const client = await connect(globals());
        for (const reference of references) {
          const before = await client.call<NodeView>('GET', `/v1/nodes/${encodeURIComponent(reference)}`);
          if (before.spec.role === role) {
            process.stdout.write(`Node ${before.description.hostname} is already a ${role}.\n`);
            continue;
          }
          await client.call<NodeView>('PATCH', `/v1/nodes/${encodeURIComponent(reference)}`, { role });
          process.stdout.write(`Node ${before.description.hostname} ${verb}d to a ${role} in the swarm.\n`);
        }
      });
  }

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
