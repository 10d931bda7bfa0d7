/**
 * The doors of the control plane, tried from where an attacker would stand: a task on each
 * network kind, a host on the underlay without certificates, a stranger on the gossip layer,
 * and a grep of everything the cluster logs and shows for its secrets.
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { etcdctlFlags, labPki, tcpContextFile } from '../../lab/lab.ts';
import { apiPort, netnsPrefix, registryAddress } from '../../lab/topology.ts';
import { overlayNamespace } from '../../netplug/drivers/overlay/overlay.ts';
import { readContext, writeContext } from '../../cli/context.ts';
import type { ContainerRecord } from '../../shared/containers.ts';
import { run, systemBinary } from '../../shared/exec.ts';
import { ensureCa, ensureIssued } from '../../shared/pki/pki-dir.ts';
import type { NodeView } from '../../shared/schemas.ts';
import { eventually, runShoal } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

const labName = 'it-doors';
const fixture = useLab(test, { name: labName, hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { shoal, ok } = fixture;
const forger = fileURLToPath(new URL('../helpers/forged-gossip.js', import.meta.url));

const host = (name: string) => fixture.lab().record.topology.hosts.find((h) => h.name === name)!;
const etcd = () => `${fixture.lab().record.topology.etcdAddresses[0]}:2379`;

/** Whether a TCP connection to each target opens from inside the container (busybox nc). */
async function reachable(container: string, targets: string[]): Promise<Record<string, boolean>> {
  // All at once: a dropped connection takes the whole 2 s to give up.
  const script = `for t in ${targets.join(' ')}; do (timeout 5 nc -w 2 \${t%:*} \${t#*:} </dev/null >/dev/null 2>&1; echo "$t $?") & done; wait`;
  const output = await ok('container', 'exec', container, 'sh', '-c', script);
  return Object.fromEntries(output.trim().split('\n').map((line) => [line.split(' ')[0]!, line.split(' ')[1] === '0']));
}

test.serial('no task on any network kind reaches etcd, the API or a libp2p port; the lab registry it does', async (t) => {
  const h1 = host('h1').address;
  const control = [etcd(), `${h1}:${apiPort}`, `${h1}:4240`, `${h1}:4241`, `${host('h2').address}:4241`, `${host('h3').address}:4241`];
  const registry = registryAddress(fixture.lab().record.topology);
  await ok('network', 'create', '-d', 'overlay', '--attachable', 'dov');
  const made: string[] = [];
  t.teardown(async () => {
    for (const name of made.reverse()) await shoal('container', 'rm', '--force', name);
    await shoal('network', 'rm', 'dov');
  });
  const start = async (name: string, node: string, network?: string) => {
    await ok('container', 'run', '-d', '--node', node, '--name', name, ...(network ? ['--network', network] : []), 'busybox:1.35.0', 'sleep', '300');
    made.push(name);
  };
  // h1 runs the manager (its host has the route to etcd); h2 is a worker.
  for (const node of ['h1', 'h2']) {
    await start(`${node}-bridge`, node);
    await start(`${node}-overlay`, node, 'dov');
    await start(`${node}-none`, node, 'none');
  }
  await start('h2-shared', 'h2', 'container:h2-bridge');
  await start('h2-host', 'h2', 'host');

  for (const name of ['h1-bridge', 'h1-overlay', 'h2-bridge', 'h2-overlay', 'h2-shared']) {
    const seen = await reachable(name, [...control, registry]);
    t.true(seen[registry], `${name}: the probe does connect where nothing guards (the lab registry)`);
    t.deepEqual(control.filter((target) => seen[target]), [], `${name} reached the control plane`);
  }
  for (const name of ['h1-none', 'h2-none']) t.deepEqual(Object.values(await reachable(name, [...control, registry])).filter(Boolean), [], `${name} reached something`);
  // The host network is the host's: a worker's has no route to etcd at all.
  const onHost = await reachable('h2-host', [etcd(), registry]);
  t.deepEqual(onHost, { [etcd()]: false, [registry]: true }, 'a worker\'s host network reaches the registry, never etcd');
  // The guard is what stops them: without its table, h2's bridge task reaches the API; the
  // next task plumbed on h2 puts the table back.
  const nft = (...args: string[]) => run('nsenter', [`--net=/run/netns/${host('h2').netns}`, '--', systemBinary('nft'), ...args]);
  await nft('delete', 'table', 'inet', 'shoal-guard');
  const unguarded = await reachable('h2-bridge', [`${h1}:${apiPort}`]);
  t.true(unguarded[`${h1}:${apiPort}`], 'with the guard gone, the same probe reaches the API');
  await start('h2-later', 'h2');
  t.false((await reachable('h2-bridge', [`${h1}:${apiPort}`]))[`${h1}:${apiPort}`], 'the guard is back once the next task is plumbed');
});

test.serial('etcd refuses a client without a certificate, and one whose certificate is of another CA', async (t) => {
  const record = fixture.lab().record;
  const ns = host('h1').netns;
  const flags = etcdctlFlags(record);
  const endpoints = flags.slice(0, 2);
  const health = (extra: string[]) => run('ip', ['netns', 'exec', ns, 'etcdctl', ...endpoints, ...extra, '--dial-timeout', '3s', '--command-timeout', '5s', 'get', '/shoal/v1/cluster', '--print-value-only']);
  const withCert = await health(flags.slice(2));
  t.regex(withCert, /"apiTokenSha256"/, 'the lab\'s client certificate reads the store');
  await t.throwsAsync(health(['--cacert', join(labPki(record.dir), 'ca.crt')]), undefined, 'no client certificate');
  const other = join(fixture.scratch(), 'other-pki');
  await ensureCa(other, 'another CA');
  const stranger = await ensureIssued(other, 'intruder', { commonName: 'intruder', usage: 'client' });
  await t.throwsAsync(health(['--cacert', join(labPki(record.dir), 'ca.crt'), '--cert', stranger.certificateFile, '--key', stranger.keyFile]), undefined, 'a certificate of another CA');
  // What etcd holds of the join tokens: hashes and sealed copies, never the tokens.
  const workerToken = (await ok('join-token', 'worker', '-q')).trim();
  t.false(withCert.includes(workerToken));
  t.false(withCert.includes(workerToken.slice(-32)));
});

test.serial('the TCP API is TLS only with client certificates: plain HTTP and strangers get nothing, the CLI with its context gets in', async (t) => {
  const record = fixture.lab().record;
  const ns = host('h2').netns;
  const tcp = tcpContextFile(record.dir);
  const cli = (env: NodeJS.ProcessEnv, ...args: string[]) => runShoal(args, { env, netns: ns });
  const listed = await cli({ SHOAL_CONTEXT: tcp }, 'node', 'ls', '--format', 'json');
  t.is(listed.code, 0, listed.stderr);
  t.is((JSON.parse(listed.stdout) as NodeView[]).length, 3);

  const url = `${host('h1').address}:${apiPort}`;
  // Plain HTTP gets no HTTP answer at all (so no token could have gone out in clear).
  const plain = await run('ip', ['netns', 'exec', ns, 'curl', '-s', '-m', '5', `http://${url}/v1/ping`]).then(() => 'answered', (error: Error) => error.message);
  t.not(plain, 'answered');
  const refusedPlain = await cli({ SHOAL_CONTEXT: tcp, SHOAL_HOST: `http://${url}` }, 'node', 'ls');
  t.is(refusedPlain.code, 1);
  t.regex(refusedPlain.stderr, /plain HTTP, which would send the token in clear/);

  const context = (await readContext(tcp))!;
  const variant = async (file: string, tls: NonNullable<typeof context.tls>) => {
    await writeContext(join(fixture.scratch(), file), { ...context, tls });
    return cli({ SHOAL_CONTEXT: join(fixture.scratch(), file) }, 'node', 'ls');
  };
  const other = join(fixture.scratch(), 'other-api-pki');
  const otherCa = (await ensureCa(other, 'another CA')).ca;
  const stranger = await ensureIssued(other, 'alice', { commonName: 'alice', usage: 'client' });
  const noClientCert = await variant('no-cert.json', { ca: context.tls!.ca });
  t.is(noClientCert.code, 1, 'the managers ask for a client certificate');
  const strangerCert = await variant('stranger.json', { ca: context.tls!.ca, cert: stranger.certificate, key: stranger.privateKey });
  t.is(strangerCert.code, 1, 'a client certificate of another CA is refused');
  t.notRegex(strangerCert.stdout, /h1/);
  const wrongCa = await variant('wrong-ca.json', { ...context.tls!, ca: otherCa.certificate });
  t.is(wrongCa.code, 1, 'the CLI checks the manager\'s certificate against the context\'s CA');
  t.regex(wrongCa.stderr, /certificate/i);
  const wrongToken = await cli({ SHOAL_CONTEXT: tcp, SHOAL_TOKEN: 'not-the-token' }, 'node', 'ls');
  t.is(wrongToken.code, 1);
  t.regex(wrongToken.stderr, /bearer token is not valid/);
});

test.serial('the API socket is 0660 and the state and PKI directories 0700, their keys 0600', async (t) => {
  const dir = fixture.lab().record.dir;
  const mode = async (path: string) => ((await stat(path)).mode & 0o777).toString(8);
  const socket = await stat(join(dir, 'h1', 'shoal.sock'));
  t.is((socket.mode & 0o777).toString(8), '660');
  t.is(socket.uid, 0);
  t.is(socket.gid, 0);
  for (const path of [dir, join(dir, 'h1', 'manager'), join(dir, 'h1', 'agent'), join(dir, 'h2', 'agent'), join(dir, 'h1', 'pki'), labPki(dir)]) t.is(await mode(path), '700', path);
  for (const key of ['ca.key', 'seal.key', 'etcd-client.key', 'api.key', 'identity.key']) t.is(await mode(join(dir, 'h1', 'pki', key)), '600', key);
  t.is(await mode(join(dir, 'h1', 'manager', 'api-token')), '600');
});

test.serial('a forged gossip announcement from a peer the leader does not list is heard and dropped', async (t) => {
  await ok('network', 'create', '-d', 'overlay', '--attachable', '--subnet', '198.19.77.0/24', 'gossiped');
  t.teardown(async () => {
    for (const name of ['g1', 'g2']) await shoal('container', 'rm', '--force', name);
    await shoal('network', 'rm', 'gossiped');
  });
  for (const [name, node] of [['g1', 'h1'], ['g2', 'h2']] as const) await ok('container', 'run', '-d', '--node', node, '--name', name, '--network', 'gossiped', 'busybox:1.35.0', 'sleep', '300');
  const g2 = (JSON.parse(await ok('container', 'inspect', 'g2')) as ContainerRecord[])[0]!;
  const attachment = g2.spec.attachments[0]!;
  const h2 = (JSON.parse(await ok('node', 'inspect', 'h2')) as NodeView[])[0]!;
  const agentAddress = h2.description.p2pAddrs.find((a) => a.includes(host('h2').address))!;
  const forgedMac = '02:42:de:ad:be:ef';
  // From h3, which has no endpoint on the network: a peer with an identity of its own, signing its messages.
  const forged = await run('ip', ['netns', 'exec', host('h3').netns, process.execPath, forger, agentAddress, attachment.networkId, '198.19.77.200', forgedMac, '4000'], { timeoutMs: 30_000 });
  const [forgerId, published] = forged.trim().split('\n');
  t.true(Number(published) > 0, 'the forged announcements reached the agent\'s topic');
  type Verbose = Array<{ hosts: Array<{ hostname: string; kernel?: { ignored?: Array<{ node: string; endpoints: number }> } }> }>;
  const ignored = await eventually(10_000, async () => {
    const hosts = (JSON.parse(await ok('network', 'inspect', '--verbose', 'gossiped')) as Verbose)[0]!.hosts;
    const list = hosts.find((h) => h.hostname === 'h2')?.kernel?.ignored ?? [];
    return list.some((entry) => entry.node === forgerId) ? list : undefined;
  });
  t.is(ignored.value.find((entry) => entry.node === forgerId)?.endpoints, 1, 'its one claimed endpoint was heard, and only listed as ignored');
  const ns = overlayNamespace(netnsPrefix(labName), Number(attachment.data.vni), host('h2').address);
  const fdb = await run('bridge', ['-n', ns, 'fdb', 'show', 'dev', `svx-${attachment.data.vni}`]);
  const neighbours = await run('ip', ['-n', ns, 'neigh', 'show', 'dev', `svx-${attachment.data.vni}`]);
  t.false(fdb.includes(forgedMac), fdb);
  t.false(neighbours.includes('198.19.77.200'), neighbours);
  t.regex(fdb, new RegExp(`dst ${host('h1').address}`), 'the real member\'s entries are there');
});

/** Every file under `dir` whose name ends with one of `suffixes`. */
async function filesUnder(dir: string, suffixes: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && suffixes.some((s) => entry.name.endsWith(s))) found.push(join(entry.parentPath, entry.name));
  }
  return found;
}

test.serial('no token appears in any log, event, inspect output, lab record or backup', async (t) => {
  const lab = fixture.lab();
  const context = await lab.context();
  const rotatedAway = (await ok('join-token', 'worker', '-q')).trim();
  await ok('join-token', 'worker', '--rotate', '-q');
  const secrets = {
    api: context.token,
    worker: (await ok('join-token', 'worker', '-q')).trim(),
    manager: (await ok('join-token', 'manager', '-q')).trim(),
    rotatedAway,
  };
  await ok('service', 'create', '--name', 'doors-web', '--replicas', '2', 'busybox:1.35.0', 'sleep', '300');
  t.teardown(() => shoal('service', 'rm', 'doors-web'));
  const backup = join(fixture.scratch(), 'backup.db');
  await ok('cluster', 'backup', backup);
  const outputs: Record<string, string> = {
    events: await ok('events', '--since', '1h', '--until', new Date().toISOString(), '--format', 'json'),
    nodes: await ok('node', 'inspect', 'h1', 'h2', 'h3'),
    services: await ok('service', 'inspect', 'doors-web'),
    networks: await ok('network', 'inspect', 'bridge', 'host'),
    managers: await ok('manager', 'ls', '--format', 'json'),
    info: await ok('info', '--format', 'json'),
    backup: (await readFile(backup)).toString('latin1'),
  };
  for (const file of await filesUnder(lab.record.dir, ['.log', 'lab.json', '.supervision.json'])) outputs[file] = await readFile(file, 'utf8');
  t.deepEqual(lab.record.processes.map((p) => p.log).filter((log) => !(log in outputs)), [], 'every daemon\'s log was read');
  for (const [name, secret] of Object.entries(secrets)) {
    // The secret part alone, too: a token cut or reformatted still gives itself away.
    const needles = [secret, name === 'api' ? secret : secret.slice(-32)];
    const found = Object.entries(outputs).filter(([, text]) => needles.some((needle) => text.includes(needle))).map(([where]) => where);
    t.deepEqual(found, [], `the ${name} token appears in ${found.join(', ')}`);
  }
  await writeFile(join(fixture.scratch(), 'checked'), Object.keys(outputs).join('\n'));
});
