import test from 'ava';
import type { Dispatcher } from '../../manager/dispatcher/dispatcher.ts';
import { registerNode, setNodeState } from '../../manager/nodes.ts';
import { ControlLoop } from '../../manager/orchestrator/loop.ts';
import { createService } from '../../manager/services.ts';
import { keys } from '../../shared/keys.ts';
import { silentLogger } from '../../shared/log.ts';
import { ServiceSpec, type TaskObject } from '../../shared/services.ts';
import { MemoryStore } from '../../shared/store/memory.ts';
import type { CommitResult, WriteOp } from '../../shared/store/store.ts';
import { hostDescription } from '../helpers/node-description.ts';

const description = hostDescription;

/** A store whose commits fenced by `marker` wait at a gate until the test opens it. */
class GatedStore extends MemoryStore {
  held: Array<() => void> = [];
  private closed = true;
  constructor(private readonly marker: string) {
    super();
  }
  override async commit(ops: readonly WriteOp[]): Promise<CommitResult> {
    if (this.closed && ops.some((op) => op.op === 'exists' && op.key === this.marker)) await new Promise<void>((resolve) => this.held.push(resolve));
    return super.commit(ops);
  }
  open(): void {
    this.closed = false;
    for (const release of this.held.splice(0)) release();
  }
}

test('a control-loop pass held open across a deposition writes nothing and assigns nothing', async (t) => {
  const term = '/shoal/v1/leader/term-1';
  const store = new GatedStore(term);
  await store.commit([{ op: 'create', key: term, value: 'm1' }]);
  await registerNode(store, { nodeId: 'n1', role: 'worker', description, labels: {} });
  await setNodeState(store, 'n1', 'ready', 'heartbeating', { fence: [] });
  await createService(store, ServiceSpec.parse({ name: 'web', replicas: 3, container: { image: 'busybox' } }));
  const assigned: string[] = [];
  const dispatcher = { onSessionOpen: () => () => undefined, assign: (node: string) => assigned.push(node) } as unknown as Dispatcher;
  const loop = new ControlLoop(store, dispatcher, silentLogger, [{ op: 'exists', key: term }]);
  t.teardown(() => loop.stop());
  await loop.start();
  // The pass has decided and is waiting on its write when the term ends (the lease ran out).
  for (let i = 0; i < 100 && store.held.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.true(store.held.length > 0, 'the pass reached its write');
  await store.commit([{ op: 'delete', key: term }]);
  store.open();
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.deepEqual(await store.list<TaskObject>(keys.tasks), [], 'the late write of three tasks was refused');
  t.deepEqual(assigned, [], 'no node was handed work from the abandoned pass');
});
