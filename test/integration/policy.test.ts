/**
 * Network policy on a real lab: the verdicts users see (default deny once selected, allow by
 * selector, egress deny, order and pass), how fast they follow the cluster (a new replica, a
 * label change), removal restoring traffic, an established connection cut by a new deny, the
 * counters `policy inspect` shows, the same verdicts on every driver, and bad input refused at
 * its position.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import type { ContainerRecord } from '../../shared/containers.ts';
import type { TaskObject } from '../../shared/services.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

const fixture = useLab(test, { name: 'it-pol', hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { shoal, ok } = fixture;

const httpd = ['httpd', '-f', '-p', '80', '-h', '/var/www'];

const running = async (service: string) => (JSON.parse(await ok('service', 'ps', service, '--format', 'json')) as Array<TaskObject & { name: string }>).filter((x) => x.desiredState === 'running' && x.status.state === 'running');

/** Whether `from` (a container) gets the page at `url` within 2 s. */
async function reaches(from: string, url: string): Promise<boolean> {
  return (await shoal('container', 'exec', from, 'timeout', '2', 'wget', '-qO-', url)).code === 0;
}

/** Waits until `from`'s verdict on `url` is `wanted` (a policy change travels through the leader). */
async function settlesTo(from: string, url: string, wanted: boolean, timeoutMs = 15_000): Promise<boolean> {
  return eventually(timeoutMs, async () => ((await reaches(from, url)) === wanted ? true : undefined)).then(() => true, () => false);
}

/** The host's clock as containers read it too (/proc/uptime is not namespaced), in ms. */
const uptimeMs = async () => Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0]) * 1000;

/**
 * When `from` first got `url` after `sinceMs` (uptime): probes start every 100 ms for 2 s in the
 * container, each noting when it started; a dropped probe hangs, so they run side by side.
 */
async function firstAllowedMs(from: string, url: string, sinceMs: number): Promise<number | undefined> {
  const probes = 'for i in $(seq 0 19); do (sleep $((i/10)).$((i%10)); s=$(cut -d" " -f1 /proc/uptime); timeout 2 wget -qO- ' + url + ' >/dev/null 2>&1 && echo $s) & done; wait';
  const result = await shoal('container', 'exec', from, 'sh', '-c', probes);
  const starts = result.stdout.split('\n').filter(Boolean).map((l) => Number(l) * 1000);
  return starts.length === 0 ? undefined : Math.min(...starts) - sinceMs;
}

async function policy(name: string, yaml: string, ...flags: string[]): Promise<void> {
  const file = join(fixture.scratch(), `${name}.yaml`);
  await writeFile(file, yaml);
  await ok('policy', 'create', '-f', file, ...flags);
}

const addressOf = async (container: string, network?: string) => {
  const record = (JSON.parse(await ok('container', 'inspect', container)) as ContainerRecord[])[0]!;
  return record.spec.attachments.find((a) => network === undefined || a.networkName === network)!.address;
};

test.before(async () => {
  await ok('network', 'create', '-d', 'overlay', '--attachable', '--subnet', '198.19.80.0/24', 'pol');
  await ok('service', 'create', '--name', 'db', '--network', 'pol', '--label', 'role=db', '--replicas-max-per-node', '1', 'busybox:1.35.0', ...httpd);
  await ok('service', 'create', '--name', 'web', '--network', 'pol', '--label', 'role=web', 'busybox:1.35.0', 'sleep', '100000');
  await ok('service', 'create', '--name', 'other', '--network', 'pol', 'busybox:1.35.0', 'sleep', '100000');
});

const client = async (service: string) => (await running(service))[0]!.name;

test.serial('default deny once selected: only the selected clients reach the workload, drops are counted, and removing the policy lets everyone in again', async (t) => {
  const [web, other] = [await client('web'), await client('other')];
  t.true(await reaches(web, 'http://db/'), 'with no policy, web reaches db');
  t.true(await reaches(other, 'http://db/'), 'with no policy, other reaches db');
  await policy('db-from-web', `name: db-from-web
order: 10
selector: role == 'db'
ingress:
  - action: allow
    protocol: tcp
    source:
      selector: role == 'web'
    destination:
      ports: [80]
`);
  t.true(await settlesTo(other, 'http://db/', false), 'once selected, db refuses what no rule allows');
  t.true(await reaches(web, 'http://db/'), 'the selected client still gets in');

  type Detail = Array<{ hosts: Array<{ hostname: string; workloads: Array<{ name: string; rules: Array<{ action: string; packets: number }>; defaultDeny: Array<{ packets: number }> }> }> }>;
  const detail = (JSON.parse(await ok('policy', 'inspect', 'db-from-web')) as Detail)[0]!;
  const workloads = detail.hosts.flatMap((h) => h.workloads).filter((w) => w.name.startsWith('db.'));
  t.true(workloads.length > 0, 'inspect names the db task it selects');
  t.true(workloads.some((w) => w.rules.some((r) => r.action === 'allow' && r.packets > 0)), 'the allow rule counted web\'s packets');
  t.true(workloads.some((w) => w.defaultDeny.some((d) => d.packets > 0)), 'the default deny counted other\'s packets');
  t.regex(await ok('policy', 'inspect', '--pretty', 'db-from-web'), /ingress default deny: [1-9]\d* packets, \d+ bytes {2}<- dropping/);
  const network = JSON.parse(await ok('network', 'inspect', '--verbose', 'pol')) as Array<{ hosts: Array<{ policy?: Array<{ name: string }> }> }>;
  t.true(network[0]!.hosts.some((h) => h.policy?.some((s) => s.name.startsWith('db.'))), 'network inspect --verbose shows the policy rules of its workloads');
  t.regex(await ok('policy', 'ls'), /db-from-web\s+10\s+role == 'db'\s+ingress/);

  await ok('policy', 'rm', 'db-from-web');
  t.true(await settlesTo(other, 'http://db/', true), 'removing the policy restores traffic');
});

test.serial('egress deny: a workload selected for egress cannot open what its rule denies, while others still can', async (t) => {
  const [web, other] = [await client('web'), await client('other')];
  await policy('web-out', `name: web-out
selector: role == 'web'
types: [egress]
egress:
  - action: deny
    protocol: tcp
    destination:
      selector: role == 'db'
  - action: allow
`);
  t.teardown(() => shoal('policy', 'rm', 'web-out'));
  t.true(await settlesTo(web, 'http://db/', false), 'web cannot reach db');
  t.true(await reaches(other, 'http://db/'), 'other, not selected, still reaches db');
  t.true((await shoal('container', 'exec', web, 'nslookup', 'db')).code === 0, 'the embedded DNS still answers web (it is in its own namespace)');
});

test.serial('order and pass: the lowest order decides first, pass hands on to the next policy, and what no rule decides is denied', async (t) => {
  const [web, other] = [await client('web'), await client('other')];
  await policy('pass-first', `- name: pass-first
  order: 1
  selector: role == 'db'
  ingress:
    - action: pass
      source:
        selector: role == 'web'
    - action: allow
- name: allow-web
  order: 2
  selector: role == 'db'
  ingress:
    - action: allow
      source:
        selector: role == 'web'
`);
  t.teardown(() => shoal('policy', 'rm', 'pass-first', 'allow-web', 'deny-web'));
  t.true(await settlesTo(web, 'http://db/', true), 'web: passed by the first policy, allowed by the second');
  t.true(await settlesTo(other, 'http://db/', true), 'other: allowed by the first policy\'s second rule');
  await policy('deny-web', `name: deny-web
order: 0
selector: role == 'db'
ingress:
  - action: deny
    source:
      selector: role == 'web'
`);
  t.true(await settlesTo(web, 'http://db/', false), 'a deny of a lower order wins');
  t.true(await reaches(other, 'http://db/'), 'deny-web had no rule for other: it went on to the next policy');
  await ok('policy', 'rm', 'pass-first');
  t.true(await settlesTo(other, 'http://db/', false), 'without the catch-all allow, what no rule decides is denied');
});

test.serial('a new replica is covered within 1 s, on its own host and on the hosts of its peers; a label change turns the verdict within 1 s', async (t) => {
  await policy('db-only-web', `name: db-only-web
selector: role == 'db'
ingress:
  - action: allow
    source:
      selector: role == 'web'
`);
  t.teardown(async () => {
    await shoal('policy', 'rm', 'db-only-web');
    await shoal('service', 'update', '--label-rm', 'role', 'other');
    await shoal('service', 'scale', 'web=1', 'db=1');
  });
  const other = await client('other');
  t.true(await settlesTo(other, 'http://db/', false));

  // A new web replica: db's host must let it in from its first request.
  const before = new Set((await running('web')).map((x) => x.id));
  await ok('service', 'scale', '--detach', 'web=2');
  const fresh = (await eventually(60_000, async () => (await running('web')).find((x) => !before.has(x.id)))).value;
  const ms = await firstAllowedMs(fresh.name, 'http://db/', await uptimeMs());
  t.log(`new web replica let in ${ms} ms after it was seen running`);
  t.true(ms !== undefined && ms <= 1000, `the new web replica was let in within 1 s of being seen running (${ms} ms)`);

  // A new db replica is covered before its first packet: other never gets in.
  const dbBefore = new Set((await running('db')).map((x) => x.id));
  await ok('service', 'scale', '--detach', 'db=2');
  const dbFresh = (await eventually(60_000, async () => (await running('db')).find((x) => !dbBefore.has(x.id)))).value;
  const freshAddress = dbFresh.attachments!.find((a) => a.networkName === 'pol')!.address;
  t.false(await reaches(other, `http://${freshAddress}/`), 'other is refused by the new db replica from its start');
  t.true(await reaches(fresh.name, `http://${freshAddress}/`), 'web gets into the new db replica');

  // A label change replaces no task, and the verdict follows it.
  const tasks = (await running('other')).map((x) => x.id);
  await ok('service', 'update', '--label-add', 'role=web', 'other');
  const changed = await uptimeMs();
  const turned = await firstAllowedMs(other, 'http://db/', changed);
  t.log(`label change let other in after ${turned} ms`);
  t.true(turned !== undefined && turned <= 1000, `other, labelled role=web, was let in within 1 s of the update (${turned} ms)`);
  t.deepEqual((await running('other')).map((x) => x.id), tasks, 'a service label change replaced no task');
});

test.serial('a new deny cuts an established connection', async (t) => {
  t.teardown(async () => {
    await shoal('policy', 'rm', 'cut-feeder');
    await shoal('container', 'rm', '--force', 'sink', 'feeder');
  });
  await ok('container', 'run', '-d', '--node', 'h1', '--name', 'sink', '--network', 'pol', '--label', 'role=sink', 'busybox:1.35.0', 'sh', '-c', 'sleep 100000 | nc -l -p 9000');
  const sink = await addressOf('sink');
  await ok('container', 'run', '-d', '--node', 'h2', '--name', 'feeder', '--network', 'pol', '--label', 'role=feeder', 'busybox:1.35.0', 'sh', '-c', `while true; do echo ping; sleep 0.1; done | nc ${sink} 9000`);
  const lines = async () => (await ok('container', 'logs', 'sink')).split('\n').filter((l) => l === 'ping').length;
  await eventually(20_000, async () => ((await lines()) > 5 ? true : undefined));
  const flowing = await lines();
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.true((await lines()) > flowing, 'the connection carries data before the policy');

  await policy('cut-feeder', `name: cut-feeder
selector: role == 'sink'
ingress:
  - action: deny
    source:
      selector: role == 'feeder'
`);
  // Once the deny lands the count stops: sample until two readings a second apart agree.
  const stopped = await eventually(10_000, async () => {
    const first = await lines();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return (await lines()) === first ? first : undefined;
  });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.is(await lines(), stopped.value, 'no more data arrives on the established connection');
});

/** The drivers, each with what `network create` needs for it; bridge is local, so all its containers share h1. */
const drivers: Array<{ driver: string; args: string[]; local?: boolean }> = [
  { driver: 'bridge', args: ['--subnet', '198.19.96.0/24'], local: true },
  { driver: 'overlay', args: ['--attachable', '--subnet', '198.19.97.0/24'] },
  { driver: 'macvlan', args: ['--scope', 'swarm', '--attachable', '-o', 'parent=eth0', '--subnet', '198.19.98.0/24'] },
  { driver: 'hostgw', args: ['--attachable', '--subnet', '198.19.144.0/20'] },
  { driver: 'calico', args: ['--attachable', '--subnet', '198.19.208.0/20'] },
];

test.serial('the same policies give the same verdicts on every driver', async (t) => {
  await policy('table', `- name: table-server
  selector: role == 'pt-server'
  ingress:
    - action: allow
      protocol: tcp
      source:
        selector: role == 'pt-client'
      destination:
        ports: [80]
- name: table-quiet
  selector: role == 'pt-quiet'
  types: [egress]
`);
  t.teardown(() => shoal('policy', 'rm', 'table-server', 'table-quiet'));
  const verdicts: Record<string, Record<string, boolean>> = {};
  for (const { driver, args, local } of drivers) {
    const network = `pt-${driver}`;
    const names = ['server', 'client', 'other', 'quiet'].map((n) => `pt-${driver}-${n}`);
    try {
      await ok('network', 'create', '-d', driver, ...args, network);
      const [server, clientName, otherName, quiet] = names as [string, string, string, string];
      await ok('container', 'run', '-d', '--node', 'h1', '--name', server, '--network', network, '--label', 'role=pt-server', 'busybox:1.35.0', ...httpd);
      await ok('container', 'run', '-d', '--node', local ? 'h1' : 'h2', '--name', clientName, '--network', network, '--label', 'role=pt-client', 'busybox:1.35.0', 'sleep', '600');
      await ok('container', 'run', '-d', '--node', local ? 'h1' : 'h3', '--name', otherName, '--network', network, '--label', 'role=pt-other', 'busybox:1.35.0', 'sleep', '600');
      await ok('container', 'run', '-d', '--node', local ? 'h1' : 'h2', '--name', quiet, '--network', network, '--label', 'role=pt-quiet', 'busybox:1.35.0', 'sleep', '600');
      const url = `http://${await addressOf(server)}/`;
      // The allowed client first: once it gets in, the server's rules and sets are in place.
      const allowed = await eventually(20_000, async () => ((await reaches(clientName, url)) ? true : undefined)).then(() => true, () => false);
      verdicts[driver] = { client: allowed, other: await reaches(otherName, url), quiet: await reaches(quiet, url) };
    } finally {
      await shoal('container', 'rm', '--force', ...names);
      await eventually(30_000, async () => ((await shoal('network', 'rm', network)).code === 0 ? true : undefined)).catch(() => undefined);
    }
  }
  const expected = { client: true, other: false, quiet: false };
  t.deepEqual(verdicts, Object.fromEntries(drivers.map((d) => [d.driver, expected])), 'client allowed, other denied by the server\'s ingress, quiet denied by its own egress, on every driver');
});

test.serial('bad input is refused at its position: a selector\'s syntax, an unknown field, an overlapping pool', async (t) => {
  const file = join(fixture.scratch(), 'bad.yaml');
  await writeFile(file, `name: bad
selector: role = 'db'
ingres:
  - action: allow
`);
  const bad = await shoal('policy', 'create', '-f', file);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /bad\.yaml:2:1: selector: selector "role = 'db'": .* at column 6/);
  t.regex(bad.stderr, /bad\.yaml:3:1: "ingres" is not a field of a policy/);
  t.is((await shoal('policy', 'ls', '-q')).stdout.trim(), '', 'nothing was created');

  const rule = join(fixture.scratch(), 'rule.yaml');
  await writeFile(rule, `name: ports
ingress:
  - action: allow
    destination:
      ports: [80]
`);
  t.regex((await shoal('policy', 'create', '-f', rule)).stderr, /rule\.yaml:5:7: .*ports need protocol: tcp, udp or sctp/);

  await ok('policy', 'create', '-f', join(fixture.scratch(), 'db-from-web.yaml'));
  const again = await shoal('policy', 'create', '-f', join(fixture.scratch(), 'db-from-web.yaml'));
  t.regex(again.stderr, /a policy named "db-from-web" exists already/);
  t.regex((await ok('policy', 'create', '--replace', '-f', join(fixture.scratch(), 'db-from-web.yaml'))), /db-from-web \(unchanged\)/);
  await ok('policy', 'rm', 'db-from-web');
  t.regex((await shoal('policy', 'rm', 'db-from-web')).stderr, /policy "?db-from-web"? not found|no policy/i);

  const overlap = await shoal('network', 'create', '-d', 'calico', '--subnet', '198.19.80.0/22', 'calico-overlap');
  t.not(overlap.code, 0);
  t.regex(overlap.stderr, /subnet 198\.19\.80\.0\/22 overlaps network "pol" \(198\.19\.80\.0\/24\)/);
});
