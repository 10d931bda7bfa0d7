/**
 * `shoal network trace A B` on a real lab: a working path is all ✓ with exit 0; each path
 * broken on purpose is named at its hop, with the host, the kernel object and the fix: a
 * deleted FDB or neighbour entry, a deleted calico or host-gw route, a lowered underlay MTU
 * (with the largest size that passes), a deny policy (with the policy and rule), a VIP with no
 * backend, a stopped agent; and, found by the VXLAN probe frame alone, a firewall dropping UDP
 * 4789 and a bridge port that is down.
 */
import { writeFile } from 'node:fs/promises';
import test from 'ava';
import { netnsPrefix } from '../../lab/topology.ts';
import { overlayNamespace } from '../../netplug/drivers/overlay/overlay.ts';
import { run, systemBinary } from '../../shared/exec.ts';
import type { TaskObject } from '../../shared/services.ts';
import type { TraceAnswer } from '../../manager/api/trace.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

const labName = 'it-trace';
const fixture = useLab(test, { name: labName, hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { shoal, ok } = fixture;
const hostOf = (name: string) => fixture.lab().record.topology.hosts.find((h) => h.name === name)!;
const httpd = ['httpd', '-f', '-p', '80', '-h', '/var/www'];

type Task = TaskObject & { name: string };
const taskOn = async (service: string, host: string) => {
  const nodes = JSON.parse(await ok('node', 'ls', '--format', 'json')) as Array<{ id: string; description: { hostname: string } }>;
  const id = nodes.find((n) => n.description.hostname === host)!.id;
  return (await eventually(60_000, async () => (JSON.parse(await ok('service', 'ps', service, '--format', 'json')) as Task[]).find((t) => t.nodeId === id && t.status.state === 'running' && t.desiredState === 'running'))).value;
};

/**
 * A trace as JSON (its exit code and answer) and as text. They are two runs: a break the
 * leader's periodic tables heal between them shows in one only, so `code` and `answer` both
 * come from the JSON run.
 */
async function trace(...args: string[]): Promise<{ code: number; text: string; answer: TraceAnswer }> {
  const json = await shoal('network', 'trace', '--format', 'json', ...args);
  const text = await shoal('network', 'trace', ...args);
  return { code: json.code, text: text.stdout, answer: JSON.parse(json.stdout) as TraceAnswer };
}

/**
 * Breaks something, then traces until both runs of the trace see it broken. The leader's tables
 * come again every 10 s and heal the kernel on their own: a break healed before the trace saw
 * it is made again.
 */
async function breakAndTrace(breakIt: () => Promise<unknown>, ...args: string[]): Promise<Awaited<ReturnType<typeof trace>>> {
  for (let attempt = 1; ; attempt++) {
    await breakIt().catch(() => undefined);
    const traced = await trace(...args);
    if ((traced.code !== 0 && traced.text.includes('✗')) || attempt === 4) return traced;
  }
}

/** The first failing hop. */
const firstBroken = (answer: TraceAnswer) => answer.hops.find((h) => !h.ok);

test.before(async () => {
  await ok('network', 'create', '-d', 'overlay', '--attachable', '--subnet', '198.19.70.0/24', 'tr');
  await ok('service', 'create', '--name', 'web', '--network', 'tr', '--constraint', 'node.hostname==h2', 'busybox:1.35.0', ...httpd);
  await ok('service', 'create', '--name', 'cli', '--network', 'tr', '--constraint', 'node.hostname==h1', 'busybox:1.35.0', 'sleep', '10000');
});

test.serial('a working path is all ✓, through a task or the service\'s VIP, and exits 0', async (t) => {
  const [cli, web] = [await taskOn('cli', 'h1'), await taskOn('web', 'h2')];
  const direct = await trace(cli.name, web.name, '--port', '80');
  t.is(direct.code, 0, direct.text);
  t.true(direct.answer.hops.every((h) => h.ok));
  t.deepEqual(direct.answer.hops.map((h) => h.hop), ['source host', 'towards the destination', 'path MTU', 'policy', 'destination host', 'reply path', 'VXLAN probe', 'live probe']);
  t.regex(direct.text, /✓ VXLAN probe +frame \d+ bytes, nonce [0-9a-f]{8}: h1 -> h2 underlay, VTEP \d+, bridge, web\.[^;]+; answered; the reply reached cli\.\S+ on h1/);
  const started = Date.now();
  const viaVip = await trace(cli.name, 'web', '--port', '80');
  t.log(`a trace through the VIP took ${Date.now() - started} ms (two CLI runs)`);
  t.is(viaVip.code, 0, viaVip.text);
  t.regex(viaVip.text, /✓ service VIP +web 198\.19\.70\.\d+ spreads over 1 backend/);
});

test.serial('a deleted FDB entry is named with its host and the fix', async (t) => {
  const [cli, web] = [await taskOn('cli', 'h1'), await taskOn('web', 'h2')];
  const attachment = web.attachments!.find((a) => a.networkName === 'tr')!;
  const vni = Number(attachment.data.vni);
  const networkNetns = overlayNamespace(netnsPrefix(labName), vni, hostOf('h1').address);
  t.teardown(() => shoal('network', 'check', '--repair', 'tr'));
  const broken = await breakAndTrace(() => run('bridge', ['-n', networkNetns, 'fdb', 'del', attachment.mac, 'dev', `svx-${vni}`, 'dst', hostOf('h2').address]), cli.name, web.name, '--port', '80');
  t.is(broken.code, 1, broken.text);
  t.like(firstBroken(broken.answer), { hop: 'towards the destination', host: 'h1', object: `missing FDB entry ${attachment.mac} -> ${hostOf('h2').address} (${attachment.address})`, fix: 'shoal network check --repair tr' });
  t.regex(broken.text, /✗ towards the destination .*\n {4}host: {3}h1\n {4}object: missing FDB entry/);
  await ok('network', 'check', '--repair', 'tr');

  const neighbourless = await breakAndTrace(() => run('ip', ['-n', networkNetns, 'neigh', 'del', attachment.address, 'dev', `svx-${vni}`]), cli.name, web.name, '--port', '80');
  t.is(neighbourless.code, 1, neighbourless.text);
  t.like(firstBroken(neighbourless.answer), { hop: 'towards the destination', host: 'h1', object: `missing neighbour entry ${attachment.address} -> ${attachment.mac}`, fix: 'shoal network check --repair tr' });
});

test.serial('the VXLAN probe frame names where it was lost: a firewall dropping UDP 4789 on the destination host, a bridge port that is down', async (t) => {
  const [cli, web] = [await taskOn('cli', 'h1'), await taskOn('web', 'h2')];
  const vni = Number(web.attachments!.find((a) => a.networkName === 'tr')!.data.vni);
  await run('ip', ['netns', 'exec', hostOf('h2').netns, systemBinary('nft'), '-f', '-'], 'table ip it-firewall { chain input { type filter hook input priority 0; udp dport 4789 drop; }; }\n');
  t.teardown(() => run('ip', ['netns', 'exec', hostOf('h2').netns, systemBinary('nft'), 'delete', 'table', 'ip', 'it-firewall']).catch(() => undefined));
  const firewalled = await trace(cli.name, web.name, '--port', '80');
  t.is(firewalled.code, 1);
  t.like(firstBroken(firewalled.answer), { hop: 'VXLAN probe', host: 'h2', object: `UDP 4789 input on h2 (VTEP of VNI ${vni})` });
  t.regex(firstBroken(firewalled.answer)!.detail, /arrived on h2's underlay but its VTEP never decapsulated it: a firewall on h2 drops UDP 4789/);
  t.is((await shoal('network', 'check', 'tr')).code, 0, 'the kernel entries are all there: only the probe frame finds the firewall');
  await run('ip', ['netns', 'exec', hostOf('h2').netns, systemBinary('nft'), 'delete', 'table', 'ip', 'it-firewall']);

  const networkNetns = overlayNamespace(netnsPrefix(labName), vni, hostOf('h2').address);
  const ports = JSON.parse(await run('ip', ['-n', networkNetns, '-j', 'link', 'show', 'master', `sbr-${vni}`])) as Array<{ ifname: string }>;
  const port = ports.map((p) => p.ifname).find((name) => name.startsWith('sve-'))!;
  await run('ip', ['-n', networkNetns, 'link', 'set', port, 'down']);
  t.teardown(() => run('ip', ['-n', networkNetns, 'link', 'set', port, 'up']).catch(() => undefined));
  const portDown = await trace(cli.name, web.name, '--port', '80');
  t.is(portDown.code, 1);
  t.like(firstBroken(portDown.answer), { hop: 'VXLAN probe', host: 'h2', object: `bridge port of ${web.name} on h2` });
  await run('ip', ['-n', networkNetns, 'link', 'set', port, 'up']);
  const healed = await eventually(10_000, async () => ((await trace(cli.name, web.name, '--port', '80')).code === 0 ? true : undefined));
  t.true(healed.value);
  for (const host of ['h1', 'h2']) t.notRegex(await run('ip', ['netns', 'exec', hostOf(host).netns, systemBinary('nft'), 'list', 'tables']), /shoal-probe/, `the probe's watch tables are gone from ${host}`);
});

test.serial('a lowered underlay MTU is named with the largest size that passes; smaller probes still get through', async (t) => {
  const [cli, web] = [await taskOn('cli', 'h1'), await taskOn('web', 'h2')];
  await run('ip', ['-n', hostOf('h2').netns, 'link', 'set', 'eth0', 'mtu', '1400']);
  t.teardown(() => run('ip', ['-n', hostOf('h2').netns, 'link', 'set', 'eth0', 'mtu', '1500']));
  const big = await trace(cli.name, web.name, '--size', '1400');
  t.is(big.code, 1);
  t.like(firstBroken(big.answer), { hop: 'path MTU', host: 'h2', object: 'underlay MTU 1400 on h2' });
  t.regex(firstBroken(big.answer)!.detail, /the largest packet that passes is 1350 bytes/);
  t.false(big.answer.hops.at(-1)!.ok, 'the 1400-byte probe is lost on the way');
  const small = await trace(cli.name, web.name, '--size', '1000');
  t.true(small.answer.hops.find((h) => h.hop === 'live probe')!.ok, 'a 1000-byte probe passes');
});

test.serial('a deny policy is named with its rule; a VIP with no backend is named', async (t) => {
  const [cli, web] = [await taskOn('cli', 'h1'), await taskOn('web', 'h2')];
  const file = `${fixture.scratch()}/deny.yaml`;
  await writeFile(file, "name: no-cli\nselector: service == 'web'\ningress:\n  - action: deny\n    source:\n      selector: service == 'cli'\n  - action: allow\n");
  await ok('policy', 'create', '-f', file);
  t.teardown(() => shoal('policy', 'rm', 'no-cli'));
  const denied = await trace(cli.name, web.name, '--port', '80');
  t.is(denied.code, 1);
  t.like(firstBroken(denied.answer), { hop: 'policy', host: 'h2', object: 'policy no-cli ingress rule 0 (deny)', fix: 'shoal policy inspect --pretty no-cli' });
  await ok('policy', 'rm', 'no-cli');

  await ok('service', 'scale', 'web=0');
  t.teardown(() => shoal('service', 'scale', 'web=1'));
  const empty = await eventually(30_000, async () => {
    const result = await trace(cli.name, 'web', '--port', '80');
    return firstBroken(result.answer)?.hop === 'service VIP' ? result : undefined;
  });
  t.regex(firstBroken(empty.value.answer)!.detail, /web's VIP 198\.19\.70\.\d+ has no healthy backend/);
  await ok('service', 'scale', 'web=1');
});

test.serial('a deleted host-gw route is named with its host and the fix, and check --repair puts it back', async (t) => {
  await ok('network', 'create', '-d', 'hostgw', '--attachable', '--subnet', '198.19.176.0/20', 'htr');
  await ok('container', 'run', '-d', '--node', 'h1', '--name', 'g1', '--network', 'htr', 'busybox:1.35.0', 'sleep', '600');
  await ok('container', 'run', '-d', '--node', 'h3', '--name', 'g3', '--network', 'htr', 'busybox:1.35.0', ...httpd);
  t.teardown(() => shoal('container', 'rm', '--force', 'g1', 'g3'));
  await eventually(20_000, async () => ((await trace('g1', 'g3', '--port', '80')).code === 0 ? true : undefined));
  const towardsH3 = async () => (JSON.parse(await run('ip', ['-n', hostOf('h1').netns, '-j', 'route', 'show', 'via', hostOf('h3').address])) as Array<{ dst: string }>)
    .map((r) => r.dst).filter((dst) => dst.startsWith('198.19.1'));
  const [subnet] = await towardsH3();
  t.truthy(subnet, 'h1 routes h3\'s subnet through h3');
  const routeless = await breakAndTrace(() => run('ip', ['-n', hostOf('h1').netns, 'route', 'del', subnet!, 'via', hostOf('h3').address]), 'g1', 'g3', '--port', '80');
  t.is(routeless.code, 1, routeless.text);
  t.like(firstBroken(routeless.answer), { hop: 'towards the destination', host: 'h1', object: `missing route ${subnet} via ${hostOf('h3').address}`, fix: 'shoal network check --repair htr' });
  await ok('network', 'check', '--repair', 'htr');
  t.deepEqual(await towardsH3(), [subnet]);
});

test.serial('a deleted calico route is named; a stopped agent names its host', async (t) => {
  await ok('network', 'create', '-d', 'calico', '--attachable', '--subnet', '198.19.144.0/20', 'ctr');
  await ok('container', 'run', '-d', '--node', 'h1', '--name', 'c1', '--network', 'ctr', 'busybox:1.35.0', 'sleep', '600');
  await ok('container', 'run', '-d', '--node', 'h3', '--name', 'c3', '--network', 'ctr', 'busybox:1.35.0', ...httpd);
  t.teardown(async () => {
    await fixture.lab().start('h3/agent').catch(() => undefined);
    await shoal('container', 'rm', '--force', 'c1', 'c3');
  });
  const block = (JSON.parse(await ok('container', 'inspect', 'c3')) as Array<{ spec: { attachments: Array<{ subnet: string }> } }>)[0]!.spec.attachments[0]!.subnet;
  await eventually(20_000, async () => ((await trace('c1', 'c3', '--port', '80')).code === 0 ? true : undefined));
  const routeless = await breakAndTrace(() => run('ip', ['-n', hostOf('h1').netns, 'route', 'del', block, 'via', hostOf('h3').address]), 'c1', 'c3', '--port', '80');
  t.is(routeless.code, 1, routeless.text);
  t.like(firstBroken(routeless.answer), { hop: 'towards the destination', host: 'h1', object: `missing route ${block} via ${hostOf('h3').address}` });
  await ok('network', 'check', '--repair', 'ctr');

  await fixture.lab().kill('h3/agent');
  const down = await eventually(30_000, async () => {
    const result = await trace('c1', 'c3', '--port', '80').catch(() => undefined);
    return result && firstBroken(result.answer)?.hop === 'destination host' ? result : undefined;
  });
  // Before node health marks it down, the agent is named as not answering; after, the node as down.
  t.like(firstBroken(down.value.answer), { host: 'h3' });
  t.regex(firstBroken(down.value.answer)!.object ?? '', /^(node h3 \(down\)|agent on h3)$/);
  t.regex(down.value.text, /fix: +start the agent on h3/);
});
