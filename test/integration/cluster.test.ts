import { existsSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { type Lab, labDir, labDown, labUp } from '../../lab/lab.ts';
import { run } from '../../shared/exec.ts';
import { isAlive, pidsMentioning } from '../../lab/processes.ts';
import { listLinks, netnsPath } from '../../native/netns.ts';
import type { ManagerView, NodeView } from '../../shared/schemas.ts';
import { eventually, runShoal, shoalMain } from '../helpers/cli.ts';

// One lab for the whole file (building one takes seconds); tests run in order and each
// leaves the cluster as it found it. The heartbeat is short so that failures show quickly.
const name = 'it-cluster';
const heartbeatPeriodMs = 1000;
const graceMs = 3 * heartbeatPeriodMs;
let lab: Lab | undefined;
let scratch = '';
let env: NodeJS.ProcessEnv = {};

test.before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'shoal-it-'));
  // The lab writes the CLI's default context; keep the user's own out of the test's way.
  process.env.SHOAL_CONTEXT = join(scratch, 'context.json');
  lab = await labUp({ name, hosts: 3, managers: 3, etcdMembers: 1, heartbeatPeriodMs });
  env = { SHOAL_CONTEXT: lab.record.contextFile };
});

test.after.always(async () => {
  await labDown(name);
  await rm(scratch, { recursive: true, force: true });
});

async function nodesByHost(): Promise<Record<string, NodeView>> {
  const result = await runShoal(['node', 'ls', '--format', 'json'], { env });
  if (result.code !== 0) throw new Error(result.stderr);
  return Object.fromEntries((JSON.parse(result.stdout) as NodeView[]).map((n) => [n.description.hostname, n]));
}

test.serial('every host is a Ready node with its own hostname and underlay address', async (t) => {
  const nodes = await nodesByHost();
  t.deepEqual(Object.keys(nodes).sort(), ['h1', 'h2', 'h3']);
  for (const [hostname, node] of Object.entries(nodes)) {
    t.is(node.status.state, 'ready', hostname);
    t.is(node.description.address, `198.18.0.${hostname.slice(1)}`);
    t.regex(node.description.runtime.version, /\d/);
  }
  const table = await runShoal(['node', 'ls'], { env });
  t.is(table.code, 0);
  t.regex(table.stdout, /^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS/);
  t.is(table.stdout.match(/Leader/g)?.length, 1);
});

test.serial('the kernel shows each host\'s underlay link, read through the native addon', async (t) => {
  for (const host of lab!.record.topology.hosts) {
    const links = await listLinks(netnsPath(host.netns));
    const eth0 = links.find((l) => l.name === 'eth0');
    t.truthy(eth0, host.name);
    t.is(eth0?.kind, 'veth');
    t.true(eth0?.up);
    t.true(eth0?.addresses.includes(`${host.address}/24`));
  }
});

test.serial('node update --availability drain and labels are visible in node ls', async (t) => {
  const update = await runShoal(['node', 'update', 'h2', '--availability', 'drain', '--label-add', 'zone=b'], { env });
  t.is(update.code, 0, update.stderr);
  let nodes = await nodesByHost();
  t.is(nodes.h2?.spec.availability, 'drain');
  t.deepEqual(nodes.h2?.spec.labels, { zone: 'b' });
  await runShoal(['node', 'update', 'h2', '--availability', 'active', '--label-rm', 'zone'], { env });
  nodes = await nodesByHost();
  t.is(nodes.h2?.spec.availability, 'active');
  t.deepEqual(nodes.h2?.spec.labels, {});
});

test.serial('bad input to the CLI gets a one-line reason and a non-zero exit', async (t) => {
  const unknown = await runShoal(['node', 'inspect', 'nosuchnode'], { env });
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /node "nosuchnode" not found/);
  const badAvailability = await runShoal(['node', 'update', 'h2', '--availability', 'sleep'], { env });
  t.is(badAvailability.code, 1);
  t.regex(badAvailability.stderr, /availability/);
  const badToken = await runShoal(['--token', 'wrong', 'node', 'ls'], { env });
  t.is(badToken.code, 1);
  t.regex(badToken.stderr, /token is not valid/);
  const unreachable = await runShoal(['--host', `unix://${scratch}/none.sock`, 'node', 'ls'], { env });
  t.is(unreachable.code, 1);
  t.regex(unreachable.stderr, /cannot reach a manager/);
});

test.serial('network create, ls, inspect, rm and prune through the CLI; bad input says what is wrong', async (t) => {
  const shoal = async (...args: string[]) => runShoal(args, { env });
  const listed = async () => JSON.parse((await shoal('network', 'ls', '--format', 'json')).stdout) as Array<{ spec: { name: string; driver: string }; scope: string; pools: Array<{ subnet: string }>; data: Record<string, string> }>;
  t.deepEqual((await listed()).map((n) => n.spec.name).sort(), ['bridge', 'host', 'ingress', 'none'], 'a new cluster has Docker\'s networks: bridge, host, none and the ingress overlay');
  const created = await shoal('network', 'create', '-d', 'overlay', '--subnet', '198.19.70.0/24', '--gateway', '198.19.70.254', '--label', 'team=web', 'front');
  t.is(created.code, 0, created.stderr);
  t.regex(created.stdout.trim(), /^[0-9a-f]{24}$/);
  t.is((await shoal('network', 'create', '-d', 'overlay', 'back')).code, 0);
  const networks = await listed();
  const front = networks.find((n) => n.spec.name === 'front')!;
  const back = networks.find((n) => n.spec.name === 'back')!;
  t.deepEqual([front.scope, front.pools[0]!.subnet, front.data.vni], ['swarm', '198.19.70.0/24', '4097']);
  t.deepEqual([back.pools[0]!.subnet, back.data.vni], ['198.19.0.0/24', '4098']);
  const table = await shoal('network', 'ls');
  t.regex(table.stdout, /NETWORK ID\s+NAME\s+DRIVER\s+SCOPE\s+SUBNET\s+ENDPOINTS/);
  t.regex(table.stdout, /front\s+overlay\s+swarm\s+198\.19\.70\.0\/24\s+0/);
  const inspected = JSON.parse((await shoal('network', 'inspect', 'front')).stdout) as Array<{ pools: Array<{ gateway: string }>; spec: { labels: Record<string, string> } }>;
  t.deepEqual([inspected[0]!.pools[0]!.gateway, inspected[0]!.spec.labels.team], ['198.19.70.254', 'web']);

  const refusals: Array<[string[], RegExp]> = [
    [['network', 'create', '-d', 'overlay', '--subnet', '198.19.70.0/25', 'clash'], /subnet 198.19.70.0\/25 overlaps network "front"/],
    [['network', 'create', '--subnet', '198.19.71.9/24', 'hostbits'], /must be an IPv4 subnet/],
    [['network', 'create', '-d', 'vxlan', 'strange'], /unknown network driver "vxlan"/],
    [['network', 'create', '--gateway', '198.19.72.1', 'lonely'], /each --gateway and --ip-range belongs to a --subnet/],
    [['network', 'create', '-d', 'overlay', 'front'], /a network named "front" exists already/],
    [['network', 'rm', 'bridge'], /built-in network/],
    [['network', 'inspect', 'nosuch'], /network "nosuch" not found/],
  ];
  for (const [args, reason] of refusals) {
    const result = await shoal(...args);
    t.is(result.code, 1, args.join(' '));
    t.regex(result.stderr, reason, args.join(' '));
  }
  t.is((await shoal('network', 'rm', 'front')).code, 0);
  const pruned = await shoal('network', 'prune');
  t.regex(pruned.stdout, /Deleted Networks:\nback/);
  t.deepEqual((await listed()).map((n) => n.spec.name).sort(), ['bridge', 'host', 'ingress', 'none'], 'prune leaves the ingress network, as Docker\'s does');
});

test.serial('a killed agent is marked down within the grace period and comes back Ready when restarted', async (t) => {
  await lab!.kill('h3/agent');
  // Until it is marked down, a listing asks it too: what it did not list is said, not hidden.
  const listed = await runShoal(['container', 'ls'], { env });
  t.is(listed.code, 0, listed.stderr);
  t.regex(listed.stderr, /warning: h3 did not answer, so its containers are not listed: cannot reach the agent on h3/);
  const down = await eventually(graceMs + 5000, async () => ((await nodesByHost()).h3?.status.state === 'down' ? true : undefined));
  t.log(`marked down ${down.ms} ms after the kill (grace ${graceMs} ms)`);
  // The last heartbeat came up to one period before the kill; the health loop checks every second.
  t.true(down.ms >= graceMs - heartbeatPeriodMs - 500, `down after ${down.ms} ms, before the grace period`);
  t.true(down.ms <= graceMs + 3000);
  const others = await nodesByHost();
  t.is(others.h1?.status.state, 'ready');
  t.is(others.h2?.status.state, 'ready');
  const named = await runShoal(['container', 'ls', '--node', 'h3'], { env });
  t.is(named.code, 1);
  t.regex(named.stderr, /node h3 is down/);
  await lab!.start('h3/agent');
  await eventually(15_000, async () => ((await nodesByHost()).h3?.status.state === 'ready' ? true : undefined));
  t.is(Object.keys(await nodesByHost()).length, 3, 'the restarted agent did not join twice');
});

async function startAgentWithToken(token: string, stateDir: string) {
  const manager = (await lab!.managers()).find((m) => m.leader)!;
  return runShoal(
    ['agent', '--join', manager.p2pAddrs[0]!, '--token', token, '--state-dir', stateDir, '--listen', '/ip4/198.18.0.3/tcp/4299'],
    { netns: 'shoal-it-cluster-h3', timeoutMs: 30_000 },
  );
}

test.serial('an agent with a wrong token is refused with a clear message and never listed', async (t) => {
  const current = (await runShoal(['join-token', 'worker', '-q'], { env })).stdout.trim();
  // The cluster's CA digest, with a secret that is not the token's.
  const wrongSecret = current.replace(/-[0-9a-z]{32}$/, `-${'0'.repeat(32)}`);
  const result = await startAgentWithToken(wrongSecret, join(scratch, 'bad-agent'));
  t.is(result.code, 1);
  t.regex(result.stderr, /join token is not valid/);
  const malformed = await startAgentWithToken('SHOAL-1-0000000000000000-w-00000000000000000000000000000000', join(scratch, 'bad-agent-2'));
  t.is(malformed.code, 1);
  t.regex(malformed.stderr, /not a Shoal join token/);
  t.is(Object.keys(await nodesByHost()).length, 3);
});

test.serial('a token whose CA digest is not the manager\'s is never sent: the agent refuses the manager', async (t) => {
  const current = (await runShoal(['join-token', 'worker', '-q'], { env })).stdout.trim();
  // As if the --join address led to another cluster's manager (or an impostor): the digest the
  // token carries is not that of the CA the manager shows.
  const otherDigest = current.replace(/^SHOAL-2-[0-9a-z]{50}-/, `SHOAL-2-${'1'.repeat(50)}-`);
  const leaderLog = join(lab!.record.dir, (await lab!.managers()).find((m) => m.leader)!.hostname, 'manager.log');
  const joinsBefore = (readFileSync(leaderLog, 'utf8').match(/"join refused: bad token"/g) ?? []).length;
  const result = await startAgentWithToken(otherDigest, join(scratch, 'steered-agent'));
  t.is(result.code, 1);
  t.regex(result.stderr, /is not one of this token's cluster: its CA is not the one the join token names; the token was not sent/);
  t.is((readFileSync(leaderLog, 'utf8').match(/"join refused: bad token"/g) ?? []).length, joinsBefore, 'the manager never saw a token');
  t.is(Object.keys(await nodesByHost()).length, 3);
});

test.serial('a rotated worker token stops new joins with the old one and leaves joined nodes alone', async (t) => {
  const old = (await runShoal(['join-token', 'worker', '-q'], { env })).stdout.trim();
  const rotated = await runShoal(['join-token', 'worker', '--rotate', '-q'], { env });
  t.is(rotated.code, 0, rotated.stderr);
  t.not(rotated.stdout.trim(), old);
  const result = await startAgentWithToken(old, join(scratch, 'old-token-agent'));
  t.is(result.code, 1);
  t.regex(result.stderr, /rotated/);
  const nodes = await nodesByHost();
  t.is(Object.keys(nodes).length, 3);
  for (const node of Object.values(nodes)) t.is(node.status.state, 'ready');
});

test.serial('an agent joining through a follower is registered by the leader, and node rm removes it', async (t) => {
  const follower = (await lab!.managers()).find((m) => m.reachable && !m.leader)!;
  const token = (await runShoal(['join-token', 'worker', '-q'], { env })).stdout.trim();
  const agent = spawn(
    'nsenter',
    ['--net=/run/netns/shoal-it-cluster-h3', '--', process.execPath, shoalMain, 'agent', '--join', follower.p2pAddrs[0]!, '--token', token,
      '--state-dir', join(scratch, 'extra-agent'), '--listen', '/ip4/198.18.0.3/tcp/4298'],
    { stdio: 'ignore' },
  );
  t.teardown(() => void agent.kill('SIGKILL'));
  const nodeId = (
    await eventually(15_000, async () => {
      const state = await readFile(join(scratch, 'extra-agent', 'node.json'), 'utf8').catch(() => undefined);
      return state ? (JSON.parse(state) as { nodeId: string }).nodeId : undefined;
    })
  ).value;
  const joined = await eventually(15_000, async () => {
    const nodes = JSON.parse((await runShoal(['node', 'ls', '--format', 'json'], { env })).stdout) as NodeView[];
    return nodes.find((n) => n.id === nodeId && n.status.state === 'ready');
  });
  const refused = await runShoal(['node', 'rm', joined.value.id], { env });
  t.is(refused.code, 1);
  t.regex(refused.stderr, /--force/);
  // Removed while it runs: the managers cut it off, its session is refused, and it stops.
  const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
  const removed = await runShoal(['node', 'rm', '--force', joined.value.id], { env });
  t.is(removed.code, 0, removed.stderr);
  const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running after 20 s'), 20_000))]);
  t.is(code, 1, 'the removed agent was refused and stopped');
  t.is(Object.keys(await nodesByHost()).length, 3);

  // Removed is revoked: the same identity can neither hold a session again nor join again,
  // even with the current token.
  const again = await runShoal(['agent', '--join', follower.p2pAddrs[0]!, '--state-dir', join(scratch, 'extra-agent'), '--listen', '/ip4/198.18.0.3/tcp/4298'], { netns: 'shoal-it-cluster-h3', timeoutMs: 30_000 });
  t.is(again.code, 1);
  t.regex(again.stderr, /removed from the cluster; it may not connect again/);
  await rm(join(scratch, 'extra-agent', 'node.json'));
  const rejoin = await runShoal(['agent', '--join', follower.p2pAddrs[0]!, '--token', token, '--state-dir', join(scratch, 'extra-agent'), '--listen', '/ip4/198.18.0.3/tcp/4298'], { netns: 'shoal-it-cluster-h3', timeoutMs: 30_000 });
  t.is(rejoin.code, 1);
  t.regex(rejoin.stderr, /may not join again under the same identity/);
  t.is(Object.keys(await nodesByHost()).length, 3);
});

test.serial('killing the leader moves leadership within 10 s and agents reconnect', async (t) => {
  const managers = (await runShoal(['manager', 'ls', '--format', 'json'], { env }));
  const leader = (JSON.parse(managers.stdout) as ManagerView[]).find((m) => m.leader)!;
  t.truthy(leader);
  await lab!.kill(`${leader.hostname}/manager`);
  const moved = await eventually(10_000, async () => {
    const list = JSON.parse((await runShoal(['manager', 'ls', '--format', 'json'], { env })).stdout) as ManagerView[];
    const now = list.find((m) => m.leader);
    return now && now.id !== leader.id ? now : undefined;
  });
  t.log(`leadership moved from ${leader.hostname} to ${moved.value.hostname} in ${moved.ms} ms`);
  // Agents hold their session with the new leader; a node whose agent did not reconnect would go down.
  const leaderLog = join(lab!.record.dir, moved.value.hostname, 'manager.log');
  await eventually(15_000, async () => {
    const sessions = readFileSync(leaderLog, 'utf8').match(/"session opened"/g)?.length ?? 0;
    return sessions >= 3 ? true : undefined;
  });
  await new Promise((resolve) => setTimeout(resolve, graceMs + 1000));
  const nodes = await nodesByHost();
  for (const [hostname, node] of Object.entries(nodes)) t.is(node.status.state, 'ready', hostname);
  t.is(nodes[leader.hostname]?.managerStatus, 'unreachable');
  await lab!.start(`${leader.hostname}/manager`);
  await eventually(15_000, async () => ((await nodesByHost())[leader.hostname]?.managerStatus === 'reachable' ? true : undefined));
});

test.serial('killing the leader during a scale: the new leader finishes it with exactly the desired count', async (t) => {
  const created = await runShoal(['service', 'create', '--name', 'scaled', '--replicas', '3', 'busybox:1.35.0', 'sleep', '300'], { env, timeoutMs: 120_000 });
  t.is(created.code, 0, created.stderr);
  t.teardown(() => runShoal(['service', 'rm', 'scaled'], { env }));
  const leader = (await lab!.managers()).find((m) => m.leader)!;
  await runShoal(['service', 'scale', '--detach', 'scaled=12'], { env });
  await lab!.kill(`${leader.hostname}/manager`);
  t.teardown(() => lab!.start(`${leader.hostname}/manager`));
  const done = await eventually(60_000, async () => {
    const tasks = JSON.parse((await runShoal(['service', 'ps', 'scaled', '--format', 'json'], { env })).stdout) as Array<{ slot: number; desiredState: string; status: { state: string } }>;
    const live = tasks.filter((task) => task.desiredState === 'running');
    return live.length === 12 && live.every((task) => task.status.state === 'running') ? live : undefined;
  });
  t.deepEqual(done.value.map((task) => task.slot).sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i + 1), 'one task per slot, none twice');
  const containers = JSON.parse((await runShoal(['container', 'ls', '--format', 'json'], { env })).stdout) as Array<{ name: string }>;
  t.is(containers.filter((c) => c.name.startsWith('scaled.')).length, 12);
});

test.serial('a second lab runs beside the first, and lab up sweeps what a crashed lab of its name left', async (t) => {
  const second = 'it-second';
  const dir = labDir(second);
  t.teardown(() => labDown(second));
  // What a crash leaves behind: a process mentioning the lab's directory and a namespace, no lab.json.
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'stray.log'), '');
  const stray = spawn('tail', ['-f', join(dir, 'stray.log')], { detached: true, stdio: 'ignore' });
  stray.unref();
  await run('ip', ['netns', 'add', `shoal-${second}-h9`]);
  const secondLab = await labUp({ name: second, hosts: 1, managers: 1, etcdMembers: 1, heartbeatPeriodMs });
  t.false(isAlive(stray.pid), 'the stray process was stopped');
  t.false((await run('ip', ['netns', 'list'])).includes(`shoal-${second}-h9`));
  const secondNodes = await runShoal(['node', 'ls', '--format', 'json'], { env: { SHOAL_CONTEXT: secondLab.record.contextFile } });
  t.is((JSON.parse(secondNodes.stdout) as NodeView[]).length, 1);
  t.is(Object.keys(await nodesByHost()).length, 3, 'the first lab still answers');
  await labDown(second);
  t.false(existsSync(dir));
  t.is(Object.keys(await nodesByHost()).length, 3, 'removing the second lab left the first alone');
});

test.serial('lab down leaves no namespace, mount, process or file of the lab', async (t) => {
  const dir = lab!.record.dir;
  await labDown(name);
  const namespaces = await run('ip', ['netns', 'list']);
  t.false(namespaces.includes('shoal-it-cluster-'));
  t.false(readFileSync('/proc/mounts', 'utf8').includes(dir));
  t.deepEqual(await pidsMentioning(dir), []);
  t.false(existsSync(dir));
});
