import test from 'ava';
import { labTopology, underlayCommands, validateLabOptions } from '../../lab/topology.ts';

const options = { name: 'demo', hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 5000 };

test('hosts get underlay addresses from 198.18.0.0/24 and namespaces named after the lab', (t) => {
  const topology = labTopology(options);
  t.deepEqual(topology.hosts.map((h) => [h.netns, h.address, h.manager]), [
    ['shoal-demo-h1', '198.18.0.1', true],
    ['shoal-demo-h2', '198.18.0.2', false],
    ['shoal-demo-h3', '198.18.0.3', false],
  ]);
  t.deepEqual(topology.etcdAddresses, ['198.18.1.250']);
  t.is(topology.infraAddress, '198.18.0.250');
});

test('only the managers\' hosts get a route to etcd\'s subnet', (t) => {
  const { inNetns } = underlayCommands(labTopology({ ...options, managers: 2 }));
  const routed = inNetns.filter(({ lines }) => lines.some((line) => line.startsWith('route add 198.18.1.0/24 via 198.18.0.250'))).map((b) => b.netns);
  t.deepEqual(routed, ['shoal-demo-h1', 'shoal-demo-h2']);
});

test('nothing but namespaces and veth pairs is made from the machine\'s own namespace', (t) => {
  const { root } = underlayCommands(labTopology(options));
  for (const line of root) t.regex(line, /^netns add shoal-demo-|^link add eth0 netns shoal-demo-\S+ type veth peer name \S+ netns shoal-demo-fabric$/);
});

test('bad lab options are refused with the reason', (t) => {
  t.regex(validateLabOptions({ ...options, hosts: 0 }) ?? '', /--hosts/);
  t.regex(validateLabOptions({ ...options, managers: 4 }) ?? '', /--managers/);
  t.regex(validateLabOptions({ ...options, etcdMembers: 2 }) ?? '', /--etcd/);
  t.regex(validateLabOptions({ ...options, name: 'Bad Name' }) ?? '', /lab name/);
  t.is(validateLabOptions(options), undefined);
});
