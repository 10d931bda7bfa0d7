import { type Column, renderTable, terminalWidth } from './table.ts';
import { ShoalError } from '../shared/errors.ts';

export type OutputFormat = 'table' | 'json';

export function parseFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'table') return 'table';
  if (value === 'json') return 'json';
  throw new Error(`unknown --format "${value}"; use table or json`);
}

/** Prints a listing as a table sized to the terminal, or as JSON. */
export function printList<Row>(rows: Row[], columns: Column<Row>[], format: OutputFormat): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else process.stdout.write(`${renderTable(columns, rows, terminalWidth())}\n`);
}

/** Prints one object: JSON either way (inspect output), as Docker does. */
export function printObject(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** `inspect --format`: JSON is all there is (Docker's Go templates are not offered). */
export function checkInspectFormat(format: string | undefined, pretty: boolean): void {
  if (format !== undefined && format !== 'json') throw new ShoalError('invalid', 'invalid_format', `--format "${format}": inspect prints json${pretty ? ' (or use --pretty)' : ''}; Go templates are not supported`);
}
