export interface Column<Row> {
  header: string;
  value: (row: Row) => string;
  /** Columns that may be cut to fit the terminal, widest first; others keep their width. */
  shrinkable?: boolean;
  /** The value moves with the clock (an age): a live view computes it for the rows it shows only. */
  live?: boolean;
}

function truncate(text: string, width: number): string {
  if (text.length <= width) return text;
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

/** "running" as Docker's listings show task states: "Running". */
export const capital = (text: string) => (text ? text[0]!.toUpperCase() + text.slice(1) : text);

const gap = 3;

/** Each column's width: its widest cell, with shrinkable columns cut until a line fits `width`. */
export function columnWidths<Row>(columns: readonly Column<Row>[], cells: readonly string[][], width?: number): number[] {
  // A loop, not Math.max(...cells): the UI measures lists of 10,000 rows.
  const widths = columns.map((column) => column.header.length);
  for (const line of cells) for (const [i, cell] of line.entries()) if (cell.length > widths[i]!) widths[i] = cell.length;
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
  return widths;
}

/** One row's cells, each cut to its column and padded. */
export function tableLine(values: readonly string[], widths: readonly number[]): string {
  return values
    .map((value, i) => (i === values.length - 1 ? truncate(value, widths[i]!) : truncate(value, widths[i]!).padEnd(widths[i]! + gap)))
    .join('')
    .trimEnd();
}

/** One cell as text, whitespace folded. */
export function cellText<Row>(column: Column<Row>, row: Row): string {
  return column.value(row).replace(/\s+/g, ' ');
}

/** A row's cells as text, whitespace folded. */
export function tableCells<Row>(columns: readonly Column<Row>[], row: Row): string[] {
  return columns.map((column) => cellText(column, row));
}

/**
 * Renders rows as a table of padded columns, as Docker's CLI does. When `width` is given
 * (a terminal), shrinkable columns are cut so each line fits it.
 */
export function renderTable<Row>(columns: Column<Row>[], rows: Row[], width?: number): string {
  const cells = rows.map((row) => tableCells(columns, row));
  const widths = columnWidths(columns, cells, width);
  return [tableLine(columns.map((c) => c.header), widths), ...cells.map((line) => tableLine(line, widths))].join('\n');
}

/** The width to fit output to: the terminal's, or none when output goes to a pipe or file. */
export function terminalWidth(): number | undefined {
  return process.stdout.isTTY ? process.stdout.columns : undefined;
}
