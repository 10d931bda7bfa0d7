import { addon } from './addon.ts';

/**
 * Starts a program in a session of its own, stdin from /dev/null and stdout/stderr on the
 * given descriptors; returns its pid. Through posix_spawn (vfork), which stays fast however
 * much memory the agent has, where Node's spawn slows down with it (15-30 ms measured here).
 */
export function spawnDetached(argv: string[], stdoutFd: number, stderrFd: number, cwd: string): number {
  return addon.spawnDetached(argv, stdoutFd, stderrFd, cwd);
}
