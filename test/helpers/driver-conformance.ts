/**
 * The behaviour every network driver must have, run against each one on the real kernel in
 * throwaway namespaces (as one router suite is run against every router): two hosts on a
 * fabric bridge, the driver's own state made and removed on them, two sandboxes joined and
 * talking, a leave and a delete that succeed twice and on half-made state, a failed join that
 * leaves nothing behind, and a check that names what was removed by hand.
 */
import type { ExecutionContext, TestFn } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, systemBinary } from '../../shared/exec.ts';
import { createSocket } from 'node:dgram';
import { createNetns, deleteNetns, netnsPath, socketInNetns } from '../../native/netns.ts';
import type { Endpoint, Network, Sandbox } from '../../netplug/cnm.ts';
import { isPeerAware, isRouteAware, type NetworkDriver, type Peer } from '../../netplug/driver.ts';
import { HostNamespace } from '../../netplug/host.ts';
import { HostLocalIpam } from '../../netplug/ipam/host-local.ts';
import { macFor } from '../../netplug/model.ts';
import type { DriverRegistry } from '../../netplug/registry.ts';
import { RouteSync } from '../../netplug/route-sync.ts';
import { eventually } from './cli.ts';

/** Every namespace of the suite starts with this: a sweep at start removes what a killed run left. */
export const conformancePrefix = 'sdc-';

export interface ConformanceHost {
  name: string;
  netns: string;
  address: string;
  host: HostNamespace;
  /** The prefix of the namespaces its driver makes. */
  netnsPrefix: string;
  driver: NetworkDriver;
  routes: RouteSync;
}

export interface DriverCase {
  type: string;
  /** The network as each host's driver sees it (host-gw: each host its own subnet). */
  network(hostIndex: number): Network;
  /** Both sandboxes on the first host (local networks), or one on each. */
  local?: boolean;
  /** Removes one piece of kernel state the driver keeps; returns what check must then say. */
  breakState(host: ConformanceHost, network: Network): Promise<RegExp>;
  /** Leaves the network's state on a host half made: what a cut-off create or delete leaves. */
  halfMake(host: ConformanceHost, network: Network): Promise<void>;
  /** Names of the devices the driver leaves in the host's namespace (none, once deleted). */
  devices: RegExp;
}

async function sweep(): Promise<void> {
  const names = (await run('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(conformancePrefix));
  for (const name of names) await deleteNetns(name).catch(() => undefined);
}

/** Hosts `h1`, `h2` on a fabric bridge, with underlay addresses in 198.18.250.0/24. */
async function makeHosts(t: ExecutionContext, registry: DriverRegistry, type: string, tag: string): Promise<ConformanceHost[]> {
  const fabric = `${conformancePrefix}${tag}-fab`;
  t.teardown(() => deleteNetns(fabric).catch(() => undefined));
  await createNetns(fabric);
  await run('ip', ['-n', fabric, '-batch', '-'], 'link add br0 type bridge\nlink set br0 up\n');
  const ipamDir = await mkdtemp(join(tmpdir(), 'shoal-conformance-'));
  t.teardown(() => rm(ipamDir, { recursive: true, force: true }));
  const hosts: ConformanceHost[] = [];
  for (const index of [1, 2]) {
    const netns = `${conformancePrefix}${tag}-h${index}`;
    t.teardown(() => deleteNetns(netns).catch(() => undefined));
    await createNetns(netns);
    const address = `198.18.250.${index}`;
    await run('ip', ['link', 'add', `${tag}p${index}`, 'netns', fabric, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await run('ip', ['-n', fabric, 'link', 'set', `${tag}p${index}`, 'master', 'br0', 'up']);
    await run('ip', ['-n', netns, '-batch', '-'], `addr add ${address}/24 dev eth0\nlink set eth0 up\n`);
    const host = new HostNamespace(netns);
    const definition = registry.require(type);
    const netnsPrefix = `${conformancePrefix}${tag}-`;
    const driver = definition.agent!({ host, underlay: { device: 'eth0', address, mtu: 1500 }, netnsPrefix, nodeName: `h${index}`, hostIpam: new HostLocalIpam(join(ipamDir, `h${index}`)), stateDir: join(ipamDir, `h${index}-state`) });
    hosts.push({ name: `h${index}`, netns, address, host, netnsPrefix, driver, routes: new RouteSync(host) });
  }
  return hosts;
}

async function makeSandbox(t: ExecutionContext, name: string): Promise<Sandbox> {
  const netns = `${conformancePrefix}${name}`;
  t.teardown(() => deleteNetns(netns).catch(() => undefined));
  await createNetns(netns);
  return { id: `sandbox-${name}`, netns };
}

const endpointOn = (network: Network, sandbox: Sandbox, address: string): Endpoint => ({ network, sandboxId: sandbox.id, address, mac: macFor(address), ifname: 'eth0' });

/** The n-th host address of the network's subnet (the gateway is the first). */
function addressIn(network: Network, n: number): string {
  const [base] = network.subnet.split('/');
  const octets = base!.split('.').map(Number);
  return [...octets.slice(0, 3), octets[3]! + 1 + n].join('.');
}

/**
 * Whether a UDP datagram from `from` reaches `to` and its echo comes back (the machine has no
 * ping): a socket made inside each sandbox, the echo answered by `to`'s.
 */
async function exchange(from: { sandbox: Sandbox; address: string }, to: { sandbox: Sandbox; address: string }): Promise<boolean> {
  const [serverFd, clientFd] = await Promise.all([socketInNetns(netnsPath(to.sandbox.netns), 'udp', to.address, 0), socketInNetns(netnsPath(from.sandbox.netns), 'udp', from.address, 0)]);
  const server = createSocket('udp4');
  const client = createSocket('udp4');
  try {
    await new Promise<void>((done) => server.bind({ fd: serverFd }, done));
    await new Promise<void>((done) => client.bind({ fd: clientFd }, done));
    server.on('message', (message, remote) => server.send(message, remote.port, remote.address));
    const port = server.address().port;
    const echoed = new Promise<boolean>((resolve) => client.once('message', (message) => resolve(message.toString() === 'conformance')));
    // The first datagram may wait on ARP; send a few.
    for (let attempt = 0; attempt < 5; attempt++) {
      client.send('conformance', port, to.address);
      const answer = await Promise.race([echoed, new Promise<false>((resolve) => setTimeout(() => resolve(false), 400))]);
      if (answer) return true;
    }
    return false;
  } finally {
    server.close();
    client.close();
  }
}

async function hostDevices(host: ConformanceHost, pattern: RegExp): Promise<string[]> {
  const links = JSON.parse(await host.host.ip(['-j', 'link', 'show'])) as Array<{ ifname: string }>;
  return links.map((l) => l.ifname).filter((name) => pattern.test(name));
}

/** Hands each host what the leader's tables would: the other host's endpoint (peer-aware) or subnet (route-aware). */
async function wire(hosts: ConformanceHost[], networks: Network[], endpoints: Array<{ host: number; endpoint: Endpoint }>): Promise<void> {
  for (const [index, host] of hosts.entries()) {
    const network = networks[index]!;
    if (isPeerAware(host.driver)) {
      const peers: Peer[] = endpoints.filter((e) => e.host !== index).map((e) => ({ address: e.endpoint.address, mac: e.endpoint.mac, host: hosts[e.host]!.address }));
      await host.driver.setPeers(network, peers);
    }
    if (isRouteAware(host.driver)) {
      const entries = hosts.map((other, i) => ({ subnet: networks[i]!.subnet, host: other.address }));
      host.routes.set(network.id, host.driver.routes(network, entries));
      await host.routes.sync();
    }
  }
}

export function driverConformance(test: TestFn, registry: DriverRegistry, driverCase: DriverCase, options: { skip?: string } = {}): void {
  const type = driverCase.type;
  const declare = options.skip ? test.skip : test.serial;
  const title = (what: string) => `${type}: ${what}${options.skip ? ` (skipped: ${options.skip})` : ''}`;
  let tagCounter = 0;
  const tag = () => `${type.slice(0, 2)}${process.pid % 1000}${tagCounter++}`;

  test.before(sweep);

  declare(title('create twice, join two sandboxes, traffic flows, check is clean; leave and delete twice leave nothing'), async (t) => {
    const hosts = await makeHosts(t, registry, type, tag());
    const networks = hosts.map((_, i) => driverCase.network(i));
    const used = driverCase.local ? [hosts[0]!, hosts[0]!] : hosts;
    const usedNetworks = driverCase.local ? [networks[0]!, networks[0]!] : networks;
    for (const [i, host] of hosts.entries()) {
      await host.driver.createNetwork(networks[i]!);
      await host.driver.createNetwork(networks[i]!);
    }
    const a = await makeSandbox(t, `${tag()}a`);
    const b = await makeSandbox(t, `${tag()}b`);
    const endpointA = endpointOn(usedNetworks[0]!, a, addressIn(usedNetworks[0]!, 1));
    const endpointB = endpointOn(usedNetworks[1]!, b, addressIn(usedNetworks[1]!, 2));
    await used[0]!.driver.join(endpointA, a);
    await used[1]!.driver.join(endpointB, b);
    await wire(hosts, networks, [
      { host: 0, endpoint: endpointA },
      { host: driverCase.local ? 0 : 1, endpoint: endpointB },
    ]);
    for (const [i, host] of hosts.entries()) t.deepEqual([...(await host.driver.check(networks[i]!)), ...(await host.routes.check(networks[i]!.id))], [], `${host.name} checks clean`);
    t.true(await exchange({ sandbox: a, address: endpointA.address }, { sandbox: b, address: endpointB.address }), `${endpointA.address} reaches ${endpointB.address} and hears back`);
    t.true(await exchange({ sandbox: b, address: endpointB.address }, { sandbox: a, address: endpointA.address }), `${endpointB.address} reaches ${endpointA.address} and hears back`);

    const expected = await driverCase.breakState(hosts[0]!, networks[0]!);
    const problems = async () => [...(await hosts[0]!.driver.check(networks[0]!)), ...(await hosts[0]!.routes.check(networks[0]!.id))];
    const named = await eventually(2_000, async () => ((await problems()).some((p) => expected.test(p)) ? true : undefined)).then(() => true, () => false);
    if (!named) t.fail(`check does not name what was removed (${expected}): ${(await problems()).join('; ') || 'nothing'}; the host holds:\n${await hosts[0]!.host.run(systemBinary('nft'), ['list', 'ruleset']).catch(String)}\n${await hosts[0]!.host.ip(['-d', 'link', 'show']).catch(String)}`);

    for (const twice of [1, 2]) {
      await used[1]!.driver.leave(endpointB, b);
      await used[0]!.driver.leave(endpointA, a);
      t.pass(`leave ${twice}`);
    }
    for (const [i, host] of hosts.entries()) {
      host.routes.set(networks[i]!.id, []);
      await host.routes.sync();
      await host.driver.deleteNetwork(networks[i]!);
      await host.driver.deleteNetwork(networks[i]!);
      t.deepEqual(await hostDevices(host, driverCase.devices), [], `${host.name} holds none of the driver's devices`);
      t.deepEqual(JSON.parse(await host.host.ip(['-j', 'route', 'show', 'proto', '83'])), [], `${host.name} holds none of its routes`);
    }
  });

  declare(title('delete succeeds on half-made state, and a failed join undoes what it did'), async (t) => {
    const hosts = await makeHosts(t, registry, type, tag());
    const host = hosts[0]!;
    const network = driverCase.network(0);
    await host.driver.createNetwork(network);
    await driverCase.halfMake(host, network);
    await host.driver.deleteNetwork(network);
    t.deepEqual(await hostDevices(host, driverCase.devices), [], 'nothing of the half-made network is left');
    await host.driver.createNetwork(network);
    const before = await hostDevices(host, /./);
    const gone: Sandbox = { id: 'sandbox-gone', netns: `${conformancePrefix}no-such-namespace` };
    await t.throwsAsync(host.driver.join(endpointOn(network, gone, addressIn(network, 3)), gone));
    t.deepEqual(await hostDevices(host, /./), before, 'the failed join left no device behind');
    await host.driver.deleteNetwork(network);
  });
}
