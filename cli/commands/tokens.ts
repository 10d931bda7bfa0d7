import type { Command } from 'commander';
import type { ManagerView } from '../../shared/schemas.ts';
import { connect, type GlobalOptions } from './common.ts';

export function registerTokenCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('join-token')
    .description('Show or rotate the join token for workers or managers')
    .argument('<role>', 'worker or manager')
    .option('--rotate', 'replace the token; nodes that already joined stay joined')
    .option('-q, --quiet', 'print the token only')
    .option('--format <format>', 'table or json', 'table')
    .action(async (role: string, options: { rotate?: boolean; quiet?: boolean; format: string }) => {
      if (role !== 'worker' && role !== 'manager') throw new Error(`unknown role "${role}"; use worker or manager`);
      const client = await connect(globals());
      const result = await client.call<{ role: string; token: string }>(
        options.rotate ? 'POST' : 'GET',
        `/v1/join-tokens/${role}${options.rotate ? '/rotate' : ''}`,
      );
      if (options.format === 'json') process.stdout.write(`${JSON.stringify(result)}\n`);
      else if (options.quiet) process.stdout.write(`${result.token}\n`);
      else {
        const managers = await client.call<ManagerView[]>('GET', '/v1/managers');
        const joinFlags = managers.filter((m) => m.reachable && m.p2pAddrs[0]).map((m) => `--join ${m.p2pAddrs[0]}`);
        if (options.rotate) process.stdout.write(`Rotated the ${role} join token.\n\n`);
        process.stdout.write(`To add a ${role} to this cluster, run on its host:\n\n    shoal agent ${joinFlags.join(' ') || '--join <manager multiaddr>'} --token ${result.token}\n\n`);
      }
    });
}
