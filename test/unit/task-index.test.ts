import test from 'ava';
import fc from 'fast-check';
import { TaskIndex } from '../../manager/orchestrator/task-index.ts';
import type { NodeInfo } from '../../manager/scheduler/filters.ts';
import { nodeInfos, schedule } from '../../manager/scheduler/schedule.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { isTerminal, ServiceSpec, type TaskObject, taskStates } from '../../shared/services.ts';

const time = '2026-01-01T00:00:00.000Z';
const nodeIds = ['a', 'b', 'c'];
const specs = [
  ServiceSpec.parse({ name: 'plain', container: { image: 'busybox' } }),
  ServiceSpec.parse({ name: 'sized', container: { image: 'busybox' }, reservations: { nanoCpus: 5e8, memoryBytes: 1 << 20 } }),
  ServiceSpec.parse({ name: 'ported', container: { image: 'busybox' }, endpoint: { ports: [{ targetPort: 80, publishedPort: 8080, protocol: 'tcp', mode: 'host' }] } }),
];

function node(id: string, state: NodeObject['status']['state']): NodeObject {
  return {
    id,
    spec: { availability: 'active', role: 'worker', labels: {} },
    description: { hostname: id, address: '198.18.0.1', cpus: 2, memoryBytes: 4 << 30, kernel: '6', os: 'linux', arch: 'x64', runtime: { name: 'runc', version: '1' }, engineLabels: {}, agentVersion: '0', p2pAddrs: [] },
    status: { state, message: '' },
    createdAt: time,
    updatedAt: time,
  };
}

const taskChange = fc.record({
  kind: fc.constant('task' as const),
  id: fc.integer({ min: 0, max: 7 }),
  deleted: fc.boolean(),
  service: fc.integer({ min: 0, max: 2 }),
  nodeId: fc.option(fc.constantFrom(...nodeIds), { nil: undefined }),
  state: fc.constantFrom(...taskStates),
  running: fc.boolean(),
});
const nodeChange = fc.record({ kind: fc.constant('node' as const), id: fc.constantFrom(...nodeIds), deleted: fc.boolean(), ready: fc.boolean() });

/** The infos of known nodes, in a stable order, as plain data. */
const plain = (infos: NodeInfo[]) => infos.map((i) => ({ ...i, tasksByService: [...i.tasksByService].sort(), hostPorts: [...i.hostPorts].sort() })).sort((x, y) => x.node.id.localeCompare(y.node.id));

test('the index kept change by change equals the one built from scratch, and scheduling leaves its loads as they were', (t) => {
  fc.assert(
    fc.property(fc.array(fc.oneof(taskChange, taskChange, nodeChange), { maxLength: 60 }), (changes) => {
      const index = new TaskIndex();
      const tasks = new Map<string, TaskObject>();
      const nodes = new Map<string, NodeObject>();
      for (const change of changes) {
        if (change.kind === 'node') {
          const before = nodes.get(change.id);
          const after = change.deleted ? undefined : node(change.id, change.ready ? 'ready' : 'down');
          if (after) nodes.set(change.id, after);
          else nodes.delete(change.id);
          index.setNode(before, after);
          continue;
        }
        const id = `t${change.id}`;
        const before = tasks.get(id);
        const spec = specs[change.service]!;
        const after: TaskObject | undefined = change.deleted ? undefined : {
          id, serviceId: `s${change.service}`, serviceName: spec.name, slot: 1, ...(change.nodeId ? { nodeId: change.nodeId } : {}), spec, specVersion: 1,
          desiredState: change.running ? 'running' : 'shutdown', status: { state: change.state, message: '', timestamp: time }, createdAt: time, updatedAt: time,
        };
        if (after) tasks.set(id, after);
        else tasks.delete(id);
        index.setTask(before, after);
      }
      const all = [...tasks.values()];
      const grouped = (key: (task: TaskObject) => string | undefined) => {
        const groups: Record<string, string[]> = {};
        for (const task of all) {
          const k = key(task);
          if (k !== undefined) (groups[k] ??= []).push(task.id);
        }
        return Object.fromEntries(Object.entries(groups).map(([k, ids]) => [k, ids.sort()]));
      };
      const indexed = (groups: Map<string, Map<string, TaskObject>>) => Object.fromEntries([...groups].map(([k, ids]) => [k, [...ids.keys()].sort()]));
      t.deepEqual(indexed(index.byService), grouped((task) => task.serviceId));
      t.deepEqual(indexed(index.byNode), grouped((task) => (task.nodeId && task.status.state !== 'pending' && !isTerminal(task.status.state) ? task.nodeId : undefined)));
      t.deepEqual([...index.pending.keys()].sort(), all.filter((task) => task.desiredState === 'running' && task.status.state === 'pending').map((task) => task.id).sort());
      t.is(index.size, tasks.size);
      const fromScratch = nodeInfos([...nodes.values()], all);
      t.deepEqual(plain(index.infos()), plain(fromScratch));

      // Placing the pending tasks, with the first task freed, gives what a from-scratch count gives, and changes no load.
      const freed = all.slice(0, 1);
      const before = plain(index.infos());
      const placed = index.schedule([...index.pending.values()], freed);
      t.deepEqual(plain(index.infos()), before);
      const expected = schedule([...index.pending.values()], nodeInfos([...nodes.values()], all.filter((task) => !freed.includes(task))));
      t.deepEqual(placed, expected);
    }),
    { numRuns: 300 },
  );
});
