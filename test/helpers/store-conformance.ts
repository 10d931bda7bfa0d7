import type { TestFn } from 'ava';
import type { Store, WatchEvent } from '../../shared/store/store.ts';

/**
 * The behaviour every Store must have, run against each implementation (the in-memory one in
 * unit tests, etcd in integration tests). Each test gets a fresh key prefix.
 */
export function storeConformance(test: TestFn, name: string, store: () => Store): void {
  let counter = 0;
  const prefix = () => `/conformance/${process.pid}/${Date.now()}-${counter++}/`;

  test(`${name}: create fails when the key exists`, async (t) => {
    const p = prefix();
    t.true((await store().commit([{ op: 'create', key: `${p}a`, value: { n: 1 } }])).ok);
    t.false((await store().commit([{ op: 'create', key: `${p}a`, value: { n: 2 } }])).ok);
    t.deepEqual((await store().get(`${p}a`))?.value, { n: 1 });
  });

  test(`${name}: update with a stale version is refused and changes nothing`, async (t) => {
    const p = prefix();
    await store().commit([{ op: 'create', key: `${p}a`, value: 1 }]);
    const read = await store().get<number>(`${p}a`);
    t.truthy(read);
    const first = await store().commit([{ op: 'update', key: `${p}a`, value: 2, version: read!.version }]);
    t.true(first.ok);
    const second = await store().commit([{ op: 'update', key: `${p}a`, value: 3, version: read!.version }]);
    t.false(second.ok);
    const after = await store().get<number>(`${p}a`);
    t.is(after?.value, 2);
    t.is(after?.version, first.ok ? first.revision : -1);
  });

  test(`${name}: a transaction applies all its operations or none`, async (t) => {
    const p = prefix();
    await store().commit([{ op: 'create', key: `${p}taken`, value: 'x' }]);
    const failed = await store().commit([
      { op: 'create', key: `${p}new`, value: 'y' },
      { op: 'create', key: `${p}taken`, value: 'z' },
    ]);
    t.false(failed.ok);
    t.is(await store().get(`${p}new`), undefined);
    const taken = await store().get(`${p}taken`);
    const ok = await store().commit([
      { op: 'create', key: `${p}new`, value: 'y' },
      { op: 'delete', key: `${p}taken`, version: taken!.version },
    ]);
    t.true(ok.ok);
    t.deepEqual((await store().list(p)).map((e) => e.key), [`${p}new`]);
  });

  test(`${name}: delete with a stale version is refused`, async (t) => {
    const p = prefix();
    await store().commit([{ op: 'create', key: `${p}a`, value: 1 }]);
    const read = await store().get(`${p}a`);
    await store().commit([{ op: 'update', key: `${p}a`, value: 2, version: read!.version }]);
    t.false((await store().commit([{ op: 'delete', key: `${p}a`, version: read!.version }])).ok);
    t.truthy(await store().get(`${p}a`));
  });

  test(`${name}: list returns the prefix's keys sorted, and nothing outside it`, async (t) => {
    const p = prefix();
    await store().commit([
      { op: 'create', key: `${p}b`, value: 2 },
      { op: 'create', key: `${p}a`, value: 1 },
      { op: 'create', key: `${p.slice(0, -1)}x`, value: 3 },
    ]);
    const listed = await store().list<number>(p);
    t.deepEqual(listed.map((e) => [e.key, e.value]), [[`${p}a`, 1], [`${p}b`, 2]]);
  });

  test(`${name}: list pages through more keys than one response holds`, async (t) => {
    const p = prefix();
    // 2,500 keys cross the etcd store's page size twice; the values make the whole several MiB.
    const value = 'x'.repeat(2_000);
    for (let i = 0; i < 2_500; i += 100) {
      t.true((await store().commit(Array.from({ length: 100 }, (_, j) => ({ op: 'create' as const, key: `${p}${String(i + j).padStart(5, '0')}`, value })))).ok);
    }
    const listed = await store().list<string>(p);
    t.is(listed.length, 2_500);
    t.is(listed[0]?.key, `${p}00000`);
    t.is(listed.at(-1)?.key, `${p}02499`);
    t.true(listed.every((entry, i) => i === 0 || entry.key > listed[i - 1]!.key));
  });

  test(`${name}: getMany reads the keys that exist, with their versions`, async (t) => {
    const p = prefix();
    const written = await store().commit([{ op: 'create', key: `${p}a`, value: 1 }, { op: 'create', key: `${p}b`, value: 2 }]);
    const keys = [`${p}a`, `${p}missing`, ...Array.from({ length: 200 }, (_, i) => `${p}none-${i}`), `${p}b`];
    const found = await store().getMany<number>(keys);
    t.deepEqual(found.map((e) => [e.key, e.value, e.version]), [[`${p}a`, 1, written.ok ? written.revision : -1], [`${p}b`, 2, written.ok ? written.revision : -1]]);
  });

  test(`${name}: an exists condition lets a commit land only while its key is there`, async (t) => {
    const p = prefix();
    await store().commit([{ op: 'create', key: `${p}fence`, value: 'leader' }]);
    t.true((await store().commit([{ op: 'exists', key: `${p}fence` }, { op: 'create', key: `${p}a`, value: 1 }])).ok);
    await store().commit([{ op: 'delete', key: `${p}fence` }]);
    t.false((await store().commit([{ op: 'exists', key: `${p}fence` }, { op: 'create', key: `${p}b`, value: 2 }])).ok);
    t.is(await store().get(`${p}b`), undefined);
    t.is(await store().get(`${p}fence`), undefined, 'the condition writes nothing');
  });

  test(`${name}: a watch sees puts and deletes under its prefix`, async (t) => {
    const p = prefix();
    const events: WatchEvent[] = [];
    const watch = await store().watch(p, (event) => events.push(event));
    t.teardown(() => watch.close());
    await store().commit([{ op: 'create', key: `${p}a`, value: { v: 1 } }]);
    await store().commit([{ op: 'create', key: `/elsewhere/${p}`, value: 0 }]);
    await store().commit([{ op: 'delete', key: `${p}a` }]);
    const deadline = Date.now() + 5000;
    while (events.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    t.deepEqual(events.map((e) => [e.type, e.key]), [['put', `${p}a`], ['delete', `${p}a`]]);
    t.deepEqual(events[0]?.type === 'put' ? events[0].value : undefined, { v: 1 });
  });
}
