/**
 * SIMULATION: a process holding N simulated nodes (see simulated-nodes.ts), so that the nodes
 * do not share an event loop with the managers or with whoever measures them.
 *
 *   node dist/bench/sim/main.js --nodes 1000 --join MULTIADDR --token TOKEN --state-dir DIR
 *
 * Prints {"built": N} once every node has its key and peer (the joins start then), {"joined": N}
 * once every node holds a session, then
 * {"running": N} each second while the count changes; SIGTERM stops the nodes.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../../shared/log.ts';
import { SimulatedNodes } from './simulated-nodes.ts';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100' },
    join: { type: 'string', multiple: true, default: [] },
    token: { type: 'string' },
    'state-dir': { type: 'string' },
  },
});
if (!values.token || !values['state-dir'] || values.join.length === 0) {
  process.stderr.write('usage: main.js --nodes N --join MULTIADDR --token TOKEN --state-dir DIR\n');
  process.exit(2);
}

const simulation = await SimulatedNodes.start({
  count: Number(values.nodes),
  join: values.join,
  token: values.token,
  stateDir: values['state-dir'],
  log: createLogger('simulation'),
  onBuilt: () => process.stdout.write(`${JSON.stringify({ built: Number(values.nodes) })}\n`),
});
process.stdout.write(`${JSON.stringify({ joined: simulation.size })}\n`);
let last = -1;
const reporter = setInterval(() => {
  const running = simulation.running;
  if (running !== last) process.stdout.write(`${JSON.stringify({ running })}\n`);
  last = running;
}, 1_000);
const stop = () => {
  clearInterval(reporter);
  simulation.stop().finally(() => process.exit(0)).catch(() => process.exit(1));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
