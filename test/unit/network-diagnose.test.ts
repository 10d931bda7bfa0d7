import test from 'ava';
import { compareWithTable } from '../../manager/network/diagnose.ts';
import { peerTablesFrom } from '../../manager/network/peer-tables.ts';
import type { NodeObject } from '../../shared/schemas.ts';

const node = (id: string, address: string, state: NodeObject['status']['state'] = 'ready') =>
  ({ id, description: { address, p2pAddrs: [`/ip4/${address}/tcp/4100/p2p/${id}`] }, status: { state } }) as unknown as NodeObject;
const lease = (networkId: string, address: string, nodeId: string) => ({ networkId, address, owner: address, nodeId, allocatedAt: '' });

test('peer tables hold the remote endpoints and member hosts of the networks a node is on, and leave out nodes that are down', (t) => {
  const nodes = [node('a', '198.18.0.1'), node('b', '198.18.0.2'), node('c', '198.18.0.3', 'down'), node('d', '198.18.0.4')];
  const leases = [lease('n1', '198.19.0.2', 'a'), lease('n1', '198.19.0.3', 'b'), lease('n1', '198.19.0.4', 'c'), lease('n2', '198.19.1.2', 'b')];
  const tables = peerTablesFrom(leases, nodes);
  t.deepEqual(tables.get('a'), [
    {
      networkId: 'n1',
      peers: [{ address: '198.19.0.3', mac: '02:42:c6:13:00:03', host: '198.18.0.2' }],
      members: [{ nodeId: 'b', host: '198.18.0.2', p2pAddrs: ['/ip4/198.18.0.2/tcp/4100/p2p/b'] }],
    },
  ]);
  t.deepEqual(tables.get('c')!.map((table) => table.members.map((m) => m.nodeId)), [['a', 'b']], 'a node that is down still gets its tables; it is nobody\'s member');
  t.deepEqual(tables.get('b')!.map((table) => [table.networkId, table.peers.map((p) => p.address)]), [['n1', ['198.19.0.2']], ['n2', []]]);
  t.deepEqual(tables.get('d'), [], 'a node without endpoints gets no table');
});

test('a host\'s kernel state set against its table names each missing and stale entry', (t) => {
  const table = { networkId: 'n1', peers: [{ address: '198.19.0.3', mac: '02:42:c6:13:00:03', host: '198.18.0.2' }], members: [] };
  const healthy = {
    vni: 4097,
    endpoints: [],
    fdb: [{ mac: '00:00:00:00:00:00', host: '198.18.0.2' }, { mac: '02:42:c6:13:00:03', host: '198.18.0.2' }],
    neighbours: [{ address: '198.19.0.3', mac: '02:42:c6:13:00:03' }],
    heard: [{ node: 'b', host: '198.18.0.2', endpoints: 1, ageMs: 120 }],
  };
  t.deepEqual(compareWithTable(healthy, table), []);
  const broken = { ...healthy, fdb: [healthy.fdb[0]!, { mac: '02:42:c6:13:00:09', host: '198.18.0.3' }], neighbours: [] };
  t.deepEqual(compareWithTable(broken, table), [
    'missing FDB entry 02:42:c6:13:00:03 -> 198.18.0.2 (198.19.0.3)',
    'missing neighbour entry 198.19.0.3 -> 02:42:c6:13:00:03',
    'stale FDB entry 02:42:c6:13:00:09 -> 198.18.0.3',
  ]);
  t.deepEqual(compareWithTable(undefined, table), ['the host has endpoints on the network but no VTEP']);
  t.deepEqual(compareWithTable({ bridge: 'slb-0123456789', gateway: '198.19.128.1', endpoints: ['slv-1'], nat: true }, undefined), [], 'a local bridge has no peers to compare');
  const unheard = { ...healthy, heard: [{ node: 'b', host: '198.18.0.2', endpoints: 0 }] };
  t.deepEqual(compareWithTable(unheard, table), ['no endpoint announcement heard from 198.18.0.2 lately (gossip)']);
});
