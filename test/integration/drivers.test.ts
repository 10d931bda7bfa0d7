/**
 * The driver conformance suite over every driver with a data plane, on the real kernel, and
 * what a driver does beyond it: a stranded VXLAN device, a macvlan parent on a VLAN, a host-gw
 * route to a host that is not on the same segment.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { run, systemBinary } from '../../shared/exec.ts';
import { createNetns, deleteNetns } from '../../native/netns.ts';
import type { Network } from '../../netplug/cnm.ts';
import { driverRegistry } from '../../netplug/drivers/index.ts';
import { overlayNamespace } from '../../netplug/drivers/overlay/overlay.ts';
import { HostNamespace } from '../../netplug/host.ts';
import { RouteSync } from '../../netplug/route-sync.ts';
import { conformancePrefix, driverConformance } from '../helpers/driver-conformance.ts';

const network = (id: string, driver: string, subnet: string, extra: Partial<Network> = {}): Network => ({
  id, name: `conf-${driver}`, driver, subnet, gateway: subnet.replace(/\.0\/\d+$/, '.1'), internal: false, options: {}, data: {}, ...extra,
});

driverConformance(test, driverRegistry, {
  type: 'bridge',
  local: true,
  network: () => network('c0bf11d9e000000000000001', 'bridge', '198.19.240.0/24'),
  async breakState(host, net) {
    await host.host.run(systemBinary('nft'), ['delete', 'table', 'ip', `shoal-${net.id.slice(0, 10)}`]);
    return /nftables table .* is missing/;
  },
  async halfMake(host, net) {
    // A delete cut between the bridge and the table: the table is left alone.
    await host.host.ip(['link', 'del', `slb-${net.id.slice(0, 10)}`]);
  },
  devices: /^sl[bv]-/,
});

driverConformance(test, driverRegistry, {
  type: 'overlay',
  network: () => network('c0bf11d9e000000000000002', 'overlay', '198.19.241.0/24', { data: { vni: '7001' } }),
  async breakState(host) {
    const ns = overlayNamespace(host.netnsPrefix, 7001, host.address);
    const entry = (await run('bridge', ['-n', ns, '-j', 'fdb', 'show', 'dev', 'svx-7001']).then((text) => JSON.parse(text) as Array<{ mac: string; dst?: string }>)).find((e) => e.dst && e.mac !== '00:00:00:00:00:00')!;
    await run('bridge', ['-n', ns, 'fdb', 'del', entry.mac, 'dev', 'svx-7001', 'dst', entry.dst!]);
    return new RegExp(`missing FDB entry ${entry.mac}`);
  },
  async halfMake(host) {
    // A create cut between the VXLAN device's creation and its move into the network's namespace.
    await host.host.ip(['link', 'add', 'svx-7001', 'type', 'vxlan', 'id', '7001', 'dstport', '4789', 'local', host.address, 'dev', 'eth0', 'nolearning']).catch(() => undefined);
  },
  devices: /^svx-/,
});

driverConformance(test, driverRegistry, {
  type: 'macvlan',
  network: () => network('c0bf11d9e000000000000003', 'macvlan', '198.19.242.0/24', { options: { parent: 'eth0', host_shim: 'true' } }),
  async breakState(host, net) {
    await host.host.ip(['link', 'del', `smh-${net.id.slice(0, 10)}`]);
    return /host shim .* is missing/;
  },
  async halfMake(host, net) {
    await host.host.ip(['route', 'add', '198.19.242.99/32', 'dev', `smh-${net.id.slice(0, 10)}`]);
  },
  devices: /^sm[hv]-/,
});

driverConformance(test, driverRegistry, {
  type: 'hostgw',
  network: (index) =>
    network('c0bf11d9e000000000000004', 'hostgw', `198.19.${244 + index}.0/24`, { data: { pool: '198.19.244.0/22', hostSubnetSize: '24' } }),
  async breakState(host) {
    await host.host.ip(['route', 'del', '198.19.245.0/24']);
    return /missing route 198\.19\.245\.0\/24 via 198\.18\.250\.2/;
  },
  async halfMake(host, net) {
    await host.host.run(systemBinary('nft'), ['delete', 'table', 'ip', `shoal-${net.id.slice(0, 10)}`]);
  },
  devices: /^s(lb|hv)-/,
});

driverConformance(test, driverRegistry, {
  type: 'calico',
  network: (index) =>
    network('c0bf11d9e000000000000006', 'calico', `198.19.246.${index * 64}/26`, { data: { pool: '198.19.246.0/24', blockSize: '26' }, options: { nat_outgoing: 'true' } }),
  async breakState(host) {
    const routes = JSON.parse(await host.host.ip(['-j', 'route', 'show'])) as Array<{ dst: string; dev?: string }>;
    const workload = routes.find((r) => r.dev?.startsWith('slb-c') && /^198\.19\.246\.\d+$/.test(r.dst))!;
    await host.host.ip(['route', 'del', `${workload.dst}/32`, 'dev', workload.dev!]);
    return new RegExp(`missing route ${workload.dst.replaceAll('.', '\\.')}/32 dev slb-c`);
  },
  async halfMake(host, net) {
    await host.host.run(systemBinary('nft'), ['delete', 'table', 'ip', `shoal-${net.id.slice(0, 10)}`]);
  },
  devices: /^slb-c/,
});

/**
 * Whether this kernel makes 802.1q VLAN devices (this one has no 8021q module). Asked before
 * the tests are declared, which ava wants done synchronously.
 */
function kernelHasVlans(): boolean {
  const probe = `${conformancePrefix}vlan-probe-${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
    execFileSync('ip', ['-n', probe, 'link', 'add', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1'], { stdio: 'ignore' });
    execFileSync('ip', ['-n', probe, 'link', 'add', 'link', 'probe0', 'name', 'probe0.20', 'type', 'vlan', 'id', '20'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    try {
      execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
    } catch {
      // Never made.
    }
  }
}

const vlans = kernelHasVlans();
driverConformance(
  test,
  driverRegistry,
  {
    type: 'macvlan',
    network: () => network('c0bf11d9e000000000000005', 'macvlan', '198.19.243.0/24', { options: { parent: 'eth0.20' } }),
    async breakState(host) {
      await host.host.ip(['link', 'set', 'eth0.20', 'down']);
      return /parent interface eth0\.20 is down/;
    },
    async halfMake() {},
    devices: /^(eth0\.20|sm[hv]-)/,
  },
  vlans ? {} : { skip: 'this kernel has no 802.1q VLAN support (module 8021q): `ip link add ... type vlan` answers "Unknown device type"' },
);

test.serial('host-gw refuses a route to a host that is not on this host\'s segment, and says why', async (t) => {
  const ns = `${conformancePrefix}l2-${process.pid % 1000}`;
  t.teardown(() => deleteNetns(ns).catch(() => undefined));
  await createNetns(ns);
  await run('ip', ['-n', ns, '-batch', '-'], 'link add eth0 type veth peer name eth1\nlink set eth0 up\nlink set eth1 up\naddr add 198.18.251.1/24 dev eth0\nroute add default via 198.18.251.254\n');
  const sync = new RouteSync(new HostNamespace(ns));
  sync.set('net', [{ destination: '198.19.250.0/24', via: '198.18.252.7' }, { destination: '198.19.251.0/24', via: '198.18.251.2' }]);
  await sync.sync();
  const state = await sync.state('net');
  t.regex(state[0]!.refused ?? '', /198\.18\.252\.7 is not on this host's underlay subnet \(reached through 198\.18\.251\.254\)/);
  t.false(state[0]!.present);
  t.true(state[1]!.present, 'a neighbour on the segment is routed to');
  sync.set('net', []);
  await sync.sync();
  t.deepEqual(JSON.parse(await run('ip', ['-n', ns, '-j', 'route', 'show', 'proto', '83'])), [], 'routes no network wants are removed');
});
