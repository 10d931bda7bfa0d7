/**
 * `shoal network trace A B` on a real lab: a working path is all ✓ with exit 0; each path
 * broken on purpose is named at its hop, with the host, the kernel object and the fix: a
 * deleted FDB entry, a deleted calico route, a lowered underlay MTU (with the largest size that
 * passes), a deny policy (with the policy and rule), a VIP with no backend, a stopped agent.
 */
import { writeFile } from 'node:fs/promises';
import test from 'ava';
import { netnsPrefix } from '../../lab/topology.ts';
import { overlayNamespace } from '../../netplug/drivers/overlay/overlay.ts';
import { run } from '../../shared/exec.ts';
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

async function trace(...args: string[]): Promise<{ code: number; text: string; answer: TraceAnswer }> {
  const text = await shoal('network', 'trace', ...args);
  const json = await shoal('network', 'trace', '--format', 'json', ...args);
  return { code: text.code, text: text.stdout, answer: JSON.parse(json.stdout) as TraceAnswer };
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
  t.deepEqual(direct.answer.hops.map((h) => h.hop), ['source host', 'towards the destination', 'path MTU', 'policy', 'destination host', 'reply path', 'live probe']);
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
  await run('bridge', ['-n', overlayNamespace(netnsPrefix(labName), vni, hostOf('h1').address), 'fdb', 'del', attachment.mac, 'dev', `svx-${vni}`, 'dst', hostOf('h2').address]);
  t.teardown(() => shoal('network', 'check', '--repair', 'tr'));
  const broken = await trace(cli.name, web.name, '--port', '80');
  t.is(broken.code, 1);
  t.like(firstBroken(broken.answer), { hop: 'towards the destination', host: 'h1', object: `missing FDB entry ${attachment.mac} -> ${hostOf('h2').address} (${attachment.address})`, fix: 'shoal network check --repair tr' });
  t.regex(broken.text, /✗ towards the destination .*\n {4}host: {3}h1\n {4}object: missing FDB entry/);
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
  // The leader's tables come again every 10 s and put the route back: a break healed before the trace saw it is made again.
  let routeless = await trace('c1', 'c3', '--port', '80');
  for (let attempt = 0; attempt < 3 && routeless.code === 0; attempt++) {
    await run('ip', ['-n', hostOf('h1').netns, 'route', 'del', block, 'via', hostOf('h3').address]).catch(() => undefined);
    routeless = await trace('c1', 'c3', '--port', '80');
  }
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
