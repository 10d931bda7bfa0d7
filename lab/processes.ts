import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { run } from '../shared/exec.ts';

/** A process the lab started: enough to find it, stop it and start it again the same way. */
export interface LabProcess {
  /** "etcd0", "h1/manager", "h2/agent", ... */
  key: string;
  netns: string;
  hostname: string;
  command: string;
  args: string[];
  log: string;
  /** The daemon's pid when it was last started or looked at; the supervision file has the current one. */
  pid?: number;
}

/** How the lab's supervisor last saw its daemon (lab/supervise.sh writes it). */
export interface Supervision {
  supervisorPid: number;
  pid: number;
  state: 'running' | 'backoff' | 'held' | 'exited' | 'stopped';
  restarts: number;
  lastExit: { code?: number; signal?: string; at: string } | null;
}

const superviseScript = fileURLToPath(new URL('../../lab/supervise.sh', import.meta.url));

/** The command that runs this same Shoal build: the current Node.js and the compiled CLI. */
export function shoalCommand(): { command: string; args: string[] } {
  // DEP0123 as in bin/shoal: the etcd client's gRPC names etcd's IP as the TLS server name.
  return { command: process.execPath, args: ['--enable-source-maps', '--disable-warning=DEP0123', fileURLToPath(new URL('../cli/main.js', import.meta.url))] };
}

export function supervisionFile(spec: LabProcess): string {
  return spec.log.replace(/\.log$/, '') + '.supervision.json';
}

export async function readSupervision(spec: LabProcess): Promise<Supervision | undefined> {
  const text = await readFile(supervisionFile(spec), 'utf8').catch(() => undefined);
  if (!text) return undefined;
  try {
    return JSON.parse(text) as Supervision;
  } catch {
    return undefined;
  }
}

/**
 * Starts the process under the lab's supervisor, inside the host's network namespace with a
 * UTS namespace of its own (so it has the host's hostname). nsenter and unshare exec rather
 * than fork, so the supervisor's child is the final program. Only the network namespace is
 * entered: the process sees the machine's filesystem, so the lab's files and sockets are
 * where the CLI looks for them. Resolves once the daemon runs, with its pid.
 */
export async function startProcess(spec: LabProcess): Promise<number> {
  await rm(supervisionFile(spec), { force: true });
  await rm(`${supervisionFile(spec)}.hold`, { force: true });
  const log = openSync(spec.log, 'a');
  try {
    const child = spawn(
      'bash',
      [
        superviseScript,
        supervisionFile(spec),
        'nsenter', `--net=/run/netns/${spec.netns}`, '--', 'unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@"', spec.hostname, spec.command, ...spec.args,
      ],
      { detached: true, stdio: ['ignore', log, log] },
    );
    child.on('error', () => undefined);
    child.unref();
    if (!child.pid) throw new Error(`could not start ${spec.key}`);
  } finally {
    closeSync(log);
  }
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    const seen = await readSupervision(spec);
    if (seen?.pid) return (spec.pid = seen.pid);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${spec.key} did not start within 5 s; its log (${spec.log}) ends with:\n${await tailLog(spec.log)}`);
}

/** The daemon's pid now, as its supervisor last wrote it (after a restart it differs from spec.pid). */
export async function currentPid(spec: LabProcess): Promise<number | undefined> {
  const seen = await readSupervision(spec);
  if (seen) return seen.state === 'running' && isAlive(seen.pid) ? seen.pid : undefined;
  return isAlive(spec.pid) ? spec.pid : undefined;
}

export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Pids of processes whose command line mentions `marker` (the lab's directory), other than ours. */
export async function pidsMentioning(marker: string): Promise<number[]> {
  const output = await run('pgrep', ['-f', '--', marker]).catch(() => '');
  return output
    .split('\n')
    .map(Number)
    .filter((pid) => pid > 0 && pid !== process.pid && pid !== process.ppid);
}

/** SIGTERM, then SIGKILL for whatever is still alive after `graceMs`. */
export async function stopProcesses(pids: number[], graceMs = 5_000): Promise<void> {
  const signal = (pid: number, name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch {
      // already gone
    }
  };
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  for (const pid of pids.filter(isAlive)) signal(pid, 'SIGKILL');
  while (pids.some(isAlive) && Date.now() < deadline + 2_000) await new Promise((resolve) => setTimeout(resolve, 50));
}

/** The last lines of a log, for error messages when a process dies at start. */
export async function tailLog(path: string, lines = 5): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-lines).join('\n');
}
