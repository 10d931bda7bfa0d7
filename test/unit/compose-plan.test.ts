/**
 * Compose models as Shoal's objects: every short and long syntax of the keys a stack maps,
 * names scoped by the stack, what a cluster does not do said once, and wrong values as
 * problems at their file, line and column.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { loadCompose, formatProblem } from '../../cli/compose/load.ts';
import { checkForCluster } from '../../cli/compose/cluster-fit.ts';
import { planStack, type StackPlan } from '../../cli/compose/plan.ts';
import type { ServiceSpec } from '../../shared/services.ts';

async function plan(t: ExecutionContext, text: string, options: { env?: Record<string, string>; files?: Record<string, string> } = {}): Promise<StackPlan & { dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-plan-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'compose.yaml'), text);
  for (const [name, content] of Object.entries(options.files ?? {})) await writeFile(join(dir, name), content);
  const loaded = await loadCompose([join(dir, 'compose.yaml')], { env: options.env ?? {} });
  t.deepEqual(loaded.problems, [], 'the file loads');
  return { ...(await planStack(loaded, 'st', options.env ?? {})), dir };
}

const service = (p: StackPlan, name: string): ServiceSpec => {
  const found = p.services.find((s) => s.name === `st_${name}`);
  if (!found) throw new Error(`no service st_${name} in ${JSON.stringify(p.problems)}`);
  return found;
};

test('names are scoped by the stack, labelled, and a service without networks joins NAME_default under its short name', async (t) => {
  const p = await plan(t, 'services:\n  web:\n    image: busybox\n    labels: [tier=front]\n    deploy:\n      labels:\n        owner: me\n');
  const web = service(p, 'web');
  t.deepEqual(web.labels, { owner: 'me', 'com.docker.stack.namespace': 'st' });
  t.deepEqual(web.container.labels, { tier: 'front', 'com.docker.stack.namespace': 'st' });
  t.deepEqual(web.container.networks, ['st_default']);
  t.deepEqual(web.container.aliases, { st_default: ['web'] });
  t.is(p.networks.length, 1);
  t.like(p.networks[0]!.spec, { name: 'st_default', driver: 'overlay', labels: { 'com.docker.stack.namespace': 'st' } });
  t.deepEqual(p.problems, []);
});

test('ports in every syntax: short, udp, ranges, an address, long form with mode; a target alone is published on a port the cluster picks', async (t) => {
  const p = await plan(t, [
    'services:',
    '  web:',
    '    image: busybox',
    '    ports:',
    '      - "8080:80"',
    '      - "5353:53/udp"',
    '      - "9000-9001:7000-7001"',
    '      - "198.18.0.1:8443:443"',
    '      - target: 22',
    '        published: 2222',
    '        mode: host',
    '      - "3000"',
    '      - 4000/udp',
    '      - target: 5000',
    '      - target: 6000',
    '        mode: host',
  ].join('\n'));
  const ports = service(p, 'web').endpoint.ports.map((x) => `${x.publishedPort}:${x.targetPort}/${x.protocol}/${x.mode}`);
  t.deepEqual(ports, [
    '8080:80/tcp/ingress', '5353:53/udp/ingress', '9000:7000/tcp/ingress', '9001:7001/tcp/ingress', '8443:443/tcp/ingress', '2222:22/tcp/host',
    '0:3000/tcp/ingress', '0:4000/udp/ingress', '0:5000/tcp/ingress',
  ], '0: the cluster picks the published port');
  const note = p.notes.join('\n');
  t.regex(note, /198\.18\.0\.1 is ignored/);
  t.regex(note, /ports 6000 in host mode \(not published: a host-mode port needs its published port/);
  t.notRegex(note, /3000|4000|5000/);
});

test('volumes: a relative bind made absolute against the file, named volumes scoped, external ones not, anonymous, tmpfs, long form read_only', async (t) => {
  const p = await plan(t, [
    'services:',
    '  db:',
    '    image: busybox',
    '    volumes:',
    '      - ./conf:/etc/conf:ro',
    '      - data:/var/lib/data',
    '      - shared:/shared',
    '      - /scratch',
    '      - type: tmpfs',
    '        target: /run',
    '        tmpfs: { size: 64m }',
    '      - type: bind',
    '        source: /srv',
    '        target: /srv',
    '        read_only: true',
    '      - type: volume',
    '        source: data',
    '        target: /backup',
    '    tmpfs: /tmp:size=1m',
    'volumes:',
    '  data:',
    '  shared:',
    '    external: true',
  ].join('\n'));
  t.deepEqual(service(p, 'db').container.mounts, [
    { type: 'bind', source: join(p.dir, 'conf'), target: '/etc/conf', readOnly: true },
    { type: 'volume', source: 'st_data', target: '/var/lib/data', readOnly: false },
    { type: 'volume', source: 'shared', target: '/shared', readOnly: false },
    { type: 'volume', source: 'st_db_scratch', target: '/scratch', readOnly: false },
    { type: 'tmpfs', target: '/run', sizeBytes: 64 * 1024 * 1024 },
    { type: 'bind', source: '/srv', target: '/srv', readOnly: true },
    { type: 'volume', source: 'st_data', target: '/backup', readOnly: false },
    { type: 'tmpfs', target: '/tmp', sizeBytes: 1024 * 1024 },
  ]);
  t.regex(p.notes.join('\n'), /anonymous volume/);
});

test('networks as a list or a map, with aliases; ipv4_address is said; declared options reach the network', async (t) => {
  const p = await plan(t, [
    'services:',
    '  a:',
    '    image: busybox',
    '    networks: [front, back]',
    '  b:',
    '    image: busybox',
    '    networks:',
    '      back:',
    '        aliases: [database]',
    '        ipv4_address: 198.19.5.9',
    'networks:',
    '  front:',
    '    attachable: true',
    '    driver_opts: { mtu: 1400 }',
    '  back:',
    '    internal: true',
    '    ipam:',
    '      config:',
    '        - subnet: 198.19.5.0/24',
    '          gateway: 198.19.5.1',
  ].join('\n'));
  t.deepEqual(service(p, 'a').container.networks, ['st_front', 'st_back']);
  t.deepEqual(service(p, 'b').container.aliases, { st_back: ['b', 'database'] });
  const front = p.networks.find((n) => n.key === 'front')!.spec!;
  const back = p.networks.find((n) => n.key === 'back')!.spec!;
  t.like(front, { attachable: true, options: { mtu: '1400' } });
  t.like(back, { internal: true, ipam: { pools: [{ subnet: '198.19.5.0/24', gateway: '198.19.5.1' }] } });
  t.regex(p.notes.join('\n'), /ipv4_address \(ignored/);
  t.false(p.networks.some((n) => n.key === 'default'), 'no default network when every service names its own');
});

test('environment as a list or a map, env_file under it, a bare name taken from the caller; command and entrypoint in both forms', async (t) => {
  const p = await plan(t, [
    'services:',
    '  a:',
    '    image: busybox',
    '    env_file: a.env',
    '    environment: [A=1, FROM_CALLER, UNSET_ONE]',
    '    command: sh -c "echo hi"',
    '    entrypoint: ["/bin/init", "--"]',
    '  b:',
    '    image: busybox',
    '    environment:',
    '      N: 5',
    '      T: true',
    '      E:',
    '    user: 1000',
  ].join('\n'), { env: { FROM_CALLER: 'yes' }, files: { 'a.env': 'A=0\nFILE=f\n' } });
  const a = service(p, 'a');
  t.deepEqual(a.container.env, ['A=1', 'FILE=f', 'FROM_CALLER=yes']);
  t.deepEqual(a.container.cmd, ['sh', '-c', 'echo hi']);
  t.deepEqual(a.container.entrypoint, ['/bin/init', '--']);
  const b = service(p, 'b');
  t.deepEqual(b.container.env, ['N=5', 'T=true']);
  t.is(b.container.user, '1000');
});

test('healthcheck in its CMD, CMD-SHELL, string and NONE forms, with compose durations', async (t) => {
  const p = await plan(t, [
    'services:',
    '  a: { image: busybox, healthcheck: { test: [CMD, wget, -q, http://x/], interval: 1m30s, timeout: 500ms, retries: 2, start_period: 1s } }',
    '  b: { image: busybox, healthcheck: { test: [CMD-SHELL, "test -f /ok"] } }',
    '  c: { image: busybox, healthcheck: { test: "test -f /ok" } }',
    '  d: { image: busybox, healthcheck: { test: [NONE] } }',
    '  e: { image: busybox, healthcheck: { disable: true } }',
  ].join('\n'));
  t.deepEqual(service(p, 'a').container.healthcheck, { cmd: ['wget', '-q', 'http://x/'], intervalMs: 90_000, timeoutMs: 500, retries: 2, startPeriodMs: 1000 });
  t.deepEqual(service(p, 'b').container.healthcheck?.cmd, ['sh', '-c', 'test -f /ok']);
  t.deepEqual(service(p, 'c').container.healthcheck?.cmd, ['sh', '-c', 'test -f /ok']);
  t.deepEqual(service(p, 'd').container.healthcheck?.cmd, []);
  t.deepEqual(service(p, 'e').container.healthcheck?.cmd, []);
});

test('deploy: mode, replicas, resources, placement, restart, update and rollback settings, endpoint mode; restart: maps when restart_policy is absent', async (t) => {
  const p = await plan(t, [
    'services:',
    '  a:',
    '    image: busybox',
    '    deploy:',
    '      replicas: "${N:-3}"',
    '      endpoint_mode: dnsrr',
    '      resources:',
    '        limits: { cpus: "0.5", memory: 512M, pids: 100 }',
    '        reservations: { cpus: 0.25, memory: 64M }',
    '      placement:',
    '        constraints: [node.role == manager]',
    '        preferences: [{ spread: node.labels.zone }]',
    '        max_replicas_per_node: 2',
    '      restart_policy: { condition: on-failure, delay: 2s, max_attempts: 3, window: 1m }',
    '      update_config: { parallelism: 2, delay: 1s, failure_action: rollback, monitor: 10s, max_failure_ratio: 0.5, order: start-first }',
    '      rollback_config: { parallelism: 0 }',
    '  b: { image: busybox, restart: unless-stopped, deploy: { mode: global } }',
    '  c: { image: busybox, restart: "on-failure:4" }',
    '  d: { image: busybox, restart: "no" }',
  ].join('\n'));
  const a = service(p, 'a');
  t.is(a.replicas, 3);
  t.is(a.endpoint.mode, 'dnsrr');
  t.like(a.container.resources, { nanoCpus: 5e8, memoryBytes: 512 * 1024 ** 2, pidsLimit: 100 });
  t.deepEqual(a.reservations, { nanoCpus: 2.5e8, memoryBytes: 64 * 1024 ** 2 });
  t.deepEqual(a.placement, { constraints: ['node.role == manager'], preferences: ['spread=node.labels.zone'], maxReplicas: 2 });
  t.deepEqual(a.restartPolicy, { condition: 'on-failure', delayMs: 2000, maxAttempts: 3, windowMs: 60_000 });
  t.deepEqual(a.update, { parallelism: 2, delayMs: 1000, failureAction: 'rollback', monitorMs: 10_000, maxFailureRatio: 0.5, order: 'start-first' });
  t.is(a.rollback.parallelism, 0);
  t.is(service(p, 'b').mode, 'global');
  t.is(service(p, 'b').restartPolicy.condition, 'any');
  t.like(service(p, 'c').restartPolicy, { condition: 'on-failure', maxAttempts: 4 });
  t.is(service(p, 'd').restartPolicy.condition, 'none');
});

test('stop_grace_period, stop_signal, capabilities, sysctls and ulimits in both syntaxes reach the task', async (t) => {
  const p = await plan(t, [
    'services:',
    '  a:',
    '    image: busybox',
    '    stop_grace_period: 1m30s',
    '    stop_signal: SIGQUIT',
    '    cap_add: [NET_ADMIN]',
    '    cap_drop: [MKNOD]',
    '    sysctls: [net.core.somaxconn=1024]',
    '    ulimits:',
    '      nproc: 65535',
    '      nofile: { soft: 20000, hard: 40000 }',
    '  b:',
    '    image: busybox',
    '    sysctls:',
    '      net.ipv4.tcp_syncookies: 0',
  ].join('\n'));
  t.like(service(p, 'a').container, { stopGracePeriodMs: 90_000, stopSignal: 'SIGQUIT', capAdd: ['NET_ADMIN'], capDrop: ['MKNOD'], sysctls: { 'net.core.somaxconn': '1024' } });
  t.deepEqual(service(p, 'a').container.ulimits, [{ name: 'nproc', soft: 65535, hard: 65535 }, { name: 'nofile', soft: 20000, hard: 40000 }]);
  t.deepEqual(service(p, 'b').container.sysctls, { 'net.ipv4.tcp_syncookies': '0' });
  t.deepEqual(p.notes, [], 'nothing of these is left unsaid or undone');
});

test('wrong values, undeclared references and unknown deploy keys are problems at their line and column, all at once', async (t) => {
  const p = await plan(t, [
    'services:',
    '  a:',
    '    image: busybox',
    '    read_only: maybe',
    '    networks: [nowhere]',
    '    volumes: ["data:/d"]',
    '    depends_on: [ghost]',
    '    deploy:',
    '      replicas: many',
    '      replica: 2',
  ].join('\n'));
  t.deepEqual(p.services, []);
  const lines = p.problems.map((x) => formatProblem(x).replace(/^.*compose\.yaml:/, ''));
  t.true(lines.some((l) => /^4:5: .*read_only: expected true or false/.test(l)), lines.join('\n'));
  t.true(lines.some((l) => /^9:7: .*replicas: expected a whole number/.test(l)), lines.join('\n'));
  t.true(lines.some((l) => /^10:7: "replica" is not a key of deploy:/.test(l)), lines.join('\n'));

  const clash = await plan(t, ['services:', '  a: { image: busybox, ports: ["8080:80"] }', '  b:', '    image: busybox', '    ports: ["8080:81"]'].join('\n'));
  t.deepEqual(clash.problems.map((x) => formatProblem(x).replace(/^.*compose\.yaml:/, '')), ['5:5: port 8080/tcp is published by service "a" too; give one of them another published port']);

  const q = await plan(t, ['services:', '  a:', '    image: busybox', '    networks: [nowhere]', '    volumes: ["data:/d"]', '    depends_on: [ghost]'].join('\n'));
  const more = q.problems.map((x) => formatProblem(x).replace(/^.*compose\.yaml:/, ''));
  t.deepEqual(more.sort(), [
    '4:16: network "nowhere" is not declared under the top-level networks:',
    '5:15: volume "data" is not declared under the top-level volumes: (a bind mount\'s source starts with /, ./ or ~)',
    '6:18: depends_on: "ghost" is not a service of this file',
  ].sort());
});

test('a stack name that cannot prefix service names is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-plan-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'c.yaml'), 'services:\n  a:\n    image: busybox\n');
  const loaded = await loadCompose([join(dir, 'c.yaml')], { env: {} });
  const p = await planStack(loaded, 'bad.name', {});
  t.regex(p.problems[0]!.message, /not a stack name/);
});

test('every file in compose-examples/ maps onto services with no problem', async (t) => {
  const folder = join(import.meta.dirname, '..', '..', '..', 'compose-examples');
  const files = (await readdir(folder)).filter((f) => f.endsWith('.yaml'));
  t.true(files.length >= 4);
  for (const file of files) {
    const loaded = await loadCompose([join(folder, file)], { env: {} });
    t.deepEqual([...loaded.problems, ...checkForCluster(loaded.model, loaded.positions).problems], [], file);
    const p = await planStack(loaded, 'ex', {});
    t.deepEqual(p.problems, [], file);
    t.true(p.services.length > 0, file);
  }
});
