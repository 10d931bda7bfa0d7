import test from 'ava';
import { announcementTtlMs, maxStrangers, PeerView } from '../../netplug/peer-view.ts';

const member = (nodeId: string, host: string) => ({ nodeId, host, p2pAddrs: [] });
const endpoint = (address: string) => ({ address, mac: `02:42:${address.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join(':')}` });

test('an endpoint announced by a member is programmed before the leader\'s table names it', (t) => {
  const view = new PeerView();
  view.setLeaderTables([{ networkId: 'n1', peers: [{ ...endpoint('198.19.0.2'), host: '198.18.0.1' }], members: [member('a', '198.18.0.1')] }]);
  t.true(view.hear('a', { networkId: 'n1', seq: 1, endpoints: [endpoint('198.19.0.2'), endpoint('198.19.0.5')] }, 1_000));
  t.deepEqual(view.peers('n1', 1_000).map((p) => [p.address, p.host]), [['198.19.0.2', '198.18.0.1'], ['198.19.0.5', '198.18.0.1']]);
});

test('an older announcement never undoes a newer one', (t) => {
  const view = new PeerView();
  view.setLeaderTables([{ networkId: 'n1', peers: [], members: [member('a', '198.18.0.1')] }]);
  view.hear('a', { networkId: 'n1', seq: 5, endpoints: [endpoint('198.19.0.2')] }, 1_000);
  t.false(view.hear('a', { networkId: 'n1', seq: 4, endpoints: [] }, 1_100));
  t.deepEqual(view.peers('n1', 1_100).map((p) => p.address), ['198.19.0.2']);
  t.true(view.hear('a', { networkId: 'n1', seq: 6, endpoints: [] }, 1_200));
  t.deepEqual(view.peers('n1', 1_200), [], 'withdrawn by its owner, and the leader holds it no more');
});

test('a host the leader does not name as a member is not believed, and one marked down loses its endpoints at once', (t) => {
  const view = new PeerView();
  view.setLeaderTables([{ networkId: 'n1', peers: [], members: [member('a', '198.18.0.1')] }]);
  view.hear('x', { networkId: 'n1', seq: 1, endpoints: [endpoint('198.19.0.9')] }, 1_000);
  view.hear('a', { networkId: 'n1', seq: 1, endpoints: [endpoint('198.19.0.2')] }, 1_000);
  t.deepEqual(view.peers('n1', 1_000).map((p) => p.address), ['198.19.0.2']);
  t.deepEqual(view.ignoredFrom('n1', 1_000), [{ node: 'x', endpoints: 1, ageMs: 0 }], 'the stranger is listed as ignored');
  view.setLeaderTables([{ networkId: 'n1', peers: [], members: [] }]);
  t.deepEqual(view.peers('n1', 1_001), [], 'node a is down: the leader dropped it');
});

test('the leader\'s table heals what gossip lost, and an announcement counts only for a while', (t) => {
  const view = new PeerView();
  view.setLeaderTables([{ networkId: 'n1', peers: [{ ...endpoint('198.19.0.3'), host: '198.18.0.1' }], members: [member('a', '198.18.0.1')] }]);
  view.hear('a', { networkId: 'n1', seq: 1, endpoints: [endpoint('198.19.0.2')] }, 0);
  t.deepEqual(view.peers('n1', 10).map((p) => p.address), ['198.19.0.2', '198.19.0.3'], 'the union of both sources');
  t.deepEqual(view.heardFrom('n1', 10), [{ node: 'a', host: '198.18.0.1', endpoints: 1, ageMs: 10 }]);
  t.deepEqual(view.peers('n1', announcementTtlMs).map((p) => p.address), ['198.19.0.3'], 'silent too long: the leader alone counts');
  t.deepEqual(view.heardFrom('n1', announcementTtlMs), [{ node: 'a', host: '198.18.0.1', endpoints: 0 }]);
});

test('the leader\'s entry wins where both name one address', (t) => {
  const view = new PeerView();
  view.setLeaderTables([{ networkId: 'n1', peers: [{ ...endpoint('198.19.0.2'), host: '198.18.0.2' }], members: [member('a', '198.18.0.1'), member('b', '198.18.0.2')] }]);
  view.hear('a', { networkId: 'n1', seq: 1, endpoints: [endpoint('198.19.0.2')] }, 0);
  t.deepEqual(view.peers('n1', 1).map((p) => p.host), ['198.18.0.2']);
});

test('a flood of announcements from hosts the leader does not list keeps a bounded number, and members are never pushed out', (t) => {
  const view = new PeerView();
  view.setLeaderTables([{ networkId: 'n1', peers: [], members: [member('a', '198.18.0.1')] }]);
  view.hear('a', { networkId: 'n1', seq: 1, endpoints: [endpoint('198.19.0.2')] }, 1_000);
  for (let i = 0; i < 1_000; i++) view.hear(`forged-${i}`, { networkId: 'n1', seq: 1, endpoints: [endpoint('198.19.0.9')] }, 1_000 + i);
  const ignored = view.ignoredFrom('n1', 2_000);
  t.is(ignored.length, maxStrangers);
  t.true(ignored.some((entry) => entry.node === 'forged-999'), 'the newest stranger is kept');
  t.deepEqual(view.peers('n1', 2_000).map((p) => p.address), ['198.19.0.2']);
});
