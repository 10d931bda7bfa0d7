/** Reading compose files: interpolation, .env files, YAML 1.2, merges of several files, and positioned problems. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { InterpolationError, interpolate, parseDotEnv } from '../../cli/compose/interpolate.ts';
import { formatProblem, loadCompose } from '../../cli/compose/load.ts';
import { mergeProjects } from '../../cli/compose/merge.ts';
import { checkForCluster } from '../../cli/compose/cluster-fit.ts';
import { planStack } from '../../cli/compose/plan.ts';

test('every interpolation form of the Compose Specification', (t) => {
  const env = { SET: 'v', EMPTY: '', NESTED: 'n' };
  const cases: Array<[string, string]> = [
    ['$SET', 'v'],
    ['${SET}', 'v'],
    ['a${SET}b$SET.c', 'avbv.c'],
    ['${UNSET:-d}', 'd'],
    ['${EMPTY:-d}', 'd'],
    ['${EMPTY-d}', ''],
    ['${UNSET-d}', 'd'],
    ['${SET:+alt}', 'alt'],
    ['${EMPTY:+alt}', ''],
    ['${EMPTY+alt}', 'alt'],
    ['${UNSET:-${NESTED}x}', 'nx'],
    ['$$SET costs $$5', '$SET costs $5'],
    ['5$ and $1', '5$ and $1'],
  ];
  for (const [text, expected] of cases) t.is(interpolate(text, env).value, expected, text);
  t.deepEqual(interpolate('${A}${B:-x}$C', {}).unset, ['A', 'C'], 'unset names without a default are reported, once each');
  t.throws(() => interpolate('${UNSET:?give it}', env), { instanceOf: InterpolationError, message: 'UNSET: give it' });
  t.throws(() => interpolate('${EMPTY:?}', env), { message: 'EMPTY: is unset or empty' });
  t.is(interpolate('${EMPTY?}', env).value, '', '? alone accepts an empty value');
  t.throws(() => interpolate('${SET', env), { message: /without its closing/ });
  t.throws(() => interpolate('${9x}', env), { message: /variable name/ });
});

test('a .env file: export, comments, both quotes, and the lines that are not assignments', (t) => {
  const { values, badLines } = parseDotEnv(['# comment', 'A=1', 'export B = two words # note', "C='$literal # kept'", 'D="line\\nnext \\"q\\""', '', 'not an assignment', 'E='].join('\n'));
  t.deepEqual(values, { A: '1', B: 'two words', C: '$literal # kept', D: 'line\nnext "q"', E: '' });
  t.deepEqual(badLines, [7]);
});

test('merges follow the specification: maps merged, sequences appended, commands replaced, unique keys and names merged, !reset and !override', (t) => {
  const base = {
    services: {
      web: {
        image: 'a',
        command: ['x', '1'],
        ports: ['8080:80', { target: 443, published: 8443 }],
        volumes: ['data:/data', '/cache'],
        environment: ['A=1', 'B=2'],
        networks: ['front'],
        dns: ['198.18.0.1'],
        healthcheck: { test: ['CMD', 'true'], interval: '5s' },
        labels: { keep: 'yes' },
      },
    },
  };
  const over = {
    services: {
      web: {
        command: ['y'],
        ports: ['8080:80', '9090:90/udp'],
        volumes: ['other:/data'],
        environment: { B: '3', C: '4' },
        networks: { back: { aliases: ['w'] } },
        dns: ['198.18.0.2'],
        healthcheck: { test: ['CMD', 'false'] },
        labels: { __compose_reset__: true },
        image: { __compose_override__: 'b' },
      },
    },
  };
  t.deepEqual(mergeProjects([base, over]), {
    services: {
      web: {
        image: 'b',
        command: ['y'],
        ports: ['8080:80', { target: 443, published: 8443 }, '9090:90/udp'],
        volumes: ['other:/data', '/cache'],
        environment: { A: '1', B: '3', C: '4' },
        networks: { front: null, back: { aliases: ['w'] } },
        dns: ['198.18.0.1', '198.18.0.2'],
        healthcheck: { test: ['CMD', 'false'], interval: '5s' },
      },
    },
  });
});

async function scratch(t: ExecutionContext, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-compose-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

test('files load as YAML 1.2 with anchors, merge keys and x- fields, interpolated from the .env beside the first', async (t) => {
  const dir = await scratch(t, {
    '.env': 'TAG=1.35.0\n',
    'compose.yaml': [
      'x-base: &base',
      '  restart: always',
      'services:',
      '  web:',
      '    <<: *base',
      '    image: busybox:${TAG}',
      '    ports: [22:22, 8080:80]',
      '    environment: { ON: yes, MISSING: "${NOPE}" }',
    ].join('\n'),
  });
  const loaded = await loadCompose([join(dir, 'compose.yaml')], { env: {} });
  t.deepEqual(loaded.problems, []);
  const web = (loaded.model.services as Record<string, Record<string, unknown>>).web!;
  t.is(web.image, 'busybox:1.35.0');
  t.is(web.restart, 'always');
  t.deepEqual(web.ports, ['22:22', '8080:80'], 'YAML 1.2: 22:22 is a string, not 1342 as base 60');
  t.deepEqual(web.environment, { ON: 'yes', MISSING: '' }, 'YAML 1.2: yes is a string');
  t.deepEqual(loaded.warnings, ['"NOPE" is not set: it stands for an empty string']);
});

test('every problem of every file comes at once, with its file, line and column', async (t) => {
  const dir = await scratch(t, {
    'a.yaml': 'services:\n  web:\n    image: ${IMAGE:?say which image}\n',
    'b.yaml': 'services:\n  web:\n    ports: [8080:80\n',
    'c.yaml': '- just\n- a list\n',
  });
  const loaded = await loadCompose(['a.yaml', 'b.yaml', 'c.yaml', 'missing.yaml'].map((f) => join(dir, f)), { env: {} });
  const lines = loaded.problems.map((p) => formatProblem(p).replace(dir, 'DIR'));
  t.deepEqual(lines.map((l) => l.split(': ')[0]), ['DIR/a.yaml:3:12', 'DIR/b.yaml:4:1', 'DIR/c.yaml:1:1', 'DIR/missing.yaml:1:1']);
  t.regex(lines[0]!, /IMAGE: say which image/);
  t.regex(lines[2]!, /a compose file is a mapping/);
  t.regex(lines[3]!, /no such file/);
});

test('mutated compose files never crash the loader: each loads or gives positioned problems', async (t) => {
  const dir = await scratch(t, {});
  const base = 'services:\n  web:\n    image: busybox:${TAG:-1.35.0}\n    ports: ["8080:80"]\n    environment: [A=1]\nnetworks:\n  front: {}\n';
  const file = join(dir, 'compose.yaml');
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: base.length }), fc.integer({ min: 0, max: 5 }), fc.string({ maxLength: 6 }), async (at, cut, insert) => {
      await writeFile(file, base.slice(0, at) + insert + base.slice(at + cut));
      const loaded = await loadCompose([file], { env: {} });
      return loaded.problems.every((p) => p.line >= 1 && p.column >= 1 && p.message.length > 0);
    }),
    { numRuns: 200 },
  );
  t.pass();
});

test('a merge key whose source is not a map is a problem at that key, not a crash', async (t) => {
  const dir = await scratch(t, { 'compose.yaml': 'x-list: &list [1, 2]\nservices:\n  web:\n    image: busybox\n    <<: *list\n' });
  const loaded = await loadCompose([join(dir, 'compose.yaml')], { env: {} });
  t.deepEqual(loaded.problems.map((p) => `${p.line}:${p.column}: ${p.message}`), ['5:5: Merge sources must be maps or map aliases']);
});

test('mutated examples never crash the whole reading (load, cluster check, mapping): each deploys or gives positioned problems', async (t) => {
  const dir = await scratch(t, {});
  const examples = join(import.meta.dirname, '..', '..', '..', 'compose-examples');
  const bases = await Promise.all(['web-api-data.yaml', 'placement-resources.yaml', 'update-rollback.yaml'].map((f) => readFile(join(examples, f), 'utf8')));
  const file = join(dir, 'compose.yaml');
  let mapped = 0;
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...bases), fc.nat(), fc.integer({ min: 0, max: 8 }), fc.string({ maxLength: 8 }), async (base, where, cut, insert) => {
      const at = where % (base.length + 1);
      await writeFile(file, base.slice(0, at) + insert + base.slice(at + cut));
      const loaded = await loadCompose([file], { env: {} });
      const fit = loaded.problems.length === 0 ? checkForCluster(loaded.model, loaded.positions) : { notes: [], problems: [] };
      const plan = loaded.problems.length === 0 ? await planStack(loaded, 'fuzz', {}) : { problems: [], services: [] };
      const problems = [...loaded.problems, ...fit.problems, ...plan.problems];
      if (problems.length === 0) mapped++;
      return problems.every((p) => p.line >= 1 && p.column >= 1 && p.message.length > 0) && (problems.length > 0 || plan.services.length > 0);
    }),
    { numRuns: 300 },
  );
  t.true(mapped > 0, 'some mutations still map: the property saw both outcomes');
});

test('what a cluster cannot do is said once per service; unknown and misplaced keys and build without image are positioned errors', async (t) => {
  const dir = await scratch(t, {
    'compose.yaml': [
      'services:',
      '  web:',
      '    image: busybox',
      '    replicas: 3',
      '    container_name: w',
      '    depends_on: [db]',
      '    x-note: fine',
      '  db:',
      '    build: ./db',
      'frobnicate: true',
    ].join('\n'),
  });
  const loaded = await loadCompose([join(dir, 'compose.yaml')], { env: {} });
  const fit = checkForCluster(loaded.model, loaded.positions);
  t.deepEqual(fit.notes, ['service "web": container_name (ignored: tasks are named STACK_SERVICE.SLOT.ID); depends_on (services start together; use healthchecks)']);
  t.deepEqual(
    fit.problems.map((p) => formatProblem(p).replace(dir, 'DIR')),
    [
      'DIR/compose.yaml:10:1: "frobnicate" is not a top-level key of the Compose Specification (services, networks, volumes, secrets, configs, name, x-...)',
      'DIR/compose.yaml:4:5: "replicas" belongs under deploy: (deploy: { replicas: ... })',
      'DIR/compose.yaml:9:5: service "db" has build: but no image: a cluster pulls images; build and push it (shoal image push), then set image:',
    ],
  );
});
