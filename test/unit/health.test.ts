import test from 'ava';
import { nodesToMarkDown } from '../../manager/health/health.ts';
import type { NodeStatus } from '../../shared/schemas.ts';

const node = (id: string, state: NodeStatus['state'], createdAt = 0) => ({ id, status: { state, message: '' }, createdAt: new Date(createdAt).toISOString() });

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

test('a node that joined a moment ago gets a full grace period to open its session', (t) => {
  // The leader took over long ago; the node joined at 9,000 and has not heartbeated yet.
  t.deepEqual(nodesToMarkDown([node('a', 'unknown', 9_000)], () => undefined, 0, 10_000, 5_000), []);
  t.deepEqual(nodesToMarkDown([node('a', 'unknown', 9_000)], () => undefined, 0, 15_000, 5_000), ['a']);
});
