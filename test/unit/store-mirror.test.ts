import test from 'ava';
import { StoreMirror } from '../../shared/store/mirror.ts';
import { MemoryStore } from '../../shared/store/memory.ts';
import { keys } from '../../shared/keys.ts';
import { keepTaskSpec, type TaskObject } from '../../shared/services.ts';

test('a mirror starts from what is stored and follows later writes and deletes', async (t) => {
  const store = new MemoryStore();
  await store.commit([{ op: 'create', key: '/t/a', value: 1 }, { op: 'create', key: '/other/x', value: 0 }]);
  const changed: string[] = [];
  const mirror = await StoreMirror.open(store, ['/t/'], (key) => changed.push(key));
  t.teardown(() => mirror.close());
  t.deepEqual(mirror.values<number>('/t/').map((e) => [e.key, e.value]), [['/t/a', 1]]);
  await store.commit([{ op: 'create', key: '/t/b', value: 2 }, { op: 'delete', key: '/t/a' }, { op: 'create', key: '/other/y', value: 0 }]);
  t.deepEqual(mirror.values<number>('/t/').map((e) => [e.key, e.value]), [['/t/b', 2]]);
  t.deepEqual(changed.slice(-2), ['/t/b', '/t/a']);
  t.is(mirror.get('/other/y'), undefined, 'keys outside the mirrored prefixes are not kept');
});

test('a commit folded in is told at once, and its watch echo changes nothing', async (t) => {
  const store = new MemoryStore();
  const changed: string[] = [];
  const mirror = await StoreMirror.open(store, ['/t/'], (key) => changed.push(key));
  t.teardown(() => mirror.close());
  // A store whose watch has not delivered yet: the writer folds its own commit in.
  const ops = [{ op: 'create' as const, key: '/t/a', value: 'mine' }];
  const result = await new MemoryStore().commit(ops);
  t.true(result.ok);
  mirror.applyCommit(ops, 1_000);
  t.deepEqual(changed, ['/t/a']);
  t.is(mirror.get<string>('/t/a')?.version, 1_000);
  // An older write arriving later (a lagging watch) does not overwrite the newer state.
  await store.commit([{ op: 'create', key: '/t/a', value: 'older' }]);
  t.is(mirror.get<string>('/t/a')?.value, 'mine');
  t.deepEqual(changed, ['/t/a']);
});

test('a key this process deleted stays deleted when an older write arrives through the watch after it', async (t) => {
  const store = new MemoryStore();
  await store.commit([{ op: 'create', key: '/t/a', value: 'first' }]);
  const changed: string[] = [];
  const mirror = await StoreMirror.open(store, ['/t/'], (key) => changed.push(key));
  t.teardown(() => mirror.close());
  // The writer deletes the key at revision 1,000 and folds that in before the watch has shown
  // a report written just before (revision 2 here, well below the delete's).
  mirror.applyCommit([{ op: 'delete', key: '/t/a' }], 1_000);
  t.true((await store.commit([{ op: 'update', key: '/t/a', value: 'report', version: 1 }])).ok);
  t.is(mirror.get('/t/a'), undefined, 'the late, older write does not bring the key back');
  t.deepEqual(changed, ['/t/a', '/t/a'], 'told once at the start, once for the delete');
});

test('a task\'s later versions keep the spec object of its first: a status report does not copy it', async (t) => {
  const store = new MemoryStore();
  const key = `${keys.tasks}t1`;
  const task = { id: 't1', serviceId: 's1', specVersion: 1, spec: { name: 'web', replicas: 2 }, status: { state: 'assigned' } };
  await store.commit([{ op: 'create', key, value: task }]);
  const mirror = await StoreMirror.open(store, [keys.tasks], () => undefined, keepTaskSpec);
  t.teardown(() => mirror.close());
  const first = mirror.get<TaskObject>(key)!.value;
  // Each write reaches the mirror freshly parsed (as from etcd's watch): an equal spec, another object.
  await store.commit([{ op: 'update', key, value: { ...task, status: { state: 'running' } }, version: 1 }]);
  const second = mirror.get<TaskObject>(key)!.value;
  t.is(second.status.state, 'running');
  t.is(second.spec, first.spec, 'the same spec object, not an equal copy');
  // Another task, or another spec version, keeps its own.
  const other = `${keys.tasks}t2`;
  await store.commit([{ op: 'create', key: other, value: { ...task, id: 't2' } }]);
  t.not(mirror.get<TaskObject>(other)!.value.spec, first.spec);
  t.deepEqual(keepTaskSpec(key, { ...task, specVersion: 2, spec: { name: 'web', replicas: 3 } }, first), { ...task, specVersion: 2, spec: { name: 'web', replicas: 3 } });
  t.is(keepTaskSpec('/shoal/v1/services/s1', second, first), second, 'keys other than tasks are left alone');
});
