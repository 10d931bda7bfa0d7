import { Box, Text } from 'ink';
import type { UiLogLine } from '../source.ts';
import { useTheme } from '../theme.ts';

/** Log lines, newest at the bottom; `offset` lines up from the end (0 follows new output). */
export function LogsView({ lines, offset, width, height }: { lines: readonly UiLogLine[]; offset: number; width: number; height: number }) {
  const theme = useTheme();
  const end = Math.max(0, lines.length - offset);
  const shown = lines.slice(Math.max(0, end - height), end);
  return (
    <Box flexDirection="column" height={height + 1}>
      <Text color={theme.dim}>{offset === 0 ? `following · ${lines.length} line(s)` : `${offset} line(s) above the end · G follows again`}</Text>
      {lines.length === 0 ? <Text color={theme.dim}>no output yet</Text> : null}
      {shown.map((line, i) => (
        <Text key={end - shown.length + i} color={line.stream === 'stderr' ? theme.warn : undefined} wrap="truncate">
          {`${line.task ? `${line.task}@${line.node ?? '?'} | ` : ''}${line.text}`.slice(0, width)}
        </Text>
      ))}
    </Box>
  );
}
