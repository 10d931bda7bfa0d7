/**
 * The compose corpus (test/fixtures/compose/): each file, with its `.override.yaml` laid over
 * it when there is one, read, checked and mapped as `stack deploy` does, compared with the
 * normalised form beside it (`NAME.expected.json`: the service specs, networks, secrets and
 * configs, and what is said). After a deliberate change, write the expected files again with
 * UPDATE_COMPOSE_CORPUS=1 and read the diff.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { checkForCluster } from '../../cli/compose/cluster-fit.ts';
import { loadCompose } from '../../cli/compose/load.ts';
import { planStack } from '../../cli/compose/plan.ts';

const corpus = join(import.meta.dirname, '..', '..', '..', 'test', 'fixtures', 'compose');
/** What the caller's environment holds for the corpus (over its .env). */
const env = { SET: 'from-caller', FROM_CALLER: 'yes', API_KEY: 'k3y', EMPTY: '', INHERITED: 'inherited' };

async function normalised(name: string): Promise<unknown> {
  const files = [join(corpus, `${name}.yaml`), ...(existsSync(join(corpus, `${name}.override.yaml`)) ? [join(corpus, `${name}.override.yaml`)] : [])];
  const loaded = await loadCompose(files, { env });
  const fit = checkForCluster(loaded.model, loaded.positions);
  const plan = await planStack(loaded, 'st', env);
  const result = { services: plan.services, networks: plan.networks, fileObjects: plan.fileObjects, notes: [...fit.notes, ...plan.notes], warnings: loaded.warnings, problems: [...loaded.problems, ...fit.problems, ...plan.problems] };
  // Paths made absolute against the corpus folder read the same on every machine.
  return JSON.parse(JSON.stringify(result).replaceAll(corpus, '<corpus>'));
}

const names = readdirSync(corpus).filter((f) => f.endsWith('.yaml') && !f.endsWith('.override.yaml')).map((f) => f.slice(0, -'.yaml'.length)).sort();

test('the corpus covers every syntax form it is meant to', (t) => {
  t.deepEqual(names, ['deploy', 'environment-labels', 'healthcheck-durations', 'interpolation', 'merge', 'networks', 'ports', 'secrets-configs', 'volumes']);
});

for (const name of names) {
  test(`${name}.yaml maps to its expected normalised form`, async (t) => {
    const actual = await normalised(name);
    const expectedFile = join(corpus, `${name}.expected.json`);
    if (process.env.UPDATE_COMPOSE_CORPUS === '1') await writeFile(expectedFile, `${JSON.stringify(actual, null, 2)}\n`);
    t.deepEqual(actual, JSON.parse(await readFile(expectedFile, 'utf8')));
  });
}
