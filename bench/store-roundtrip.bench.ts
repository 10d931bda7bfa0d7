/**
 * etcd round trip through Shoal's store layer against raw etcd3 client calls, side by side in
 * one run against one etcd on loopback: a plain write, and a revision-checked transaction.
 * Blocks of each kind alternate so that drift in the machine's load hits both alike.
 */
import { Etcd3 } from 'etcd3';
import { startLocalEtcd } from '../lab/local-etcd.ts';
import { EtcdStore } from '../shared/store/etcd.ts';
import { ratio, summarise, timeMs } from './stats.ts';

const rounds = 10;
const perBlock = 100;
const value = { spec: { availability: 'active', role: 'worker', labels: { zone: 'a' } }, status: { state: 'ready', message: 'ok' } };

export default async function storeRoundtrip(): Promise<Record<string, unknown>> {
  const etcd = await startLocalEtcd();
  const raw = new Etcd3({ hosts: etcd.endpoint });
  const store = new EtcdStore([etcd.endpoint]);
  const samples = { rawPut: [] as number[], shoalPut: [] as number[], rawTxn: [] as number[], shoalTxn: [] as number[] };
  try {
    const json = JSON.stringify(value);
    // Warm both clients' connections before measuring.
    for (let i = 0; i < 50; i++) {
      await raw.put(`/bench/warm/${i}`).value(json);
      await store.commit([{ op: 'create', key: `/bench/warm-s/${i}`, value }]);
    }
    for (let round = 0; round < rounds; round++) {
      const rawKeys = Array.from({ length: perBlock }, (_, i) => `/bench/raw/${round}/${i}`);
      const shoalKeys = Array.from({ length: perBlock }, (_, i) => `/bench/shoal/${round}/${i}`);
      for (const key of rawKeys) samples.rawPut.push(await timeMs(() => raw.put(key).value(json).exec()));
      for (const key of shoalKeys) samples.shoalPut.push(await timeMs(() => store.commit([{ op: 'create', key, value }])));
      for (const key of rawKeys) {
        samples.rawTxn.push(
          await timeMs(async () => {
            const current = await raw.get(key).exec();
            const revision = current.kvs[0]!.mod_revision;
            await raw.if(key, 'Mod', '==', revision).then(raw.put(key).value(json)).commit();
          }),
        );
      }
      for (const key of shoalKeys) {
        samples.shoalTxn.push(
          await timeMs(async () => {
            const current = await store.get(key);
            await store.commit([{ op: 'update', key, value, version: current!.version }]);
          }),
        );
      }
    }
  } finally {
    raw.close();
    await store.close();
    await etcd.stop();
  }
  const put = { raw: summarise(samples.rawPut), shoal: summarise(samples.shoalPut) };
  const txn = { raw: summarise(samples.rawTxn), shoal: summarise(samples.shoalTxn) };
  return {
    description:
      'etcd round trip, Shoal store layer vs raw etcd3 client, one etcd on loopback, same run. put: raw put vs Shoal create (a txn that checks the key is new); readThenTxn: get then revision-checked put, both ways',
    put: { ...put, ratioP50: ratio(put.shoal.p50Ms, put.raw.p50Ms), ratioP99: ratio(put.shoal.p99Ms, put.raw.p99Ms) },
    readThenTxn: { ...txn, ratioP50: ratio(txn.shoal.p50Ms, txn.raw.p50Ms), ratioP99: ratio(txn.shoal.p99Ms, txn.raw.p99Ms) },
  };
}
