import type { Command } from 'commander';
import type { ClusterEvent } from '../../manager/event-log.ts';
import { parseDuration } from '../duration.ts';
import { connect, type GlobalOptions, query } from './common.ts';


export function registerEventCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('events')
    .description('Print changes to services, tasks and nodes as they happen (until interrupted)')
    .option('--filter <type=KIND>', 'type=service, type=task, type=node or type=network')
    .option('--since <time>', 'first replay what happened since: an ISO time, or a duration such as 10m')
    .option('--format <format>', 'table (one line per event) or json (one JSON object per line)', 'table')
    .action(async (options: { filter?: string; since?: string; format: string }) => {
      const type = options.filter?.startsWith('type=') ? options.filter.slice(5) : undefined;
      if (options.filter && !type) throw new Error(`unknown --filter "${options.filter}"; use type=service, type=task, type=node or type=network`);
      const since = options.since === undefined ? undefined : /^\d+(\.\d+)?(ms|s|m|h)$/.test(options.since) ? new Date(Date.now() - parseDuration(options.since)).toISOString() : options.since;
      await (await connect(globals())).stream('GET', `/v1/events${query({ type, since })}`, undefined, (data) => {
        const event = data as ClusterEvent;
        if (options.format === 'json') process.stdout.write(`${JSON.stringify(event)}\n`);
        else process.stdout.write(`${event.time} ${event.type} ${event.action} ${event.id.slice(0, 12)}${event.name ? ` (name=${event.name}${event.state ? `, state=${event.state}` : ''})` : ''}\n`);
      });
    });
}
