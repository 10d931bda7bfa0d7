/**
 * `shoal ui`: a header (where, which view, whether the manager answers), the root views as
 * tabs, the view, and a footer (prompt, confirmation, the last action's outcome, or the keys).
 * It draws what the model and the navigator hold; keys go to the navigator.
 */
import { Box, Text, useInput, useWindowSize } from 'ink';
import { useEffect, useState, useSyncExternalStore } from 'react';
import type { ClusterModel } from './model.ts';
import { cursorOf, type Navigator, rootViews, rowsOf, viewTitle } from './navigator.ts';
import type { UiTask } from './source.ts';
import { useTheme } from './theme.ts';
import { HelpView } from './views/help.tsx';
import { List } from './views/list.tsx';
import { LogsView } from './views/logs.tsx';
import { NetworkDetailView } from './views/network-detail.tsx';
import type { PictureEndpoint } from './network-picture.ts';
import { TraceView } from './views/trace.tsx';
import { eventColumns, eventTone, networkColumns, nodeColumns, nodeTone, serviceColumns, serviceTone, taskColumns, taskTone } from './views/tables.ts';

/** Lines that are not the view: header, tabs, footer, and one spare so the terminal never scrolls. */
const chromeLines = 4;

function useNow(periodMs: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), periodMs);
    return () => clearInterval(timer);
  }, [periodMs]);
  return now;
}

/** `size` fixes the screen's size (tests); otherwise the terminal's, following resizes. */
export function App({ model, navigator, size }: { model: ClusterModel; navigator: Navigator; size?: { columns: number; rows: number } }) {
  const state = useSyncExternalStore(model.subscribe, model.snapshot);
  const navigation = useSyncExternalStore(navigator.subscribe, navigator.snapshot);
  const terminal = useWindowSize();
  const { columns: width, rows: terminalRows } = size ?? terminal;
  const theme = useTheme();
  const now = useNow(1_000);
  useInput((input, key) => navigator.key(input, key));

  const view = navigation.stack.at(-1)!;
  const modal = navigation.modal;
  const rows = rowsOf(view, state);
  const cursor = cursorOf(navigation, view, rows.length);
  // The List draws a header line above its rows.
  const height = Math.max(3, terminalRows - chromeLines - 1);
  navigator.pageSize = height - 1;

  const connection = state.connection;
  const status =
    connection.state === 'live' ? (
      <Text color={theme.ok}>● live</Text>
    ) : connection.state === 'connecting' ? (
      <Text color={theme.warn}>… connecting</Text>
    ) : (
      <Text color={theme.bad} wrap="truncate">
        ✗ manager unreachable, retrying in {Math.round(connection.retryInMs / 1000)}s: {connection.error}
      </Text>
    );

  let body;
  if (modal?.kind === 'help') body = <HelpView height={height} />;
  else if (modal?.kind === 'trace') body = <TraceView trace={modal} width={width} height={height} />;
  else if (view.kind === 'nodes') body = <List rows={state.nodes} columns={nodeColumns} cursor={cursor} width={width} height={height} tone={nodeTone} empty="no nodes" />;
  else if (view.kind === 'services') body = <List rows={state.services} columns={serviceColumns} cursor={cursor} width={width} height={height} tone={serviceTone} empty="no services; create one with `shoal service create`" />;
  else if (view.kind === 'tasks') body = <List rows={rows as UiTask[]} columns={taskColumns(now)} cursor={cursor} width={width} height={height} tone={taskTone} empty="no tasks yet" />;
  else if (view.kind === 'networks') body = <List rows={state.networks} columns={networkColumns} cursor={cursor} width={width} height={height} empty="no networks" />;
  else if (view.kind === 'events') body = <List rows={state.events} columns={eventColumns} cursor={cursor} width={width} height={height} tone={eventTone} empty="waiting for changes…" />;
  else if (view.kind === 'network') {
    const selected = (rows[cursor] as PictureEndpoint | undefined)?.owner;
    const traceFrom = navigation.traceFrom?.owner;
    body = state.network ? <NetworkDetailView network={state.network} width={width} height={height} {...(selected ? { selected } : {})} {...(traceFrom ? { traceFrom } : {})} /> : <Text>loading…</Text>;
  }
  else body = <LogsView lines={state.logs.lines} offset={Math.min(navigation.cursors.logs ?? 0, rows.length)} width={width} height={height} />;

  let footer;
  if (modal?.kind === 'confirm') footer = <Text color={theme.warn}>{modal.question} (y/n)</Text>;
  else if (modal?.kind === 'command') footer = <Text>:{modal.text}█</Text>;
  else if (modal?.kind === 'scale') footer = <Text>replicas for {modal.service.spec.name}: {modal.text}█</Text>;
  else if (state.notice) footer = <Text color={state.notice.error ? theme.bad : theme.ok} wrap="truncate">{state.notice.error ? '✗ ' : ''}{state.notice.text}</Text>;
  else if (view.kind === 'network' && navigation.traceFrom) footer = <Text wrap="truncate">trace from {navigation.traceFrom.name}: select the other end (↑↓) and press t  <Text color={theme.dim}>esc forgets it</Text></Text>;
  else if (view.kind === 'network') footer = <Text color={theme.dim} wrap="truncate">↑↓ endpoint  t trace from it, then t on the other end  esc back  ? help  q quit</Text>;
  else footer = <Text color={theme.dim} wrap="truncate">↑↓ move  ⏎ open  esc back  +/- scale  l logs  : view  ? help  q quit</Text>;

  return (
    <Box flexDirection="column" width={width}>
      <Box justifyContent="space-between" width={width}>
        <Text wrap="truncate">
          <Text bold>shoal</Text> · {model.label} · {viewTitle(view)}
        </Text>
        <Box flexShrink={0} marginLeft={1}>
          {status}
        </Box>
      </Box>
      <Box>
        {Object.entries(rootViews).map(([key, root]) => (
          <Text key={key} inverse={navigation.stack[0]!.kind === root.kind}>
            {` ${key} ${viewTitle(root)} `}
          </Text>
        ))}
      </Box>
      {body}
      {footer}
    </Box>
  );
}
