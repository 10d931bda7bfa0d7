import type { Command } from 'commander';
import { ShoalError } from '../../shared/errors.ts';
import { collect } from './common.ts';

/** `shoal stack`: compose files. `config` reads, interpolates and merges them; deploying them is to come. */
export function registerStackCommands(program: Command): void {
  const stack = program.command('stack').description('Compose files as stacks');

  stack
    .command('config')
    .description('Print the compose files merged in order, with their variables interpolated, as YAML')
    .requiredOption('-c, --compose-file <file>', 'a compose file; several are merged in order (repeatable)', collect, [])
    .option('--env-file <file>', 'variables to interpolate (default: the .env file beside the first compose file)')
    .action(async (options: { composeFile: string[]; envFile?: string }) => {
      // The YAML library loads only for stack commands.
      const { formatProblem, loadCompose } = await import('../compose/load.ts');
      const { checkForCluster } = await import('../compose/cluster-fit.ts');
      const { stringify } = await import('yaml');
      const loaded = await loadCompose(options.composeFile, options.envFile ? { envFile: options.envFile } : {});
      const fit = loaded.problems.length === 0 ? checkForCluster(loaded.model, loaded.positions) : { notes: [], problems: [] };
      for (const warning of loaded.warnings) process.stderr.write(`warning: ${warning}\n`);
      if (fit.notes.length > 0) process.stderr.write(`warning: what a cluster does not do:\n${fit.notes.map((n) => `  ${n}`).join('\n')}\n`);
      const problems = [...loaded.problems, ...fit.problems];
      if (problems.length > 0) {
        throw new ShoalError('invalid', 'invalid_compose_file', `the compose file${options.composeFile.length > 1 ? 's' : ''} ${options.composeFile.length > 1 ? 'have' : 'has'} ${problems.length === 1 ? 'a problem' : `${problems.length} problems`}:\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`, {
          hint: 'fix them and run `shoal stack config` again; nothing was deployed',
        });
      }
      // The `version` key is obsolete (the Compose Specification ignores it).
      const { version: _version, ...model } = loaded.model;
      process.stdout.write(stringify(model, { version: '1.2', lineWidth: 0 }));
    });
}
