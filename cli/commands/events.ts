import type { Command } from 'commander';
import { connect, type GlobalOptions } from './common.ts';

interface ClusterEvent {
  time: string;
  type: string;
  action: string;
  id: string;
  name?: string;
  state?: string;
}

export function registerEventCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('events')
    .description('Print changes to services, tasks and nodes as they happen (until interrupted)')
    .option('--filter <type=KIND>', 'type=service, type=task or type=node')
    .option('--format <format>', 'table (one line per event) or json (one JSON object per line)', 'table')
    .action(async (options: { filter?: string; format: string }) => {
      const type = options.filter?.startsWith('type=') ? options.filter.slice(5) : undefined;
      if (options.filter && !type) throw new Error(`unknown --filter "${options.filter}"; use type=service, type=task or type=node`);
      await (await connect(globals())).stream('GET', `/v1/events${type ? `?type=${encodeURIComponent(type)}` : ''}`, undefined, (data) => {
        const event = data as ClusterEvent;
        if (options.format === 'json') process.stdout.write(`${JSON.stringify(event)}\n`);
        else process.stdout.write(`${event.time} ${event.type} ${event.action} ${event.id.slice(0, 12)}${event.name ? ` (name=${event.name}${event.state ? `, state=${event.state}` : ''})` : ''}\n`);
      });
    });
}
