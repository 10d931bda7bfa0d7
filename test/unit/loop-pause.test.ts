/**
 * The control loop pauses after a pass for as long as the pass took (so that a storm of task
 * reports leaves time to the rest of the leader), but a service change, which a user waits
 * on, is placed without waiting out that pause.
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
import { hostDescription } from '../helpers/node-description.ts';
import { SlowStore } from '../helpers/slow-store.ts';

const description = hostDescription;

async function tasksOf(store: MemoryStore, serviceName: string, count: number): Promise<number> {
  const startedAt = performance.now();
  for (;;) {
    const tasks = (await store.list<TaskObject>(keys.tasks)).filter((t) => t.value.serviceName === serviceName);
    if (tasks.length >= count) return performance.now() - startedAt;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

test('a service created right after a slow pass is placed without waiting as long as that pass took', async (t) => {
  const slowMs = 600;
  const store = new SlowStore(slowMs);
  await registerNode(store, { nodeId: 'n1', role: 'worker', description, labels: {} });
  await setNodeState(store, 'n1', 'ready', 'heartbeating', { fence: [] });
  const dispatcher = { onSessionOpen: () => () => undefined, assign: () => undefined } as unknown as Dispatcher;
  const loop = new ControlLoop(store, dispatcher, silentLogger);
  t.teardown(() => loop.stop());
  await loop.start();
  await new Promise((resolve) => setTimeout(resolve, 100));
  store.slow = true;
  await createService(store, ServiceSpec.parse({ name: 'first', replicas: 3, container: { image: 'busybox' } }));
  t.true((await tasksOf(store, 'first', 3)) >= slowMs, 'the first service\'s pass took as long as its commit');
  store.slow = false;
  // The loop now pauses for as long as that pass took before it looks again.
  await createService(store, ServiceSpec.parse({ name: 'second', replicas: 3, container: { image: 'busybox' } }));
  const waited = await tasksOf(store, 'second', 3);
  t.true(waited < slowMs / 2, `the second service's tasks were stored ${Math.round(waited)} ms after its creation`);
});
