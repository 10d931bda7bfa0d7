export interface Column<Row> {
  header: string;
  value: (row: Row) => string;
  /** Columns that may be cut to fit the terminal, widest first; others keep their width. */
  shrinkable?: boolean;
}

function truncate(text: string, width: number): string {
  if (text.length <= width) return text;
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

/**
 * Renders rows as a table of padded columns, as Docker's CLI does. When `width` is given
 * (a terminal), shrinkable columns are cut so each line fits it.
 */
export function renderTable<Row>(columns: Column<Row>[], rows: Row[], width?: number): string {
  const cells = rows.map((row) => columns.map((column) => column.value(row).replace(/\s+/g, ' ')));
  const widths = columns.map((column, i) => Math.max(column.header.length, ...cells.map((line) => line[i]!.length)));
  const gap = 3;
  if (width) {
    let excess = widths.reduce((sum, w) => sum + w, 0) + gap * (columns.length - 1) - width;
    while (excess > 0) {
      const candidates = columns.map((c, i) => (c.shrinkable ? i : -1)).filter((i) => i >= 0 && widths[i]! > 8);
      if (candidates.length === 0) break;
      const widest = candidates.reduce((a, b) => (widths[a]! >= widths[b]! ? a : b));
      widths[widest]!--;
      excess--;
    }
  }
  const line = (values: string[]) =>
    values
      .map((value, i) => (i === values.length - 1 ? truncate(value, widths[i]!) : truncate(value, widths[i]!).padEnd(widths[i]! + gap)))
      .join('')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n');
}

/** The width to fit output to: the terminal's, or none when output goes to a pipe or file. */
export function terminalWidth(): number | undefined {
  return process.stdout.isTTY ? process.stdout.columns : undefined;
}
