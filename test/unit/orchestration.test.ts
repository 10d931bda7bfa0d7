import test from 'ava';
import { reconcileService } from '../../manager/orchestrator/reconcile.ts';
import { nodeInfos, schedule } from '../../manager/scheduler/schedule.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { type ServiceObject, ServiceSpec, type TaskObject, type TaskState } from '../../shared/services.ts';

const time = '2026-01-01T00:00:00.000Z';

function node(id: string, extra: { state?: NodeObject['status']['state']; availability?: NodeObject['spec']['availability']; labels?: Record<string, string>; cpus?: number } = {}): NodeObject {
  return {
    id,
    spec: { availability: extra.availability ?? 'active', role: 'worker', labels: extra.labels ?? {} },
    description: {
      hostname: id, address: '198.18.0.1', cpus: extra.cpus ?? 2, memoryBytes: 4 << 30, kernel: '6', os: 'linux', arch: 'x64',
      runtime: { name: 'runc', version: '1' }, engineLabels: {}, agentVersion: '0', p2pAddrs: [],
    },
    status: { state: extra.state ?? 'ready', message: '' },
    createdAt: time,
    updatedAt: time,
  };
}

function service(spec: Partial<ServiceSpec> = {}, specVersion = 1): ServiceObject {
  return { id: 'svc', spec: ServiceSpec.parse({ name: 'web', container: { image: 'busybox' }, ...spec }), specVersion, createdAt: time, updatedAt: time };
}

function task(id: string, slot: number, state: TaskState, extra: Partial<TaskObject> = {}): TaskObject {
  const owner = service();
  return {
    id, serviceId: 'svc', serviceName: 'web', slot, nodeId: 'a', spec: owner.spec, specVersion: 1, desiredState: 'running',
    status: { state, message: '', timestamp: time }, createdAt: time, updatedAt: time, ...extra,
  };
}

let counter = 0;
const context = (nodes: NodeObject[], now = Date.parse(time) + 60_000) => ({
  nodes: new Map(nodes.map((n) => [n.id, n])),
  now,
  timestamp: new Date(now).toISOString(),
  newTaskId: () => `new${counter++}`,
});

test('a replicated service gets a task per missing slot and loses the slots above its count', (t) => {
  const decisions = reconcileService(service({ replicas: 2 }), [task('t1', 1, 'running'), task('t3', 3, 'running')], context([node('a')]));
  t.deepEqual(decisions.create.map((c) => c.slot), [2]);
  t.deepEqual(decisions.shutdown.map((s) => [s.task.id, s.reason]), [['t3', 'scaled down']]);
});

test('tasks on a down node are orphaned and replaced', (t) => {
  const decisions = reconcileService(service({ replicas: 1 }), [task('t1', 1, 'running')], context([node('a', { state: 'down' }), node('b')]));
  t.deepEqual(decisions.shutdown.map((s) => [s.task.id, s.orphan]), [['t1', true]]);
  t.is(decisions.create.length, 1);
});

test('a slot whose task was orphaned by a down node is refilled at once, whatever the restart delay', (t) => {
  const policy = { condition: 'any' as const, delayMs: 10_000, maxAttempts: 0, windowMs: 0 };
  const orphaned = task('t1', 1, 'orphaned', { desiredState: 'shutdown' });
  const decisions = reconcileService(service({ restartPolicy: policy }), [orphaned], context([node('a', { state: 'down' }), node('b')], Date.parse(time) + 1000));
  t.is(decisions.create.length, 1);
});

test('restart condition none leaves a finished slot empty; on-failure replaces only failures', (t) => {
  const none = reconcileService(service({ restartPolicy: { condition: 'none', delayMs: 0, maxAttempts: 0, windowMs: 0 } }), [task('t1', 1, 'failed')], context([node('a')]));
  t.is(none.create.length, 0);
  const onFailure = { condition: 'on-failure' as const, delayMs: 0, maxAttempts: 0, windowMs: 0 };
  t.is(reconcileService(service({ restartPolicy: onFailure }), [task('t1', 1, 'complete')], context([node('a')])).create.length, 0);
  t.is(reconcileService(service({ restartPolicy: onFailure }), [task('t1', 1, 'failed')], context([node('a')])).create.length, 1);
});

test('the restart delay postpones the replacement and says when to look again', (t) => {
  const policy = { condition: 'any' as const, delayMs: 10_000, maxAttempts: 0, windowMs: 0 };
  const decisions = reconcileService(service({ restartPolicy: policy }), [task('t1', 1, 'failed')], context([node('a')], Date.parse(time) + 1000));
  t.is(decisions.create.length, 0);
  t.is(decisions.recheckAt, Date.parse(time) + 10_000);
});

test('an outdated task is replaced one at a time', (t) => {
  const decisions = reconcileService(service({ replicas: 2 }, 2), [task('t1', 1, 'running'), task('t2', 2, 'running')], context([node('a')]));
  t.is(decisions.shutdown.length, 1);
  t.is(decisions.shutdown[0]?.reason, 'updating to the new spec');
});

test('a rolling update waits for a new task to pass its health check before replacing the next', (t) => {
  const updating = { ...service({ replicas: 2 }, 2), updateStatus: { state: 'updating' as const, message: '', startedAt: time } };
  const fresh = (health: 'starting' | 'healthy') => task('n1', 1, 'running', { specVersion: 2, status: { state: 'running', message: '', timestamp: time, health } });
  const waiting = reconcileService(updating, [fresh('starting'), task('t2', 2, 'running')], context([node('a')]));
  t.deepEqual(waiting.shutdown, [], 'a running task still starting its health check is not up yet');
  const next = reconcileService(updating, [fresh('healthy'), task('t2', 2, 'running')], context([node('a')]));
  t.deepEqual(next.shutdown.map((s) => s.task.id), ['t2']);
  const startFirst = { ...updating, spec: { ...updating.spec, update: { ...updating.spec.update, order: 'start-first' as const } } };
  const old = task('t1', 1, 'running');
  t.deepEqual(reconcileService(startFirst, [old, fresh('starting')], context([node('a')])).shutdown.filter((s) => s.task.id === 't1'), [], 'start-first keeps the old task until the new one is healthy');
  t.deepEqual(reconcileService(startFirst, [old, fresh('healthy')], context([node('a')])).shutdown.filter((s) => s.task.id === 't1').map((s) => s.reason), ['replaced by its update']);
});

test('a global service wants one task per ready, active, matching node', (t) => {
  const nodes = [node('a'), node('b', { availability: 'drain' }), node('c', { state: 'down' }), node('d', { labels: { zone: 'x' } })];
  const decisions = reconcileService(service({ mode: 'global', placement: { constraints: [], preferences: [], maxReplicas: 0 } }), [], context(nodes));
  t.deepEqual(decisions.create.map((c) => c.nodeId).sort(), ['a', 'd']);
});

test('history beyond five ended tasks per slot is dropped', (t) => {
  const ended = Array.from({ length: 7 }, (_, i) => task(`old${i}`, 1, 'shutdown', { desiredState: 'shutdown', createdAt: `2026-01-01T00:00:0${i}.000Z` }));
  const decisions = reconcileService(service({ replicas: 1 }), [...ended, task('live', 1, 'running')], context([node('a')]));
  t.deepEqual(decisions.remove.map((r) => r.id), ['old0', 'old1']);
});

test('the scheduler spreads a service over nodes, then by total load', (t) => {
  const pending = Array.from({ length: 4 }, (_, i) => task(`p${i}`, i + 1, 'pending', { nodeId: undefined }));
  const busy = task('other', 1, 'running', { serviceId: 'other', nodeId: 'a' });
  const result = schedule(pending, nodeInfos([node('a'), node('b'), node('c')], [busy, ...pending]));
  const counts: Record<string, number> = {};
  for (const nodeId of result.assignments.values()) counts[nodeId] = (counts[nodeId] ?? 0) + 1;
  t.deepEqual(counts, { a: 1, b: 2, c: 1 }, 'b and c first (a is busier), then even');
});

test('the scheduler honours constraints, placement preferences and reservations, and says why not', (t) => {
  const nodes = [node('a', { labels: { zone: 'x' } }), node('b', { labels: { zone: 'x' } }), node('c', { labels: { zone: 'y' } })];
  const spread = service({ replicas: 2, placement: { constraints: [], preferences: ['spread=node.labels.zone'], maxReplicas: 0 } });
  const pending = [1, 2].map((slot) => task(`s${slot}`, slot, 'pending', { nodeId: undefined, spec: spread.spec }));
  const zones = [...schedule(pending, nodeInfos(nodes, pending)).assignments.values()].map((id) => nodes.find((n) => n.id === id)!.spec.labels.zone).sort();
  t.deepEqual(zones, ['x', 'y']);
  const pinned = ServiceSpec.parse({ name: 'p', container: { image: 'busybox' }, placement: { constraints: ['node.labels.zone!=x'] } });
  t.is(schedule([task('c1', 1, 'pending', { nodeId: undefined, spec: pinned })], nodeInfos(nodes, [])).assignments.get('c1'), 'c');
  const greedy = ServiceSpec.parse({ name: 'g', container: { image: 'busybox' }, reservations: { nanoCpus: 3e9, memoryBytes: 0 } });
  const refused = schedule([task('g1', 1, 'pending', { nodeId: undefined, spec: greedy })], nodeInfos(nodes, []));
  t.regex(refused.pending.get('g1') ?? '', /3 of 3 nodes lack the reserved resources \(3 CPUs/);
});

test('max replicas per node caps a service\'s tasks on each node; the rest wait and say why', (t) => {
  const capped = ServiceSpec.parse({ name: 'web', replicas: 5, container: { image: 'busybox' }, placement: { maxReplicas: 2 } });
  const pending = [1, 2, 3, 4, 5].map((slot) => task(`m${slot}`, slot, 'pending', { nodeId: undefined, spec: capped }));
  const result = schedule(pending, nodeInfos([node('a'), node('b')], pending));
  const counts: Record<string, number> = {};
  for (const nodeId of result.assignments.values()) counts[nodeId] = (counts[nodeId] ?? 0) + 1;
  t.deepEqual(counts, { a: 2, b: 2 });
  t.is(result.pending.size, 1);
  t.regex([...result.pending.values()][0]!, /2 of 2 nodes already run 2 of the service's tasks \(max replicas per node\)/);
  const preferred = ServiceSpec.parse({ name: 'web', replicas: 3, container: { image: 'busybox' }, placement: { maxReplicas: 1, preferences: ['spread=node.labels.zone'] } });
  const three = [1, 2, 3].map((slot) => task(`q${slot}`, slot, 'pending', { nodeId: undefined, spec: preferred }));
  t.is(schedule(three, nodeInfos([node('a'), node('b')], three)).assignments.size, 2, 'with placement preferences too');
});

test('the scheduler fills nodes evenly at scale and skips a node once its reservations are full', (t) => {
  const nodes = Array.from({ length: 1_000 }, (_, i) => node(`n${String(i).padStart(4, '0')}`));
  const pending = Array.from({ length: 30_000 }, (_, i) => task(`p${i}`, i + 1, 'pending', { nodeId: undefined }));
  const result = schedule(pending, nodeInfos(nodes, pending));
  const counts = new Map<string, number>();
  for (const nodeId of result.assignments.values()) counts.set(nodeId, (counts.get(nodeId) ?? 0) + 1);
  t.is(result.assignments.size, 30_000);
  t.deepEqual(new Set(counts.values()), new Set([30]), 'every node holds 30');

  // One CPU each on 2-CPU nodes: two tasks fit per node, the fifth task on two nodes does not.
  const sized = ServiceSpec.parse({ name: 's', container: { image: 'busybox' }, reservations: { nanoCpus: 1e9, memoryBytes: 0 } });
  const five = Array.from({ length: 5 }, (_, i) => task(`r${i}`, i + 1, 'pending', { nodeId: undefined, spec: sized }));
  const placed = schedule(five, nodeInfos([node('a'), node('b')], five));
  t.is(placed.assignments.size, 4);
  t.regex(placed.pending.get('r4') ?? '', /2 of 2 nodes lack the reserved resources/);
});
