import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chown, lstat, mkdir, readlink, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import type { ContainerRecord } from '../../shared/containers.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';
import { etcdctlFlags, labRegistryLogin } from '../../lab/lab.ts';
import { run } from '../../shared/exec.ts';
import { authRegistryAddress } from '../../lab/topology.ts';
import { killTmuxServer, TmuxPane } from '../helpers/tmux.ts';

// The engine's verbs, each as Docker's, on a lab of two hosts with real runc, overlayfs and registry.
const fixture = useLab(test, { name: 'it-verbs', hosts: 2, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { shoal, ok } = fixture;
const MiB = 1024 * 1024;
const image = 'busybox:1.35.0';

async function inspect(ref: string): Promise<ContainerRecord & { node: string }> {
  return (JSON.parse(await ok('container', 'inspect', ref)) as Array<ContainerRecord & { node: string }>)[0]!;
}

function cgroup(controller: string, id: string, file: string): string {
  return readFileSync(`/sys/fs/cgroup/${controller}/shoal/${id}/${file}`, 'utf8').trim();
}

const names = async (...filters: string[]) => (await ok('container', 'ls', '--format', 'json', ...filters.flatMap((f) => ['-f', f])))
  .trim() ? (JSON.parse(await ok('container', 'ls', '--format', 'json', ...filters.flatMap((f) => ['-f', f]))) as ContainerRecord[]).map((c) => c.name).sort() : [];

test.serial('create, start, kill -s, pause, unpause, restart, stop, wait and start again keep one container', async (t) => {
  // The trap answers USR1; TERM ends it with 143.
  const id = (await ok('container', 'create', '--node', 'h1', '--name', 'life', '-l', 'tier=test', image, 'sh', '-c', 'trap "echo got-usr1" USR1; echo started; while true; do sleep 0.1; done')).trim();
  t.teardown(() => shoal('container', 'rm', '-f', id));
  t.is((await inspect('life')).state, 'created');
  t.deepEqual(await names('status=created'), ['life']);
  t.deepEqual(await names(), [], 'ls without -a leaves a created container out');

  await ok('container', 'start', 'life');
  t.is((await inspect('life')).state, 'running');
  await ok('container', 'kill', '-s', 'usr1', 'life');
  await eventually(5_000, async () => ((await ok('container', 'logs', 'life')).includes('got-usr1') ? true : undefined));
  t.is((await inspect('life')).state, 'running', 'USR1 was handled, not fatal');

  await ok('container', 'pause', 'life');
  t.is(cgroup('freezer', id, 'freezer.state'), 'FROZEN');
  t.deepEqual(await names('status=paused'), ['life']);
  const frozenExec = await shoal('container', 'exec', 'life', 'true');
  t.is(frozenExec.code, 1);
  t.regex(frozenExec.stderr, /container life is paused/);
  await ok('container', 'unpause', 'life');
  t.is(cgroup('freezer', id, 'freezer.state'), 'THAWED');

  const pid = (await inspect('life')).pid;
  await ok('container', 'restart', '-t', '1', 'life');
  const restarted = await inspect('life');
  t.is(restarted.id, id, 'the same container');
  t.is(restarted.state, 'running');
  t.not(restarted.pid, pid);
  t.is((await ok('container', 'logs', 'life')).match(/started/g)?.length, 2, 'one log across both runs');

  await ok('container', 'stop', '-t', '5', 'life');
  t.is((await ok('container', 'wait', 'life')).trim(), '143');
  t.deepEqual(await names('exited=143', 'label=tier=test'), ['life']);
  await ok('container', 'start', 'life');
  await ok('container', 'kill', 'life');
  t.is((await ok('container', 'wait', 'life')).trim(), '137');

  const badSignal = await shoal('container', 'kill', '-s', 'BOGUS', 'life');
  t.is(badSignal.code, 1);
  t.regex(badSignal.stderr, /"BOGUS" is not a signal/);
  const notRunning = await shoal('container', 'kill', 'life');
  t.regex(notRunning.stderr, /container life is not running/);
});

test.serial('rename, top, port, update and ls -n -l answer as Docker\'s do', async (t) => {
  const id = (await ok('container', 'run', '-d', '--node', 'h1', '--name', 'verbs', '-p', '18081:80', '--memory', '32m', image, 'sh', '-c', 'exec sleep 300')).trim();
  t.teardown(() => shoal('container', 'rm', '-f', id));
  await ok('container', 'rename', 'verbs', 'verbs2');
  t.is((await inspect(id)).name, 'verbs2');
  const taken = await shoal('container', 'run', '-d', '--node', 'h1', '--name', 'verbs2', image, 'true');
  t.regex(taken.stderr, /"verbs2" is already in use/);

  const top = JSON.parse(await ok('container', 'top', '--format', 'json', 'verbs2')) as { titles: string[]; processes: string[][] };
  t.true(top.titles.includes('PID') && top.titles.includes('CMD'));
  t.true(top.processes.some((row) => row.at(-1) === 'sleep 300'), JSON.stringify(top.processes));
  t.false(top.processes.some((row) => /shoal-agent|manager/.test(row.at(-1)!)), 'only the container\'s processes');
  const custom = JSON.parse(await ok('container', 'top', '--format', 'json', 'verbs2', '-o', 'pid,comm')) as { titles: string[]; processes: string[][] };
  t.deepEqual(custom.titles, ['PID', 'COMMAND']);

  t.is(await ok('container', 'port', 'verbs2'), '80/tcp -> 0.0.0.0:18081\n');
  t.is(await ok('container', 'port', 'verbs2', '80'), '0.0.0.0:18081\n');

  await ok('container', 'update', '--memory', '64m', '--cpus', '0.5', '--pids-limit', '50', 'verbs2');
  t.is(cgroup('memory', id, 'memory.limit_in_bytes'), String(64 * MiB));
  t.is(cgroup('cpu', id, 'cpu.cfs_quota_us'), '50000');
  t.is(cgroup('pids', id, 'pids.max'), '50');
  t.is((await inspect(id)).spec.resources.memoryBytes, 64 * MiB, 'kept in the record');
  const badUpdate = await shoal('container', 'update', '--memory', '2m', 'verbs2');
  t.regex(badUpdate.stderr, /at least 6MiB/);

  const latest = (await ok('container', 'create', '--node', 'h2', image, 'true')).trim();
  t.teardown(() => shoal('container', 'rm', '-f', latest));
  t.is((await ok('container', 'ls', '-l', '-q')).trim(), latest.slice(0, 12));
  t.is((await ok('container', 'ls', '-n', '2', '-q')).trim().split('\n').length, 2);
  t.deepEqual(await names('node=h2', 'status=created'), [(await inspect(latest)).name]);
});

test.serial('prune removes stopped containers with their layers, and keeps running ones', async (t) => {
  const stopped = (await ok('container', 'run', '-d', '--node', 'h2', '-l', 'prune=me', image, 'sh', '-c', 'head -c 300000 /dev/zero > /blob')).trim();
  const running = (await ok('container', 'run', '-d', '--node', 'h2', '-l', 'prune=me', image, 'sleep', '300')).trim();
  t.teardown(() => shoal('container', 'rm', '-f', running));
  await eventually(10_000, async () => ((await inspect(stopped)).state === 'exited' ? true : undefined));
  const refused = await shoal('container', 'prune', '--filter', 'label=prune=me');
  t.is(refused.code, 0);
  t.regex(refused.stderr, /pass --force/, 'no terminal to ask on: nothing removed');
  t.is((await inspect(stopped)).state, 'exited');
  const pruned = await ok('container', 'prune', '-f', '--filter', 'label=prune=me');
  t.regex(pruned, new RegExp(stopped));
  t.regex(pruned, /Total reclaimed space: 29\dKiB/);
  t.false(pruned.includes(running));
  t.is((await shoal('container', 'inspect', stopped)).code, 1);
});

test.serial('cp copies both ways with modes and owners, refuses to leave the container, and reaches volumes', async (t) => {
  await ok('container', 'run', '-d', '--node', 'h1', '--name', 'files', '-v', 'cp-vol:/data', image, 'sh', '-c', 'echo in-container > /made; ln -s /etc /tmp/abs; ln -s ../../../etc /tmp/climb; exec sleep 300');
  t.teardown(() => shoal('container', 'rm', '-f', 'files'));
  await eventually(5_000, async () => ((await shoal('container', 'exec', 'files', 'test', '-L', '/tmp/climb')).code === 0 ? true : undefined));
  const local = join(fixture.scratch(), 'cp');
  await mkdir(join(local, 'tree', 'sub'), { recursive: true });
  await writeFile(join(local, 'tree', 'script'), '#!/bin/sh\n', { mode: 0o750 });
  await writeFile(join(local, 'tree', 'sub', 'owned'), 'x');
  await chown(join(local, 'tree', 'sub', 'owned'), 1234, 2345);
  await symlink('script', join(local, 'tree', 'link'));

  await ok('container', 'cp', join(local, 'tree'), 'files:/srv');
  t.is(await ok('container', 'exec', 'files', 'stat', '-c', '%a %u:%g %N', '/srv/script', '/srv/sub/owned', '/srv/link'), "750 0:0 /srv/script\n644 0:0 /srv/sub/owned\n777 0:0 '/srv/link' -> 'script'\n", 'as Docker: root owns what is copied in');
  await ok('container', 'cp', '-a', join(local, 'tree'), 'files:/kept');
  t.is(await ok('container', 'exec', 'files', 'stat', '-c', '%u:%g', '/kept/sub/owned'), '1234:2345\n', '-a keeps owners');

  await ok('container', 'cp', 'files:/made', join(local, 'made'));
  t.is(readFileSync(join(local, 'made'), 'utf8'), 'in-container\n');
  await ok('container', 'cp', 'files:/srv', join(local, 'back'));
  t.is((await stat(join(local, 'back', 'script'))).mode & 0o777, 0o750);
  t.is(await readlink(join(local, 'back', 'link')), 'script');
  await ok('container', 'cp', 'files:/srv/.', join(local, 'contents'));
  t.true(existsSync(join(local, 'contents', 'sub', 'owned')));

  // Links that point out of the container resolve inside it, both ways.
  await writeFile(join(local, 'probe'), 'probe\n');
  await ok('container', 'cp', join(local, 'probe'), 'files:/tmp/abs/shoal-it-probe');
  await ok('container', 'cp', join(local, 'probe'), 'files:/tmp/climb/shoal-it-probe2');
  t.false(existsSync('/etc/shoal-it-probe') || existsSync('/etc/shoal-it-probe2'), 'nothing written to the host\'s /etc');
  t.is(await ok('container', 'exec', 'files', 'cat', '/etc/shoal-it-probe', '/etc/shoal-it-probe2'), 'probe\nprobe\n');
  await ok('container', 'cp', 'files:/tmp/climb/passwd', join(local, 'their-passwd'));
  t.is(readFileSync(join(local, 'their-passwd'), 'utf8'), await ok('container', 'exec', 'files', 'cat', '/etc/passwd'), 'the container\'s passwd, not the host\'s');

  await ok('container', 'cp', join(local, 'probe'), 'files:/data/');
  t.is(await ok('container', 'exec', 'files', 'cat', '/data/probe'), 'probe\n', 'into the volume, which the container sees');

  const missing = await shoal('container', 'cp', 'files:/no/such', join(local, 'x'));
  t.is(missing.code, 1);
  t.regex(missing.stderr, /path "\/no\/such" not found/);
  const both = await shoal('container', 'cp', 'a', 'b');
  t.regex(both.stderr, /name a container on exactly one side/);
  const tarOut = execFileSync(process.execPath, [join(import.meta.dirname, '../../cli/main.js'), 'container', 'cp', 'files:/made', '-'], { env: { ...process.env, SHOAL_CONTEXT: fixture.lab().record.contextFile } });
  t.is(execFileSync('tar', ['-t'], { input: tarOut }).toString(), 'made\n', '- writes a tar to stdout');
});

test.serial('diff lists added, changed and deleted paths; export and import give a runnable image', async (t) => {
  await ok('container', 'run', '-d', '--node', 'h1', '--name', 'changer', image, 'sh', '-c', 'echo new > /added; echo more >> /etc/passwd; rm /etc/group; exec sleep 300');
  t.teardown(() => shoal('container', 'rm', '-f', 'changer'));
  const diff = await eventually(5_000, async () => {
    const text = await ok('container', 'diff', 'changer');
    return text.includes('D /etc/group') ? text : undefined;
  });
  t.is(diff.value, 'A /added\nC /etc\nD /etc/group\nC /etc/passwd\n', 'runc\'s mount points (/etc/hosts, /sbin/shoal-init, ...) are left out');

  const tarFile = join(fixture.scratch(), 'changer.tar');
  await ok('container', 'export', '-o', tarFile, 'changer');
  const members = execFileSync('tar', ['-t', '-f', tarFile]).toString();
  t.regex(members, /^\.\/added$/m);
  t.notRegex(members, /^\.\/etc\/group$/m);
  execFileSync('gzip', ['-k', tarFile]);
  const imported = await ok('image', 'import', '--node', 'h2', '-c', 'CMD ["cat", "/added"]', '-c', 'ENV FROM=import', '-m', 'exported', `${tarFile}.gz`, 'imported:1');
  t.regex(imported, /^h2: sha256:[0-9a-f]{64} .*imported:1$/m);
  t.is(await ok('container', 'run', '--node', 'h2', '--rm', 'imported:1'), 'new\n');
  t.is(await ok('container', 'run', '--node', 'h2', '--rm', 'imported:1', 'sh', '-c', 'echo $FROM'), 'import\n');
  const history = JSON.parse(await ok('image', 'history', '--node', 'h2', '--format', 'json', 'imported:1')) as Array<{ comment: string; createdBy: string }>;
  t.deepEqual(history.map((h) => h.comment), ['exported']);
  const bad = await shoal('image', 'import', '--node', 'h2', '-c', 'RUN true', tarFile);
  t.regex(bad.stderr, /RUN cannot be applied here/);
});

test.serial('commit makes an image whose new layer holds exactly the change', async (t) => {
  await ok('container', 'run', '-d', '--node', 'h1', '--name', 'tocommit', '-e', 'MODE=committed', image, 'sh', '-c', 'echo new > /added; rm /etc/group; rm -rf /var/www; mkdir /var/www; echo only > /var/www/one; exec sleep 300');
  t.teardown(() => shoal('container', 'rm', '-f', 'tocommit'));
  await eventually(5_000, async () => ((await ok('container', 'diff', 'tocommit')).includes('/var/www/one') ? true : undefined));
  await ok('container', 'commit', '-c', 'CMD ["sh", "-c", "echo $MODE; cat /added; ls /var/www; test -e /etc/group || echo no-group"]', '-m', 'by the test', 'tocommit', 'committed:1');
  t.is((await inspect('tocommit')).state, 'running', 'resumed after the commit');
  t.is(await ok('container', 'run', '--node', 'h1', '--rm', 'committed:1'), 'committed\nnew\none\nno-group\n');

  const [base] = (JSON.parse(await ok('image', 'inspect', '--node', 'h1', image)) as Array<{ result: { layers: Array<{ digest: string }> } }>).map((r) => r.result);
  const [committed] = (JSON.parse(await ok('image', 'inspect', '--node', 'h1', 'committed:1')) as Array<{ result: { layers: Array<{ digest: string }> } }>).map((r) => r.result);
  t.deepEqual(committed!.layers.slice(0, -1), base!.layers, 'the base layers are shared');
  const store = join(fixture.lab().record.dir, 'h1', 'agent', 'engine', 'images', 'blobs', 'sha256');
  const top = execFileSync('tar', ['-tz', '-f', join(store, committed!.layers.at(-1)!.digest.slice(7))]).toString().trim().split('\n').sort();
  t.deepEqual(top, ['./added', './etc/', './etc/.wh.group', './var/', './var/www/', './var/www/.wh..wh..opq', './var/www/one']);
  const history = JSON.parse(await ok('image', 'history', '--node', 'h1', '--format', 'json', 'committed:1')) as Array<{ comment: string; size: number }>;
  t.is(history[0]!.comment, 'by the test');
  t.is(history.length, 2);
});

test.serial('save on one node and load on another gives the same digests; a docker-archive loads too', async (t) => {
  const archive = join(fixture.scratch(), 'images.tar');
  await ok('image', 'tag', '--node', 'h1', image, 'saved/busybox:copy');
  await ok('image', 'save', '--node', 'h1', '-o', archive, image, 'saved/busybox:copy');
  const members = execFileSync('tar', ['-t', '-f', archive]).toString();
  t.regex(members, /^oci-layout$/m);
  t.regex(members, /^index\.json$/m);
  t.regex(members, /^manifest\.json$/m);
  const onH1 = (JSON.parse(await ok('image', 'inspect', '--node', 'h1', image)) as Array<{ result: { id: string } }>)[0]!.result.id;
  await shoal('image', 'rm', '--node', 'h2', image);
  const loaded = await ok('image', 'load', '--node', 'h2', '-i', archive);
  t.regex(loaded, /h2: Loaded image: .*busybox:1\.35\.0/);
  t.regex(loaded, /h2: Loaded image: .*saved\/busybox:copy/);
  const onH2 = (JSON.parse(await ok('image', 'inspect', '--node', 'h2', image)) as Array<{ result: { id: string } }>)[0]!.result.id;
  t.is(onH2, onH1);
  t.is(await ok('container', 'run', '--node', 'h2', '--rm', 'saved/busybox:copy', 'echo', 'loaded'), 'loaded\n');

  // The older docker-archive: <id>/layer.tar uncompressed, a config file, manifest.json with RepoTags.
  const legacy = join(fixture.scratch(), 'legacy');
  await mkdir(legacy, { recursive: true });
  execFileSync('tar', ['-x', '-f', archive, '-C', legacy]);
  const [entry] = JSON.parse(readFileSync(join(legacy, 'manifest.json'), 'utf8')) as Array<{ Config: string; Layers: string[] }>;
  await mkdir(join(legacy, 'old', 'layer1'), { recursive: true });
  execFileSync('sh', ['-c', `gunzip -c ${join(legacy, entry!.Layers[0]!)} > ${join(legacy, 'old', 'layer1', 'layer.tar')}`]);
  execFileSync('cp', [join(legacy, entry!.Config), join(legacy, 'old', 'config.json')]);
  await writeFile(join(legacy, 'old', 'manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: ['legacy/busybox:old'], Layers: ['layer1/layer.tar'] }]));
  execFileSync('tar', ['-c', '-f', join(legacy, 'old.tar'), '-C', join(legacy, 'old'), 'manifest.json', 'config.json', 'layer1']);
  t.regex(await ok('image', 'load', '--node', 'h2', '-i', join(legacy, 'old.tar')), /Loaded image: legacy\/busybox:old/);
  t.is(await ok('container', 'run', '--node', 'h2', '--rm', 'legacy/busybox:old', 'echo', 'legacy'), 'legacy\n');
  t.true((await lstat(archive)).size > 0);
});

const tmuxSocket = `shoal-it-verbs-${process.pid}`;
test.after.always(() => killTmuxServer(tmuxSocket));
const cliEnv = () => ({ SHOAL_CONTEXT: fixture.lab().record.contextFile });

test.serial('run -it gives a real terminal: typing, resizing, ctrl-c, detaching and attaching again, the exit code', async (t) => {
  t.teardown(() => shoal('container', 'rm', '-f', 'term'));
  const pane = await TmuxPane.start(tmuxSocket, 'run', TmuxPane.shoal('container', 'run', '-it', '--node', 'h1', '--name', 'term', image, 'sh'), cliEnv());
  t.teardown(() => pane.kill());
  await pane.waitFor(/^\/ #/m);
  await pane.type('echo hello-$((1+2)); tty');
  await pane.waitFor(/^hello-3\n\/dev\/pts\/0$/m);
  await pane.type('stty size');
  await pane.waitFor(/^24 80$/m);
  await pane.resize(100, 30);
  await pane.type('stty size');
  await pane.waitFor(/^30 100$/m);
  await pane.type('sleep 100');
  await new Promise((resolve) => setTimeout(resolve, 300));
  await pane.keys('C-c');
  await pane.type('echo after-interrupt');
  await pane.waitFor(/^after-interrupt$/m);
  t.is((await inspect('term')).state, 'running', 'ctrl-c went to the shell\'s job, not to the container');

  await pane.keys('C-p', 'C-q');
  await pane.waitFor(/detached from term.*\n.*EXIT=0/s);
  t.is((await inspect('term')).state, 'running', 'detached: the container runs on');

  // A CLI that goes away without a word (its terminal closed) detaches too.
  const dropped = await TmuxPane.start(tmuxSocket, 'dropped', TmuxPane.shoal('container', 'attach', 'term'), cliEnv());
  await dropped.type('echo still-here');
  await dropped.waitFor(/^still-here$/m);
  await dropped.kill();
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.is((await inspect('term')).state, 'running', 'a dropped connection does not kill the container');

  const again = await TmuxPane.start(tmuxSocket, 'again', TmuxPane.shoal('container', 'attach', 'term'), cliEnv());
  t.teardown(() => again.kill());
  await again.type('echo attached-again');
  await again.waitFor(/^attached-again$/m);
  await again.type('exit 3');
  await again.waitFor(/EXIT=3/);
  const done = await inspect('term');
  t.is(done.state, 'exited');
  t.is(done.exitCode, 3);
  t.regex(await ok('container', 'logs', 'term'), /hello-3/, 'the terminal\'s output is in the log too');
});

test.serial('exec -it runs a command on a terminal of its own, with its size and exit code; the terminal survives an agent restart', async (t) => {
  await ok('container', 'run', '-d', '-t', '--node', 'h2', '--name', 'shell', image, 'sh');
  t.teardown(() => shoal('container', 'rm', '-f', 'shell'));
  const exec = await TmuxPane.start(tmuxSocket, 'exec', TmuxPane.shoal('container', 'exec', '-it', 'shell', 'sh'), cliEnv(), { cols: 90, rows: 20 });
  t.teardown(() => exec.kill());
  await exec.type('stty size; echo in-exec-$((2*3))');
  await exec.waitFor(/^20 90\nin-exec-6$/m);
  await exec.type('exit 5');
  await exec.waitFor(/EXIT=5/);
  const failed = await shoal('container', 'exec', '-it', 'shell', 'no-such-command');
  t.is(failed.code, 1);
  t.regex(failed.stderr, /no-such-command.*not found/);

  // The shim keeps the container's terminal: a new agent takes it back, and the shell never saw a hangup.
  await fixture.lab().kill('h2/agent');
  await fixture.lab().start('h2/agent');
  await eventually(30_000, async () => ((await shoal('container', 'inspect', 'shell')).code === 0 ? true : undefined));
  const attach = await TmuxPane.start(tmuxSocket, 'after-restart', TmuxPane.shoal('container', 'attach', 'shell'), cliEnv());
  t.teardown(() => attach.kill());
  await attach.type('echo survived-$((4+4))');
  await attach.waitFor(/^survived-8$/m);
  t.is((await inspect('shell')).state, 'running');
});

test.serial('a private registry with TLS and a login: unknown CA, no login, wrong password, then login, push, pull and run', async (t) => {
  const dir = fixture.lab().record.dir;
  const registry = authRegistryAddress(fixture.lab().record.topology);
  const login = await labRegistryLogin(dir);
  process.env.SHOAL_CONFIG = join(fixture.scratch(), 'client-config');
  t.teardown(() => {
    delete process.env.SHOAL_CONFIG;
  });
  // h2 has not reached this registry yet: without the lab's CA in its certs.d it does not trust it.
  const caFile = join(dir, 'h2', 'certs.d', registry, 'ca.crt');
  await rename(caFile, `${caFile}.away`);
  const untrusted = await shoal('container', 'run', '--node', 'h2', '--rm', `${registry}/private/busybox:1`, 'true');
  await rename(`${caFile}.away`, caFile);
  t.is(untrusted.code, 1);
  t.regex(untrusted.stderr, /not signed by a CA this node trusts/);
  t.regex(untrusted.stderr, /certs\.d\/198\.18\.0\.250:5443\/ca\.crt/);

  await ok('image', 'pull', '--node', 'h1', image);
  const anonymous = await shoal('image', 'push', '--node', 'h1', image, `${registry}/private/busybox:1`);
  t.regex(anonymous.stderr, /registry 198\.18\.0\.250:5443 needs a login/);
  const wrong = await shoal('login', registry, '-u', login.username, '-p', 'not-the-password');
  t.is(wrong.code, 1);
  t.regex(wrong.stderr, /refused the login of "shoal" \(wrong user name or password\)/);
  t.false(existsSync(join(process.env.SHOAL_CONFIG, 'config.json')), 'a refused login is not stored');

  t.regex(await ok('login', registry, '-u', login.username, '-p', login.password), /Login Succeeded/);
  const config = join(process.env.SHOAL_CONFIG, 'config.json');
  t.is((await stat(config)).mode & 0o777, 0o600);
  t.false(readFileSync(config, 'utf8').includes(login.password), 'stored as Docker stores it, not in clear');
  t.regex(await ok('image', 'push', '--node', 'h1', image, `${registry}/private/busybox:1`), /digest sha256:/);
  await shoal('image', 'rm', '--node', 'h2', `${registry}/private/busybox:1`);
  t.is(await ok('container', 'run', '--node', 'h2', '--rm', `${registry}/private/busybox:1`, 'echo', 'private'), 'private\n');
  // A service pulls with the login on every node it runs on; the store keeps it sealed only.
  for (const node of ['h1', 'h2']) await shoal('image', 'rm', '--node', node, `${registry}/private/busybox:1`);
  await ok('service', 'create', '--name', 'nologin', '--detach', `${registry}/private/busybox:1`, 'sleep', '300');
  const rejected = await eventually(60_000, async () => {
    const tasks = JSON.parse(await ok('service', 'ps', 'nologin', '--format', 'json')) as Array<{ status: { error?: string; message: string } }>;
    return tasks.map((task) => `${task.status.error ?? ''} ${task.status.message}`).find((text) => /needs a login/.test(text));
  });
  t.regex(rejected.value, /198\.18\.0\.250:5443 needs a login/, 'without --with-registry-auth the nodes cannot pull');
  await ok('service', 'rm', 'nologin');
  await ok('service', 'create', '--name', 'private', '--with-registry-auth', '--replicas', '2', '--replicas-max-per-node', '1', `${registry}/private/busybox:1`, 'sleep', '300');
  t.teardown(() => shoal('service', 'rm', 'private'));
  await eventually(60_000, async () => {
    const tasks = JSON.parse(await ok('service', 'ps', 'private', '--format', 'json')) as Array<{ desiredState: string; status: { state: string } }>;
    return tasks.filter((task) => task.desiredState === 'running' && task.status.state === 'running').length === 2 ? true : undefined;
  });
  const record = fixture.lab().record;
  const flags = etcdctlFlags(record);
  const everything = await run('ip', ['netns', 'exec', record.topology.hosts[0]!.netns, 'etcdctl', ...flags, '--command-timeout', '10s', 'get', '--prefix', '/']);
  t.regex(everything, /sealedRegistryAuth/);
  t.false(everything.includes(login.password), 'the password is not in the store in clear');
  t.false(everything.includes(Buffer.from(`${login.username}:${login.password}`).toString('base64')));
  const withoutLogin = await shoal('service', 'update', '--with-registry-auth', '--replicas', '1', 'private');
  t.is(withoutLogin.code, 0, withoutLogin.stderr);

  // A stack: each service's request carries its image registry's login.
  const compose = join(fixture.scratch(), 'private-stack.yaml');
  await writeFile(compose, `services:\n  app:\n    image: ${registry}/private/busybox:1\n    command: sleep 300\n    deploy:\n      replicas: 1\n`);
  await ok('stack', 'deploy', '--with-registry-auth', '-c', compose, 'privstack');
  t.teardown(() => shoal('stack', 'rm', 'privstack'));
  await eventually(60_000, async () => {
    const tasks = JSON.parse(await ok('service', 'ps', 'privstack_app', '--format', 'json')) as Array<{ desiredState: string; status: { state: string } }>;
    return tasks.some((task) => task.desiredState === 'running' && task.status.state === 'running') ? true : undefined;
  });
  t.true((JSON.parse(await ok('service', 'inspect', 'privstack_app')) as Array<{ sealedRegistryAuth?: string }>)[0]!.sealedRegistryAuth !== undefined, 'the stack\'s service holds the login, sealed');

  t.regex(await ok('logout', registry), /Removing login credentials/);
  const noLogin = await shoal('service', 'update', '--with-registry-auth', 'private');
  t.regex(noLogin.stderr, /--with-registry-auth: no login for 198\.18\.0\.250:5443/);
  await shoal('image', 'rm', '--node', 'h2', `${registry}/private/busybox:1`);
  t.regex((await shoal('image', 'pull', '--node', 'h2', `${registry}/private/busybox:1`)).stderr, /needs a login/);
});

test.serial('build: a multi-stage Dockerfile with every instruction, a cached rebuild, and the image run as a service across hosts', async (t) => {
  const context = join(fixture.scratch(), 'build-context');
  execFileSync('cp', ['-r', join(import.meta.dirname, '../../../test/fixtures/dockerfile-context'), context]);
  const archiveDir = join(fixture.scratch(), 'archive');
  await mkdir(archiveDir, { recursive: true });
  await writeFile(join(archiveDir, 'f'), 'inside-archive\n');
  execFileSync('tar', ['-c', '-f', join(context, 'archive.tar'), '-C', archiveDir, 'f']);
  const registry = fixture.lab().record.topology.infraAddress;

  const first = await ok('image', 'build', '--node', 'h1', '-t', `${registry}:5000/built/app:1`, '--build-arg', 'GREETING=howdy', '--push', context);
  t.regex(first, /^Step 1\/\d+ : FROM \$\{BASE\} AS build$/m);
  t.regex(first, /^Step \d+\/\d+ : COPY --from=build --chown=nobody \/work\/out\.txt \.\/$/m, 'steps are shown as written');
  t.regex(first, /^Successfully built ([0-9a-f]{12})/m);
  t.regex(first, /built\/app:1: digest sha256:/, '--push pushed the tag');
  const id = /^Successfully built ([0-9a-f]{12})/m.exec(first)![1];

  t.is(await ok('container', 'run', '--node', 'h1', '--rm', `${registry}:5000/built/app:1`), 'howdy from the build stage\na-content\nexec-form\n/srv/app/texts:\na.txt\nb.txt\n\n/srv/unpacked:\nf\n65534\nport=8080\n');
  const [inspected] = (JSON.parse(await ok('image', 'inspect', '--node', 'h1', `${registry}:5000/built/app:1`)) as Array<{ result: { config: { config: Record<string, unknown> } } }>).map((r) => r.result.config.config);
  t.like(inspected, { User: 'nobody', WorkingDir: '/srv/app', StopSignal: 'SIGINT', Entrypoint: ['sh', '-c'], Labels: { 'org.example.demo': 'yes' }, ExposedPorts: { '8080/tcp': {}, '53/udp': {} }, Volumes: { '/srv/data': {} } });
  t.deepEqual((inspected as { Healthcheck: unknown }).Healthcheck, { Test: ['CMD-SHELL', 'test -f /srv/app/out.txt'], Interval: 5e9, Retries: 2 });
  t.true(((inspected as { Env: string[] }).Env).includes('APP_HOME=/srv/app'));
  t.false(((inspected as { Env: string[] }).Env).some((e) => e.startsWith('GREETING=')), 'a build argument is not in the image');

  // .dockerignore: the build stage copied the whole context.
  await ok('image', 'build', '--node', 'h1', '-q', '-t', 'built/stage:1', '--target', 'build', context);
  const sent = await ok('container', 'run', '--node', 'h1', '--rm', '--entrypoint', 'ls', 'built/stage:1', '-a', '/context');
  t.true(sent.includes('Dockerfile') && sent.includes('src'));
  t.false(sent.includes('ignored') || sent.includes('NOTES.md'), sent);

  const again = await ok('image', 'build', '--node', 'h1', '-t', `${registry}:5000/built/app:1`, '--build-arg', 'GREETING=howdy', context);
  const steps = again.match(/^Step /gm)!.length;
  const cached = again.match(/---> Using cache/g)?.length ?? 0;
  t.is(cached, again.match(/^Step \d+\/\d+ : (RUN|COPY|ADD)/gm)!.length, 'every RUN, COPY and ADD came from the cache');
  t.true(steps > 15);
  t.regex(again, new RegExp(`^Successfully built ${id}`, 'm'), 'an unchanged rebuild gives the same image');
  await writeFile(join(context, 'src', 'b.txt'), 'changed\n');
  const changed = await ok('image', 'build', '--node', 'h1', '-t', 'built/app:2', '--build-arg', 'GREETING=howdy', context);
  t.regex(changed, /COPY src\/\*\.txt \.\/texts\/\n ---> (?!Using cache)/, 'a changed source file runs its COPY again');

  const failing = join(context, 'Dockerfile.fail');
  await writeFile(failing, 'FROM busybox:1.35.0\nRUN echo about to fail && exit 3\n');
  const failed = await shoal('image', 'build', '--node', 'h1', '-f', failing, context);
  t.is(failed.code, 1);
  t.regex(failed.stdout, /about to fail/);
  t.regex(failed.stderr, /Dockerfile\.fail line 2: RUN echo about to fail && exit 3 returned a non-zero code: 3/);
  t.deepEqual((JSON.parse(await ok('container', 'ls', '-a', '--format', 'json')) as ContainerRecord[]).filter((c) => c.spec.labels['shoal.build']), [], 'no build container is left');

  await ok('service', 'create', '--name', 'built', '--replicas', '2', '--replicas-max-per-node', '1', `${registry}:5000/built/app:1`, 'sleep 300');
  t.teardown(() => shoal('service', 'rm', 'built'));
  const running = await eventually(60_000, async () => {
    const tasks = JSON.parse(await ok('service', 'ps', 'built', '--format', 'json')) as Array<{ nodeId?: string; status: { state: string } }>;
    const nodes = tasks.filter((task) => task.status.state === 'running').map((task) => task.nodeId);
    return nodes.length === 2 ? nodes : undefined;
  });
  t.deepEqual(new Set(running.value).size, 2, 'on both hosts');
});
