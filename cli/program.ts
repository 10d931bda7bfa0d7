import { Command } from 'commander';
import { shoalVersion } from '../shared/version.ts';
import type { GlobalOptions } from './commands/common.ts';
import { connect } from './commands/common.ts';
import { parseFormat } from './output.ts';
import { registerContainerCommands } from './commands/containers.ts';
import { registerDaemonCommands } from './commands/daemons.ts';
import { registerEventCommands } from './commands/events.ts';
import { registerImageCommands } from './commands/images.ts';
import { registerRegistryCommands } from './commands/registry.ts';
import { registerInfoCommand } from './commands/info.ts';
import { registerLabCommands } from './commands/lab.ts';
import { registerNodeCommands } from './commands/nodes.ts';
import { registerNetworkCommands } from './commands/networks.ts';
import { registerServiceCommands } from './commands/services.ts';
import { registerTokenCommands } from './commands/tokens.ts';
import { registerClusterCommands } from './commands/cluster.ts';
import { registerPkiCommands } from './commands/pki.ts';
import { registerUiCommand } from './commands/ui.ts';
import { registerStackCommands } from './commands/stacks.ts';
import { registerFileObjectCommands } from './commands/secrets.ts';
import { registerPolicyCommands } from './commands/policies.ts';

/** The `shoal` command with every subcommand: built apart from running it, so tests can parse with it. */
export function buildProgram(): Command {
  const program = new Command('shoal')
    .description('Shoal: containers across hosts, with overlay networks')
    .option('-H, --host <address>', 'manager API: unix:///path/shoal.sock or https://host:port (env SHOAL_HOST)')
    .option('--token <token>', 'API bearer token (env SHOAL_TOKEN)')
    .option('--context <file>', 'context file (env SHOAL_CONTEXT; default ~/.shoal/context.json)')
    .showHelpAfterError('(run with --help for usage)')
    // Global options go before the command (as with `docker -H`), so `agent --token` stays the agent's.
    .enablePositionalOptions()
    .exitOverride();

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();

  program
    .command('version')
    .description('Show the CLI\'s version and, if a manager answers, the cluster\'s')
    .option('-f, --format <format>', 'table or json', 'table')
    .action(async (options: { format: string }) => {
      parseFormat(options.format);
      const client = { version: shoalVersion, node: process.version };
      const server = await (await connect(globals()))
        .call<Record<string, unknown>>('GET', '/v1/info')
        .catch((error: Error) => ({ error: error.message }));
      if (options.format === 'json') process.stdout.write(`${JSON.stringify({ client, server }, null, 2)}\n`);
      else {
        process.stdout.write(`Client: shoal ${client.version} (Node.js ${client.node})\n`);
        process.stdout.write('error' in server ? `Server: unreachable (${server.error})\n` : `Server: shoal ${server.version}, cluster ${server.clusterId}\n`);
      }
    });

  registerLabCommands(program);
  registerDaemonCommands(program, globals);
  registerNodeCommands(program, globals);
  registerNetworkCommands(program, globals);
  registerTokenCommands(program, globals);
  registerClusterCommands(program, globals);
  registerPkiCommands(program);
  registerContainerCommands(program, globals);
  registerImageCommands(program, globals);
  registerRegistryCommands(program, globals);
  registerServiceCommands(program, globals);
  registerStackCommands(program, globals);
  registerFileObjectCommands(program, globals);
  registerPolicyCommands(program, globals);
  registerEventCommands(program, globals);
  registerInfoCommand(program, globals);
  registerUiCommand(program, globals);
  return program;
}
