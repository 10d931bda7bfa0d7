/** Drain first, on one agent: a withdrawn task is stopped only once every node holds the tables that withdrew it. */
import test from 'ava';
import { ServiceDiscovery } from '../../netplug/discovery/discovery.ts';
import { createLogger } from '../../shared/log.ts';
import type { ServiceTable } from '../../shared/p2p/protocol.ts';

const discovery = () => new ServiceDiscovery({ resolvConf: '/nonexistent', ttlSeconds: 5, upstreamTimeoutMs: 100, log: createLogger('test', { level: 'silent' }) });
const table = (backends: string[]): ServiceTable[] => [{ networkId: 'app', records: [], vips: [{ address: '198.19.0.2', service: 'web', backends }] }];

test('a withdrawn task drains until the leader says every node holds the revision that withdrew it', async (t) => {
  const applied: number[] = [];
  const agent = new ServiceDiscovery({ resolvConf: '/nonexistent', ttlSeconds: 5, upstreamTimeoutMs: 100, log: createLogger('test', { level: 'silent' }), onApplied: (r) => applied.push(r) });
  agent.setTables(table(['198.19.0.3', '198.19.0.4']), undefined, 7);
  agent.settle(7);
  let done = false;
  const drained = agent.drained(['198.19.0.3'], 2_000).then((ok) => ((done = true), ok));
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.false(done, 'still served: no drain yet');
  agent.setTables(table(['198.19.0.4']), undefined, 8);
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.false(done, 'withdrawn here, but other nodes may still send it connections');
  t.deepEqual(applied, [7, 8], 'this node acknowledged each revision once applied');
  agent.settle(8);
  t.true(await drained);
});

test('a drain gives up after its timeout when some node never acknowledges', async (t) => {
  const agent = discovery();
  agent.setTables(table([]), undefined, 3);
  const started = Date.now();
  t.false(await agent.drained(['198.19.0.9'], 150), 'reported as not drained, so the agent logs it');
  t.true(Date.now() - started >= 150);
});
