import test from 'ava';
import { type LocalEtcd, startLocalEtcd } from '../../lab/local-etcd.ts';
import { EtcdStore } from '../../shared/store/etcd.ts';
import { updateObject } from '../../shared/store/objects.ts';
import { storeConformance } from '../helpers/store-conformance.ts';

let etcd: LocalEtcd | undefined;
let store: EtcdStore | undefined;

test.before(async () => {
  etcd = await startLocalEtcd();
  store = new EtcdStore([etcd.endpoint]);
});

test.after.always(async () => {
  await store?.close();
  await etcd?.stop();
});

storeConformance(test, 'etcd store', () => store!);

test('etcd store: concurrent read-modify-writes lose no update', async (t) => {
  const key = `/conformance/counter-${process.pid}`;
  await store!.commit([{ op: 'create', key, value: 0 }]);
  await Promise.all(Array.from({ length: 10 }, () => updateObject<number>(store!, key, (n) => n + 1, 50)));
  t.is((await store!.get<number>(key))?.value, 10);
});
