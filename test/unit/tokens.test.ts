import test from 'ava';
import { openJoinToken, readCluster, rotateJoinToken, initCluster } from '../../manager/cluster.ts';
import { seal, unseal, newSealKey } from '../../shared/pki/seal.ts';
import { MemoryStore } from '../../shared/store/memory.ts';
import { newJoinToken, parseJoinToken, roleForJoinToken, sha256 } from '../../shared/tokens.ts';
import { testClusterKeys } from '../helpers/cluster-keys.ts';

const digest = 'x'.repeat(50);

test('a join token carries the CA digest, its cluster and role', (t) => {
  const token = newJoinToken(digest, '0123456789abcdef', 'manager');
  t.regex(token, /^SHOAL-2-x{50}-0123456789abcdef-m-[0-9a-z]{32}$/);
  t.deepEqual(parseJoinToken(token), { caDigest: digest, clusterId: '0123456789abcdef', role: 'manager' });
});

test('malformed tokens do not parse', (t) => {
  t.is(parseJoinToken('SWMTKN-1-abc'), undefined);
  t.is(parseJoinToken('SHOAL-1-0123456789abcdef-w-00000000000000000000000000000000'), undefined);
  t.is(parseJoinToken(''), undefined);
});

test('only the current tokens grant a role; a rotated one grants none', (t) => {
  const worker = newJoinToken(digest, '0123456789abcdef', 'worker');
  const manager = newJoinToken(digest, '0123456789abcdef', 'manager');
  const current = { worker: { sha256: sha256(worker) }, manager: { sha256: sha256(manager) } };
  t.is(roleForJoinToken(worker, current), 'worker');
  t.is(roleForJoinToken(` ${manager}\n`, current), 'manager');
  const rotated = { ...current, worker: { sha256: sha256(newJoinToken(digest, '0123456789abcdef', 'worker')) } };
  t.is(roleForJoinToken(worker, rotated), undefined);
  // The new last character must differ from the real one, or one run in 36 tries the valid token itself.
  const changed = worker.endsWith('0') ? '1' : '0';
  t.is(roleForJoinToken(`${worker.slice(0, -1)}${changed}`, current), undefined);
});

test('the cluster record holds no join token in clear, and the seal key opens them', async (t) => {
  const store = new MemoryStore();
  const clusterKeys = await testClusterKeys();
  await initCluster(store, { heartbeatPeriodMs: 1000, keys: clusterKeys });
  const cluster = await readCluster(store);
  const worker = openJoinToken(cluster, 'worker', clusterKeys.sealKey);
  t.is(parseJoinToken(worker)?.caDigest, clusterKeys.caDigest);
  t.false(JSON.stringify(cluster).includes(worker), 'the stored record does not contain the token');
  t.false(JSON.stringify(cluster).includes(worker.slice(-32)), 'nor its secret');
  t.throws(() => openJoinToken(cluster, 'worker', newSealKey()), { message: /does not open with this seal key/ });
  const rotated = await rotateJoinToken(store, 'worker', clusterKeys);
  t.not(rotated, worker);
  t.is(roleForJoinToken(worker, (await readCluster(store)).joinTokens), undefined, 'the old token is refused after rotation');
  t.is(roleForJoinToken(rotated, (await readCluster(store)).joinTokens), 'worker');
});

test('a sealed secret does not open if it was changed', (t) => {
  const key = newSealKey();
  const sealed = seal(key, 'secret');
  t.is(unseal(key, sealed), 'secret');
  const parts = sealed.split('.');
  parts[2] = Buffer.from('other!').toString('base64url');
  t.throws(() => unseal(key, parts.join('.')));
});
