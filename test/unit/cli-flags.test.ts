import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { Command } from 'commander';
import { parse as shellWords } from 'shell-quote';
import { flagTable, renderFlagTable } from '../../cli/docker-flags.ts';
import { buildProgram } from '../../cli/program.ts';
import { isShoalError } from '../../shared/errors.ts';

const docPath = fileURLToPath(new URL('../../../docs/cli.md', import.meta.url));
const start = '<!-- docker-flags:start -->';
const end = '<!-- docker-flags:end -->';

/** The real program with every leaf command's action replaced: parsing only, no cluster. */
function parsingProgram(): Command {
  const program = buildProgram();
  const stub = (command: Command) => {
    if (command.commands.length === 0) command.action(() => undefined);
    command.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    command.commands.forEach(stub);
  };
  stub(program);
  return program;
}

function docRows(): Array<{ command: string; flag: string; status: string; example: string }> {
  const text = readFileSync(docPath, 'utf8');
  const section = text.slice(text.indexOf(start) + start.length, text.indexOf(end));
  return section
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| command') && !line.startsWith('| ---'))
    .map((line) => {
      const cells = line.slice(2, -2).split(/ (?<!\\)\| /).map((cell) => cell.replace(/\\\|/g, '|').replace(/^`|`$/g, ''));
      return { command: cells[0]!, flag: cells[1]!, status: cells[2]!, example: cells[3]! };
    });
}

test('every Docker flag of the mirrored commands is defined by shoal, supported or refused with a reason', (t) => {
  const missing = flagTable(parsingProgram()).filter((row) => row.status === 'missing');
  t.deepEqual(missing.map((row) => `${row.command} ${row.flag}`), []);
});

test('docs/cli.md holds the flag table as the program defines it', (t) => {
  const text = readFileSync(docPath, 'utf8');
  t.true(text.includes(start) && text.includes(end), 'docs/cli.md has the docker-flags markers');
  const inDoc = text.slice(text.indexOf(start) + start.length, text.indexOf(end)).trim();
  // Out of date: regenerate with
  //   bin/shoal-node --input-type=module -e "import('./dist/cli/docker-flags.js').then(async (f) => console.log(f.renderFlagTable(f.flagTable((await import('./dist/cli/program.js')).buildProgram()))))"
  t.is(inDoc, renderFlagTable(flagTable(parsingProgram())));
});

test('every example in the table parses: supported flags are accepted, refused ones stop with their reason', async (t) => {
  const rows = docRows();
  t.true(rows.length > 200, `${rows.length} rows`);
  for (const row of rows) {
    const words = (shellWords(row.example) as string[]).slice(1);
    let failure: unknown;
    try {
      await parsingProgram().parseAsync(words, { from: 'user' });
    } catch (error) {
      failure = error;
    }
    if (row.status.startsWith('refused: ')) {
      t.true(isShoalError(failure) && failure.code === 'unsupported_flag', `${row.example}: ${String(failure)}`);
      t.true(String((failure as Error).message).endsWith(row.status.slice('refused: '.length)), `${row.example}: ${String(failure)}`);
    } else {
      t.is(failure, undefined, `${row.example}: ${String(failure)}`);
    }
  }
});
