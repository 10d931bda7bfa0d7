/**
 * Stacks on a real lab: every file in compose-examples/ deploys, its documented checks pass
 * (run as written in its header, with `shoal` on the PATH) and `stack rm` leaves nothing; a
 * redeploy with one changed service rolls only that one; --prune; a secret is sealed in etcd,
 * mounted on a tmpfs in its task, and in no log.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { etcdctlFlags } from '../../lab/lab.ts';
import { run } from '../../shared/exec.ts';
import type { ServiceObject, TaskObject } from '../../shared/services.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

const labName = 'it-stacks';
const fixture = useLab(test, { name: labName, hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { shoal, ok } = fixture;

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const examples = join(repo, 'compose-examples');

/** A header line of an example: `# deploy: ...` or `# check: ...`. */
const headerLines = (text: string, key: string) => [...text.matchAll(new RegExp(`^# ${key}:\\s*(.+)$`, 'gm'))].map((m) => m[1]!);

/** Runs a line of a header with bash, as a user would in the repository's folder, `shoal` on the PATH. */
function bash(line: string, env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', line], {
      cwd: repo,
      env: { ...process.env, PATH: `${join(repo, 'bin')}:${process.env.PATH}`, SHOAL_CONTEXT: fixture.lab().record.contextFile, SHOAL_LAB: labName, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, output });
    });
  });
}

type Labelled = { spec: { name: string; labels: Record<string, string> } };
async function leftovers(stack: string): Promise<string[]> {
  const inStack = (o: Labelled) => o.spec.labels['com.docker.stack.namespace'] === stack;
  const lists = await Promise.all(['service', 'network', 'secret', 'config', 'policy'].map(async (kind) => (JSON.parse(await ok(kind, 'ls', '--format', 'json')) as Labelled[]).filter(inStack).map((o) => `${kind} ${o.spec.name}`)));
  const containers = (JSON.parse(await ok('container', 'ls', '-a', '--format', 'json')) as Array<{ name: string }>).filter((c) => c.name.startsWith(`${stack}_`)).map((c) => `container ${c.name}`);
  return [...lists.flat(), ...containers];
}

const files = readdirSync(examples).filter((f) => f.endsWith('.yaml')).sort();

for (const file of files) {
  test.serial(`compose-examples/${file} deploys, its checks pass, and stack rm leaves nothing`, async (t) => {
    const text = await readFile(join(examples, file), 'utf8');
    const [deploy] = headerLines(text, 'deploy');
    t.truthy(deploy, 'the header says how to deploy it');
    const stack = /(\S+)\s*$/.exec(deploy!)![1]!;
    const deployed = await bash(deploy!);
    t.is(deployed.code, 0, deployed.output);
    const checks = headerLines(text, 'check');
    t.true(checks.length > 0, 'the header says how to check it worked');
    for (const check of checks) {
      // A check may need a moment after convergence (a page filled by a loop, health turning healthy).
      const passed = await eventually(30_000, async () => ((await bash(check)).code === 0 ? true : undefined)).catch(() => false);
      if (!passed) t.fail(`check failed: ${check}\n${(await bash(check)).output}`);
    }
    t.regex(await ok('stack', 'ls'), new RegExp(`^${stack}\\s`, 'm'));
    await ok('stack', 'rm', stack);
    await eventually(30_000, async () => ((await leftovers(stack)).length === 0 ? true : undefined)).catch(async () => t.deepEqual(await leftovers(stack), []));
    t.notRegex(await ok('stack', 'ls'), new RegExp(`^${stack}\\s`, 'm'));
  });
}

const running = async (service: string) => (JSON.parse(await ok('service', 'ps', service, '--format', 'json')) as TaskObject[]).filter((x) => x.desiredState === 'running').map((x) => x.id).sort();

test.serial('a redeploy with one changed service rolls only that one; --prune removes what left the file', async (t) => {
  const base = join(examples, 'web-api-data.yaml');
  await ok('stack', 'deploy', '-c', base, 'redo');
  t.teardown(() => shoal('stack', 'rm', 'redo').then(() => undefined));
  const before = { data: await running('redo_data'), api: await running('redo_api'), front: await running('redo_front') };
  const override = join(fixture.scratch(), 'front-env.yaml');
  await writeFile(override, 'services:\n  front:\n    environment:\n      COLOUR: blue\n');
  const again = await shoal('stack', 'deploy', '-c', base, '-c', override, 'redo');
  t.is(again.code, 0, again.stderr);
  t.regex(again.stderr, /Service redo_data is up to date/);
  t.regex(again.stderr, /Service redo_api is up to date/);
  t.regex(again.stderr, /Updating service redo_front/);
  t.deepEqual(await running('redo_data'), before.data, 'data kept its task');
  t.deepEqual(await running('redo_api'), before.api, 'api kept its task');
  const front = await running('redo_front');
  t.is(front.length, 2);
  t.false(front.some((id) => before.front.includes(id)), 'front rolled over to new tasks');
  const spec = JSON.parse(await ok('service', 'inspect', 'redo_front')) as ServiceObject[];
  t.true(spec[0]!.spec.container.env.includes('COLOUR=blue'));

  // Without front in the files, --prune removes it; without --prune it stays.
  const withoutFront = join(fixture.scratch(), 'no-front.yaml');
  await writeFile(withoutFront, (await readFile(base, 'utf8')).replace(/\n {2}front:[\s\S]*?\nnetworks:/, '\nnetworks:'));
  await ok('stack', 'deploy', '-c', withoutFront, 'redo');
  t.regex(await ok('stack', 'services', 'redo'), /redo_front/, 'no --prune: the service stays');
  const pruned = await shoal('stack', 'deploy', '--prune', '-c', withoutFront, 'redo');
  t.is(pruned.code, 0, pruned.stderr);
  t.regex(pruned.stderr, /Removing service redo_front/);
  t.notRegex(await ok('stack', 'services', 'redo'), /redo_front/);
});

test.serial('a stack secret is sealed in etcd, on a tmpfs in its task, read-only, and in no log; a bad file deploys nothing', async (t) => {
  const secret = (await readFile(join(examples, 'secrets', 'db_password.txt'), 'utf8')).trim();
  await ok('stack', 'deploy', '-c', join(examples, 'secrets-configs.yaml'), 'vault');
  t.teardown(() => shoal('stack', 'rm', 'vault').then(() => undefined));
  const record = fixture.lab().record;
  const raw = await run('ip', ['netns', 'exec', record.topology.infraNetns, 'etcdctl', ...etcdctlFlags(record), 'get', '--prefix', '/shoal/v1/secrets/']);
  t.regex(raw, /"sealed":"v1\./, 'etcd holds the secret sealed');
  t.false(raw.includes(secret) || raw.includes(Buffer.from(`${secret}\n`).toString('base64')), 'and neither its text nor its base64');
  t.false((await ok('secret', 'inspect', 'vault_db_password')).includes(secret));

  const [task] = JSON.parse(await ok('service', 'ps', 'vault_app', '--format', 'json')) as Array<{ name: string }>;
  const mounts = await ok('container', 'exec', task!.name, 'grep', '/run/secrets/db_password', '/proc/mounts');
  t.regex(mounts, /^tmpfs \/run\/secrets\/db_password tmpfs ro,/m, 'a read-only tmpfs file');
  t.is((await ok('container', 'exec', task!.name, 'cat', '/run/secrets/db_password')).trim(), secret);
  const removal = await shoal('secret', 'rm', 'vault_db_password');
  t.not(removal.code, 0);
  t.regex(removal.stderr, /in use by service vault_app/);

  // Every log and file the lab wrote, but the task's own tmpfs, is free of it.
  const grep = (...args: string[]) => run('grep', ['-rl', ...args, secret, record.dir]).catch((error: unknown) => (String(error).includes('exit code 1') ? '' : Promise.reject(error)));
  t.regex(await grep(), /\/files\/\d+$/m, 'the search finds it where it is meant to be: the task\'s tmpfs');
  t.is((await grep('--exclude-dir=files')).trim(), '', 'and nowhere else: in no log or file on disk');

  const broken = join(fixture.scratch(), 'broken.yaml');
  await writeFile(broken, 'services:\n  a:\n    image: busybox:1.35.0\n    replicas: 2\n    networks: [nowhere]\n');
  const refused = await shoal('stack', 'deploy', '-c', broken, 'broken');
  t.not(refused.code, 0);
  t.regex(refused.stderr, /broken\.yaml:4:5: "replicas" belongs under deploy:/);
  t.regex(refused.stderr, /broken\.yaml:5:16: network "nowhere" is not declared/);
  t.regex(refused.stderr, /nothing was deployed/);
  t.deepEqual(await leftovers('broken'), []);
});

test.serial('stop_signal and stop_grace_period, capabilities, sysctls, ulimits and max_replicas_per_node reach the tasks', async (t) => {
  const file = join(fixture.scratch(), 'knobs.yaml');
  await writeFile(file, [
    'services:',
    '  k:',
    '    image: busybox:1.35.0',
    // PID 1 is the shell (no init): only SIGQUIT ends it cleanly; SIGTERM would be ignored until SIGKILL (137).
    '    command: ["sh", "-c", "trap \'exit 0\' QUIT; while true; do sleep 1; done"]',
    '    init: false',
    '    stop_signal: SIGQUIT',
    '    stop_grace_period: 20s',
    '    cap_add: [NET_ADMIN]',
    '    cap_drop: [CHOWN]',
    '    sysctls: { net.core.somaxconn: 1024 }',
    '    ulimits: { nofile: { soft: 1000, hard: 2000 } }',
    '    deploy:',
    '      replicas: 3',
    '      placement: { max_replicas_per_node: 1 }',
  ].join('\n'));
  await ok('stack', 'deploy', '-c', file, 'knobs');
  t.teardown(() => shoal('stack', 'rm', 'knobs').then(() => undefined));
  const tasks = JSON.parse(await ok('service', 'ps', 'knobs_k', '--format', 'json')) as Array<{ name: string; node: string }>;
  t.is(new Set(tasks.map((x) => x.node)).size, 3, 'one task per node');
  const inTask = (line: string) => ok('container', 'exec', tasks[0]!.name, 'sh', '-c', line);
  t.is((await inTask('cat /proc/sys/net/core/somaxconn')).trim(), '1024');
  t.regex(await inTask('grep "open files" /proc/1/limits'), /Max open files\s+1000\s+2000/);
  t.regex(await inTask('ip link add probe0 type bridge && echo added'), /added/, 'NET_ADMIN was added');
  t.regex(await inTask('chown 1 /tmp 2>&1 || true'), /Operation not permitted/, 'CHOWN was dropped');

  await ok('service', 'scale', 'knobs_k=4', '--detach');
  const pending = await eventually(20_000, async () => (JSON.parse(await ok('service', 'ps', 'knobs_k', '--format', 'json')) as Array<{ status: { state: string; message: string } }>).find((x) => x.status.state === 'pending'));
  t.regex(pending.value.status.message, /already run 1 of the service's tasks \(max replicas per node\)/);
  await ok('service', 'scale', 'knobs_k=3');

  const started = Date.now();
  await ok('service', 'update', '--force', 'knobs_k');
  const stopped = (JSON.parse(await ok('service', 'ps', 'knobs_k', '--format', 'json')) as Array<{ desiredState: string; status: { state: string; exitCode?: number } }>).filter((x) => x.status.state === 'shutdown');
  t.true(stopped.length >= 3);
  t.true(stopped.every((x) => x.status.exitCode === 0), `the stop signal ended each task cleanly: ${JSON.stringify(stopped.map((x) => x.status.exitCode))}`);
  t.true(Date.now() - started < 20_000, 'no task waited out its grace period');
});

test.serial('a port given as its target alone is published on one the cluster picks, answers from outside, and a redeploy keeps it', async (t) => {
  const file = join(fixture.scratch(), 'picked.yaml');
  await writeFile(file, 'services:\n  web:\n    image: busybox:1.35.0\n    command: httpd -f -p 80 -h /var/www\n    ports: ["80"]\n');
  await ok('stack', 'deploy', '-c', file, 'picked');
  t.teardown(() => shoal('stack', 'rm', 'picked').then(() => undefined));
  const [service] = JSON.parse(await ok('service', 'inspect', 'picked_web')) as ServiceObject[];
  const port = service!.spec.endpoint.ports[0]!.publishedPort;
  t.true(port >= 30_000 && port <= 32_767, `picked ${port}`);
  const infra = fixture.lab().record.topology.infraNetns;
  const page = await eventually(20_000, async () => (await run('ip', ['netns', 'exec', infra, 'busybox', 'wget', '-qO-', `http://198.18.0.3:${port}/`]).catch(() => undefined)));
  t.is(page.value.trim(), 'hello from shoal');
  const again = await shoal('stack', 'deploy', '-c', file, 'picked');
  t.regex(again.stderr, /Service picked_web is up to date/);
  t.regex(await ok('stack', 'services', 'picked'), new RegExp(`\\*:${port}->80/tcp`));
});
