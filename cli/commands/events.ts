import type { Command } from 'commander';
import type { ClusterEvent } from '../../manager/event-log.ts';
import { parseTimeFlag } from '../duration.ts';
import { keep, parseFilters } from '../filters.ts';
import { collect, connect, type GlobalOptions, query } from './common.ts';

export function registerEventCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('events')
    .description('Print changes to services, tasks, nodes and networks as they happen (until interrupted, or --until)')
    .option('-f, --filter <key=value>', 'type=service|task|node|network, event=create|update|remove, service=, node=, network=, name= (repeatable)', collect, [])
    .option('--since <time>', 'first replay what happened since: an ISO time, a Unix timestamp, or a duration such as 10m')
    .option('--until <time>', 'stop at this time (with a past time: replay only)')
    .option('--format <format>', 'table (one line per event) or json (one JSON object per line)', 'table')
    .action(async (options: { filter: string[]; since?: string; until?: string; format: string }) => {
      if (options.format !== 'json' && options.format !== 'table') throw new Error(`unknown --format "${options.format}"; use table or json`);
      const filters = parseFilters(options.filter, ['type', 'event', 'service', 'node', 'network', 'name']);
      const types = filters.get('type') ?? [];
      for (const type of types) if (!['service', 'task', 'node', 'network'].includes(type)) throw new Error(`--filter type=${type}: the types are service, task, node and network`);
      const since = options.since === undefined ? undefined : parseTimeFlag(options.since, '--since');
      const until = options.until === undefined ? undefined : parseTimeFlag(options.until, '--until');
      const serviceOf = (e: ClusterEvent) => (e.type === 'task' ? e.name?.replace(/\.\d+$/, '') : e.type === 'service' ? e.name : undefined);
      const stop = new AbortController();
      if (until) {
        const wait = Date.parse(until) - Date.now();
        // A past --until ends once the replay is printed (the manager sends it at once).
        setTimeout(() => stop.abort(), Math.max(wait, 500)).unref();
      }
      const print = (event: ClusterEvent) => {
        if (until && event.time > until) return;
        const [wanted] = keep([event], filters, {
          type: (e, v) => e.type === v,
          event: (e, v) => e.action === v,
          service: (e, v) => serviceOf(e) === v || (e.type === 'service' && e.id.startsWith(v)),
          node: (e, v) => e.type === 'node' && (e.name === v || e.id.startsWith(v)),
          network: (e, v) => e.type === 'network' && (e.name === v || e.id.startsWith(v)),
          name: (e, v) => e.name === v,
        });
        if (!wanted) return;
        if (options.format === 'json') process.stdout.write(`${JSON.stringify(event)}\n`);
        else process.stdout.write(`${event.time} ${event.type} ${event.action} ${event.id.slice(0, 12)}${event.name ? ` (name=${event.name}${event.state ? `, state=${event.state}` : ''})` : ''}\n`);
      };
      try {
        await (await connect(globals())).stream('GET', `/v1/events${query({ type: types.length === 1 ? types[0] : undefined, since })}`, undefined, (data) => print(data as ClusterEvent), stop.signal);
      } catch (error) {
        if (!stop.signal.aborted) throw error;
      }
    });
}
