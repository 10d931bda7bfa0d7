import '../shared/node-version.ts';
import { CommanderError } from 'commander';
import { isShoalError } from '../shared/errors.ts';
import { buildProgram } from './program.ts';

// `shoal events | head -3`: a reader that goes away ends the command quietly, as for any Unix tool.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => process.exit(error.code === 'EPIPE' ? 0 : 1));
}

const program = buildProgram();

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  if (isShoalError(error)) {
    process.stderr.write(`shoal: ${error.message}${error.hint ? `\n  hint: ${error.hint}` : ''}\n`);
  } else {
    process.stderr.write(`shoal: ${(error as Error).message}\n`);
    if (process.env.SHOAL_DEBUG) process.stderr.write(`${(error as Error).stack}\n`);
  }
  process.exit(1);
}
