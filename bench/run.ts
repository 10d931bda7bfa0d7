/** Runs every benchmark in bench/ (files named *.bench) and writes bench/results/NAME.json. */
import '../shared/node-version.ts';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const compiledDir = fileURLToPath(new URL('.', import.meta.url));
const resultsDir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const only = process.argv.slice(2);

await mkdir(resultsDir, { recursive: true });
const files = (await readdir(compiledDir)).filter((f) => f.endsWith('.bench.js')).sort();
let failed = 0;
for (const file of files) {
  const name = file.replace(/\.bench\.js$/, '');
  if (only.length && !only.includes(name)) continue;
  process.stderr.write(`bench ${name} ...\n`);
  try {
    const module = (await import(new URL(file, import.meta.url).href)) as { default: () => Promise<Record<string, unknown>> };
    const started = Date.now();
    const result = { name, ranAt: new Date().toISOString(), node: process.version, ...(await module.default()), durationMs: Date.now() - started };
    const path = `${resultsDir}${name}.json`;
    await writeFile(path, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\nwrote ${path}\n`);
  } catch (error) {
    failed++;
    process.stderr.write(`bench ${name} failed: ${(error as Error).stack}\n`);
  }
}
process.exit(failed ? 1 : 0);
