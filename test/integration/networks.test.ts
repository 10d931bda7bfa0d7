/**
 * The overlay data plane on a real lab: kernel VXLAN between host namespaces, programmed by
 * the agents from the leader's peer tables. Containers are standalone (`container run
 * --network`); services join networks in a later step.
 */
import test from 'ava';
import { netnsPrefix, registryAddress } from '../../lab/topology.ts';
import { overlayNamespace } from '../../netplug/drivers/overlay/overlay.ts';
import { run } from '../../shared/exec.ts';
import type { ContainerRecord } from '../../shared/containers.ts';
import type { TaskObject } from '../../shared/services.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

const fixture = useLab(test, { name: 'it-net', hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { shoal, ok } = fixture;

const netnsOf = (host: string) => fixture.lab().record.topology.hosts.find((h) => h.name === host)!.netns;
const addressOf = (host: string) => fixture.lab().record.topology.hosts.find((h) => h.name === host)!.address;
/** Where a host keeps an overlay's bridge and VTEP: the network's own namespace on that host. */
const overlayNs = (host: string, vni: number) => overlayNamespace(netnsPrefix('it-net'), vni, addressOf(host));

async function runOn(host: string, name: string, network: string[], cmd: string[]): Promise<ContainerRecord> {
  await ok('container', 'run', '-d', '--node', host, '--name', name, ...network.flatMap((n) => ['--network', n]), 'busybox:1.35.0', ...cmd);
  return (JSON.parse(await ok('container', 'inspect', name)) as ContainerRecord[])[0]!;
}

/** The VTEP's own forwarding entries (those with a remote host), not what its bridge learned from traffic. */
async function fdb(host: string, vni: number): Promise<string> {
  const all = await run('bridge', ['-n', overlayNs(host, vni), 'fdb', 'show', 'dev', `svx-${vni}`]).catch(() => '');
  return all
    .split('\n')
    .filter((line) => line.includes(' dst '))
    .join('\n');
}

async function neighbours(host: string, vni: number): Promise<string> {
  return run('ip', ['-n', overlayNs(host, vni), 'neigh', 'show', 'dev', `svx-${vni}`]).catch(() => '');
}

const httpd = ['httpd', '-f', '-p', '80', '-h', '/var/www'];
const sleeper = ['sleep', '300'];

test.serial('two containers on different hosts on one overlay exchange TCP; another overlay cannot reach them', async (t) => {
  await ok('network', 'create', '-d', 'overlay', '--attachable', '--subnet', '198.19.80.0/24', 'ov1');
  await ok('network', 'create', '-d', 'overlay', '--attachable', 'ov2');
  t.teardown(async () => {
    for (const name of ['web1', 'client2', 'other2']) await shoal('container', 'rm', '--force', name);
    await shoal('network', 'rm', 'ov1', 'ov2');
  });
  const server = await runOn('h1', 'web1', ['ov1'], httpd);
  const address = server.spec.attachments[0]!.address;
  t.is(address, '198.19.80.2');
  await runOn('h2', 'client2', ['ov1'], sleeper);
  const served = await eventually(10_000, async () => {
    const result = await shoal('container', 'exec', 'client2', 'timeout', '5', 'wget', '-qO-', `http://${address}/`);
    return result.code === 0 ? result.stdout : undefined;
  });
  t.is(served.value, 'hello from shoal\n');
  t.log(`h2 reached h1's container over the overlay ${served.ms} ms after starting`);

  const vni = Number(server.spec.attachments[0]!.data.vni!);
  // The VTEP sits in the network's namespace; its underlay is the host's (link-netnsid).
  t.regex(await fdb('h2', vni), new RegExp(`${server.spec.attachments[0]!.mac} dst ${addressOf('h1')} link-netnsid \\d+ self permanent`));
  t.regex(await fdb('h2', vni), new RegExp(`00:00:00:00:00:00 dst ${addressOf('h1')}`));
  t.regex(await neighbours('h2', vni), new RegExp(`${address} lladdr ${server.spec.attachments[0]!.mac} PERMANENT`));
  const mtu = await run('ip', ['-n', overlayNs('h2', vni), '-j', 'link', 'show', 'dev', `svx-${vni}`]);
  t.is((JSON.parse(mtu) as Array<{ mtu: number }>)[0]!.mtu, 1450, 'VXLAN MTU is the underlay 1500 less 50');
  t.is(await fdb('h3', vni), '', 'a host with no endpoint on the network has no VTEP for it');

  type Verbose = Array<{
    hosts: Array<{ hostname: string; kernel?: { detail?: { vtep?: { mtu: number; local: string } }; heard: Array<{ host: string; endpoints: number; ageMs?: number }> }; problems: string[] }>;
  }>;
  const verbose = async () => (JSON.parse(await ok('network', 'inspect', '--verbose', 'ov1')) as Verbose)[0]!.hosts;
  const healthy = await verbose();
  t.deepEqual(healthy.map((h) => [h.hostname, h.kernel?.detail?.vtep?.local ?? null, h.problems]), [['h1', addressOf('h1'), []], ['h2', addressOf('h2'), []], ['h3', null, []]]);
  // Each host heard the other's endpoint straight from its agent, over gossipsub.
  const heard = (host: string) => healthy.find((h) => h.hostname === host)!.kernel!.heard.map((m) => [m.host, m.endpoints, (m.ageMs ?? Infinity) < 30_000]);
  t.deepEqual(heard('h2'), [[addressOf('h1'), 1, true]]);
  t.deepEqual(heard('h1'), [[addressOf('h2'), 1, true]]);
  // An entry deleted by hand shows as a problem, and the periodic full table puts it back.
  // The table is resent every 10 s from two sources (the leader and the agent's gossip), so a
  // resend can land between the delete and the inspect: delete again until the gap is seen.
  const missing = `missing FDB entry ${server.spec.attachments[0]!.mac} -> ${addressOf('h1')}`;
  let seen: string[] = [];
  for (let attempt = 0; attempt < 3 && !seen.some((p) => p.startsWith(missing)); attempt++) {
    await run('bridge', ['-n', overlayNs('h2', vni), 'fdb', 'del', server.spec.attachments[0]!.mac, 'dev', `svx-${vni}`, 'dst', addressOf('h1')]).catch(() => '');
    seen = (await verbose()).find((h) => h.hostname === 'h2')!.problems;
  }
  t.true(seen.some((p) => p.startsWith(missing)), `no problem named after deleting the entry: ${seen.join('; ') || 'none'}`);
  const healed = await eventually(15_000, async () => ((await verbose()).every((h) => h.problems.length === 0) ? true : undefined));
  t.log(`the deleted entry was back ${healed.ms} ms later (full tables every 10 s)`);

  await runOn('h2', 'other2', ['ov2'], sleeper);
  const isolated = await shoal('container', 'exec', 'other2', 'timeout', '5', 'wget', '-qO-', `http://${address}/`);
  t.not(isolated.code, 0, 'a container on another overlay does not reach ov1');

  const inUse = await shoal('network', 'rm', 'ov1');
  t.is(inUse.code, 1);
  t.regex(inUse.stderr, /network "ov1" is in use by 2 endpoint\(s\)/);
});

test.serial('removing a container removes its entries on every host; a killed agent\'s endpoints are withdrawn', async (t) => {
  await ok('network', 'create', '-d', 'overlay', '--attachable', 'ov3');
  t.teardown(async () => {
    for (const name of ['a1', 'b2', 'c3']) await shoal('container', 'rm', '--force', name);
    await shoal('network', 'rm', 'ov3');
  });
  const a1 = await runOn('h1', 'a1', ['ov3'], sleeper);
  const b2 = await runOn('h2', 'b2', ['ov3'], sleeper);
  await runOn('h3', 'c3', ['ov3'], sleeper);
  const vni = Number(a1.spec.attachments[0]!.data.vni!);
  const a1Mac = a1.spec.attachments[0]!.mac;
  await eventually(10_000, async () => ((await fdb('h2', vni)).includes(a1Mac) && (await fdb('h3', vni)).includes(a1Mac) ? true : undefined));
  const ping = await shoal('container', 'exec', 'b2', 'ping', '-c', '1', '-W', '2', a1.spec.attachments[0]!.address);
  t.is(ping.code, 0, ping.stderr);

  await ok('container', 'rm', '--force', 'a1');
  const gone = await eventually(10_000, async () =>
    !(await fdb('h2', vni)).includes(a1Mac) && !(await fdb('h3', vni)).includes(a1Mac) && !(await neighbours('h3', vni)).includes(a1.spec.attachments[0]!.address) ? true : undefined,
  );
  t.log(`a1's entries left h2 and h3 ${gone.ms} ms after its removal`);
  t.false((await fdb('h2', vni)).includes(`dst ${addressOf('h1')}`), 'h1 has no endpoint left, so no flood entry either');

  const b2Mac = b2.spec.attachments[0]!.mac;
  t.true((await fdb('h3', vni)).includes(b2Mac));
  await fixture.lab().kill('h2/agent');
  const withdrawn = await eventually(15_000, async () => (!(await fdb('h3', vni)).includes(b2Mac) ? true : undefined));
  t.log(`h2's endpoint was withdrawn from h3 ${withdrawn.ms} ms after its agent was killed (grace 3 s)`);
  await fixture.lab().start('h2/agent');
  await eventually(20_000, async () => ((await fdb('h3', vni)).includes(b2Mac) ? true : undefined));
});

test.serial('a service on an overlay: replicas on different hosts reach each other by address; removing it frees the addresses', async (t) => {
  await ok('network', 'create', '-d', 'overlay', 'svcnet');
  t.teardown(async () => {
    await shoal('service', 'rm', 'web');
    await shoal('network', 'rm', 'svcnet');
  });
  await ok('service', 'create', '--name', 'web', '--replicas', '3', '--network', 'svcnet', 'busybox:1.35.0', ...httpd);
  type Task = TaskObject & { name: string; node: string };
  const tasks = (JSON.parse(await ok('service', 'ps', 'web', '--format', 'json')) as Task[]).filter((task) => task.desiredState === 'running');
  t.deepEqual(tasks.map((task) => task.node).sort(), ['h1', 'h2', 'h3']);
  const addresses = tasks.map((task) => task.attachments?.[0]?.address);
  t.is(new Set(addresses).size, 3);
  t.true(addresses.every((address) => address?.startsWith('198.19.')));
  for (const [i, task] of tasks.entries()) {
    const peer = tasks[(i + 1) % tasks.length]!;
    const served = await eventually(10_000, async () => {
      const result = await shoal('container', 'exec', task.name, 'timeout', '5', 'wget', '-qO-', `http://${peer.attachments![0]!.address}/`);
      return result.code === 0 ? result.stdout : undefined;
    });
    t.is(served.value, 'hello from shoal\n', `${task.node} -> ${peer.node}`);
  }
  t.is((JSON.parse(await ok('network', 'inspect', 'svcnet')) as Array<{ endpoints: unknown[] }>)[0]!.endpoints.length, 3);
  const inUse = await shoal('network', 'rm', 'svcnet');
  t.regex(inUse.stderr, /in use by 3 endpoint/);
  await ok('service', 'rm', 'web');
  await eventually(30_000, async () => ((JSON.parse(await ok('network', 'inspect', 'svcnet')) as Array<{ endpoints: unknown[] }>)[0]!.endpoints.length === 0 ? true : undefined));
});

test.serial('a service on the host network serves on its node\'s own address; host stands alone', async (t) => {
  t.teardown(async () => {
    await shoal('service', 'rm', 'onhost');
  });
  await ok('service', 'create', '--name', 'onhost', '--constraint', 'node.hostname==h2', '--network', 'host', 'busybox:1.35.0', 'httpd', '-f', '-p', '8099', '-h', '/var/www');
  const [task] = (JSON.parse(await ok('service', 'ps', 'onhost', '--format', 'json')) as Array<TaskObject & { node: string }>).filter((x) => x.desiredState === 'running');
  t.is(task!.node, 'h2');
  t.deepEqual(task!.attachments ?? [], [], 'the host network hands out no address');
  const served = await eventually(10_000, async () =>
    run('ip', ['netns', 'exec', netnsOf('h1'), 'timeout', '5', 'busybox', 'wget', '-qO-', `http://${addressOf('h2')}:8099/`]).catch(() => undefined),
  );
  t.is(served.value, 'hello from shoal\n', 'h1 reaches the task on h2\'s underlay address');
  const mixed = await shoal('service', 'create', '--detach', '--name', 'mixed', '--network', 'host', '--network', 'bridge', 'busybox:1.35.0', 'sleep', '30');
  t.not(mixed.code, 0);
  t.regex(mixed.stderr, /--network host cannot be combined with other networks/);
});

test.serial('the default bridge links containers on one host and gives them egress; an internal bridge has none and is not removed while in use; none, host and container: behave as in Docker', async (t) => {
  await ok('network', 'create', '--internal', 'inner');
  t.teardown(async () => {
    for (const name of ['joined', 'onhost', 'br1', 'br2', 'in1', 'in2', 'lonely', 'plain']) await shoal('container', 'rm', '--force', name);
    await shoal('network', 'rm', 'inner');
  });
  const registry = `http://${registryAddress(fixture.lab().record.topology)}/v2/`;
  const br1 = await runOn('h1', 'br1', ['bridge'], httpd);
  await runOn('h1', 'br2', ['bridge'], sleeper);
  const address = br1.spec.attachments[0]!.address;
  t.regex(address, /^198\.19\.128\.\d+$/, 'the default bridge\'s address comes from the agent');
  t.is((await ok('container', 'exec', 'br2', 'timeout', '5', 'wget', '-qO-', `http://${address}/`)), 'hello from shoal\n');
  type Verbose = Array<{ hosts: Array<{ hostname: string; kernel?: { detail?: { bridge?: string; nat?: boolean } }; problems: string[] }> }>;
  const h1 = (JSON.parse(await ok('network', 'inspect', '--verbose', 'bridge')) as Verbose)[0]!.hosts.find((h) => h.hostname === 'h1')!;
  t.deepEqual([h1.kernel?.detail?.bridge?.startsWith('slb-'), h1.kernel?.detail?.nat, h1.problems], [true, true, []], 'inspect --verbose shows a local bridge as it is');
  const egress = await shoal('container', 'exec', 'br2', 'timeout', '5', 'wget', '-qO-', registry);
  t.is(egress.code, 0, `a bridge container reaches the lab registry through NAT: ${egress.stderr}`);

  const in1 = await runOn('h1', 'in1', ['inner'], httpd);
  await runOn('h1', 'in2', ['inner'], sleeper);
  t.is(await ok('container', 'exec', 'in2', 'timeout', '5', 'wget', '-qO-', `http://${in1.spec.attachments[0]!.address}/`), 'hello from shoal\n');
  const noEgress = await shoal('container', 'exec', 'in2', 'timeout', '5', 'wget', '-qO-', registry);
  t.not(noEgress.code, 0, 'an internal network has no way out');
  // Endpoints on a local network count as users, as overlays' do.
  const listed = JSON.parse(await ok('network', 'ls', '--format', 'json')) as Array<{ spec: { name: string }; endpoints: number }>;
  t.is(listed.find((n) => n.spec.name === 'inner')!.endpoints, 2);
  const inUse = await shoal('network', 'rm', 'inner');
  t.not(inUse.code, 0);
  t.regex(inUse.stderr, /network "inner" is in use by 2 endpoint\(s\)/);

  // No --network: the default bridge, as docker run gives.
  const plain = await runOn('h2', 'plain', [], sleeper);
  t.deepEqual(plain.spec.attachments.map((a) => a.networkName), ['bridge']);
  t.regex(await ok('container', 'exec', 'plain', 'ip', '-o', '-4', 'addr'), /eth0\s+inet 198\.19\.128\.\d+\//);
  await runOn('h2', 'lonely', ['none'], sleeper);
  const links = await ok('container', 'exec', 'lonely', 'ip', '-o', 'link');
  t.deepEqual(links.trim().split('\n').map((line) => line.split(':')[1]!.trim()), ['lo']);

  // --network host: the host's own interfaces; --network container:br1: br1's namespace, over 127.0.0.1.
  await runOn('h2', 'onhost', ['host'], sleeper);
  t.regex(await ok('container', 'exec', 'onhost', 'ip', '-o', '-4', 'addr'), new RegExp(`eth0\\s+inet ${addressOf('h2')}/`));
  await runOn('h1', 'joined', ['container:br1'], sleeper);
  t.is(await ok('container', 'exec', 'joined', 'timeout', '5', 'wget', '-qO-', 'http://127.0.0.1/'), 'hello from shoal\n');
  t.regex(await ok('container', 'exec', 'joined', 'ip', '-o', '-4', 'addr'), new RegExp(`inet ${address}/`));
  const elsewhere = await shoal('container', 'run', '-d', '--node', 'h2', '--network', 'container:br1', 'busybox:1.35.0', 'true');
  t.regex(elsewhere.stderr, /container "br1" not found|not found/);
});

test.serial('overlay endpoints get egress through the gateway bridge unless the overlay is internal; icc=false keeps bridge endpoints apart', async (t) => {
  await ok('network', 'create', '-d', 'overlay', '--attachable', 'out');
  await ok('network', 'create', '-d', 'overlay', '--attachable', '--internal', 'sealed');
  await ok('network', 'create', '-o', 'icc=false', 'quiet');
  t.teardown(async () => {
    for (const name of ['o1', 's1', 'q1', 'q2']) await shoal('container', 'rm', '--force', name);
    await shoal('network', 'rm', 'out', 'sealed', 'quiet');
  });
  const registry = `http://${registryAddress(fixture.lab().record.topology)}/v2/`;
  const o1 = await runOn('h1', 'o1', ['out'], sleeper);
  t.deepEqual(o1.spec.attachments.map((a) => a.networkName), ['out', 'gwbridge']);
  t.is((await shoal('container', 'exec', 'o1', 'timeout', '5', 'wget', '-qO-', registry)).code, 0, 'an overlay endpoint reaches the registry through the gateway bridge');
  const s1 = await runOn('h1', 's1', ['sealed'], sleeper);
  t.deepEqual(s1.spec.attachments.map((a) => a.networkName), ['sealed']);
  t.not((await shoal('container', 'exec', 's1', 'timeout', '5', 'wget', '-qO-', registry)).code, 0, 'an internal overlay has no way out');

  const q1 = await runOn('h2', 'q1', ['quiet'], httpd);
  await runOn('h2', 'q2', ['quiet'], sleeper);
  t.not((await shoal('container', 'exec', 'q2', 'timeout', '5', 'wget', '-qO-', `http://${q1.spec.attachments[0]!.address}/`)).code, 0, 'icc=false: no traffic between endpoints');
  t.is((await shoal('container', 'exec', 'q2', 'timeout', '5', 'wget', '-qO-', registry)).code, 0, 'icc=false still lets them out');
});

test.serial('a container on two overlays reaches both, through eth0 and eth1', async (t) => {
  await ok('network', 'create', '-d', 'overlay', '--attachable', 'left');
  await ok('network', 'create', '-d', 'overlay', '--attachable', 'right');
  t.teardown(async () => {
    for (const name of ['l1', 'r1', 'both']) await shoal('container', 'rm', '--force', name);
    await shoal('network', 'rm', 'left', 'right');
  });
  const l1 = await runOn('h1', 'l1', ['left'], httpd);
  const r1 = await runOn('h3', 'r1', ['right'], httpd);
  const both = await runOn('h2', 'both', ['left', 'right'], sleeper);
  t.deepEqual(both.spec.attachments.map((a) => a.networkName), ['left', 'right', 'gwbridge'], 'its way out is the gateway bridge, last');
  const interfaces = await ok('container', 'exec', 'both', 'ip', '-o', '-4', 'addr');
  t.regex(interfaces, new RegExp(`eth0\\s+inet ${both.spec.attachments[0]!.address}/`));
  t.regex(interfaces, new RegExp(`eth1\\s+inet ${both.spec.attachments[1]!.address}/`));
  for (const target of [l1, r1]) {
    const served = await eventually(10_000, async () => {
      const result = await shoal('container', 'exec', 'both', 'timeout', '5', 'wget', '-qO-', `http://${target.spec.attachments[0]!.address}/`);
      return result.code === 0 ? result.stdout : undefined;
    });
    t.is(served.value, 'hello from shoal\n');
  }
});

test.serial('network connect joins a running container to an attachable overlay as its next interface, with its aliases; disconnect takes it off', async (t) => {
  await ok('network', 'create', '-d', 'overlay', '--attachable', 'late');
  await ok('network', 'create', '-d', 'overlay', 'closed');
  t.teardown(async () => {
    for (const name of ['lw', 'lc']) await shoal('container', 'rm', '--force', name);
    await shoal('network', 'rm', 'late', 'closed');
  });
  const server = await runOn('h1', 'lw', ['late'], httpd);
  await runOn('h3', 'lc', ['none'], sleeper);
  const joined = await ok('network', 'connect', '--alias', 'db', 'late', 'lc');
  t.regex(joined, /^lc: late 198\.19\.\d+\.\d+$/m);
  const lcAddress = /late (198\.19\.\d+\.\d+)/.exec(joined)![1]!;
  // The alias and the container's name answer on the network it joined, through the embedded DNS.
  for (const name of ['db', 'lc']) {
    const looked = await eventually(5_000, async () => {
      const result = await shoal('container', 'exec', 'lw', 'nslookup', name);
      return result.stdout.includes(lcAddress) ? result.stdout : undefined;
    });
    t.regex(looked.value, new RegExp(`Name:\\s+${name}`));
  }
  const served = await eventually(10_000, async () => {
    const result = await shoal('container', 'exec', 'lc', 'timeout', '5', 'wget', '-qO-', `http://${server.spec.attachments[0]!.address}/`);
    return result.code === 0 ? result.stdout : undefined;
  });
  t.is(served.value, 'hello from shoal\n');
  t.regex(await ok('container', 'exec', 'lc', 'ip', '-o', 'link'), /eth0@/);
  t.is((JSON.parse(await ok('network', 'inspect', 'late')) as Array<{ endpoints: unknown[] }>)[0]!.endpoints.length, 2);
  await ok('network', 'disconnect', 'late', 'lc');
  t.notRegex(await ok('container', 'exec', 'lc', 'ip', '-o', 'link'), /eth0@/);
  t.is((JSON.parse(await ok('network', 'inspect', 'late')) as Array<{ endpoints: unknown[] }>)[0]!.endpoints.length, 1);
  const refused = await shoal('network', 'connect', 'closed', 'lc');
  t.is(refused.code, 1);
  t.regex(refused.stderr, /network "closed" is not attachable/);
});

test.serial('bad --network input is refused with the reason', async (t) => {
  const unknown = await shoal('container', 'run', '-d', '--node', 'h1', '--network', 'nosuch', 'busybox:1.35.0', 'true');
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /network "nosuch" not found/);
  const mixed = await shoal('container', 'run', '-d', '--node', 'h1', '--network', 'host', '--network', 'auto', 'busybox:1.35.0', 'true');
  t.regex(mixed.stderr, /--network host cannot be combined with other networks/);
  await ok('network', 'create', '-d', 'overlay', '--attachable', 'auto');
  t.teardown(() => shoal('network', 'rm', 'auto'));
  const staticIp = await shoal('container', 'run', '-d', '--node', 'h1', '--network', 'auto', '--ip', '198.19.0.50', 'busybox:1.35.0', 'true');
  t.regex(staticIp.stderr, /static address needs a network created with --subnet/);
  t.deepEqual(JSON.parse(await ok('network', 'inspect', 'auto'))[0].endpoints, [], 'a refused run holds no address');
});
