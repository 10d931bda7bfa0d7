import { addon } from './addon.ts';

/**
 * Starts a program in a session of its own, stdin from /dev/null and stdout/stderr on the
 * given descriptors; returns its pid. Through posix_spawn (vfork), which stays fast however
 * much memory the agent has, where Node's spawn slows down with it (15-30 ms measured here).
 */
export function spawnDetached(argv: string[], stdoutFd: number, stderrFd: number, cwd: string): number {
  return addon.spawnDetached(argv, stdoutFd, stderrFd, cwd);
}

/**
 * Collects the exit status of a program `spawnDetached` started, once it has exited; true when
 * it was reaped. Node reaps only the children it spawned itself: without this, every shim
 * whose container ended stayed a zombie under the agent.
 */
export function reap(pid: number): boolean {
  return addon.reap(pid);
}
