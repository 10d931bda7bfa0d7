/**
 * A table that renders only the rows that fit (10,000 tasks cost as much to draw as 20), with
 * the selected row highlighted and kept in view. Column widths come from every row, so they
 * do not jump while scrolling (a column that moves with the clock, as an age, is computed for
 * the rows shown only).
 */
import { Box, Text } from 'ink';
import { useMemo, useRef } from 'react';
import { cellText, type Column, columnWidths, tableLine } from '../../table.ts';
import { useTheme } from '../theme.ts';

export interface ListProps<Row extends object> {
  rows: readonly Row[];
  columns: readonly Column<Row>[];
  /** The selected row's index. */
  cursor: number;
  width: number;
  /** Lines for the rows, not counting the header. */
  height: number;
  /** A row's colour by meaning (failed tasks, down nodes). */
  tone?: (row: Row) => 'bad' | 'warn' | 'ok' | undefined;
  empty?: string;
}

/** The first row shown: the cursor stays in view, near the middle once the list scrolls. */
export function windowStart(cursor: number, count: number, height: number): number {
  if (count <= height) return 0;
  return Math.min(Math.max(0, cursor - Math.floor(height / 2)), count - height);
}

export function List<Row extends object>({ rows, columns, cursor, width, height, tone, empty }: ListProps<Row>) {
  const theme = useTheme();
  const cache = useRef<{ headers: string; cells: WeakMap<Row, string[]> }>({ headers: '', cells: new WeakMap() });
  const headers = columns.map((c) => c.header).join('\t');
  const anyLive = columns.some((c) => c.live);
  // The cells of the columns that do not move with the clock, for every row: kept with the row's
  // object, which the model keeps while the row's content is unchanged (keepUnchanged), so a
  // refresh of 10,000 tasks computes only the rows that changed.
  const stable = useMemo(() => {
    if (cache.current.headers !== headers) cache.current = { headers, cells: new WeakMap() };
    const known = cache.current.cells;
    return rows.map((row) => {
      let cells = known.get(row);
      if (cells === undefined) {
        cells = columns.map((column) => (column.live ? '' : cellText(column, row)));
        known.set(row, cells);
      }
      return cells;
    });
    // Not on `columns`: they are made anew each second (the clock); their headers say when they really change.
  }, [rows, headers]);
  const start = windowStart(cursor, rows.length, height);
  const visible = stable.slice(start, start + height).map((cells, i) => (anyLive ? cells.map((cell, c) => (columns[c]!.live ? cellText(columns[c]!, rows[start + i]!) : cell)) : cells));
  // Widths from every row's stable cells and the shown rows' live ones: the widest of each is enough.
  const widest = useMemo(() => {
    const longest = columns.map(() => '');
    for (const cells of stable) {
      for (let i = 0; i < cells.length; i++) if (cells[i]!.length > longest[i]!.length) longest[i] = cells[i]!;
    }
    return longest;
  }, [stable]);
  const widths = columnWidths(columns, [widest, ...visible], width);
  return (
    <Box flexDirection="column" height={height + 1}>
      <Text bold wrap="truncate">
        {tableLine(columns.map((c) => c.header), widths)}
      </Text>
      {rows.length === 0 ? <Text color={theme.dim}>{empty ?? 'nothing here'}</Text> : null}
      {visible.map((line, i) => {
        const index = start + i;
        const meaning = tone?.(rows[index]!);
        return (
          <Text key={index} inverse={index === cursor} color={meaning ? theme[meaning] : undefined} wrap="truncate">
            {tableLine(line, widths).padEnd(index === cursor ? width : 0)}
          </Text>
        );
      })}
    </Box>
  );
}
