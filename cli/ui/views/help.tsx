import { Box, Text } from 'ink';

/** Every key, by where it works. */
export const keyHelp: Array<[string, Array<[string, string]>]> = [
  [
    'Everywhere',
    [
      ['1 2 3 4', 'Nodes, Services, Networks, Events'],
      [':name', 'go to a view by name (nodes, services, tasks, networks, events, logs)'],
      ['↑ ↓ j k', 'move; PgUp PgDn a page; g G top and bottom'],
      ['⏎', 'open: a service\'s tasks, a network\'s hosts, a task\'s logs'],
      ['esc ⌫', 'back'],
      ['?', 'this help'],
      ['q ctrl+c', 'quit'],
    ],
  ],
  [
    'Services and Tasks',
    [
      ['+ -', 'scale by one'],
      ['s', 'scale to a number'],
      ['r', 'roll back to the previous spec'],
      ['x', 'remove the service'],
      ['l', 'follow the logs of the service, or of the selected task'],
    ],
  ],
  [
    'Nodes',
    [['d a p', 'drain, activate, pause']],
  ],
  [
    'A network',
    [
      ['t', 'trace from the selected endpoint; then t on the other end runs it'],
      ['space esc', 'mark the endpoint to trace from; forget it'],
    ],
  ],
];

export function HelpView({ height }: { height: number }) {
  return (
    <Box flexDirection="column" height={height + 1}>
      {keyHelp.map(([section, keys]) => (
        <Box key={section} flexDirection="column">
          <Text bold>{section}</Text>
          {keys.map(([key, what]) => (
            <Text key={key} wrap="truncate">
              {'  '}
              {key.padEnd(10)} {what}
            </Text>
          ))}
        </Box>
      ))}
      <Text>Any key closes this help.</Text>
    </Box>
  );
}
