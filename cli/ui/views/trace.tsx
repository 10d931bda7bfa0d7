/**
 * A trace between two endpoints, run from a network's view with t: the hops as
 * `shoal network trace` prints them, ✓ in green and ✗ in red (wrapped, to read whole), with
 * the first ✗'s host, object and fix; any key closes it.
 */
import { Box, Text } from 'ink';
import { traceLines } from '../../trace-text.ts';
import type { Modal } from '../navigator.ts';
import { useTheme } from '../theme.ts';

export function TraceView({ trace, width, height }: { trace: Extract<Modal, { kind: 'trace' }>; width: number; height: number }) {
  const theme = useTheme();
  const lines = trace.answer ? traceLines(trace.answer) : [{ text: `trace ${trace.from} -> ${trace.to}`, tone: 'title' as const }];
  return (
    <Box flexDirection="column" height={height + 1} width={width} overflow="hidden">
      {lines.map((line, i) => (
        // What is wrong reads whole, wrapped; a passing hop keeps to one line.
        <Text key={i} bold={line.tone === 'title'} color={line.tone === 'ok' ? theme.ok : line.tone === 'bad' ? theme.bad : undefined} wrap={line.tone === 'ok' || line.tone === 'title' ? 'truncate' : 'wrap'}>
          {line.text}
        </Text>
      ))}
      {trace.error ? <Text color={theme.bad} wrap="truncate">✗ {trace.error}</Text> : null}
      {!trace.answer && !trace.error ? <Text color={theme.dim}>tracing: asking both hosts, sending the probes…</Text> : null}
      {trace.answer ? <Text color={trace.answer.ok ? theme.ok : theme.bad}>{trace.answer.ok ? 'the path works' : 'the path is broken'} <Text color={theme.dim}>· any key closes</Text></Text> : null}
    </Box>
  );
}
