import type { Command } from 'commander';
import { ShoalError } from '../../shared/errors.ts';
import type { View } from '../ui/navigator.ts';
import { connect, type GlobalOptions } from './common.ts';

const startViews: Record<string, View> = { nodes: { kind: 'nodes' }, services: { kind: 'services' }, networks: { kind: 'networks' }, events: { kind: 'events' } };

export function registerUiCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('ui')
    .description('A live view of the cluster in the terminal: nodes, services, tasks, networks across hosts, events, logs (? shows the keys)')
    .option('--view <view>', 'the view to open on: nodes, services, networks or events', 'services')
    .action(async (options: { view: string }) => {
      const initial = startViews[options.view];
      if (!initial) throw new ShoalError('invalid', 'bad_view', `no view "${options.view}"`, { hint: 'use --view nodes, services, networks or events' });
      if (!process.stdin.isTTY || !process.stdout.isTTY) {
        throw new ShoalError('invalid', 'not_a_terminal', 'shoal ui needs a terminal', { hint: 'for scripts, use the listings with --format json' });
      }
      const client = await connect(globals());
      // Before anything loads React: the UI's modules import its JSX runtime first.
      await import('../ui/react-production.ts');
      const { runUi } = await import('../ui/run.tsx');
      await runUi(client, initial);
    });
}
