import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';

/**
 * The system's own binary of a tool, looked up in the system directories only: under npm the
 * PATH starts with node_modules/.bin, where a package ships a JavaScript tool named `nft`.
 */
export function systemBinary(name: string): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  return name;
}

/** A command that could not start, failed, or was stopped: what ran, how it ended, what it said. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stderr: string,
    options: { cause?: unknown; reason?: string } = {},
  ) {
    const how = options.reason ?? (signal ? `killed by ${signal}` : `exit code ${exitCode}`);
    const said = stderr.trim().split('\n').slice(-5).join('\n');
    super(`${command} ${args.join(' ')} failed (${how})${said ? `: ${said}` : ''}`, { cause: options.cause });
    this.name = 'CommandError';
  }
}

/** What a failed command said first (its stderr's first line), for a message a user reads. */
export function firstComplaint(error: unknown): string {
  if (error instanceof CommandError && error.stderr.trim()) return error.stderr.trim().split('\n')[0]!;
  return (error as Error).message;
}

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. */
  input?: string;
  /** Piped into the child's stdin; an error of this stream kills the child and is the rejection. */
  inputStream?: Readable;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Output beyond this is dropped (the child is not killed for it). */
  maxOutputBytes?: number;
}

const defaultMaxOutput = 16 * 1024 * 1024;

/**
 * Runs a command and resolves with its stdout, or rejects with a CommandError. It never
 * throws asynchronously: a child that exits before reading its input (an `ip -batch` that
 * stops at its first error) breaks the stdin pipe, and that EPIPE is swallowed here, since the
 * exit code already says what went wrong; a command that cannot be spawned rejects.
 */
export function run(command: string, args: string[], inputOrOptions?: string | RunOptions): Promise<string> {
  const options: RunOptions = typeof inputOrOptions === 'string' ? { input: inputOrOptions } : (inputOrOptions ?? {});
  const maxOutput = options.maxOutputBytes ?? defaultMaxOutput;
  return new Promise((resolve, reject) => {
    let child;
    try {
      const stdin = options.input === undefined && options.inputStream === undefined ? 'ignore' : 'pipe';
      child = spawn(command, args, { stdio: [stdin, 'pipe', 'pipe'], signal: options.signal });
    } catch (error) {
      reject(new CommandError(command, args, null, null, '', { cause: error, reason: (error as Error).message }));
      return;
    }
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let stdoutBytes = 0;
    let stderrBytes = 0;
    let failure: Error | undefined;
    child.stdout!.on('data', (chunk: Buffer) => {
      if (stdoutBytes < maxOutput) stdout.push(chunk);
      stdoutBytes += chunk.length;
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderrBytes < 64 * 1024) stderr.push(chunk);
      stderrBytes += chunk.length;
    });
    // Errors on the pipes (EPIPE on stdin, a reset on stdout) are the child's business; its
    // exit status is what we report.
    child.stdout!.on('error', () => undefined);
    child.stderr!.on('error', () => undefined);
    const timer = options.timeoutMs
      ? setTimeout(() => {
          failure = new Error(`timed out after ${options.timeoutMs} ms`);
          child.kill('SIGKILL');
        }, options.timeoutMs)
      : undefined;
    child.on('error', (error) => {
      // spawn failures (ENOENT) and aborts; 'close' may or may not follow.
      failure ??= error;
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const errText = Buffer.concat(stderr).toString();
      if (code === 0 && !failure) resolve(Buffer.concat(stdout).toString());
      else reject(new CommandError(command, args, code, signal, errText, { cause: failure, reason: failure?.message }));
    });
    if (options.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
    if (options.inputStream && child.stdin) {
      child.stdin.on('error', () => undefined);
      options.inputStream.on('error', (error) => {
        failure ??= error;
        child.kill('SIGKILL');
      });
      options.inputStream.pipe(child.stdin);
    }
  });
}

/** Feeds iproute2 a batch of commands in one process (one fork for many links and addresses). */
export async function ipBatch(lines: string[], netns?: string): Promise<void> {
  if (lines.length > 0) await run('ip', [...(netns ? ['-n', netns] : []), '-batch', '-'], `${lines.join('\n')}\n`);
}

/**
 * Runs a command and hands its stdout to `sink` piece by piece, at the sink's pace (a tar of a
 * container's files on its way to a client); rejects with a CommandError as `run` does. A sink
 * that throws kills the child.
 */
export function runInto(command: string, args: string[], sink: (chunk: Buffer) => Promise<void>, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], signal });
    } catch (error) {
      reject(new CommandError(command, args, null, null, '', { cause: error, reason: (error as Error).message }));
      return;
    }
    const stderr: Buffer[] = [];
    let failure: Error | undefined;
    child.stderr!.on('data', (chunk: Buffer) => stderr.length < 64 && stderr.push(chunk));
    child.stderr!.on('error', () => undefined);
    child.on('error', (error) => {
      failure ??= error;
    });
    const reading = (async () => {
      for await (const chunk of child.stdout! as AsyncIterable<Buffer>) await sink(chunk);
    })().catch((error: unknown) => {
      failure ??= error as Error;
      child.kill('SIGKILL');
    });
    child.on('close', (code, exitSignal) => {
      reading.then(() => {
        if (code === 0 && !failure) resolve();
        else reject(new CommandError(command, args, code, exitSignal, Buffer.concat(stderr).toString(), { cause: failure, reason: failure?.message }));
      }, reject);
    });
  });
}
