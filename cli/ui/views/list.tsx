/**
 * A table that renders only the rows that fit (10,000 tasks cost as much to draw as 20), with
 * the selected row highlighted and kept in view. Column widths come from every row, so they
 * do not jump while scrolling.
 */
import { Box, Text } from 'ink';
import { useMemo } from 'react';
import { type Column, columnWidths, tableCells, tableLine } from '../../table.ts';
import { useTheme } from '../theme.ts';

export interface ListProps<Row> {
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

export function List<Row>({ rows, columns, cursor, width, height, tone, empty }: ListProps<Row>) {
  const theme = useTheme();
  const cells = useMemo(() => rows.map((row) => tableCells(columns, row)), [rows, columns]);
  const widths = useMemo(() => columnWidths(columns, cells, width), [columns, cells, width]);
  const start = windowStart(cursor, rows.length, height);
  const visible = cells.slice(start, start + height);
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
