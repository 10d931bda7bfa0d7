/**
 * The network drivers against the underlay and against hand-built paths of the same kind, on
 * one lab, in one run: TCP throughput (iperf3, 1 stream, 3 s) and ping latency container to
 * container across two hosts, for Shoal's overlay, macvlan, host-gw and calico networks; for
 * the shared kernel recipes' VXLAN, host-gw and macvlan paths and a calico path built by hand
 * the same way (a /32 on a veth, routes per block; the recipes have none); and host to host on
 * the underlay. The paths take turns, round after round, so a slow moment of the machine falls
 * on all of them; each figure is the median of its rounds.
 */
import { labDown, labUp } from '../lab/lab.ts';
import { netnsPrefix } from '../lab/topology.ts';
import type { ContainerRecord } from '../shared/containers.ts';
import { run } from '../shared/exec.ts';
import { createNetns, deleteNetns } from '../native/netns.ts';
import { iperf, pingMs } from './paths.ts';
import { percentile, ratio } from './stats.ts';

const labName = 'bench-drv';
const rounds = 5;

interface Path {
  name: string;
  client: string;
  server: string;
  address: string;
}

const ip = (netns: string, lines: string[]) => run('ip', ['-n', netns, '-batch', '-'], `${lines.join('\n')}\n`);

/**
 * The recipes' paths, built by hand in the lab's two host namespaces beside Shoal's: a VXLAN
 * L2 overlay (VNI 9001, no learning, static entries), host-gw (a bridge per host, a route per
 * remote subnet) and macvlan in bridge mode on each host's eth0. Returns the paths and the
 * namespaces made.
 */
async function handBuilt(h1: { netns: string; address: string }, h2: { netns: string; address: string }): Promise<{ paths: Path[]; namespaces: string[] }> {
  const c = (name: string) => `${netnsPrefix(labName)}r-${name}`;
  const namespaces = ['v1', 'v2', 'g1', 'g2', 'm1', 'm2', 'k1', 'k2'].map(c);
  for (const ns of namespaces) await createNetns(ns);
  const hosts = [h1, h2];
  for (const [i, host] of hosts.entries()) {
    const n = i + 1;
    const other = hosts[1 - i]!;
    // VXLAN, as the recipe (MTU = underlay - 50).
    await ip(host.netns, [
      'link add rbr0 type bridge', 'link set rbr0 up',
      `link add rvx0 type vxlan id 9001 dstport 4789 local ${host.address} dev eth0 nolearning`, 'link set rvx0 master rbr0', 'link set rvx0 up',
      `link add rve${n} type veth peer name eth0 netns ${c(`v${n}`)}`, `link set rve${n} master rbr0 up`,
    ]);
    await ip(c(`v${n}`), [`link set eth0 address 02:42:c6:13:e1:0${n} mtu 1450`, `addr add 198.19.225.1${n}/24 dev eth0`, 'link set eth0 up']);
    await run('bridge', ['-n', host.netns, '-batch', '-'], `fdb append 00:00:00:00:00:00 dev rvx0 dst ${other.address}\nfdb add 02:42:c6:13:e1:0${2 - i} dev rvx0 dst ${other.address} self permanent\n`);
    await ip(c(`v${n}`), [`neigh replace 198.19.225.1${2 - i} lladdr 02:42:c6:13:e1:0${2 - i} dev eth0 nud permanent`]);
    // host-gw.
    await ip(host.netns, ['link add rhg0 type bridge', `addr add 198.19.22${5 + n}.1/24 dev rhg0`, 'link set rhg0 up', `link add rgv${n} type veth peer name eth0 netns ${c(`g${n}`)}`, `link set rgv${n} master rhg0 up`, `route add 198.19.22${5 + (2 - i)}.0/24 via ${other.address}`]);
    await ip(c(`g${n}`), [`addr add 198.19.22${5 + n}.10/24 dev eth0`, 'link set eth0 up', `route add default via 198.19.22${5 + n}.1`]);
    // macvlan, bridge mode.
    await ip(host.netns, [`link add rmv${n} link eth0 type macvlan mode bridge`, `link set rmv${n} netns ${c(`m${n}`)}`]);
    await ip(c(`m${n}`), [`addr add 198.19.229.1${n}/24 dev rmv${n}`, `link set rmv${n} up`]);
    // Calico's: a /32 on a veth, no bridge, the default route via 169.254.1.1, a route per remote block.
    await ip(host.netns, [
      `link add rk${n} address ee:ee:ee:ee:ee:ee type veth peer name eth0 netns ${c(`k${n}`)}`, `link set rk${n} up`,
      `route add 198.19.230.${n * 64}/32 dev rk${n}`, `route add 198.19.230.${(2 - i) * 64}/26 via ${other.address}`,
    ]);
    await run('ip', ['netns', 'exec', host.netns, 'sysctl', '-qw', `net.ipv4.conf.rk${n}.proxy_arp=1`]);
    await ip(c(`k${n}`), [
      `addr add 198.19.230.${n * 64}/32 dev eth0`, 'link set eth0 up', 'route add 169.254.1.1 dev eth0 scope link',
      'neigh replace 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent', 'route add default via 169.254.1.1 dev eth0',
    ]);
  }
  return {
    namespaces,
    paths: [
      { name: 'vxlan recipe', client: c('v1'), server: c('v2'), address: '198.19.225.12' },
      { name: 'host-gw recipe', client: c('g1'), server: c('g2'), address: '198.19.227.10' },
      { name: 'macvlan recipe', client: c('m1'), server: c('m2'), address: '198.19.229.12' },
      { name: 'calico by hand', client: c('k1'), server: c('k2'), address: '198.19.230.128' },
    ],
  };
}

export default async function drivers(): Promise<Record<string, unknown>> {
  const lab = await labUp({ name: labName, hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 5000 });
  let namespaces: string[] = [];
  try {
    const client = await lab.client();
    const [h1, h2] = lab.record.topology.hosts;
    const containerNetns = (record: ContainerRecord) => `${netnsPrefix(labName)}c-${record.id.slice(0, 12)}`;
    await client.call('POST', '/v1/networks', { name: 'b-overlay', driver: 'overlay', attachable: true });
    await client.call('POST', '/v1/networks', { name: 'b-macvlan', driver: 'macvlan', scope: 'swarm', attachable: true, options: { parent: 'eth0' }, ipam: { pools: [{ subnet: '198.19.170.0/24' }] } });
    await client.call('POST', '/v1/networks', { name: 'b-hostgw', driver: 'hostgw', attachable: true, ipam: { pools: [{ subnet: '198.19.208.0/20' }] } });
    await client.call('POST', '/v1/networks', { name: 'b-calico', driver: 'calico', attachable: true, ipam: { pools: [{ subnet: '198.19.192.0/20' }] } });
    const shoalPaths: Path[] = [];
    for (const driver of ['overlay', 'macvlan', 'hostgw', 'calico']) {
      const [a, b] = await Promise.all(
        ['h1', 'h2'].map((node, i) => client.call<ContainerRecord>('POST', '/v1/containers', { node, name: `${driver}${i}`, image: 'busybox:1.35.0', cmd: ['sleep', '900'], networks: [`b-${driver}`] })),
      );
      shoalPaths.push({ name: driver, client: containerNetns(a!), server: containerNetns(b!), address: b!.spec.attachments[0]!.address });
    }
    const built = await handBuilt(h1!, h2!);
    namespaces = built.namespaces;
    const paths: Path[] = [{ name: 'underlay', client: h1!.netns, server: h2!.netns, address: h2!.address }, ...shoalPaths, ...built.paths];
    // Every path answers before anything is timed (the first packets of a path may wait on ARP).
    for (const path of paths) await pingMs(path.client, path.address);
    const gbps = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    const ping = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    for (let round = 0; round < rounds; round++) {
      // Alternate the order too: no path always runs first.
      const order = round % 2 === 0 ? paths : [...paths].reverse();
      for (const path of order) {
        gbps.get(path.name)!.push(await iperf(path.server, path.client, path.address));
        ping.get(path.name)!.push(await pingMs(path.client, path.address));
      }
    }
    const median = (samples: number[]) => Math.round(percentile(samples, 50) * 100) / 100;
    const figures = Object.fromEntries(paths.map((p) => [p.name, { gbps: median(gbps.get(p.name)!), pingMs: median(ping.get(p.name)!), rawGbps: gbps.get(p.name), rawPingMs: ping.get(p.name) }]));
    const g = (name: string) => figures[name]!.gbps;
    const ratios = {
      'macvlan / underlay': { value: ratio(g('macvlan'), g('underlay')), goal: 0.95 },
      'macvlan / macvlan recipe': { value: ratio(g('macvlan'), g('macvlan recipe')), goal: 0.98 },
      'host-gw / underlay': { value: ratio(g('hostgw'), g('underlay')), goal: 0.95 },
      'host-gw / host-gw recipe': { value: ratio(g('hostgw'), g('host-gw recipe')), goal: 0.98 },
      'overlay / vxlan recipe': { value: ratio(g('overlay'), g('vxlan recipe')), goal: 0.98 },
      'overlay / underlay': { value: ratio(g('overlay'), g('underlay')) },
      'calico / underlay': { value: ratio(g('calico'), g('underlay')), goal: 0.95 },
      'calico / calico by hand': { value: ratio(g('calico'), g('calico by hand')) },
    };
    process.stderr.write(`  ${'path'.padEnd(16)} ${'Gbit/s'.padStart(7)} ${'ping ms'.padStart(8)}\n`);
    for (const path of paths) process.stderr.write(`  ${path.name.padEnd(16)} ${String(figures[path.name]!.gbps).padStart(7)} ${String(figures[path.name]!.pingMs).padStart(8)}\n`);
    for (const [name, r] of Object.entries(ratios)) process.stderr.write(`  ${name.padEnd(26)} ${String(r.value).padStart(5)}${'goal' in r && r.goal ? `  (goal >= ${r.goal}${r.value >= r.goal ? ', met' : ', missed'})` : ''}\n`);
    return {
      description: 'Shoal\'s overlay, macvlan, host-gw and calico networks against the underlay and the hand-built recipes of the same paths, container to container across two lab hosts; iperf3 1 stream 3 s and ping, alternating, median of rounds',
      rounds,
      figures,
      ratios,
    };
  } finally {
    for (const ns of namespaces) await deleteNetns(ns).catch(() => undefined);
    await labDown(labName);
  }
}
