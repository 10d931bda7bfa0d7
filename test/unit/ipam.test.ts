import test from 'ava';
import { allocateAddress, attachNetworks, attachTasks, createNetwork, detachNetworks, ensureBuiltinNetworks, findNetwork, releaseAddress, removeNetwork } from '../../manager/networks.ts';
import { formatPrefix, overlaps, parsePrefix } from '../../netplug/ipam/ipv4.ts';
import { macFor, NetworkSpec } from '../../netplug/model.ts';
import type { NetworkAttachment } from '../../shared/containers.ts';
import { isShoalError } from '../../shared/errors.ts';
import { type ClusterRecord, defaultAddressPools } from '../../shared/schemas.ts';
import { MemoryStore } from '../../shared/store/memory.ts';
import { keys } from '../../shared/keys.ts';
import { settingsOnlyCluster } from '../helpers/cluster-keys.ts';

const cluster = (pools = defaultAddressPools): ClusterRecord => settingsOnlyCluster(pools);
const spec = (fields: Record<string, unknown>) => NetworkSpec.parse(fields);
const message = (error: unknown) => (isShoalError(error) ? error.message : String(error));

test('prefixes parse, refuse host bits, and overlap as they should', (t) => {
  t.is(formatPrefix(parsePrefix('198.19.4.0/22')), '198.19.4.0/22');
  t.throws(() => parsePrefix('198.19.1.5/24'), { message: /host bits set; the subnet is 198.19.1.0\/24/ });
  t.throws(() => parsePrefix('198.19.1.0/33'));
  t.true(overlaps(parsePrefix('198.19.0.0/16'), parsePrefix('198.19.7.0/24')));
  t.false(overlaps(parsePrefix('198.19.6.0/24'), parsePrefix('198.19.7.0/24')));
  t.is(macFor('198.19.1.10'), '02:42:c6:13:01:0a');
});

test('networks without --subnet get distinct /24s from the default pool, overlays a VNI each', async (t) => {
  const store = new MemoryStore();
  await ensureBuiltinNetworks(store, cluster());
  const bridge = (await findNetwork(store, 'bridge')).value;
  t.deepEqual(bridge.pools, [{ subnet: '198.19.128.0/24', gateway: '198.19.128.1', ipRange: '198.19.128.0/24' }]);
  const a = await createNetwork(store, cluster(), spec({ name: 'a', driver: 'overlay' }));
  const b = await createNetwork(store, cluster(), spec({ name: 'b', driver: 'overlay' }));
  t.deepEqual([a.pools[0]!.subnet, b.pools[0]!.subnet], ['198.19.0.0/24', '198.19.1.0/24']);
  t.deepEqual([a.data.vni, b.data.vni, a.scope], ['4097', '4098', 'swarm']);
  const local = await createNetwork(store, cluster(), spec({ name: 'l' }));
  t.deepEqual([local.pools[0]!.subnet, local.scope, local.data.vni], ['198.19.129.0/24', 'local', undefined]);
});

test('bad network input is refused with the reason', async (t) => {
  const store = new MemoryStore();
  await createNetwork(store, cluster(), spec({ name: 'taken', driver: 'overlay', ipam: { pools: [{ subnet: '198.19.50.0/24' }] } }));
  const refusals: Array<[Record<string, unknown>, RegExp]> = [
    [{ name: 'x', driver: 'overlay', ipam: { pools: [{ subnet: '198.19.50.128/25' }] } }, /overlaps network "taken" \(198.19.50.0\/24\)/],
    [{ name: 'x', driver: 'overlay', ipam: { pools: [{ subnet: '198.19.51.0/24', gateway: '198.19.52.1' }] } }, /gateway 198.19.52.1 is not a host address of subnet 198.19.51.0\/24/],
    [{ name: 'x', driver: 'overlay', ipam: { pools: [{ subnet: '198.19.51.0/24', ipRange: '198.19.52.0/25' }] } }, /ip range 198.19.52.0\/25 is not inside subnet/],
    [{ name: 'x', driver: 'vxlan' }, /unknown network driver "vxlan"/],
    [{ name: 'x', driver: 'bridge', options: { colour: 'blue' } }, /driver "bridge" has no option "colour"/],
    [{ name: 'x', driver: 'bridge', options: { mtu: '70000' } }, /option mtu=70000: must be a number/],
    [{ name: 'x', driver: 'host' }, /cannot be created/],
    [{ name: 'taken', driver: 'overlay' }, /a network named "taken" exists already/],
  ];
  for (const [fields, reason] of refusals) {
    const error = await createNetwork(store, cluster(), spec(fields)).then(() => undefined, (e: unknown) => e);
    t.regex(message(error), reason, JSON.stringify(fields));
  }
  t.false(NetworkSpec.safeParse({ name: 'x', ipam: { pools: [{ subnet: '198.19.1.7/24' }] } }).success, 'host bits in a subnet fail the schema');
  const unknown = await createNetwork(store, cluster(), spec({ name: 'x', driver: 'vxlan' })).catch((e: unknown) => e);
  t.regex(isShoalError(unknown) ? (unknown.hint ?? '') : '', /use one of: bridge, overlay/);
});

test('an exhausted default pool says so and how to go on', async (t) => {
  const store = new MemoryStore();
  const small = cluster({ ...defaultAddressPools, swarm: '198.19.0.0/23', maskLength: 24 });
  await createNetwork(store, small, spec({ name: 'one', driver: 'overlay' }));
  await createNetwork(store, small, spec({ name: 'two', driver: 'overlay' }));
  const error = await createNetwork(store, small, spec({ name: 'three', driver: 'overlay' })).catch((e: unknown) => e);
  t.regex(message(error), /default address pool 198.19.0.0\/23 has no free \/24 left/);
});

test('addresses come from the ip range, skip the gateway, run out clearly, and come back when released', async (t) => {
  const store = new MemoryStore();
  const net = await createNetwork(store, cluster(), spec({ name: 'n', driver: 'overlay', ipam: { pools: [{ subnet: '198.19.60.0/29', gateway: '198.19.60.1' }] } }));
  const taken = [];
  for (let i = 0; i < 5; i++) taken.push((await allocateAddress(store, net, `task${i}`)).address);
  t.deepEqual(taken, ['198.19.60.2', '198.19.60.3', '198.19.60.4', '198.19.60.5', '198.19.60.6']);
  t.regex(message(await allocateAddress(store, net, 'late').catch((e: unknown) => e)), /no free address left in 198.19.60.0\/29/);
  await releaseAddress(store, net.id, '198.19.60.4', 'task2');
  t.is((await allocateAddress(store, net, 'late')).address, '198.19.60.4');

  const ranged = await createNetwork(store, cluster(), spec({ name: 'r', driver: 'overlay', ipam: { pools: [{ subnet: '198.19.61.0/24', ipRange: '198.19.61.128/25' }] } }));
  t.is((await allocateAddress(store, ranged, 't')).address, '198.19.61.129');
  t.is((await allocateAddress(store, ranged, 's', { address: '198.19.61.10' })).address, '198.19.61.10');
  t.regex(message(await allocateAddress(store, ranged, 's2', { address: '198.19.61.10' }).catch((e: unknown) => e)), /198.19.61.10 on network "r" is taken/);
  t.regex(message(await allocateAddress(store, ranged, 's3', { address: '198.19.61.1' }).catch((e: unknown) => e)), /not a free host address/);
  const auto = await createNetwork(store, cluster(), spec({ name: 'auto', driver: 'overlay' }));
  t.regex(message(await allocateAddress(store, auto, 's', { address: '198.19.0.9' }).catch((e: unknown) => e)), /static address needs a network created with --subnet/);
});

test('50 concurrent allocations get 50 different addresses', async (t) => {
  const store = new MemoryStore();
  const net = await createNetwork(store, cluster(), spec({ name: 'busy', driver: 'overlay' }));
  const leases = await Promise.all(Array.from({ length: 50 }, (_, i) => allocateAddress(store, net, `task${i}`)));
  t.is(new Set(leases.map((l) => l.address)).size, 50);
});

test('a network in use is not removed, and says by whom; once free its subnet goes back to the pool', async (t) => {
  const store = new MemoryStore();
  const net = await createNetwork(store, cluster(), spec({ name: 'used', driver: 'overlay' }));
  const lease = await allocateAddress(store, net, 'abcdef0123456789');
  t.regex(message(await removeNetwork(store, 'used').catch((e: unknown) => e)), /in use by 1 endpoint\(s\): abcdef012345 \(198.19.0.2\)/);
  await releaseAddress(store, net.id, lease.address, lease.owner);
  await removeNetwork(store, 'used');
  const again = await createNetwork(store, cluster(), spec({ name: 'again', driver: 'overlay' }));
  t.deepEqual([again.pools[0]!.subnet, again.data.vni], ['198.19.0.0/24', '4097']);
  await ensureBuiltinNetworks(store, cluster());
  t.regex(message(await removeNetwork(store, 'bridge').catch((e: unknown) => e)), /built-in network/);
});

test('a pass\'s tasks take their addresses together: distinct, reused on a retry, and an exhausted pool fails only the overflow', async (t) => {
  const store = new MemoryStore();
  await createNetwork(store, cluster(), spec({ name: 'svc', driver: 'overlay', ipam: { pools: [{ subnet: '198.19.61.0/28' }] } }));
  const requests = Array.from({ length: 16 }, (_, i) => ({ owner: `task${i}`, nodeId: 'n1', names: ['svc'] }));
  const first = await attachTasks(store, requests.slice(0, 10));
  const addresses = [...first.values()].map((a) => (a instanceof Error ? 'error' : a[0]!.address));
  t.is(new Set(addresses).size, 10);
  t.false(addresses.includes('198.19.61.1'), 'the gateway is never handed out');
  const again = await attachTasks(store, requests.slice(0, 2));
  t.deepEqual([...again.values()].map((a) => (a instanceof Error ? 'error' : a[0]!.address)), addresses.slice(0, 2), 'a retried pass gets the same addresses');
  const rest = await attachTasks(store, requests.slice(10));
  const outcomes = [...rest.values()].map((a) => (a instanceof Error ? a.message : 'ok'));
  t.deepEqual(outcomes.filter((o) => o === 'ok').length, 3, 'a /28 has 14 host addresses; less the gateway and the 10 taken, 3 are left');
  t.true(outcomes.filter((o) => o !== 'ok').every((o) => /no free address left in 198.19.61.0\/28/.test(o)));
});

test('endpoints on a local network are recorded, so the network is not removed while they are there', async (t) => {
  const store = new MemoryStore();
  const local = await createNetwork(store, cluster(), spec({ name: 'l' }));
  const first = await attachNetworks(store, ['l'], 'node-1', { owner: 'container-a' });
  t.deepEqual(first.map((a) => [a.driver, a.address]), [['bridge', '']], 'the host picks the address');
  const tasks = await attachTasks(store, [{ owner: 'task-b', nodeId: 'node-2', names: ['l'] }, { owner: 'container-a', nodeId: 'node-1', names: ['l'] }]);
  t.false(tasks.get('task-b') instanceof Error);
  t.false(tasks.get('container-a') instanceof Error, 'a retried pass finds its record there');
  const refused = await removeNetwork(store, 'l').catch((error: unknown) => message(error));
  t.regex(String(refused), /^network "l" is in use by 2 endpoint\(s\): container-a \(on node node-1\), task-b \(on node node-2\)/);
  await detachNetworks(store, [...first, ...(tasks.get('task-b') as NetworkAttachment[])]);
  t.is((await removeNetwork(store, 'l')).id, local.id);
});

test('the address of a task its agent saw stop does not keep a network in use; one whose node went down does', async (t) => {
  const store = new MemoryStore();
  const net = await createNetwork(store, cluster(), spec({ name: 'old', driver: 'overlay' }));
  const task = (id: string, state: string) => ({ id, desiredState: 'shutdown', status: { state, timestamp: '', message: '' } });
  await store.commit([
    { op: 'create', key: keys.task('stopped0123456789'), value: task('stopped0123456789', 'shutdown') },
    { op: 'create', key: keys.task('orphan0123456789'), value: task('orphan0123456789', 'orphaned') },
  ]);
  await allocateAddress(store, net, 'stopped0123456789');
  const orphan = await allocateAddress(store, net, 'orphan0123456789');
  t.regex(message(await removeNetwork(store, 'old').catch((e: unknown) => e)), /in use by 1 endpoint\(s\): orphan012345/, 'a copy may still run on a cut-off host');
  await releaseAddress(store, net.id, orphan.address, orphan.owner);
  await removeNetwork(store, 'old');
  t.deepEqual(await store.list(keys.networkAddresses(net.id)), [], 'the stopped task\'s address went with the network');
});

test('macvlan networks need a parent and a subnet, take local or swarm scope, and one parent serves one network', async (t) => {
  const store = new MemoryStore();
  const refused = async (fields: Record<string, unknown>) => message(await t.throwsAsync(createNetwork(store, cluster(), spec({ driver: 'macvlan', ...fields }))));
  t.regex(await refused({ name: 'm0', ipam: { pools: [{ subnet: '198.19.60.0/24' }] } }), /a macvlan network needs its parent interface/);
  t.regex(await refused({ name: 'm0', options: { parent: 'eth0' } }), /needs the subnet of its parent's segment/);
  t.regex(await refused({ name: 'm0', options: { parent: 'eth0', mode: 'bridge' }, ipam: { pools: [{ subnet: '198.19.60.0/24' }] } }), /driver "macvlan" has no option "mode"/);
  t.regex(await refused({ name: 'm0', options: { parent: 'eth0', macvlan_mode: 'hub' }, ipam: { pools: [{ subnet: '198.19.60.0/24' }] } }), /macvlan_mode=hub: must be one of bridge, private, vepa, passthru/);
  const lan = await createNetwork(store, cluster(), spec({ name: 'lan', driver: 'macvlan', options: { parent: 'eth0' }, ipam: { pools: [{ subnet: '198.19.60.0/24', gateway: '198.19.60.254' }] } }));
  t.deepEqual([lan.scope, lan.pools[0]!.gateway], ['local', '198.19.60.254'], 'local by default, as Docker');
  t.regex(await refused({ name: 'lan2', options: { parent: 'eth0' }, ipam: { pools: [{ subnet: '198.19.61.0/24' }] } }), /parent interface eth0 already serves macvlan network "lan"/);
  t.regex(await refused({ name: 'lan2', options: { 'parent.h2': 'eth0' }, ipam: { pools: [{ subnet: '198.19.61.0/24' }] } }), /parent interface eth0 of node h2 already serves macvlan network "lan"/);
  const wide = await createNetwork(store, cluster(), spec({ name: 'wide', driver: 'macvlan', scope: 'swarm', options: { parent: 'eth0.20', 'parent.h3': 'eth1.20' }, ipam: { pools: [{ subnet: '198.19.62.0/24' }] } }));
  t.is(wide.scope, 'swarm');
  t.regex(message(await t.throwsAsync(createNetwork(store, cluster(), spec({ name: 'b', driver: 'bridge', scope: 'swarm' })))), /--scope swarm: a bridge network is local-scoped/);
  await removeNetwork(store, 'lan');
  await t.notThrowsAsync(createNetwork(store, cluster(), spec({ name: 'lan2', driver: 'macvlan', options: { parent: 'eth0' }, ipam: { pools: [{ subnet: '198.19.61.0/24' }] } })), 'a removed network gives its parent back');
});

test('config-only networks hold a macvlan network\'s parent and subnet; they cannot be joined or removed while used', async (t) => {
  const store = new MemoryStore();
  const config = await createNetwork(store, cluster(), spec({ name: 'lan-config', driver: 'macvlan', configOnly: true, options: { parent: 'eth0' }, ipam: { pools: [{ subnet: '198.19.63.0/24' }] } }));
  t.deepEqual(config.pools, [], 'a config-only network takes no subnet: the network made from it does');
  const lan = await createNetwork(store, cluster(), spec({ name: 'lan', driver: 'macvlan', scope: 'swarm', configFrom: 'lan-config' }));
  t.deepEqual([lan.spec.options.parent, lan.pools[0]!.subnet, lan.scope], ['eth0', '198.19.63.0/24', 'swarm']);
  t.regex(message(await t.throwsAsync(attachNetworks(store, ['lan-config'], 'node-a'))), /network "lan-config" is config-only/);
  t.regex(message(await t.throwsAsync(removeNetwork(store, 'lan-config'))), /config-only network "lan-config" is used by "lan"/);
  t.regex(message(await t.throwsAsync(createNetwork(store, cluster(), spec({ name: 'x', driver: 'macvlan', configFrom: 'lan', options: {} })))), /network "lan" is not a config-only network/);
});

test('host-gw leases each node its own subnet of the pool, keeps one for VIPs, and addresses a node\'s tasks from its subnet', async (t) => {
  const store = new MemoryStore();
  const refused = async (fields: Record<string, unknown>) => message(await t.throwsAsync(createNetwork(store, cluster(), spec({ driver: 'hostgw', ...fields }))));
  t.regex(await refused({ name: 'hg' }), /splits its pool into one subnet per host: it needs --subnet/);
  t.regex(await refused({ name: 'hg', ipam: { pools: [{ subnet: '198.19.96.0/24' }] } }), /cannot hold two \/24 subnets/);
  t.regex(await refused({ name: 'hg', options: { host_subnet_size: '31' }, ipam: { pools: [{ subnet: '198.19.96.0/20' }] } }), /host_subnet_size=31: must be a prefix length from 16 to 29/);
  const hg = await createNetwork(store, cluster(), spec({ name: 'hg', driver: 'hostgw', ipam: { pools: [{ subnet: '198.19.96.0/22' }] } }));
  t.regex(await refused({ name: 'hg2', ipam: { pools: [{ subnet: '198.19.98.0/23' }] } }), /overlaps network "hg"/);
  const placed = await attachTasks(store, [
    { owner: 't1', nodeId: 'a', names: ['hg'] },
    { owner: 't2', nodeId: 'b', names: ['hg'] },
    { owner: 't3', nodeId: 'a', names: ['hg'] },
  ]);
  const attachment = (owner: string) => (placed.get(owner) as NetworkAttachment[])[0]!;
  t.deepEqual([attachment('t1').subnet, attachment('t1').gateway, attachment('t1').address], ['198.19.96.0/24', '198.19.96.1', '198.19.96.2']);
  t.deepEqual([attachment('t3').subnet, attachment('t3').address], ['198.19.96.0/24', '198.19.96.3']);
  t.deepEqual([attachment('t2').subnet, attachment('t2').address], ['198.19.97.0/24', '198.19.97.2']);
  t.is(attachment('t2').data.pool, '198.19.96.0/22');
  const vip = await allocateAddress(store, hg, 'vip-of-web');
  t.is(vip.address, '198.19.99.2', 'VIPs come from the last host-sized subnet, which no node gets');
  const c = await attachNetworks(store, ['hg'], 'c', { owner: 't4' });
  t.is(c[0]!.subnet, '198.19.98.0/24');
  t.regex(message(await t.throwsAsync(attachNetworks(store, ['hg'], 'd', { owner: 't5' }))), /no free \/24 left for another host \(3 hosts hold one\)/);
  t.is((await store.list(keys.networkNodeSubnets(hg.id))).length, 3);
});

test('calico leases each node a block of its pool, keeps the last block for VIPs, and refuses what it cannot do', async (t) => {
  const store = new MemoryStore();
  const refused = async (fields: Record<string, unknown>) => message(await t.throwsAsync(createNetwork(store, cluster(), spec({ driver: 'calico', ...fields }))));
  t.regex(await refused({ name: 'cal' }), /one block per host: it needs --subnet/);
  t.regex(await refused({ name: 'cal', options: { routing: 'ospf' }, ipam: { pools: [{ subnet: '198.19.64.0/20' }] } }), /routing=ospf: must be static \(the agents program the routes\) or bgp/);
  t.regex(await refused({ name: 'cal', options: { block_size: '20' }, ipam: { pools: [{ subnet: '198.19.64.0/20' }] } }), /cannot hold two \/20 blocks/);
  t.regex(await refused({ name: 'cal', ipam: { pools: [{ subnet: '198.19.64.0/20', gateway: '198.19.64.1' }] } }), /no gateway \(workloads route via 169\.254\.1\.1\)/);
  const cal = await createNetwork(store, cluster(), spec({ name: 'cal', driver: 'calico', options: { nat_outgoing: 'true' }, ipam: { pools: [{ subnet: '198.19.64.0/24' }] } }));
  t.deepEqual(cal.data, { pool: '198.19.64.0/24', blockSize: '26' });
  const placed = await attachTasks(store, [
    { owner: 't1', nodeId: 'a', names: ['cal'] },
    { owner: 't2', nodeId: 'b', names: ['cal'] },
  ]);
  const attachment = (owner: string) => (placed.get(owner) as NetworkAttachment[])[0]!;
  t.deepEqual([attachment('t1').subnet, attachment('t1').address], ['198.19.64.0/26', '198.19.64.2']);
  t.deepEqual([attachment('t2').subnet, attachment('t2').address], ['198.19.64.64/26', '198.19.64.66']);
  t.is((await allocateAddress(store, cal, 'vip-of-web')).address, '198.19.64.194', 'VIPs come from the last block');
  await attachNetworks(store, ['cal'], 'c', { owner: 't3' });
  t.regex(message(await t.throwsAsync(attachNetworks(store, ['cal'], 'd', { owner: 't4' }))), /no free \/26 left for another host \(3 hosts hold one\)/);
});

test('a calico host whose block is full takes another, one at a time and in a batch; host-gw keeps its one subnet', async (t) => {
  const store = new MemoryStore();
  const cal = await createNetwork(store, cluster(), spec({ name: 'cal', driver: 'calico', options: { block_size: '29' }, ipam: { pools: [{ subnet: '198.19.64.0/26' }] } }));
  // A /29 block gives five workloads (the first address is kept, as host-gw's gateway).
  const placed = await attachTasks(store, Array.from({ length: 7 }, (_, i) => ({ owner: `t${i}`, nodeId: 'a', names: ['cal'] })));
  const attachments = [...placed.values()].map((a) => (a as NetworkAttachment[])[0]!);
  t.deepEqual(attachments.map((a) => `${a.address} in ${a.subnet}`), [
    '198.19.64.2 in 198.19.64.0/29', '198.19.64.3 in 198.19.64.0/29', '198.19.64.4 in 198.19.64.0/29', '198.19.64.5 in 198.19.64.0/29', '198.19.64.6 in 198.19.64.0/29',
    '198.19.64.10 in 198.19.64.8/29', '198.19.64.11 in 198.19.64.8/29',
  ]);
  const one = await attachNetworks(store, ['cal'], 'a', { owner: 'u1' });
  t.deepEqual([one[0]!.address, one[0]!.subnet], ['198.19.64.12', '198.19.64.8/29'], 'one at a time, the node\'s block with room is used');
  t.deepEqual((await store.list<{ subnet: string; nodeId: string }>(keys.networkNodeSubnets(cal.id))).map((l) => `${l.value.subnet} ${l.value.nodeId}`).sort(), ['198.19.64.0/29 a', '198.19.64.8/29 a']);
  await createNetwork(store, cluster(), spec({ name: 'hg', driver: 'hostgw', options: { host_subnet_size: '29' }, ipam: { pools: [{ subnet: '198.19.65.0/26' }] } }));
  for (let i = 0; i < 5; i++) await attachNetworks(store, ['hg'], 'a', { owner: `h${i}` });
  t.regex(message(await t.throwsAsync(attachNetworks(store, ['hg'], 'a', { owner: 'h5' }))), /no free address left in this host's subnet 198\.19\.65\.0\/29/);
});
