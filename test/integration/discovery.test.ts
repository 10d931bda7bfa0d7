/**
 * Service discovery on a real lab: the embedded DNS at 127.0.0.11 in every task, kernel VIPs,
 * published ports through the routing mesh and in host mode, asked from inside tasks with
 * busybox's nslookup and wget, and from the lab's infra namespace (outside the cluster). The
 * hosts' resolv.conf names a dead resolver first and then one this test runs on the infra
 * namespace, so forwarding and the dead upstream are real too.
 */
import dgram from 'node:dgram';
import test from 'ava';
import dnsPacket from 'dns-packet';
import { socketInNetns } from '../../native/netns.ts';
import { run, systemBinary } from '../../shared/exec.ts';
import { netnsPrefix } from '../../lab/topology.ts';
import type { NetworkDetail } from '../../manager/api/networks.ts';
import type { ServiceObject, TaskObject } from '../../shared/services.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

/** Nothing answers at .249; the infra namespace (.250) runs the test's resolver. */
const deadResolver = '198.18.0.249';
const infraResolver = '198.18.0.250';
const externalName = 'db.example.test';
const externalAddress = '198.18.0.77';

const fixture = useLab(test, { name: 'it-dns', hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000, dnsUpstreams: [deadResolver, infraResolver] });
const { shoal, ok } = fixture;

type Task = TaskObject & { name: string; node: string };
const running = async (service: string) =>
  (JSON.parse(await ok('service', 'ps', service, '--format', 'json')) as Task[]).filter((task) => task.desiredState === 'running' && task.status.state === 'running');
const addressOf = (host: string) => fixture.lab().record.topology.hosts.find((h) => h.name === host)!.address;
const infraNetns = () => fixture.lab().record.topology.infraNetns;

/** Serves its hostname (the container's id) on port 80, healthy while it answers and /w/ok exists. */
const webCommand = ['sh', '-c', 'mkdir -p /w && hostname > /w/index.html && touch /w/ok && exec httpd -f -vv -p 80 -h /w'];
// Healthy once the server answers (a check on the file alone could pass before httpd listens).
const health = ['--health-cmd', 'test -f /w/ok && wget -q -O /dev/null http://127.0.0.1/', '--health-interval', '500ms', '--health-retries', '1', '--health-timeout', '2s'];

/** Runs a shell line in a task of `api` (the client side of every test). busybox 1.35's `wget -T` crashes; `timeout` bounds it instead. */
async function fromApi(line: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const [api] = await running('api');
  return shoal('container', 'exec', api!.name, 'sh', '-c', line);
}

/** The answers of `count` requests to http://NAME/ from a task of api, one per line ("FAIL" for a failed one). */
async function requests(name: string, count: number): Promise<string[]> {
  const result = await fromApi(`for i in $(seq ${count}); do timeout 3 wget -qO- http://${name}/ || echo FAIL; done`);
  return result.stdout.trim().split('\n');
}

/** Addresses in busybox nslookup's answer section (after the server's own lines). */
function answered(output: string): string[] {
  const [, ...answers] = output.split(/\nName:\s/);
  return answers.flatMap((a) => [...a.matchAll(/Address(?: \d+)?:\s+(\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]!)).sort();
}

/** A resolver on the infra namespace: one name, NXDOMAIN for the rest; counts what it was asked. */
async function startInfraResolver(): Promise<{ asked: string[]; close: () => void }> {
  const fd = await socketInNetns(`/run/netns/${infraNetns()}`, 'udp', infraResolver, 53);
  const socket = dgram.createSocket('udp4');
  const asked: string[] = [];
  socket.on('message', (message, from) => {
    try {
      const query = dnsPacket.decode(message);
      const question = query.questions?.[0];
      if (!question) return;
      asked.push(`${question.type} ${question.name}`);
      const known = question.name.toLowerCase() === externalName;
      const answers = known && question.type === 'A' ? [{ type: 'A' as const, name: question.name, ttl: 30, data: externalAddress }] : [];
      const reply = dnsPacket.encode({ type: 'response', id: query.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3), questions: query.questions, answers });
      socket.send(reply, from.port, from.address);
    } catch {
      // A packet that does not decode gets no answer, as from any resolver.
    }
  });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.bind({ fd }, resolve));
  return { asked, close: () => socket.close() };
}

test.before(async () => {
  await ok('network', 'create', '-d', 'overlay', 'app');
  await ok('network', 'create', '-d', 'overlay', 'elsewhere');
  await ok('service', 'create', '--name', 'web', '--replicas', '3', '--network', 'app', '-p', '8080:80', ...health, 'busybox:1.35.0', ...webCommand);
  await ok('service', 'create', '--name', 'api', '--network', 'app', 'busybox:1.35.0', 'sleep', '3600');
  await ok('service', 'create', '--name', 'lonely', '--network', 'elsewhere', 'busybox:1.35.0', 'sleep', '3600');
  // A task takes traffic once its first health check passes.
  await eventually(20_000, async () => ((await running('web')).filter((task) => task.status.health === 'healthy').length === 3 ? true : undefined));
});

test.serial('from a task of api, web resolves to its VIP, and 30 requests through it reach all 3 replicas', async (t) => {
  const [service] = JSON.parse(await ok('service', 'inspect', 'web')) as ServiceObject[];
  const vip = service!.endpoint?.networks.find((n) => n.networkName === 'app')?.vip;
  t.truthy(vip, 'service inspect shows the VIP on app');
  t.deepEqual(service!.spec.endpoint.ports, [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, mode: 'ingress' }]);
  const looked = await fromApi('nslookup web');
  t.is(looked.code, 0, looked.stdout + looked.stderr);
  t.deepEqual(answered(looked.stdout), [vip!]);
  t.regex(await ok('container', 'exec', (await running('api'))[0]!.name, 'cat', '/etc/resolv.conf'), /^nameserver 127\.0\.0\.11\noptions ndots:0\n/m);
  const answers = await requests('web', 30);
  const replicas = new Set(answers);
  t.false(replicas.has('FAIL'), answers.join(' '));
  t.is(replicas.size, 3, `answered by ${[...replicas].join(', ')}`);
});

test.serial('network inspect --verbose shows each host\'s DNS records and VIP rules against the leader\'s; a sandbox table deleted by hand is named, then put back', async (t) => {
  const inspect = async () => (JSON.parse(await ok('network', 'inspect', '--verbose', 'app')) as NetworkDetail[])[0]!;
  const [api] = await running('api');
  const vip = (JSON.parse(await ok('service', 'inspect', 'web')) as ServiceObject[])[0]!.endpoint!.networks.find((n) => n.networkName === 'app')!.vip!;
  const webAddresses = (await running('web')).map((task) => task.attachments!.find((a) => a.networkName === 'app')!.address).sort();
  // Tables settle a moment after the health checks: wait for a clean bill first.
  const clean = await eventually(15_000, async () => {
    const detail = await inspect();
    return detail.hosts!.every((h) => h.problems.length === 0) ? detail : undefined;
  });
  const apiHost = clean.value.hosts!.find((h) => h.hostname === api!.node)!;
  t.deepEqual(apiHost.discovery!.records.find((r) => r.name === 'web')?.addresses, [vip], 'the embedded DNS answers web with its VIP');
  const sandbox = apiHost.discovery!.sandboxes.find((s) => s.name === api!.name)!;
  t.truthy(sandbox, `api's sandbox is listed on ${api!.node}`);
  t.true(sandbox.dnsRedirected);
  t.deepEqual(sandbox.vips.find((v) => v.address === vip), { address: vip, backends: webAddresses }, 'the kernel spreads the VIP over the three web tasks');

  const container = (JSON.parse(await ok('container', 'inspect', api!.name)) as Array<{ id: string }>)[0]!;
  const netns = `${netnsPrefix(fixture.lab().record.options.name)}c-${container.id.slice(0, 12)}`;
  // The leader's periodic tables can land between the delete and the inspect and put the
  // table back first: delete again until the gap is seen.
  let named: string[] = [];
  for (let attempt = 0; attempt < 3 && !named.some((p) => p.includes(`no rule for VIP ${vip}`)); attempt++) {
    await run('nsenter', [`--net=/run/netns/${netns}`, '--', systemBinary('nft'), 'delete', 'table', 'ip', 'shoal-sandbox']).catch(() => '');
    named = await eventually(5_000, async () => {
      const problems = (await inspect()).hosts!.find((h) => h.hostname === api!.node)!.problems;
      return problems.some((p) => p.includes(`no rule for VIP ${vip}`)) ? problems : undefined;
    }).then(({ value }) => value, () => []);
  }
  t.true(named.includes(`sandbox ${api!.name}: 127.0.0.11:53 is not redirected to the embedded DNS`), named.join('; ') || 'no problem named');
  t.true(named.includes(`sandbox ${api!.name}: no rule for VIP ${vip} (web)`), named.join('; ') || 'no problem named');
  // The agent reads its sandboxes' tables back at the leader's full resend (every 10 s) and puts them right.
  const healed = await eventually(30_000, async () => ((await inspect()).hosts!.every((h) => h.problems.length === 0) ? true : undefined));
  t.log(`the deleted table was back ${healed.ms} ms later`);
  t.deepEqual(answered((await fromApi('nslookup web')).stdout), [vip]);
});

test.serial('tasks.web and task names give task addresses; dnsrr gives every task; a name on another network does not resolve; AAAA is empty', async (t) => {
  t.teardown(() => shoal('service', 'rm', 'rr'));
  const tasks = await running('web');
  const addresses = tasks.map((task) => task.attachments!.find((a) => a.networkName === 'app')!.address).sort();
  t.deepEqual(answered((await fromApi('nslookup tasks.web')).stdout), addresses);
  const one = tasks[0]!;
  t.deepEqual(answered((await fromApi(`nslookup ${one.name}`)).stdout), [one.attachments!.find((a) => a.networkName === 'app')!.address]);
  t.regex(await ok('container', 'exec', one.name, 'cat', '/etc/hosts'), new RegExp(`\\b${one.name.replaceAll('.', '\\.')}\\b`));

  await ok('service', 'create', '--name', 'rr', '--replicas', '2', '--endpoint-mode', 'dnsrr', '--network', 'app', 'busybox:1.35.0', 'sleep', '3600');
  const rrAddresses = (await running('rr')).map((task) => task.attachments![0]!.address).sort();
  const rr = await eventually(5000, async () => {
    const got = answered((await fromApi('nslookup rr')).stdout);
    return got.length === 2 ? got : undefined;
  });
  t.deepEqual(rr.value, rrAddresses);

  const lonely = await fromApi('nslookup lonely');
  t.not(lonely.code, 0, 'lonely is on another network');
  t.regex(lonely.stdout + lonely.stderr, /NXDOMAIN|can't find/);
  const aaaa = await fromApi('nslookup -type=AAAA web');
  t.notRegex(aaaa.stdout + aaaa.stderr, /NXDOMAIN/, 'a known name has no AAAA record, but it exists');
});

test.serial('an external name is forwarded to the host\'s resolvers; the dead first one costs one timeout, not every query\'s', async (t) => {
  const resolver = await startInfraResolver();
  t.teardown(() => resolver.close());
  // Timed inside the task, so the CLI's own time does not count.
  const timed = async () => {
    const result = await fromApi(`time nslookup ${externalName}`);
    const real = /real\s+(\d+)m\s*([\d.]+)s/.exec(result.stderr);
    return { addresses: answered(result.stdout), ms: real ? Math.round((Number(real[1]) * 60 + Number(real[2])) * 1000) : NaN, output: result.stdout + result.stderr };
  };
  const first = await timed();
  t.deepEqual(first.addresses, [externalAddress], first.output);
  t.true(resolver.asked.includes(`A ${externalName}`), 'the infra resolver was asked');
  const second = await timed();
  t.deepEqual(second.addresses, [externalAddress]);
  t.log(`first query ${first.ms} ms (dead upstream tried), next ${second.ms} ms`);
  t.true(second.ms < 500, `the next query took ${second.ms} ms: it waited for the dead upstream again`);
  const unknown = await fromApi('nslookup nothing.example.test');
  t.regex(unknown.stdout + unknown.stderr, /NXDOMAIN|can't find/);
});

test.serial('a task failing its health check gets no traffic', async (t) => {
  const [sick] = await running('web');
  const sickName = (await ok('container', 'exec', sick!.name, 'hostname')).trim();
  await ok('container', 'exec', sick!.name, 'rm', '/w/ok');
  const left = await eventually(10_000, async () => {
    const answers = await requests('web', 12);
    return answers.includes(sickName) || answers.includes('FAIL') ? undefined : answers;
  });
  t.log(`the unhealthy task stopped getting requests ${left.ms} ms after its check file went`);
  t.false(left.value.includes(sickName));
  // It is replaced (Swarm's behaviour); the new one takes traffic once healthy.
  await eventually(30_000, async () => ((await running('web')).filter((task) => task.status.health === 'healthy').length === 3 ? true : undefined));
});

test.serial('a rolling update of web under a steady request loop drops no request', async (t) => {
  const loop = fromApi('for i in $(seq 150); do timeout 3 wget -qO- http://web/ >/dev/null || echo FAIL; usleep 50000; done; echo done');
  await new Promise((resolve) => setTimeout(resolve, 500));
  const updated = await shoal('service', 'update', '--env-add', 'VERSION=2', 'web');
  t.is(updated.code, 0, updated.stderr);
  const result = await loop;
  t.regex(result.stdout, /done/);
  t.is(result.stdout.split('\n').filter((line) => line === 'FAIL').length, 0, 'no request failed during the update');
  t.true((await running('web')).every((task) => task.spec.container.env.includes('VERSION=2')));
});

test.serial('scaling web to 1 leaves only that one answering; the published port answers from every host, also one without a task, and the task sees the client\'s address', async (t) => {
  await ok('service', 'scale', 'web=1');
  const [left] = await running('web');
  const name = (await ok('container', 'exec', left!.name, 'hostname')).trim();
  const answers = await requests('web', 20);
  t.deepEqual(new Set(answers), new Set([name]), 'once scale returns, only the remaining task answers');
  for (const host of ['h1', 'h2', 'h3']) {
    const served = await run('ip', ['netns', 'exec', infraNetns(), 'timeout', '5', 'busybox', 'wget', '-qO-', `http://${addressOf(host)}:8080/`]);
    t.is(served.trim(), name, `${host} (${left!.node === host ? 'runs the task' : 'no task'}) answers on 8080`);
  }
  // Through the routing mesh too (Docker's moby/moby#25526): the sandboxes do not masquerade.
  const seen = await eventually(10_000, async () => {
    const out = await shoal('service', 'logs', 'web');
    const lines = (out.stdout + out.stderr).split('\n').filter((line) => new RegExp(`${infraResolver.replaceAll('.', '\\.')}\\]?:\\d+: url:/`).test(line));
    return lines.length >= 3 ? lines : undefined;
  });
  t.is(seen.value.length, 3, `httpd logged the infra namespace's own address for each request: ${seen.value.join(' | ')}`);
});

test.serial('host mode publishes only where a task runs, and the task sees the client\'s address; conflicts are refused naming the holder', async (t) => {
  t.teardown(() => shoal('service', 'rm', 'hm'));
  await ok('service', 'create', '--name', 'hm', '--constraint', 'node.hostname==h2', '-p', 'published=8081,target=80,mode=host', 'busybox:1.35.0', ...webCommand);
  const served = await eventually(10_000, () =>
    run('ip', ['netns', 'exec', infraNetns(), 'timeout', '5', 'busybox', 'wget', '-qO-', `http://${addressOf('h2')}:8081/`]).catch(() => undefined),
  );
  t.truthy(served.value.trim());
  for (const host of ['h1', 'h3']) {
    await t.throwsAsync(run('ip', ['netns', 'exec', infraNetns(), 'timeout', '5', 'busybox', 'wget', '-qO-', `http://${addressOf(host)}:8081/`]), undefined, `${host} runs no task`);
  }
  const logs = await eventually(10_000, async () => {
    const out = await shoal('service', 'logs', 'hm');
    const all = out.stdout + out.stderr;
    return all.includes('url:/') ? all : undefined;
  });
  t.regex(logs.value, new RegExp(`${infraResolver.replaceAll('.', '\\.')}\\]?:\\d+: url:/`), 'httpd saw the infra namespace\'s own address');

  const clash = await shoal('service', 'create', '--detach', '--name', 'clash', '-p', '8080:80', 'busybox:1.35.0', 'sleep', '60');
  t.not(clash.code, 0);
  t.regex(clash.stderr, /port 8080\/tcp is already published by service "web"/);
  const clashUpdate = await shoal('service', 'update', '--publish-add', '8081:80', 'api');
  t.not(clashUpdate.code, 0);
  t.regex(clashUpdate.stderr, /port 8081\/tcp is already published by service "hm" \(host mode\)/);
  const bad = await shoal('service', 'create', '--detach', '--name', 'bad', '-p', '80800:80', 'busybox:1.35.0', 'sleep', '60');
  t.not(bad.code, 0);
  t.regex(bad.stderr, /-p|--publish/);
});

test.serial('container run -p publishes on its host\'s own address, reached from the other hosts; --add-host and --dns-search land in its files', async (t) => {
  t.teardown(() => shoal('container', 'rm', '--force', 'solo'));
  await ok('container', 'run', '-d', '--node', 'h1', '--name', 'solo', '-p', '8082:80', '--add-host', 'legacy:198.18.0.99', '--dns-search', 'example.test', 'busybox:1.35.0', ...webCommand);
  for (const host of ['h2', 'h3']) {
    const served = await eventually(10_000, () =>
      run('ip', ['netns', 'exec', fixture.lab().record.topology.hosts.find((h) => h.name === host)!.netns, 'timeout', '5', 'busybox', 'wget', '-qO-', `http://${addressOf('h1')}:8082/`]).catch(() => undefined),
    );
    t.truthy(served.value.trim(), `${host} reaches solo on h1:8082`);
  }
  t.regex(await ok('container', 'exec', 'solo', 'cat', '/etc/hosts'), /^198\.18\.0\.99\s+legacy$/m);
  t.regex(await ok('container', 'exec', 'solo', 'cat', '/etc/resolv.conf'), /^search example\.test$/m);
  // The short name is completed with the search domain and forwarded (ndots:0 tries it as given first).
  const resolver = await startInfraResolver();
  t.teardown(() => resolver.close());
  const looked = await shoal('container', 'exec', 'solo', 'nslookup', 'db');
  t.true(resolver.asked.includes('A db.example.test') || answered(looked.stdout).includes(externalAddress), `${looked.stdout}${resolver.asked.join(', ')}`);
});

test.serial('the ingress network is replaced as in Docker: refused while in use or twice, then a new one carries the routing mesh', async (t) => {
  const twice = await shoal('network', 'create', '-d', 'overlay', '--ingress', 'mesh2');
  t.not(twice.code, 0);
  t.regex(twice.stderr, /the cluster has an ingress network already \("ingress"\)/);
  const inUse = await shoal('network', 'rm', 'ingress');
  t.not(inUse.code, 0, 'web publishes through it');
  await ok('service', 'update', '--publish-rm', '8080', 'web');
  // The leader gives the sandboxes' addresses back once no service publishes; then it can go.
  await eventually(15_000, async () => ((await shoal('network', 'rm', 'ingress')).code === 0 ? true : undefined));
  await ok('network', 'create', '-d', 'overlay', '--ingress', '--subnet', '198.19.126.0/24', 'mesh2');
  await ok('service', 'update', '--publish-add', '8080:80', 'web');
  const [task] = await running('web');
  t.is(task!.attachments!.find((a) => a.networkName === 'mesh2')?.address.startsWith('198.19.126.'), true, 'the task joined the new ingress network');
  for (const host of ['h1', 'h2', 'h3']) {
    const served = await eventually(15_000, () =>
      run('ip', ['netns', 'exec', infraNetns(), 'timeout', '5', 'busybox', 'wget', '-qO-', `http://${addressOf(host)}:8080/`]).catch(() => undefined),
    );
    t.truthy(served.value.trim(), `${host} answers on 8080 through mesh2`);
  }
});
