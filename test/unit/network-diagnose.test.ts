import test from 'ava';
import { compareDiscovery, compareWithTable } from '../../manager/network/diagnose.ts';
import { parseSandboxRules, rulesHold, sandboxRules } from '../../netplug/discovery/rules.ts';
import { packDiscovery, unpackDiscovery } from '../../netplug/discovery/discovery.ts';
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
      routes: [],
    },
  ]);
  t.deepEqual(tables.get('c')!.map((table) => table.members.map((m) => m.nodeId)), [['a', 'b']], 'a node that is down still gets its tables; it is nobody\'s member');
  t.deepEqual(tables.get('b')!.map((table) => [table.networkId, table.peers.map((p) => p.address)]), [['n1', ['198.19.0.2']], ['n2', []]]);
  t.deepEqual(tables.get('d'), [], 'a node without endpoints gets no table');
});

test('a host\'s kernel state set against its table names each missing and stale entry', (t) => {
  const table = { networkId: 'n1', peers: [{ address: '198.19.0.3', mac: '02:42:c6:13:00:03', host: '198.18.0.2' }], members: [], routes: [] };
  const vtep = {
    driver: 'overlay',
    summary: 'VTEP svx-4097 mtu 1450',
    vtep: { device: 'svx-4097', local: '198.18.0.1', mtu: 1450 },
    fdb: [{ mac: '00:00:00:00:00:00', host: '198.18.0.2' }, { mac: '02:42:c6:13:00:03', host: '198.18.0.2' }],
    neighbours: [{ address: '198.19.0.3', mac: '02:42:c6:13:00:03' }],
  };
  const healthy = { driver: 'overlay', detail: vtep, endpoints: 1, problems: [], heard: [{ node: 'b', host: '198.18.0.2', endpoints: 1, ageMs: 120 }] };
  t.deepEqual(compareWithTable(healthy, table), []);
  const broken = { ...healthy, detail: { ...vtep, fdb: [vtep.fdb[0]!, { mac: '02:42:c6:13:00:09', host: '198.18.0.3' }], neighbours: [] } };
  t.deepEqual(compareWithTable(broken, table), [
    'missing FDB entry 02:42:c6:13:00:03 -> 198.18.0.2 (198.19.0.3)',
    'missing neighbour entry 198.19.0.3 -> 02:42:c6:13:00:03',
    'stale FDB entry 02:42:c6:13:00:09 -> 198.18.0.3',
  ]);
  t.deepEqual(compareWithTable(undefined, table), ['the host has endpoints on the network but no data plane for it']);
  const bridge = { driver: 'bridge', summary: 'bridge slb-0123456789', bridge: 'slb-0123456789', gateway: '198.19.128.1', endpoints: ['slv-1'], nat: true };
  t.deepEqual(compareWithTable({ driver: 'bridge', detail: bridge, endpoints: 1, problems: [] }, undefined), [], 'a local bridge has no peers to compare');
  t.deepEqual(compareWithTable({ driver: 'bridge', detail: bridge, endpoints: 1, problems: ['nftables table ip shoal-0123456789 is missing'] }, undefined), ['nftables table ip shoal-0123456789 is missing'], 'what the agent\'s own check found is kept');
  const unheard = { ...healthy, heard: [{ node: 'b', host: '198.18.0.2', endpoints: 0 }] };
  t.deepEqual(compareWithTable(unheard, table), ['no endpoint announcement heard from 198.18.0.2 lately (gossip)']);
});

test('a sandbox\'s table read back from nft gives the DNS ports and each VIP\'s backends as rendered, an empty VIP with none', (t) => {
  const rendered = sandboxRules({ udpPort: 40001, tcpPort: 40002 }, [
    { address: '198.19.0.2', service: 'web', backends: ['198.19.0.4', '198.19.0.3'] },
    { address: '198.19.0.9', service: 'idle', backends: [] },
  ]);
  t.true(rendered.includes('ip daddr 198.19.0.2 dnat to numgen inc mod 2 map { 0 : 198.19.0.4, 1 : 198.19.0.3 }'));
  // As `nft list table` prints it (tabs, "priority filter", the implied l4proto dropped).
  const listing = [
    'table ip shoal-sandbox {',
    '\tchain output {',
    '\t\ttype nat hook output priority -100; policy accept;',
    '\t\tip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:40001',
    '\t\tip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:40002',
    '\t\tip daddr 198.19.0.2 dnat to numgen inc mod 2 map { 0 : 198.19.0.4, 1 : 198.19.0.3 }',
    '\t}',
    '\tchain refuse {',
    '\t\ttype filter hook output priority filter; policy accept;',
    '\t\tip daddr { 198.19.0.9 } reject with tcp reset',
    '\t\tip daddr { 198.19.0.9 } reject',
    '\t}',
    '}',
  ].join('\n');
  t.deepEqual(parseSandboxRules(listing), {
    dnsPorts: { udp: 40001, tcp: 40002 },
    vips: [
      { address: '198.19.0.2', backends: ['198.19.0.3', '198.19.0.4'] },
      { address: '198.19.0.9', backends: [] },
    ],
  });
  t.deepEqual(parseSandboxRules(''), { dnsPorts: {}, vips: [] }, 'no table: nothing');
});

test('a host\'s DNS records and sandbox VIP rules set against the leader\'s service table name each difference', (t) => {
  const wanted = {
    networkId: 'n1',
    records: [
      { name: 'web', addresses: ['198.19.0.2'] },
      { name: 'tasks.web', addresses: ['198.19.0.3', '198.19.0.4'], shuffle: true },
      { name: 'web.1.abc', addresses: ['198.19.0.3'] },
    ],
    vips: [{ address: '198.19.0.2', service: 'web', backends: ['198.19.0.4', '198.19.0.3'] }],
  };
  const sandbox = { id: 'c1', name: 'api.1.xyz', dnsRedirected: true, vips: [{ address: '198.19.0.2', backends: ['198.19.0.3', '198.19.0.4'] }] };
  const healthy = { records: [...wanted.records].reverse(), vips: wanted.vips, sandboxes: [sandbox] };
  t.deepEqual(compareDiscovery(healthy, wanted), [], 'order does not matter');
  const broken = {
    records: [{ name: 'web', addresses: ['198.19.0.2'] }, { name: 'tasks.web', addresses: ['198.19.0.3', '198.19.0.5'] }, { name: 'old', addresses: ['198.19.0.7'] }],
    vips: wanted.vips,
    sandboxes: [
      { ...sandbox, dnsRedirected: false, vips: [{ address: '198.19.0.2', backends: ['198.19.0.3', '198.19.0.5'] }, { address: '198.19.0.8', backends: [] }] },
      { ...sandbox, name: 'api.2.zzz', vips: [] },
    ],
  };
  t.deepEqual(compareDiscovery(broken, wanted), [
    'DNS: tasks.web answers 198.19.0.3, 198.19.0.5 where the manager wants 198.19.0.3, 198.19.0.4',
    'DNS: no record for web.1.abc (wanted 198.19.0.3)',
    'DNS: stale record old -> 198.19.0.7',
    'sandbox api.1.xyz: 127.0.0.11:53 is not redirected to the embedded DNS',
    'sandbox api.1.xyz: VIP 198.19.0.2 (web) spreads over 198.19.0.3, 198.19.0.5: missing backend 198.19.0.4; stale backend 198.19.0.5',
    'sandbox api.1.xyz: stale rule for VIP 198.19.0.8',
    'sandbox api.2.zzz: no rule for VIP 198.19.0.2 (web)',
  ]);
  t.deepEqual(compareDiscovery(undefined, wanted), [], 'a host that was not asked has nothing to compare');
});

test('a sandbox table read back holds its rules whatever order the VIPs sort in', (t) => {
  const vips = [
    { address: '198.19.0.20', service: 'api', backends: ['198.19.0.21'] },
    { address: '198.19.0.2', service: 'web', backends: ['198.19.0.4', '198.19.0.3'] },
  ];
  const dns = { udpPort: 40001, tcpPort: 40002 };
  const listing = sandboxRules(dns, vips);
  t.true(rulesHold(parseSandboxRules(listing), dns, vips), '198.19.0.2 and 198.19.0.20 compare equal on both sides');
  t.false(rulesHold(parseSandboxRules(listing), dns, [vips[0]!]), 'a stale VIP in the kernel does not hold');
  t.false(rulesHold(parseSandboxRules(listing), { ...dns, udpPort: 1 }, vips), 'a DNS redirect elsewhere does not hold');
});

test('networks split per host carry each other ready host\'s unexpired subnet as a route, and a missing route is named', (t) => {
  const nodes = [node('a', '198.18.0.1'), node('b', '198.18.0.2'), node('c', '198.18.0.3', 'down'), node('d', '198.18.0.4')];
  const leases = [lease('hg', '198.19.96.2', 'a'), lease('hg', '198.19.97.2', 'b'), lease('hg', '198.19.98.2', 'c'), lease('hg', '198.19.99.2', 'd')];
  const now = 1_000_000;
  const subnet = (nodeId: string, value: string, renewedAt = now) => ({ networkId: 'hg', nodeId, subnet: value, renewedAt, ttlMs: 30_000 });
  const subnets = [subnet('a', '198.19.96.0/24'), subnet('b', '198.19.97.0/24'), subnet('c', '198.19.98.0/24'), subnet('d', '198.19.99.0/24', now - 31_000)];
  const tables = peerTablesFrom(leases, nodes, subnets, now);
  t.deepEqual(tables.get('a')![0]!.routes, [{ subnet: '198.19.97.0/24', host: '198.18.0.2' }], 'a down node and an expired lease route nowhere; its own subnet is left out');
  const state = { driver: 'hostgw', endpoints: 1, problems: [], routes: [{ destination: '198.19.97.0/24', via: '198.18.0.2', present: false }] };
  t.deepEqual(compareWithTable(state, tables.get('a')![0]), ['missing route 198.19.97.0/24 via 198.18.0.2']);
  const refused = { ...state, problems: ['route 198.19.97.0/24 via 198.18.0.2 refused: no L2'], routes: [{ ...state.routes[0]!, refused: 'no L2' }] };
  t.deepEqual(compareWithTable(refused, tables.get('a')![0]), ['route 198.19.97.0/24 via 198.18.0.2 refused: no L2']);
});

test('a host\'s discovery state travels with each distinct set of sandbox VIP rules once, and unpacks to what was packed', (t) => {
  const backends = Array.from({ length: 500 }, (_, i) => `198.19.${72 + Math.floor(i / 250)}.${(i % 250) + 2}`);
  const alike = [{ address: '198.19.75.254', backends }];
  const state = {
    records: [{ name: 'web', addresses: ['198.19.75.254'] }],
    vips: [],
    sandboxes: [
      ...Array.from({ length: 200 }, (_, i) => ({ id: `s${i}`, name: `web.${i}`, dnsRedirected: true, vips: alike.map((v) => ({ ...v, backends: [...v.backends] })) })),
      { id: 'odd', name: 'odd', dnsRedirected: false, vips: [{ address: '198.19.75.254', backends: backends.slice(1) }] },
    ],
  };
  const packed = packDiscovery(state);
  t.is(packed.vipSets.length, 2);
  t.true(JSON.stringify(packed).length * 50 < JSON.stringify(state).length, 'a fiftieth of the size or less');
  t.deepEqual(unpackDiscovery(JSON.parse(JSON.stringify(packed)) as typeof packed), state);
});
