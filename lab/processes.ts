import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
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
  pid?: number;
}

/** The command that runs this same Shoal build: the current Node.js and the compiled CLI. */
export function shoalCommand(): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--enable-source-maps', fileURLToPath(new URL('../cli/main.js', import.meta.url))] };
}

/**
 * Starts the process inside the host's network namespace with a UTS namespace of its own (so
 * it has the host's hostname). nsenter and unshare exec rather than fork, so the pid we get
 * is the final program's. Only the network namespace is entered: the process sees the
 * machine's filesystem, so the lab's files and sockets are where the CLI looks for them.
 */
export function startProcess(spec: LabProcess): number {
  const log = openSync(spec.log, 'a');
  try {
    const child = spawn(
      'nsenter',
      [`--net=/run/netns/${spec.netns}`, '--', 'unshare', '--uts', '--', 'sh', '-c', 'hostname "$0" && exec "$@"', spec.hostname, spec.command, ...spec.args],
      { detached: true, stdio: ['ignore', log, log] },
    );
    child.unref();
    if (!child.pid) throw new Error(`could not start ${spec.key}`);
    return child.pid;
  } finally {
    closeSync(log);
  }
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
