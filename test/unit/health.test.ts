import test from 'ava';
import { nodesToMarkDown } from '../../manager/health/health.ts';
import type { NodeStatus } from '../../shared/schemas.ts';

const node = (id: string, state: NodeStatus['state']) => ({ id, status: { state, message: '' } });

test('a node whose heartbeats stopped longer than the grace period is marked down', (t) => {
  const seen: Record<string, number> = { a: 1_000, b: 9_000 };
  t.deepEqual(nodesToMarkDown([node('a', 'ready'), node('b', 'ready')], (id) => seen[id], 0, 10_000, 5_000), ['a']);
});

test('a node already down is not marked again', (t) => {
  t.deepEqual(nodesToMarkDown([node('a', 'down')], () => 0, 0, 100_000, 5_000), []);
});

test('a new leader gives nodes it has not heard from a full grace period', (t) => {
  t.deepEqual(nodesToMarkDown([node('a', 'ready')], () => undefined, 8_000, 10_000, 5_000), []);
  t.deepEqual(nodesToMarkDown([node('a', 'ready')], () => undefined, 4_000, 10_000, 5_000), ['a']);
});
