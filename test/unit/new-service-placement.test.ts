/**
 * On the leader, `service create` stores a service on no network in one transaction with its
 * first tasks already placed; whatever the loop cannot take at once (a name taken, a pass that
 * runs long) is stored the old way, the service alone, and placed by a later pass.
 */
import test from 'ava';
import type { Dispatcher } from '../../manager/dispatcher/dispatcher.ts';
import { registerNode, setNodeState } from '../../manager/nodes.ts';
import { ControlLoop } from '../../manager/orchestrator/loop.ts';
import { createService } from '../../manager/services.ts';
import { keys } from '../../shared/keys.ts';
import { silentLogger } from '../../shared/log.ts';
import { ServiceSpec, type TaskObject } from '../../shared/services.ts';
import { MemoryStore } from '../../shared/store/memory.ts';
import type { WriteOp } from '../../shared/store/store.ts';
import { eventually } from '../helpers/cli.ts';
import { hostDescription } from '../helpers/node-description.ts';
import { SlowStore } from '../helpers/slow-store.ts';

async function leaderLoop(t: { teardown: (fn: () => Promise<void>) => void }, store: MemoryStore): Promise<ControlLoop> {
  for (const nodeId of ['n1', 'n2']) {
    await registerNode(store, { nodeId, role: 'worker', description: hostDescription, labels: {} });
    await setNodeState(store, nodeId, 'ready', 'heartbeating', { fence: [] });
  }
  const dispatcher = { onSessionOpen: () => () => undefined, assign: () => undefined } as unknown as Dispatcher;
  const loop = new ControlLoop(store, dispatcher, silentLogger);
  t.teardown(() => loop.stop());
  await loop.start();
  // The first pass (everything) is over once the loop has gone quiet.
  await new Promise((resolve) => setTimeout(resolve, 100));
  return loop;
}

const withTasksOf = (loop: ControlLoop) => (service: Parameters<ControlLoop['storeWithTasks']>[0], ops: WriteOp[]) => loop.storeWithTasks(service, ops);
const tasksOf = async (store: MemoryStore, serviceId: string) => (await store.list<TaskObject>(keys.tasks)).filter((t) => t.value.serviceId === serviceId);

test('a service is stored with its tasks already placed, in one transaction', async (t) => {
  const store = new SlowStore();
  const loop = await leaderLoop(t, store);
  const service = await createService(store, ServiceSpec.parse({ name: 'web', replicas: 4, container: { image: 'busybox' } }), undefined, withTasksOf(loop));
  // Nothing has had time to run after the create answered: what is stored came with it.
  const tasks = await tasksOf(store, service.id);
  t.is(tasks.length, 4, 'the four tasks were stored when the create answered');
  t.true(tasks.every((task) => task.value.status.state === 'assigned' && task.value.nodeId !== undefined), 'each is assigned to a node');
  t.deepEqual([...new Set(tasks.map((task) => task.value.nodeId))].sort(), ['n1', 'n2'], 'spread over both nodes');
  const stored = await store.get(keys.service(service.id));
  t.truthy(stored, 'the service is stored');
  t.true(tasks.every((task) => task.version === stored!.version), 'the service and its tasks share one revision');
});

test('a service of more tasks than one transaction holds gets the rest from the next passes', async (t) => {
  const store = new SlowStore();
  const loop = await leaderLoop(t, store);
  const service = await createService(store, ServiceSpec.parse({ name: 'big', replicas: 250, container: { image: 'busybox' } }), undefined, withTasksOf(loop));
  const first = await tasksOf(store, service.id);
  t.true(first.length > 0 && first.length < 250, `${first.length} tasks came with the service`);
  await eventually(5_000, async () => ((await tasksOf(store, service.id)).length === 250 ? true : undefined));
  t.true((await tasksOf(store, service.id)).every((task) => task.value.status.state === 'assigned'), 'every task was placed');
});

test('a taken name is refused as before, and no task of the refused service is stored', async (t) => {
  const store = new SlowStore();
  const loop = await leaderLoop(t, store);
  await createService(store, ServiceSpec.parse({ name: 'web', replicas: 1, container: { image: 'busybox' } }), undefined, withTasksOf(loop));
  const error = await t.throwsAsync(createService(store, ServiceSpec.parse({ name: 'web', replicas: 3, container: { image: 'busybox' } }), undefined, withTasksOf(loop)));
  t.regex(error!.message, /a service named "web" exists already/);
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.is((await store.list<TaskObject>(keys.tasks)).length, 1, 'only the first service\'s task is stored');
});

test('a create that finds a pass under way stores the service alone, and a later pass places it', async (t) => {
  const slowMs = 1_200;
  const store = new SlowStore(slowMs);
  const loop = await leaderLoop(t, store);
  store.slow = true;
  // The first create's pass holds its commit; the second comes in meanwhile.
  const first = createService(store, ServiceSpec.parse({ name: 'first', replicas: 2, container: { image: 'busybox' } }), undefined, withTasksOf(loop));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const startedAt = performance.now();
  const second = await createService(store, ServiceSpec.parse({ name: 'second', replicas: 2, container: { image: 'busybox' } }), undefined, withTasksOf(loop));
  const answeredMs = performance.now() - startedAt;
  t.true(answeredMs < slowMs / 2, `the second create answered in ${Math.round(answeredMs)} ms, without waiting for the pass`);
  t.truthy(await store.get(keys.service(second.id)), 'the second service is stored');
  await first;
  store.slow = false;
  const placed = await eventually(5_000, async () => ((await tasksOf(store, second.id)).length === 2 ? true : undefined));
  t.true(placed.value, 'a later pass placed the second service');
});
