/**
 * macvlan and host-gw networks on a real lab: tasks on different hosts talking over TCP, by
 * address, by service name through the VIP, and through a published port; host-gw's routes on
 * every host, gone from the others when a host's agent dies; and bad input refused plainly.
 */
import test from 'ava';
import { netnsPrefix } from '../../lab/topology.ts';
import { run } from '../../shared/exec.ts';
import type { ContainerRecord } from '../../shared/containers.ts';
import type { TaskObject } from '../../shared/services.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

const fixture = useLab(test, { name: 'it-drv', hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { shoal, ok } = fixture;

const hostOf = (name: string) => fixture.lab().record.topology.hosts.find((h) => h.name === name)!;
const httpd = ['httpd', '-f', '-p', '80', '-h', '/var/www'];

async function runOn(host: string, name: string, network: string, cmd: string[]): Promise<ContainerRecord> {
  await ok('container', 'run', '-d', '--node', host, '--name', name, '--network', network, 'busybox:1.35.0', ...cmd);
  return (JSON.parse(await ok('container', 'inspect', name)) as ContainerRecord[])[0]!;
}

/** What `wget` in the container gets from `url`, once it answers (undefined after 20 s). */
async function fetchFrom(container: string, url: string): Promise<string | undefined> {
  return eventually(20_000, async () => {
    const result = await shoal('container', 'exec', container, 'timeout', '3', 'wget', '-qO-', url);
    return result.code === 0 ? result.stdout : undefined;
  }).then((r) => r.value, () => undefined);
}

/** The same from the lab's infra namespace: a client outside the cluster. */
async function fetchFromOutside(url: string): Promise<string | undefined> {
  return eventually(20_000, async () => {
    const result = await shoal('lab', 'exec', '--name', 'it-drv', '--', 'busybox', 'wget', '-qO-', url);
    return result.code === 0 ? result.stdout : undefined;
  }).then((r) => r.value, () => undefined);
}

const tasksOf = async (service: string) => (JSON.parse(await ok('service', 'ps', service, '--format', 'json')) as TaskObject[]).filter((x) => x.desiredState === 'running' && x.status.state === 'running');

type Verbose = Array<{ hosts: Array<{ hostname: string; kernel?: { driver: string; detail?: Record<string, unknown>; routes?: Array<{ destination: string; via: string; present: boolean }> }; problems: string[] }> }>;
const verbose = async (network: string) => (JSON.parse(await ok('network', 'inspect', '--verbose', network)) as Verbose)[0]!.hosts;

test.serial('macvlan: tasks on different hosts talk over TCP on the parent\'s segment, by address, by name and through a published port; a second network on the same parent is refused', async (t) => {
  await ok('network', 'create', '-d', 'macvlan', '--scope', 'swarm', '--attachable', '-o', 'parent=eth0', '--subnet', '198.19.160.0/24', 'mv');
  t.teardown(async () => {
    await shoal('service', 'rm', 'mvweb');
    for (const name of ['mv1', 'mv2']) await shoal('container', 'rm', '--force', name);
    await eventually(30_000, async () => ((await shoal('network', 'rm', 'mv')).code === 0 ? true : undefined)).catch(() => undefined);
  });
  const second = await shoal('network', 'create', '-d', 'macvlan', '-o', 'parent=eth0', '--subnet', '198.19.161.0/24', 'mv-again');
  t.not(second.code, 0);
  t.regex(second.stderr, /parent interface eth0 already serves macvlan network "mv"/);

  const server = await runOn('h1', 'mv1', 'mv', httpd);
  await runOn('h2', 'mv2', 'mv', ['sleep', '300']);
  const address = server.spec.attachments[0]!.address;
  t.regex(address, /^198\.19\.160\.\d+$/);
  t.is(await fetchFrom('mv2', `http://${address}/`), 'hello from shoal\n', 'h2 reaches h1\'s container on the macvlan network');
  const links = await run('ip', ['-n', `${fixture.lab().record.topology.hosts[0]!.netns}`, '-j', 'link', 'show']);
  t.false(links.includes('"slb-') && links.includes(server.spec.attachments[0]!.networkId.slice(0, 10)), 'no bridge on the host for a macvlan network');

  await ok('service', 'create', '--detach', '--name', 'mvweb', '--replicas', '2', '--replicas-max-per-node', '1', '--network', 'mv', '-p', '8090:80', 'busybox:1.35.0', ...httpd);
  await eventually(60_000, async () => ((await tasksOf('mvweb')).length === 2 ? true : undefined));
  t.is(await fetchFrom('mv2', 'http://mvweb/'), 'hello from shoal\n', 'the service name answers through its VIP');
  t.is(await fetchFromOutside(`http://${hostOf('h3').address}:8090/`), 'hello from shoal\n', 'the published port answers on a node through the routing mesh');

  const hosts = await verbose('mv');
  const h1 = hosts.find((h) => h.hostname === 'h1')!;
  t.deepEqual([h1.kernel?.detail?.parent, h1.kernel?.detail?.mode, h1.problems], ['eth0', 'bridge', []], 'inspect --verbose shows the parent and mode');
});

test.serial('host-gw: each host routes to the others\' subnets; tasks talk across hosts by address, name and published port; a dead host\'s routes leave the others', async (t) => {
  await ok('network', 'create', '-d', 'hostgw', '--attachable', '--subnet', '198.19.176.0/20', 'hg');
  t.teardown(async () => {
    await shoal('service', 'rm', 'hgweb');
    await shoal('container', 'rm', '--force', 'hgclient');
    await eventually(30_000, async () => ((await shoal('network', 'rm', 'hg')).code === 0 ? true : undefined)).catch(() => undefined);
  });
  await ok('service', 'create', '--detach', '--name', 'hgweb', '--mode', 'global', '--network', 'hg', '-p', '8091:80', 'busybox:1.35.0', ...httpd);
  const tasks = (await eventually(60_000, async () => {
    const running = await tasksOf('hgweb');
    return running.length === 3 ? running : undefined;
  })).value;
  const subnets = new Map(tasks.map((task) => [task.nodeId!, task.attachments!.find((a) => a.networkName === 'hg')!.subnet]));
  t.is(new Set(subnets.values()).size, 3, 'each host has its own subnet');
  for (const subnet of subnets.values()) t.regex(subnet, /^198\.19\.(17[6-9]|18\d|19[01])\.0\/24$/);

  const routesOn = async (host: string) => (JSON.parse(await run('ip', ['-n', hostOf(host).netns, '-j', 'route', 'show', 'proto', '83'])) as Array<{ dst: string; gateway: string }>).map((r) => `${r.dst} via ${r.gateway}`).sort();
  const nodeOfHost = async (host: string) => {
    const nodes = JSON.parse(await ok('node', 'ls', '--format', 'json')) as Array<{ id: string; description: { hostname: string } }>;
    return nodes.find((n) => n.description.hostname === host)!.id;
  };
  const expected = async (host: string, without: string[] = []) => {
    const others = [];
    for (const other of ['h1', 'h2', 'h3']) if (other !== host && !without.includes(other)) others.push(`${subnets.get(await nodeOfHost(other))} via ${hostOf(other).address}`);
    return others.sort();
  };
  for (const host of ['h1', 'h2', 'h3']) {
    const want = await expected(host);
    await eventually(10_000, async () => (JSON.stringify(await routesOn(host)) === JSON.stringify(want) ? true : undefined)).catch(async () => t.deepEqual(await routesOn(host), want, `${host}'s routes`));
  }

  await runOn('h1', 'hgclient', 'hg', ['sleep', '300']);
  const h1Node = await nodeOfHost('h1');
  for (const task of tasks.filter((x) => x.nodeId !== h1Node)) {
    const address = task.attachments!.find((a) => a.networkName === 'hg')!.address;
    t.is(await fetchFrom('hgclient', `http://${address}/`), 'hello from shoal\n', `h1 reaches the task at ${address}, routed through its host`);
  }
  t.is(await fetchFrom('hgclient', 'http://hgweb/'), 'hello from shoal\n', 'the service name answers through its VIP');
  t.is(await fetchFromOutside(`http://${hostOf('h2').address}:8091/`), 'hello from shoal\n', 'the published port answers through the routing mesh');

  const healthy = await verbose('hg');
  t.deepEqual(healthy.map((h) => [h.hostname, h.problems, (h.kernel?.routes ?? []).every((r) => r.present), h.kernel?.routes?.length]), [['h1', [], true, 2], ['h2', [], true, 2], ['h3', [], true, 2]]);

  await fixture.lab().kill('h3/agent');
  t.teardown(() => fixture.lab().start('h3/agent').catch(() => undefined));
  const gone = await eventually(30_000, async () => {
    const [h1, h2] = [await routesOn('h1'), await routesOn('h2')];
    return JSON.stringify(h1) === JSON.stringify(await expected('h1', ['h3'])) && JSON.stringify(h2) === JSON.stringify(await expected('h2', ['h3'])) ? true : undefined;
  });
  t.log(`h3's subnet left the routes of h1 and h2 ${gone.ms} ms after its agent was killed (grace 3 s)`);
  await fixture.lab().start('h3/agent');
  const back = await eventually(30_000, async () => (JSON.stringify(await routesOn('h1')) === JSON.stringify(await expected('h1')) ? true : undefined));
  t.log(`and came back ${back.ms} ms after it restarted`);
});

test.serial('calico: each workload is a routed /32 with no bridge; tasks talk across hosts by address, name and published port; each host routes to the others\' blocks', async (t) => {
  await ok('network', 'create', '-d', 'calico', '--attachable', '-o', 'nat_outgoing=true', '--subnet', '198.19.64.0/20', 'cal');
  t.teardown(async () => {
    await shoal('service', 'rm', 'calweb');
    await shoal('container', 'rm', '--force', 'calclient');
    await eventually(30_000, async () => ((await shoal('network', 'rm', 'cal')).code === 0 ? true : undefined)).catch(() => undefined);
  });
  await ok('service', 'create', '--detach', '--name', 'calweb', '--mode', 'global', '--network', 'cal', '-p', '8092:80', 'busybox:1.35.0', ...httpd);
  const tasks = (await eventually(60_000, async () => {
    const running = await tasksOf('calweb');
    return running.length === 3 ? running : undefined;
  })).value;
  const on = (task: TaskObject) => task.attachments!.find((a) => a.networkName === 'cal')!;
  const nodes = JSON.parse(await ok('node', 'ls', '--format', 'json')) as Array<{ id: string; description: { hostname: string; address: string } }>;
  const hostname = (nodeId: string) => nodes.find((n) => n.id === nodeId)!.description.hostname;
  t.is(new Set(tasks.map((task) => on(task).subnet)).size, 3, 'each host has its own block');
  for (const task of tasks) t.regex(on(task).subnet, /^198\.19\.(6[4-9]|7\d)\.\d+\/26$/);

  for (const task of tasks) {
    const host = hostname(task.nodeId!);
    const routes = JSON.parse(await run('ip', ['-n', hostOf(host).netns, '-j', 'route', 'show'])) as Array<{ dst: string; dev?: string; gateway?: string; protocol?: string }>;
    const workload = routes.find((r) => r.dst === on(task).address);
    t.true(workload?.dev?.startsWith('slb-c') ?? false, `${host} routes its workload ${on(task).address} as a /32 through its veth`);
    const blocks = routes.filter((r) => r.gateway && tasks.some((other) => other !== task && on(other).subnet === r.dst)).map((r) => `${r.dst} via ${r.gateway}`).sort();
    const want = tasks.filter((other) => other !== task).map((other) => `${on(other).subnet} via ${hostOf(hostname(other.nodeId!)).address}`).sort();
    t.deepEqual(blocks, want, `${host} routes to the other hosts' blocks`);
    const bridges = JSON.parse(await run('ip', ['-n', hostOf(host).netns, '-j', 'link', 'show', 'type', 'bridge'])) as Array<{ ifname: string }>;
    t.false(bridges.some((b) => b.ifname.includes(on(task).networkId.slice(0, 10))), `${host} has no bridge for the network`);
  }

  const client = await runOn('h1', 'calclient', 'cal', ['sleep', '300']);
  const clientNetns = `${netnsPrefix('it-drv')}c-${client.id.slice(0, 12)}`;
  const sandboxRoutes = await run('ip', ['-n', clientNetns, 'route']).catch(() => '');
  t.regex(sandboxRoutes, /^default via 169\.254\.1\.1 dev eth0/m, 'the sandbox\'s default route is via 169.254.1.1');
  t.regex(await run('ip', ['-n', clientNetns, '-4', 'addr', 'show', 'dev', 'eth0']).catch(() => ''), new RegExp(`inet ${client.spec.attachments[0]!.address.replaceAll('.', '\\.')}/32 `), 'the workload holds a /32');
  for (const task of tasks.filter((x) => hostname(x.nodeId!) !== 'h1')) {
    t.is(await fetchFrom('calclient', `http://${on(task).address}/`), 'hello from shoal\n', `h1 reaches the workload at ${on(task).address} on ${hostname(task.nodeId!)}`);
  }
  t.is(await fetchFrom('calclient', 'http://calweb/'), 'hello from shoal\n', 'the service name answers through its VIP');
  t.is(await fetchFromOutside(`http://${hostOf('h3').address}:8092/`), 'hello from shoal\n', 'the published port answers through the routing mesh');
  const hosts = await verbose('cal');
  t.deepEqual(hosts.map((h) => [h.hostname, h.problems]), [['h1', []], ['h2', []], ['h3', []]]);
});

test.serial('bad macvlan and host-gw input is refused with what was wrong and how to fix it', async (t) => {
  const refused = async (args: string[], pattern: RegExp) => {
    const result = await shoal('network', 'create', ...args);
    t.not(result.code, 0, args.join(' '));
    t.regex(result.stderr, pattern, args.join(' '));
  };
  await refused(['-d', 'macvlan', '--subnet', '198.19.162.0/24', 'bad1'], /needs its parent interface[\s\S]*-o parent=eth0/);
  await refused(['-d', 'macvlan', '-o', 'parent=eth0', 'bad2'], /needs the subnet of its parent's segment[\s\S]*--subnet/);
  await refused(['-d', 'macvlan', '-o', 'parent=eth0', '-o', 'vlan=20', '--subnet', '198.19.162.0/24', 'bad3'], /driver "macvlan" has no option "vlan"/);
  await refused(['-d', 'hostgw', 'bad4'], /needs --subnet/);
  await ok('network', 'create', '-d', 'hostgw', '--subnet', '198.19.192.0/22', 'hg-a');
  t.teardown(() => shoal('network', 'rm', 'hg-a').then(() => undefined));
  await refused(['-d', 'hostgw', '--subnet', '198.19.192.0/21', 'bad5'], /overlaps network "hg-a"/);
  await refused(['-d', 'hostgw', '-o', 'host_subnet_size=40', '--subnet', '198.19.200.0/22', 'bad6'], /host_subnet_size=40: must be a prefix length from 16 to 29/);
  await refused(['-d', 'hostgw', '--scope', 'local', '--subnet', '198.19.200.0/22', 'bad7'], /a hostgw network is swarm-scoped/);
  const listed = JSON.parse(await ok('network', 'ls', '--format', 'json')) as Array<{ spec: { name: string } }>;
  t.deepEqual(listed.map((n) => n.spec.name).filter((n) => n.startsWith('bad')), [], 'nothing was made of the refused requests');
});

test.serial('calico with routing=bgp: BIRD on each host spreads the blocks, and every host holds the same routes as the route loop gives a network without it', async (t) => {
  await ok('network', 'create', '-d', 'calico', '--attachable', '--subnet', '198.19.192.0/20', 'calstatic');
  await ok('network', 'create', '-d', 'calico', '--attachable', '-o', 'routing=bgp', '--subnet', '198.19.208.0/20', 'calbgp');
  const names = ['h1', 'h2', 'h3'].flatMap((h) => [`st-${h}`, `bgp-${h}`]);
  t.teardown(async () => {
    await shoal('container', 'rm', '--force', ...names);
    for (const network of ['calstatic', 'calbgp']) await eventually(30_000, async () => ((await shoal('network', 'rm', network)).code === 0 ? true : undefined)).catch(() => undefined);
  });
  for (const host of ['h1', 'h2', 'h3']) {
    await runOn(host, `st-${host}`, 'calstatic', ['sleep', '300']);
    await runOn(host, `bgp-${host}`, 'calbgp', httpd);
  }
  type Shares = Array<{ shares?: Array<{ subnet: string; node: string }> }>;
  const nodes = JSON.parse(await ok('node', 'ls', '--format', 'json')) as Array<{ id: string; description: { hostname: string; address: string } }>;
  /** What each host should route: every other host's blocks, via that host's underlay address. */
  const expectedOn = async (network: string, host: string) => ((JSON.parse(await ok('network', 'inspect', network)) as Shares)[0]!.shares ?? [])
    .map((s) => ({ destination: s.subnet, via: nodes.find((n) => n.id === s.node)!.description.address }))
    .filter((r) => r.via !== hostOf(host).address)
    .map((r) => `${r.destination} via ${r.via}`).sort();
  const kernelRoutes = async (host: string, proto: string, pool: string) => (JSON.parse(await run('ip', ['-n', hostOf(host).netns, '-j', 'route', 'show', 'proto', proto])) as Array<{ dst: string; gateway?: string }>)
    .filter((r) => r.dst.startsWith(pool)).map((r) => `${r.dst} via ${r.gateway}`).sort();
  const same = await eventually(30_000, async () => {
    for (const host of ['h1', 'h2', 'h3']) {
      const [loop, bgp] = [await kernelRoutes(host, '83', '198.19.19'), await kernelRoutes(host, 'bird', '198.19.2')];
      if (loop.length !== 2 || JSON.stringify(loop) !== JSON.stringify(await expectedOn('calstatic', host))) return undefined;
      if (JSON.stringify(bgp) !== JSON.stringify(await expectedOn('calbgp', host))) return undefined;
    }
    return true;
  }).then((r) => r.ms, async () => {
    const seen = await Promise.all(['h1', 'h2', 'h3'].map(async (h) => `${h}: loop ${await kernelRoutes(h, '83', '198.19.19')} bgp ${await kernelRoutes(h, 'bird', '198.19.2')}`));
    return t.fail(`the routes differ:\n${seen.join('\n')}`);
  });
  t.log(`BGP gave every host the same routes as the route loop within ${same} ms`);
  const address = (JSON.parse(await ok('container', 'inspect', 'bgp-h3')) as ContainerRecord[])[0]!.spec.attachments[0]!.address;
  t.is(await fetchFrom('bgp-h1', `http://${address}/`), 'hello from shoal\n', 'h1 reaches h3 over the BGP-learned route');
  type Bgp = { bgp?: { peers: Array<{ peer: string; state: string }> } };
  const h1 = (await verbose('calbgp')).find((h) => h.hostname === 'h1')!;
  t.deepEqual((h1.kernel?.detail as Bgp | undefined)?.bgp?.peers.map((p) => [p.peer, /Established/.test(p.state)]), [[hostOf('h2').address, true], [hostOf('h3').address, true]], 'inspect --verbose shows h1\'s BGP sessions established');
  t.deepEqual(h1.problems, []);
});

// Last in the file: it removes h3 from the cluster.
test.serial('calico: a host whose block is full takes another, routed to from the other hosts; a removed node\'s blocks are released', async (t) => {
  await ok('network', 'create', '-d', 'calico', '--attachable', '-o', 'block_size=29', '--subnet', '198.19.232.0/24', 'calblk');
  const names = Array.from({ length: 6 }, (_, i) => `blk${i}`);
  t.teardown(async () => {
    await shoal('service', 'rm', 'blkh3');
    await shoal('container', 'rm', '--force', ...names, 'blkclient');
    await eventually(30_000, async () => ((await shoal('network', 'rm', 'calblk')).code === 0 ? true : undefined)).catch(() => undefined);
  });
  type Shares = Array<{ shares?: Array<{ subnet: string; node: string }> }>;
  const shares = async () => (JSON.parse(await ok('network', 'inspect', 'calblk')) as Shares)[0]!.shares ?? [];
  const nodeId = async (name: string) => (JSON.parse(await ok('node', 'inspect', name)) as Array<{ id: string }>)[0]!.id;
  // A /29 block holds five workloads: the sixth on h1 takes h1 a second block.
  const records = [];
  for (const name of names) records.push(await runOn('h1', name, 'calblk', httpd));
  const h1 = await nodeId('h1');
  t.is((await shares()).filter((s) => s.node === h1).length, 2, 'h1 holds two blocks');
  const last = records.at(-1)!.spec.attachments[0]!.address;
  await runOn('h2', 'blkclient', 'calblk', ['sleep', '300']);
  t.is(await fetchFrom('blkclient', `http://${last}/`), 'hello from shoal\n', `h2 reaches ${last} in h1's second block`);
  const h2Routes = (await verbose('calblk')).find((h) => h.hostname === 'h2')!.kernel!.routes!;
  t.is(h2Routes.filter((r) => r.via === hostOf('h1').address && r.present).length, 2, 'h2 routes both of h1\'s blocks through h1');

  await ok('service', 'create', '--detach', '--name', 'blkh3', '--network', 'calblk', '--constraint', 'node.hostname==h3', 'busybox:1.35.0', 'sleep', '600');
  const h3 = await nodeId('h3');
  await eventually(60_000, async () => ((await shares()).some((s) => s.node === h3) ? true : undefined));
  await fixture.lab().kill('h3/agent');
  await eventually(30_000, async () => ((await shoal('node', 'rm', '--force', 'h3')).code === 0 ? true : undefined));
  const released = await eventually(60_000, async () => ((await shares()).some((s) => s.node === h3) ? undefined : true));
  t.log(`h3's block was released ${released.ms} ms after the node was removed`);
  t.true((await shares()).filter((s) => s.node === h1).length === 2, 'the blocks of the nodes that stay are kept');
});
