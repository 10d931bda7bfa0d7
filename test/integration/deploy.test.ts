import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { readSupervision } from '../../lab/processes.ts';
import { labPki } from '../../lab/lab.ts';
import { etcdRoute, registryAddress } from '../../lab/topology.ts';
import { sharePki } from '../../shared/pki/pki-dir.ts';
import { ipBatch, run } from '../../shared/exec.ts';
import type { ManagerView, NodeView } from '../../shared/schemas.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

// docs/deploy.md's systemd units, checked by systemd and then run as written on lab hosts.
const repo = fileURLToPath(new URL('../../..', import.meta.url));
const fixture = useLab(test, { name: 'it-deploy', hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { ok } = fixture;

interface DocFile {
  path: string;
  text: string;
}

/** The fenced blocks of docs/deploy.md that start with "# /path/of/the/file". */
async function docFiles(): Promise<Map<string, DocFile>> {
  const doc = await readFile(join(repo, 'docs', 'deploy.md'), 'utf8');
  const files = new Map<string, DocFile>();
  for (const match of doc.matchAll(/```(?:ini|sh)\n# (\/\S+)\n([\s\S]*?)```/g)) {
    files.set(match[1]!.split('/').pop()!, { path: match[1]!, text: match[2]! });
  }
  return files;
}

/** An environment file's assignments. */
function environment(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** The unit's ExecStart as systemd runs it: ${VAR} is one word, $VAR splits into words. */
function execStart(unit: string, env: Record<string, string>): string[] {
  const line = /^ExecStart=(.*)$/m.exec(unit)![1]!;
  return line.split(/\s+/).flatMap((word) => {
    const braced = /^\$\{(\w+)\}$/.exec(word);
    if (braced) return [env[braced[1]!] ?? ''];
    const bare = /^\$(\w+)$/.exec(word);
    if (bare) return (env[bare[1]!] ?? '').split(/\s+/).filter(Boolean);
    return [word.replace(/\$\{(\w+)\}/g, (_, name: string) => env[name] ?? '')];
  });
}

/** Starts a daemon in a lab host's namespace with its hostname, as the host's systemd would. */
function startOnHost(t: import('ava').ExecutionContext, netns: string, hostname: string, argv: string[], log: string, env: Record<string, string>) {
  const child = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', 'unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@" >>"$LOG" 2>&1', hostname, ...argv], {
    env: { ...process.env, ...env, LOG: log },
    stdio: 'ignore',
  });
  child.on('error', () => undefined);
  t.teardown(() => {
    child.kill('SIGTERM');
  });
  return child;
}

test.serial('the guide\'s PKI commands and etcd environment give an etcd that serves the CA\'s clients and refuses others', async (t) => {
  const lab = fixture.lab();
  const doc = await readFile(join(repo, 'docs', 'deploy.md'), 'utf8');
  const dir = await mkdtemp(join(tmpdir(), 'shoal-guide-etcd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // A member of its own on a spare address of the lab's etcd subnet, which h1 (a manager's host) routes.
  const address = '198.18.1.249';
  const infra = lab.record.topology.infraNetns;
  await ipBatch([`addr add ${address}/32 dev lo`], infra);
  t.teardown(() => ipBatch([`addr del ${address}/32 dev lo`], infra).catch(() => undefined));
  const paths = (line: string) =>
    line.replaceAll('/etc/shoal/pki', join(dir, 'shoal-pki')).replaceAll('/etc/etcd/pki', join(dir, 'etcd-pki')).replaceAll('/var/lib/etcd/shoal', join(dir, 'data')).replaceAll('ETCD_IP', address);
  const commands = [...doc.matchAll(/^((?:shoal pki|install) [^#\n]*)/gm)].map((m) => paths(m[1]!.trim())).filter((line) => !line.includes('--name alice'));
  t.deepEqual(commands.map((c) => c.split(' ').slice(0, 3).join(' ')), ['shoal pki init', 'shoal pki issue', 'install -d -o', 'install -o etcd']);
  const shoal = `${repo.replace(/\/$/, '')}/bin/shoal`;
  for (const command of commands) await run('sh', ['-c', command.replace(/^shoal /, `${shoal} `)]);
  const env = Object.fromEntries(Object.entries(environment((await docFiles()).get('etcd')!.text)).map(([k, v]) => [k, paths(v)]));
  t.is(env.ETCD_CLIENT_CERT_AUTH, 'true');
  const etcd = spawn('nsenter', [`--net=/run/netns/${infra}`, '--', 'etcd'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  etcd.on('error', () => undefined);
  t.teardown(() => void etcd.kill('SIGKILL'));
  const ns = lab.record.topology.hosts[0]!.netns;
  const etcdctl = (extra: string[]) => run('ip', ['netns', 'exec', ns, 'etcdctl', '--endpoints', `https://${address}:2379`, '--cacert', join(dir, 'etcd-pki', 'ca.crt'), ...extra, '--dial-timeout', '2s', 'endpoint', 'status', '-w', 'json']);
  const client = join(dir, 'shoal-pki');
  await run(shoal, ['pki', 'issue', '--dir', client, '--name', 'probe', '--usage', 'client']);
  const healthy = await eventually(20_000, async () => etcdctl(['--cert', join(client, 'probe.crt'), '--key', join(client, 'probe.key')]).catch(() => undefined));
  t.regex(healthy.value, /"Endpoint":"https:\/\/198\.18\.1\.249:2379"/);
  await t.throwsAsync(etcdctl([]), undefined, 'a client without a certificate is refused');
});

test.serial('both units pass systemd-analyze verify', async (t) => {
  const files = await docFiles();
  const dir = await mkdtemp(join(tmpdir(), 'shoal-units-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const name of ['shoal-manager.service', 'shoal-agent.service']) {
    const unit = files.get(name);
    t.truthy(unit, `docs/deploy.md has ${name}`);
    // Only the paths of this checkout and of the environment files move.
    await writeFile(join(dir, name), unit!.text.replaceAll('/opt/shoal', repo.replace(/\/$/, '')).replaceAll('/etc/shoal/', `${dir}/`));
  }
  for (const env of ['manager.env', 'agent.env']) await writeFile(join(dir, env), files.get(env)!.text);
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn('systemd-analyze', ['verify', './shoal-manager.service', './shoal-agent.service'], { cwd: dir });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', (error) => resolve({ code: -1, stderr: error.message }));
    child.on('close', (code) => resolve({ code, stderr }));
  });
  t.is(result.code, 0, result.stderr);
  t.is(result.stderr.trim(), '', 'systemd has nothing to say about the units');
});

test.serial('a second manager and an agent started with the units\' ExecStart lines join the cluster', async (t) => {
  const lab = fixture.lab();
  const files = await docFiles();
  const [h1, h2, h3] = lab.record.topology.hosts;
  const leader = (await lab.managers()).find((m) => m.leader)!;
  const managerToken = (await ok('join-token', 'manager', '-q')).trim();
  const workerToken = (await ok('join-token', 'worker', '-q')).trim();
  const shoal = `${repo.replace(/\/$/, '')}/bin/shoal`;
  const useRepo = (argv: string[]) => argv.map((word) => (word === '/opt/shoal/bin/shoal' ? shoal : word));

  // h2's manager: the doc's unit, with the lab's etcd and h2's address.
  const managerEnv: Record<string, string> = { ...environment(files.get('manager.env')!.text), SHOAL_ETCD: `https://${lab.record.topology.etcdAddresses[0]}:2379`, SHOAL_ADDR: h2!.address, SHOAL_JOIN_TOKEN: managerToken };
  const paths: Record<string, string> = {
    '/var/lib/shoal/manager': join(lab.record.dir, 'h2', 'manager'),
    '/run/shoal/shoal.sock': join(lab.record.dir, 'h2', 'shoal.sock'),
    '/etc/shoal/pki': join(lab.record.dir, 'h2', 'pki'),
  };
  const managerArgv = useRepo(execStart(files.get('shoal-manager.service')!.text, managerEnv)).map((word) => paths[word] ?? word);
  // What the guide has the operator do for a new manager: copy the PKI directory, and let its
  // host reach etcd (the lab routes etcd's subnet from the managers' hosts only).
  await sharePki(labPki(lab.record.dir), paths['/etc/shoal/pki']!);
  await ipBatch([etcdRoute(lab.record.topology)], h2!.netns);
  t.true(managerArgv.includes('--join-token'));
  startOnHost(t, h2!.netns, h2!.name, managerArgv, join(lab.record.dir, 'h2', 'manager.log'), { SHOAL_LOG_LEVEL: managerEnv.SHOAL_LOG_LEVEL ?? 'info' });
  await eventually(30_000, async () => {
    const managers = JSON.parse(await ok('manager', 'ls', '--format', 'json')) as ManagerView[];
    return managers.filter((m) => m.reachable).length === 2 ? true : undefined;
  });

  // h3's agent: the lab's is failed for good and the node removed, so the doc's agent joins afresh.
  await lab.kill('h3/agent');
  await run('rm', ['-rf', join(lab.record.dir, 'h3', 'agent')]);
  await eventually(15_000, async () => ((await ok('node', 'ls')).match(/h3 +Down/) ? true : undefined));
  await ok('node', 'rm', '--force', 'h3');
  const agentEnv = {
    ...environment(files.get('agent.env')!.text),
    SHOAL_JOIN: leader.p2pAddrs[0]!,
    SHOAL_TOKEN: workerToken,
    SHOAL_ADDR: h3!.address,
    SHOAL_AGENT_OPTS: `--registry ${registryAddress(lab.record.topology)} --insecure-registry ${registryAddress(lab.record.topology)} --netns-prefix shoal-it-deploy-c-`,
  };
  const agentArgv = useRepo(execStart(files.get('shoal-agent.service')!.text, agentEnv)).map((word) => (word === '/var/lib/shoal/agent' ? join(lab.record.dir, 'h3', 'agent') : word));
  t.true(agentArgv.includes('--netns-prefix'), 'the unbraced $SHOAL_AGENT_OPTS split into flags');
  startOnHost(t, h3!.netns, h3!.name, agentArgv, join(lab.record.dir, 'h3', 'agent.log'), {});
  await eventually(30_000, async () => {
    const nodes = JSON.parse(await ok('node', 'ls', '--format', 'json')) as NodeView[];
    return nodes.some((n) => n.description.hostname === 'h3' && n.status.state === 'ready') ? true : undefined;
  });
  t.is((await ok('container', 'run', '--node', 'h3', '--rm', 'busybox:1.35.0', 'echo', 'deployed')).trim(), 'deployed');
  t.truthy(h1);
  // The lab's own daemons were not disturbed by the newcomers.
  t.is((await readSupervision(lab.process('h1/manager')))?.restarts, 0);
});
