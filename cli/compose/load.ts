/**
 * Reads compose files as the Compose Specification does: YAML 1.2 (so `22:22` stays the
 * string it looks like), anchors, merge keys and `x-*` fields, variables interpolated from
 * the environment and the `.env` file beside the first file, then the files merged in order.
 * Every problem carries its file, line and column, and all of them are reported at once.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, Scalar, visit } from 'yaml';
import { InterpolationError, interpolate, parseDotEnv } from './interpolate.ts';
import { mergeProjects, overrideMark, resetMark } from './merge.ts';
import { readAll } from '../../shared/streams.ts';

export interface ComposeProblem {
  file: string;
  line: number;
  column: number;
  message: string;
}

export interface LoadedCompose {
  /** The merged model, as plain data. */
  model: Record<string, unknown>;
  /** Where each key of the model was last written (`services.web.build`), for positioned problems found later. */
  positions: Map<string, Omit<ComposeProblem, 'message'>>;
  /** The folder of the first file: relative paths in the model are against it. */
  workingDir: string;
  warnings: string[];
  problems: ComposeProblem[];
}

export interface LoadOptions {
  /** The environment variables come from (the process's by default). */
  env?: Readonly<Record<string, string | undefined>>;
  /** A `.env` file to read instead of the one beside the first compose file. */
  envFile?: string;
  /** False: leave `${VAR}` as written (`stack config --skip-interpolation`). */
  interpolate?: boolean;
}

/** `file:line:column: message`, as compilers print it. */
export function formatProblem(problem: ComposeProblem): string {
  return `${problem.file}:${problem.line}:${problem.column}: ${problem.message}`;
}

export async function loadCompose(files: readonly string[], options: LoadOptions = {}): Promise<LoadedCompose> {
  if (files.length === 0) throw new Error('no compose file given: pass -c FILE');
  // "-" is stdin (`cat compose.yaml | shoal stack deploy -c - NAME`): paths in it are against this folder.
  const workingDir = files[0] === '-' ? process.cwd() : dirname(resolve(files[0]!));
  const warnings: string[] = [];
  const problems: ComposeProblem[] = [];
  const env = { ...(await readEnvFile(options.envFile ?? join(workingDir, '.env'), options.envFile !== undefined, warnings, problems)), ...(options.env ?? process.env) };
  const unset = new Set<string>();
  const positions = new Map<string, Omit<ComposeProblem, 'message'>>();
  const models: Array<Record<string, unknown>> = [];
  for (const file of files) {
    const text = await (file === '-' ? readAll(process.stdin).then((b) => b.toString('utf8')) : readFile(file, 'utf8')).catch((error: NodeJS.ErrnoException) => {
      problems.push({ file, line: 1, column: 1, message: error.code === 'ENOENT' ? 'no such file' : `cannot read it: ${error.message}` });
      return undefined;
    });
    if (text === undefined) continue;
    const model = parseOne(file, text, options.interpolate === false ? undefined : env, unset, problems, positions);
    if (model) models.push(model);
  }
  if (unset.size > 0) warnings.push(`${[...unset].sort().map((name) => `"${name}"`).join(', ')} ${unset.size === 1 ? 'is' : 'are'} not set: ${unset.size === 1 ? 'it stands' : 'they stand'} for an empty string`);
  return { model: problems.length > 0 ? {} : mergeProjects(models), positions, workingDir, warnings, problems };
}

async function readEnvFile(path: string, named: boolean, warnings: string[], problems: ComposeProblem[]): Promise<Record<string, string>> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (named || error.code !== 'ENOENT') problems.push({ file: path, line: 1, column: 1, message: error.code === 'ENOENT' ? 'no such env file' : `cannot read it: ${error.message}` });
    return undefined;
  });
  if (text === undefined) return {};
  const { values, badLines } = parseDotEnv(text);
  for (const line of badLines) warnings.push(`${path}:${line}: not a NAME=value line; skipped`);
  return values;
}

/** The key of a position in `LoadedCompose.positions`: the path's parts joined by dots. */
export const positionKey = (path: readonly (string | number)[]) => path.join('.');

/** The nearest place known for a path: a list item's value has none of its own, its key has. */
export function nearestPosition(positions: ReadonlyMap<string, Omit<ComposeProblem, 'message'>>, path: readonly (string | number)[]): Omit<ComposeProblem, 'message'> {
  for (let end = path.length; end >= 0; end--) {
    const pos = positions.get(positionKey(path.slice(0, end)));
    if (pos) return pos;
  }
  return { file: '-', line: 1, column: 1 };
}

/** Where each key and list item of a YAML node was written, by path (`services.web.build`); a merge key's entries are placed where they were written. */
export function recordPositions(
  root: unknown,
  file: string,
  at: (offset: number) => { line: number; col: number },
  positions: Map<string, Omit<ComposeProblem, 'message'>>,
): void {
  const record = (node: unknown, path: Array<string | number>) => {
    if (isMap(node)) {
      for (const item of node.items) {
        const key = isScalar(item.key) ? String(item.key.value) : undefined;
        if (key === undefined) continue;
        const pos = at((item.key as Scalar).range?.[0] ?? 0);
        positions.set(positionKey([...path, key]), { file, line: pos.line, column: pos.col });
        record(item.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => {
        const start = (item as { range?: [number, number, number] } | null)?.range?.[0];
        if (start !== undefined) {
          const pos = at(start);
          positions.set(positionKey([...path, index]), { file, line: pos.line, column: pos.col });
        }
        record(item, [...path, index]);
      });
    }
  };
  record(root, []);
}

function parseOne(
  file: string,
  text: string,
  /** Undefined: values are not interpolated. */
  env: Readonly<Record<string, string | undefined>> | undefined,
  unset: Set<string>,
  problems: ComposeProblem[],
  positions: Map<string, Omit<ComposeProblem, 'message'>>,
): Record<string, unknown> | undefined {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { version: '1.2', merge: true, lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => lineCounter.linePos(offset);
  for (const error of doc.errors) {
    const pos = error.linePos?.[0] ?? at(error.pos[0]);
    problems.push({ file, line: pos.line, column: pos.col, message: error.message.split('\n')[0]! });
  }
  if (doc.errors.length > 0) return undefined;
  // Values are interpolated, keys are not (as compose does); `!reset` and `!override` are marked for the merge.
  visit(doc, {
    Pair(_, pair) {
      if (!isPair(pair)) return;
      const value = pair.value as { tag?: string; range?: [number, number, number] } | null;
      if (value && (value.tag === '!reset' || value.tag === '!override')) {
        const plain = (value as unknown as { toJS: (doc: unknown) => unknown }).toJS(doc);
        pair.value = new Scalar(value.tag === '!reset' ? { [resetMark]: true } : { [overrideMark]: plain });
      }
    },
    Scalar(key, node) {
      if (key === 'key' || typeof node.value !== 'string' || env === undefined) return;
      try {
        const result = interpolate(node.value, env);
        for (const name of result.unset) unset.add(name);
        node.value = result.value;
      } catch (error) {
        if (!(error instanceof InterpolationError)) throw error;
        const pos = at(node.range?.[0] ?? 0);
        problems.push({ file, line: pos.line, column: pos.col, message: `interpolation: ${error.message}` });
      }
    },
  });
  const root = doc.contents;
  if (root === null) return {};
  if (!isMap(root)) {
    const pos = at(root.range?.[0] ?? 0);
    problems.push({ file, line: pos.line, column: pos.col, message: `a compose file is a mapping (services:, networks:, ...), not ${isSeq(root) ? 'a list' : isScalar(root) ? 'a single value' : 'this'}` });
    return undefined;
  }
  recordPositions(root, file, at, positions);
  try {
    return doc.toJS({ maxAliasCount: 10_000 }) as Record<string, unknown>;
  } catch (error) {
    // What only shows when the document is built: a merge key (`<<: *x`) whose source is not a map.
    let offset = 0;
    visit(doc, {
      Pair(_, pair) {
        if (offset || !isScalar(pair.key) || pair.key.source !== '<<') return;
        const source = isAlias(pair.value) ? pair.value.resolve(doc) : pair.value;
        const maps = isSeq(source) ? source.items.map((i) => (isAlias(i) ? i.resolve(doc) : i)) : [source];
        if (!maps.every((m) => isMap(m))) offset = pair.key.range?.[0] ?? 0;
      },
    });
    const pos = at(offset);
    problems.push({ file, line: pos.line, column: pos.col, message: (error as Error).message });
    return undefined;
  }
}
