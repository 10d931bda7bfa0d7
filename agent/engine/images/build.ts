/**
 * `image build`: a Dockerfile run on this node's engine. Each stage starts FROM an image (or
 * scratch, or an earlier stage); RUN runs under runc on the engine's own overlay, COPY and ADD
 * write into a container's root, and each of them keeps the container's changes as one layer;
 * the other instructions change the config. A step whose cache key (its parent, the config it
 * runs with, the instruction, and the digest of the files it copies, as Docker keys its cache)
 * was built before is taken from the cache, so an unchanged rebuild makes no container at all
 * and gives the same image id.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, writeFile } from 'node:fs/promises';
import { join, posix, relative } from 'node:path';
import { minimatch } from 'minimatch';
import { ContainerSpec, type ContainerRecord } from '../../../shared/containers.ts';
import { errors, ShoalError } from '../../../shared/errors.ts';
import { run } from '../../../shared/exec.ts';
import type { Engine } from '../containers/engine.ts';
import { hostPathOf, resolveInContainer, resolveUserIn } from '../containers/files.ts';
import { applyConfigInstruction, execOrShell, flagsOf, type ParsedInstruction, parseDockerfile, type RunConfig } from './dockerfile.ts';
import { ociArchitecture } from './oci.ts';
import type { ImageLayer, ImageRecord, ImageStore } from './store.ts';

export interface BuildOptions {
  /** The Dockerfile's path inside the context. */
  dockerfile: string;
  tags: readonly string[];
  buildArgs: Readonly<Record<string, string>>;
  target?: string;
  noCache: boolean;
}

export type BuildEvent = { phase: 'step' | 'cache' | 'output' | 'done'; detail: string };

interface HistoryStep {
  created: string;
  created_by: string;
  empty_layer?: boolean;
}

/** A stage's image as it grows: its layers, config and history, and the key its next step's cache builds on. */
interface StageState {
  name?: string;
  layers: ImageLayer[];
  config: RunConfig;
  history: HistoryStep[];
  chain: string;
  args: Map<string, string>;
  /** The config beyond `config` (architecture, os, author), from the base image. */
  base: Record<string, unknown>;
}

interface StepIo {
  expand: (text: string) => string;
  where: string;
  cache: Record<string, CacheEntry>;
  context: string;
  stages: StageState[];
  progress: (event: BuildEvent) => void;
}

interface CacheEntry {
  layer?: ImageLayer;
  created: string;
}

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alternative} from `lookup`, as Docker expands them in
 * instructions other than RUN (whose shell does); \$ stays a dollar.
 */
export function expandVariables(text: string, lookup: (name: string) => string | undefined): string {
  return text.replace(/\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (match: string, braced: string | undefined, operator: string | undefined, word: string | undefined, bare: string | undefined) => {
    if (match === '\\$') return '$';
    const value = lookup((braced ?? bare)!);
    if (operator === '-') return value ? value : (word ?? '');
    if (operator === '+') return value ? (word ?? '') : '';
    return value ?? '';
  });
}

/** An instruction's arguments as written, flags included, its continuation lines joined. */
function instructionText(dockerfile: string, instruction: ParsedInstruction): string {
  const range = instruction.node.getRange();
  const lines = dockerfile.split('\n').slice(range.start.line, range.end.line + 1);
  lines[lines.length - 1] = lines.at(-1)!.slice(0, range.end.character);
  lines[0] = lines[0]!.slice(range.start.character);
  return lines.map((line) => line.replace(/\\\s*$/, '').trim()).join(' ').replace(/^\S+\s*/, '');
}

/** FROM's image and its stage's name (`FROM image AS name`), flags left out. */
function fromOperands(instruction: ParsedInstruction): { reference: string; name?: string } {
  const words = (instruction.node.getArgumentsContent() ?? '').trim().split(/\s+/).filter((w) => !w.startsWith('--'));
  const name = words[1]?.toUpperCase() === 'AS' ? words[2]?.toLowerCase() : undefined;
  return { reference: words[0] ?? '', ...(name ? { name } : {}) };
}

/** COPY/ADD's sources and destination, without its flags; the JSON form too. */
function copyOperands(node: ParsedInstruction['node'], expand: (text: string) => string): string[] {
  const form = execOrShell(node);
  const words = form.exec ?? node.getArguments().map((a) => a.getValue()).filter((word) => !word.startsWith('--'));
  return words.map(expand);
}

export class ImageBuilder {
  constructor(
    private readonly engine: Engine,
    private readonly images: ImageStore,
  ) {}

  private get cacheFile(): string {
    return join(this.images.root, 'build-cache.json');
  }

  private async readCache(): Promise<Record<string, CacheEntry>> {
    return JSON.parse(await readFile(this.cacheFile, 'utf8').catch(() => '{}')) as Record<string, CacheEntry>;
  }

  private async saveCache(cache: Record<string, CacheEntry>): Promise<void> {
    await writeFile(`${this.cacheFile}.tmp`, JSON.stringify(cache));
    await rename(`${this.cacheFile}.tmp`, this.cacheFile);
  }

  /** Builds the Dockerfile in `context` (an unpacked directory of the node's) and names the result. */
  async build(context: string, options: BuildOptions, progress: (event: BuildEvent) => void): Promise<ImageRecord> {
    const dockerfilePath = join(context, posix.normalize(options.dockerfile));
    if (relative(context, dockerfilePath).startsWith('..')) throw errors.invalid(`-f ${options.dockerfile} is outside the build context`);
    const text = await readFile(dockerfilePath, 'utf8').catch(() => {
      throw errors.notFound('Dockerfile', options.dockerfile, 'name it with -f, relative to the context');
    });
    const instructions = parseDockerfile(text);
    if (!instructions.some((i) => i.keyword === 'FROM')) throw errors.invalid(`${options.dockerfile}: there is no FROM instruction`);
    const firstFrom = instructions.findIndex((i) => i.keyword === 'FROM');
    const globalArgs = new Map<string, string>();
    for (const instruction of instructions.slice(0, firstFrom)) {
      if (instruction.keyword !== 'ARG') throw errors.invalid(`${options.dockerfile} line ${instruction.line}: only ARG may come before the first FROM`);
      this.declareArg(globalArgs, instruction, options.buildArgs, globalArgs);
    }
    const stagesNames = instructions.filter((i) => i.keyword === 'FROM').map((i) => fromOperands(i).name);
    if (options.target && !stagesNames.includes(options.target.toLowerCase())) {
      throw errors.invalid(`--target ${options.target}: the Dockerfile has no stage of that name`, stagesNames.some(Boolean) ? `its stages: ${stagesNames.filter(Boolean).join(', ')}` : 'name stages with FROM image AS name');
    }
    const cache = options.noCache ? {} : await this.readCache();
    const stages: StageState[] = [];
    let stage: StageState | undefined;
    const total = instructions.length - firstFrom;
    let step = 0;
    for (const instruction of instructions.slice(firstFrom)) {
      step++;
      const where = `${options.dockerfile} line ${instruction.line}`;
      const env = (name: string) => stage?.config.Env?.find((e) => e.startsWith(`${name}=`))?.slice(name.length + 1) ?? stage?.args.get(name) ?? globalArgs.get(name);
      const expand = (value: string) => expandVariables(value, env);
      if (instruction.keyword === 'FROM' && stage && options.target && stage.name === options.target.toLowerCase()) break;
      progress({ phase: 'step', detail: `Step ${step}/${total} : ${instruction.keyword} ${instructionText(text, instruction)}` });
      if (instruction.keyword === 'FROM') {
        if (stage) stages.push(stage);
        stage = await this.from(instruction, stages, (name) => globalArgs.get(name), where);
        progress({ phase: 'cache', detail: ` ---> ${stage.chain.replace(/^sha256:/, '').slice(0, 12)}` });
        continue;
      }
      if (!stage) throw errors.invalid(`${where}: ${instruction.keyword} before FROM`);
      try {
        await this.step(stage, instruction, { expand, where, cache, context, stages, progress, buildArgs: options.buildArgs, globalArgs, written: instructionText(text, instruction) });
      } catch (error) {
        if (error instanceof ShoalError) throw new ShoalError(error.kind, error.code, error.message.startsWith(options.dockerfile) ? error.message : `${where}: ${error.message}`, { hint: error.hint });
        throw error;
      }
    }
    if (stage && !stages.includes(stage)) stages.push(stage);
    const final = options.target ? stages.find((s) => s.name === options.target!.toLowerCase())! : stages.at(-1)!;
    if (!options.noCache) await this.saveCache(cache);
    const image = await this.materialize(final, options.tags);
    progress({ phase: 'done', detail: `Successfully built ${image.id.slice(7, 19)}${options.tags.length ? ` (${options.tags.join(', ')})` : ''}` });
    return image;
  }

  private declareArg(args: Map<string, string>, instruction: ParsedInstruction, buildArgs: Readonly<Record<string, string>>, outer: Map<string, string>): void {
    for (const word of instruction.node.getArguments().map((a) => a.getValue())) {
      const [name, ...rest] = word.split('=');
      const fallback = rest.length ? rest.join('=').replace(/^"(.*)"$/, '$1') : outer.get(name!);
      const value = buildArgs[name!] ?? fallback;
      if (value !== undefined) args.set(name!, value);
      else args.delete(name!);
    }
  }

  /** A stage's start: an image of the store (pulled when missing), an earlier stage, or nothing (scratch). */
  private async from(instruction: ParsedInstruction, stages: StageState[], globalArg: (name: string) => string | undefined, where: string): Promise<StageState> {
    const operands = fromOperands(instruction);
    const reference = expandVariables(operands.reference, globalArg);
    const { name } = operands;
    if (!reference) throw errors.invalid(`${where}: FROM needs an image`);
    const earlier = stages.find((s) => s.name === reference.toLowerCase());
    if (earlier) {
      const { name: _earlierName, ...copied } = structuredClone(earlier);
      return { ...copied, args: new Map(), ...(name ? { name } : {}) };
    }
    if (reference === 'scratch') return { ...(name ? { name } : {}), layers: [], config: {}, history: [], chain: sha('scratch'), args: new Map(), base: { architecture: ociArchitecture(), os: 'linux' } };
    const image = this.images.find(reference) ?? (await this.images.pull(reference));
    const raw = await this.images.rawConfig(image);
    const history = (Array.isArray(raw.history) && raw.history.length ? raw.history : image.layers.map(() => ({ created: '', created_by: '' }))) as HistoryStep[];
    const { config, rootfs: _rootfs, history: _history, ...base } = raw;
    return { ...(name ? { name } : {}), layers: [...image.layers], config: structuredClone((config ?? {}) as RunConfig), history, chain: image.id, args: new Map(), base };
  }

  private async step(
    stage: StageState,
    instruction: ParsedInstruction,
    io: StepIo & { buildArgs: Readonly<Record<string, string>>; globalArgs: Map<string, string>; written: string },
  ): Promise<void> {
    const { keyword } = instruction;
    // As written, flags included (HEALTHCHECK --interval=...).
    const content = io.written;
    if (keyword === 'ARG') {
      // Its value: --build-arg's, else its default, else the one declared before the first FROM.
      this.declareArg(stage.args, instruction, io.buildArgs, io.globalArgs);
      stage.chain = sha(`${stage.chain}\nARG ${content}\n${JSON.stringify([...stage.args])}`);
      return;
    }
    if (keyword === 'MAINTAINER') {
      stage.base.author = content;
      return;
    }
    if (keyword === 'ONBUILD') throw errors.invalid('ONBUILD is not supported: write the steps into the Dockerfile that uses the image');
    if (keyword === 'RUN') return this.runStep(stage, instruction, io);
    if (keyword === 'COPY' || keyword === 'ADD') return this.copyStep(stage, instruction, io);
    // A config instruction: variables expanded (but in the exec forms of CMD and ENTRYPOINT, as Docker), then applied.
    const expanded = keyword === 'CMD' || keyword === 'ENTRYPOINT' || keyword === 'HEALTHCHECK' || keyword === 'SHELL' ? content : io.expand(content);
    const [parsed] = parseDockerfile(`${keyword} ${expanded}`);
    if (!parsed) throw errors.invalid(`${keyword} could not be read`);
    applyConfigInstruction(stage.config, parsed, io.where);
    stage.history.push({ created: new Date(0).toISOString(), created_by: `/bin/sh -c #(nop) ${keyword} ${expanded}`, empty_layer: true });
    stage.chain = sha(`${stage.chain}\n${keyword} ${expanded}`);
  }

  /** The stage as an image of the store (no name unless given): what a step's container runs from. */
  private async materialize(stage: StageState, tags: readonly string[] = []): Promise<ImageRecord> {
    const created = stage.history.at(-1)?.created || new Date(0).toISOString();
    return this.images.addLocal(stage.layers, {
      ...stage.base,
      created,
      config: stage.config,
      rootfs: { type: 'layers', diff_ids: stage.layers.map((l) => l.diffId) },
      history: stage.history,
    }, tags);
  }

  /** A step's outcome from the cache, when its layer is still in the store. */
  private fromCache(stage: StageState, key: string, createdBy: string, io: StepIo): boolean {
    const hit = io.cache[key];
    if (!hit || (hit.layer && !this.images.hasLayer(hit.layer))) return false;
    this.apply(stage, key, createdBy, hit);
    io.progress({ phase: 'cache', detail: ' ---> Using cache' });
    return true;
  }

  private apply(stage: StageState, key: string, createdBy: string, outcome: CacheEntry): void {
    if (outcome.layer) stage.layers.push(outcome.layer);
    stage.history.push({ created: outcome.created, created_by: createdBy, ...(outcome.layer ? {} : { empty_layer: true }) });
    stage.chain = key;
  }

  /** A container of the stage's image for one step; removed after, whatever happens. */
  private async withContainer<T>(stage: StageState, spec: Partial<ContainerSpec>, work: (container: ContainerRecord) => Promise<T>): Promise<T> {
    const image = await this.materialize(stage);
    const container = await this.engine.prepare(ContainerSpec.parse({
      image: image.id,
      name: `build-${randomBytes(6).toString('hex')}`,
      networkMode: 'host',
      init: false,
      labels: { 'shoal.build': 'step' },
      ...spec,
    }));
    try {
      return await work(container);
    } finally {
      await this.engine.remove(container.id, true).catch(() => undefined);
      await this.images.forget(image.id);
    }
  }

  private async runStep(stage: StageState, instruction: ParsedInstruction, io: StepIo): Promise<void> {
    const form = execOrShell(instruction.node);
    const shell = stage.config.Shell ?? ['/bin/sh', '-c'];
    const cmd = form.exec ?? [...shell, form.shell];
    if (cmd.length === 0 || (!form.exec && !form.shell)) throw errors.invalid('RUN needs a command');
    const args = [...stage.args].map(([name, value]) => `${name}=${value}`);
    const createdBy = form.exec ? JSON.stringify(form.exec) : `/bin/sh -c ${form.shell}`;
    const key = sha(`${stage.chain}\nRUN ${JSON.stringify(cmd)}\n${JSON.stringify(stage.config)}\n${JSON.stringify(args)}`);
    if (this.fromCache(stage, key, createdBy, io)) return;
    const outcome = await this.withContainer(stage, {
      entrypoint: [],
      cmd,
      // Build arguments are in RUN's environment, not in the image's config.
      env: [...(stage.config.Env ?? []), ...args],
      ...(stage.config.WorkingDir ? { workdir: stage.config.WorkingDir } : {}),
      ...(stage.config.User ? { user: stage.config.User } : {}),
    }, async (container) => {
      // Started first: the log is read from its start, then followed while the step runs.
      await this.engine.start(container.id);
      const output = this.engine.logs(container.id, { follow: true }, (line) => io.progress({ phase: 'output', detail: line.text }));
      const done = await this.engine.wait(container.id);
      await output.catch(() => undefined);
      if (done.exitCode !== 0) throw new ShoalError('invalid', 'build_step_failed', `RUN ${form.shell} returned a non-zero code: ${done.exitCode}`);
      const layer = await this.engine.changesAsLayer(container);
      return { ...(layer ? { layer: await this.images.addLayer(layer) } : {}), created: new Date().toISOString() };
    });
    io.cache[key] = outcome;
    this.apply(stage, key, createdBy, outcome);
    io.progress({ phase: 'cache', detail: ` ---> ${key.slice(0, 12)}` });
  }

  /**
   * COPY and ADD: sources from the context (or --from a stage or image) into the destination,
   * owned by root or --chown's user; a directory source gives its contents; several sources, or a
   * destination ending in /, go into a directory. ADD also unpacks a local tar archive.
   */
  private async copyStep(stage: StageState, instruction: ParsedInstruction, io: StepIo): Promise<void> {
    const { keyword, node } = instruction;
    const flags = flagsOf(node);
    const operands = copyOperands(node, io.expand);
    if (operands.length < 2) throw errors.invalid(`${keyword} needs a source and a destination`);
    const destinationText = operands.pop()!;
    if (operands.some((source) => /^[a-z]+:\/\//i.test(source))) throw errors.invalid(`${keyword} from a URL is not supported; fetch it with RUN wget in the image`);
    const from = flags.get('from');
    const chown = flags.has('chown') ? io.expand(flags.get('chown')!) : undefined;
    const source = from ? await this.sourceRoot(from, io.stages) : { root: io.context, chain: 'context', release: async () => undefined };
    try {
      const files = await expandSources(source.root, operands);
      const digest = await contentDigest(source.root, files);
      const destination = posix.resolve(stage.config.WorkingDir || '/', destinationText) + (destinationText.endsWith('/') ? '/' : '');
      const createdBy = `/bin/sh -c #(nop) ${keyword} ${flags.size ? `${[...flags].map(([k, v]) => `--${k}=${v}`).join(' ')} ` : ''}${operands.join(' ')} ${destination}`;
      const key = sha(`${stage.chain}\n${createdBy}\n${source.chain}\n${digest}\n${chown ?? ''}`);
      if (this.fromCache(stage, key, createdBy, io)) return;
      const outcome = await this.withContainer(stage, { cmd: ['true'] }, async (container) => {
        const fs = await this.engine.filesystem(container.id);
        const intoDirectory = destinationText.endsWith('/') || files.length > 1 || (files.length === 1 && operands.some((o) => /[*?[]/.test(o)));
        const target = await resolveInContainer(fs, destination, true);
        const targetHost = hostPathOf(fs, target).path;
        const existing = await lstat(targetHost).catch(() => undefined);
        const asDirectory = intoDirectory || existing?.isDirectory() === true;
        if (asDirectory) await mkdir(targetHost, { recursive: true });
        else await mkdir(posix.dirname(targetHost), { recursive: true });
        const owner = chown ? await ownerIn(fs.rootfs, chown) : '0:0';
        for (const file of files) {
          const from = join(source.root, file.path);
          const info = await lstat(from);
          if (keyword === 'ADD' && info.isFile() && /\.(tar|tar\.gz|tgz|tar\.xz|tar\.bz2)$/.test(file.path)) {
            await mkdir(targetHost, { recursive: true });
            await run('tar', ['-x', '-f', from, '-C', targetHost, '--no-same-owner']);
            continue;
          }
          const to = asDirectory ? (info.isDirectory() && !file.fromDirectory ? targetHost : join(targetHost, posix.basename(file.path))) : targetHost;
          if (info.isDirectory()) {
            await mkdir(to, { recursive: true });
            await run('cp', ['-dR', '--preserve=mode,timestamps,links', `${from}/.`, to]);
          } else {
            await run('cp', ['-dR', '--preserve=mode,timestamps,links', '-T', from, to]);
          }
          await run('chown', ['-hR', owner, to]);
        }
        const layer = await this.engine.changesAsLayer(container);
        return { ...(layer ? { layer: await this.images.addLayer(layer) } : {}), created: new Date().toISOString() };
      });
      io.cache[key] = outcome;
      this.apply(stage, key, createdBy, outcome);
      io.progress({ phase: 'cache', detail: ` ---> ${key.slice(0, 12)}` });
    } finally {
      await source.release();
    }
  }

  /** COPY --from: an earlier stage's or an image's root, read through a container that is never started. */
  private async sourceRoot(from: string, stages: StageState[]): Promise<{ root: string; chain: string; release: () => Promise<void> }> {
    const stage = stages.find((s) => s.name === from.toLowerCase()) ?? (/^\d+$/.test(from) ? stages[Number(from)] : undefined);
    const image = stage ? await this.materialize(stage) : (this.images.find(from) ?? (await this.images.pull(from)));
    const container = await this.engine.prepare(ContainerSpec.parse({ image: image.id, name: `build-${randomBytes(6).toString('hex')}`, networkMode: 'host', init: false, cmd: ['true'], labels: { 'shoal.build': 'source' } }));
    const fs = await this.engine.filesystem(container.id);
    return {
      root: fs.rootfs,
      chain: stage?.chain ?? image.id,
      release: async () => {
        await this.engine.remove(container.id, true).catch(() => undefined);
        if (stage) await this.images.forget(image.id);
      },
    };
  }
}

interface SourceFile {
  /** Relative to the source root. */
  path: string;
  /** Found inside a directory a pattern named (copied by name), not named itself. */
  fromDirectory: boolean;
}

/** The files a COPY names: plain paths or patterns (* ? [...]) against the source root, none outside it. */
async function expandSources(root: string, sources: readonly string[]): Promise<SourceFile[]> {
  const found: SourceFile[] = [];
  for (const source of sources) {
    const clean = posix.normalize(source).replace(/^\/+/, '').replace(/\/$/, '') || '.';
    if (clean.startsWith('..')) throw errors.invalid(`${source} is outside the build context`);
    if (/[*?[]/.test(clean)) {
      const dir = posix.dirname(clean);
      const names = await readdir(join(root, dir)).catch(() => [] as string[]);
      const matches = names.filter((name) => minimatch(posix.join(dir, name), clean, { dot: true })).map((name) => posix.join(dir, name));
      if (matches.length === 0) throw errors.notFound('file', source, 'no file of the build context matches it (see .dockerignore)');
      found.push(...matches.map((path) => ({ path, fromDirectory: true })));
      continue;
    }
    if (!(await lstat(join(root, clean)).catch(() => undefined))) throw errors.notFound('file', source, 'it is not in the build context (or .dockerignore leaves it out)');
    found.push({ path: clean, fromDirectory: false });
  }
  return found;
}

/** A digest of the files' names, modes, link targets and contents, walking directories: COPY's cache input. */
async function contentDigest(root: string, files: readonly SourceFile[]): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (path: string): Promise<void> => {
    const full = join(root, path);
    const info = await lstat(full);
    hash.update(`${path}\0${info.mode}\0`);
    if (info.isSymbolicLink()) hash.update(await readlink(full));
    else if (info.isDirectory()) for (const name of (await readdir(full)).sort()) await walk(posix.join(path, name));
    else if (info.isFile()) for await (const chunk of createReadStream(full)) hash.update(chunk as Buffer);
  };
  for (const file of files) await walk(file.path);
  return hash.digest('hex');
}

/** --chown=user[:group] as numbers, names looked up in the image's own /etc/passwd and /etc/group. */
async function ownerIn(rootfs: string, chown: string): Promise<string> {
  try {
    const user = resolveUserIn(rootfs, chown);
    return `${user.uid}:${user.gid}`;
  } catch (error) {
    throw errors.invalid(`--chown=${chown}: ${(error as Error).message}`);
  }
}
