/**
 * Dockerfile instructions, parsed by dockerfile-ast (the parser of the Dockerfile language
 * server: line-precise ranges, escapes, line continuations, ENV/LABEL properties, flags), and
 * the instructions that only change an image's config, applied as Docker applies them. Used by
 * `image import --change`, `container commit --change` and builds.
 */
import { type Instruction, DockerfileParser } from 'dockerfile-ast';
import { posix } from 'node:path';
import { errors } from '../../../shared/errors.ts';

/** The `config` object of an OCI image config, as Docker writes it. */
export interface RunConfig {
  User?: string;
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  StopSignal?: string;
  Healthcheck?: { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number };
  Shell?: string[];
  [key: string]: unknown;
}

export interface ParsedInstruction {
  keyword: string;
  /** 1-based, for messages. */
  line: number;
  node: Instruction;
}

export function parseDockerfile(text: string): ParsedInstruction[] {
  return DockerfileParser.parse(text).getInstructions().map((node) => ({ keyword: node.getKeyword().toUpperCase(), line: node.getRange().start.line + 1, node }));
}

/** An instruction's arguments as written (continuations joined), or the exec form's strings when it is a JSON array. */
export function execOrShell(node: Instruction): { exec?: string[]; shell: string } {
  const content = (node.getArgumentsContent() ?? '').trim();
  if (content.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(content);
      if (Array.isArray(parsed) && parsed.every((p) => typeof p === 'string')) return { exec: parsed as string[], shell: content };
    } catch {
      // Not JSON: Docker takes it as the shell form.
    }
  }
  return { shell: content };
}

/** Keywords that only change the config (no filesystem, no build state). */
export const configKeywords = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR', 'HEALTHCHECK', 'SHELL'] as const;

/** Docker's durations in HEALTHCHECK flags (30s, 1m30s, 500ms) in nanoseconds. */
export function durationNs(text: string, flag: string): number {
  const units: Record<string, number> = { ns: 1, us: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw errors.invalid(`--${flag}=${text} is not a duration; write it like 30s or 1m30s`);
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * units[p[2]!]!, 0));
}

/** An instruction's flags (COPY --from=..., HEALTHCHECK --interval=...), by name. */
export function flagsOf(node: Instruction): Map<string, string> {
  const withFlags = node as Instruction & { getFlags?: () => Array<{ getName(): string; getValue(): string | null }> };
  return new Map((withFlags.getFlags?.() ?? []).map((flag) => [flag.getName(), flag.getValue() ?? '']));
}

function propertiesOf(node: Instruction): Array<[string, string]> {
  const withProperties = node as Instruction & { getProperties?: () => Array<{ getName(): string; getValue(): string | null }> };
  return (withProperties.getProperties?.() ?? []).map((p) => [p.getName(), p.getValue() ?? '']);
}

/**
 * Applies a config-only instruction to `config` (in place). `where` prefixes errors ("line 4"
 * or "--change").
 */
export function applyConfigInstruction(config: RunConfig, instruction: ParsedInstruction, where: string): void {
  const { keyword, node } = instruction;
  const fail = (message: string) => errors.invalid(`${where}: ${keyword} ${message}`);
  const args = node.getArguments().map((a) => a.getValue());
  const shell = config.Shell ?? ['/bin/sh', '-c'];
  switch (keyword) {
    case 'CMD':
    case 'ENTRYPOINT': {
      const form = execOrShell(node);
      const value = form.exec ?? [...shell, form.shell];
      if (keyword === 'CMD') config.Cmd = value;
      else {
        config.Entrypoint = value;
        // As Docker: a new ENTRYPOINT drops the CMD inherited with it.
        config.Cmd = null;
      }
      return;
    }
    case 'ENV': {
      const env = new Map((config.Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
      const properties = propertiesOf(node);
      if (properties.length === 0) throw fail('needs NAME=value');
      for (const [name, value] of properties) env.set(name, value);
      config.Env = [...env].map(([name, value]) => `${name}=${value}`);
      return;
    }
    case 'LABEL': {
      const properties = propertiesOf(node);
      if (properties.length === 0) throw fail('needs key=value');
      config.Labels = { ...config.Labels, ...Object.fromEntries(properties) };
      return;
    }
    case 'EXPOSE': {
      if (args.length === 0) throw fail('needs a port');
      for (const port of args) {
        const match = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(port);
        if (!match) throw fail(`"${port}" is not a port; write it like 80 or 53/udp`);
        config.ExposedPorts = { ...config.ExposedPorts, [`${match[1]}${match[2] ? `-${match[2]}` : ''}/${(match[3] ?? 'tcp').toLowerCase()}`]: {} };
      }
      return;
    }
    case 'STOPSIGNAL':
    case 'USER': {
      if (args.length !== 1) throw fail('takes one argument');
      if (keyword === 'USER') config.User = args[0]!;
      else config.StopSignal = args[0]!;
      return;
    }
    case 'VOLUME': {
      const form = execOrShell(node);
      const paths = form.exec ?? args;
      if (paths.length === 0) throw fail('needs a path');
      config.Volumes = { ...config.Volumes, ...Object.fromEntries(paths.map((p) => [p, {}])) };
      return;
    }
    case 'WORKDIR': {
      const dir = (node.getArgumentsContent() ?? '').trim();
      if (!dir) throw fail('needs a directory');
      config.WorkingDir = posix.resolve(config.WorkingDir || '/', dir);
      return;
    }
    case 'SHELL': {
      const form = execOrShell(node);
      if (!form.exec || form.exec.length === 0) throw fail('takes the JSON form: SHELL ["/bin/sh", "-c"]');
      config.Shell = form.exec;
      return;
    }
    case 'HEALTHCHECK': {
      const flags = flagsOf(node);
      const words = args.filter((a) => !a.startsWith('--'));
      if (words[0]?.toUpperCase() === 'NONE') {
        config.Healthcheck = { Test: ['NONE'] };
        return;
      }
      if (words[0]?.toUpperCase() !== 'CMD') throw fail('is HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE');
      const content = (node.getArgumentsContent() ?? '').replace(/^(\s*--\S+\s+)*/, '').trim().replace(/^CMD\s+/i, '');
      let test: string[] = ['CMD-SHELL', content];
      if (content.startsWith('[')) {
        try {
          const parsed: unknown = JSON.parse(content);
          if (Array.isArray(parsed)) test = ['CMD', ...(parsed as string[])];
        } catch {
          // the shell form
        }
      }
      const retries = flags.has('retries') ? Number(flags.get('retries')) : undefined;
      if (retries !== undefined && !(Number.isInteger(retries) && retries > 0)) throw fail(`--retries=${flags.get('retries')} is not a positive number`);
      config.Healthcheck = {
        Test: test,
        ...(flags.has('interval') ? { Interval: durationNs(flags.get('interval')!, 'interval') } : {}),
        ...(flags.has('timeout') ? { Timeout: durationNs(flags.get('timeout')!, 'timeout') } : {}),
        ...(flags.has('start-period') ? { StartPeriod: durationNs(flags.get('start-period')!, 'start-period') } : {}),
        ...(retries !== undefined ? { Retries: retries } : {}),
      };
      return;
    }
    default:
      throw errors.invalid(`${where}: ${keyword} cannot be applied here; the config takes ${configKeywords.join(', ')}`);
  }
}

/** `--change` lines (import, commit) applied to a config, each one instruction. */
export function applyChanges(config: RunConfig, changes: readonly string[]): RunConfig {
  const next: RunConfig = structuredClone(config);
  for (const change of changes) {
    const parsed = parseDockerfile(change);
    if (parsed.length !== 1) throw errors.invalid(`--change "${change}" is not one instruction, such as CMD ["sh"] or ENV A=1`);
    applyConfigInstruction(next, parsed[0]!, `--change "${change}"`);
  }
  return next;
}
