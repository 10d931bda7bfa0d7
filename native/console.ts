import { addon } from './addon.ts';

/**
 * A container's terminal: runc sends its pseudo-terminal's master end over a unix socket
 * (`--console-socket`), as a descriptor Node.js cannot receive itself.
 */

/** The terminal's master end from the shim that holds it (DIR/NAME; any length of DIR), once per agent start. */
export function fetchTerminal(dir: string, name: string, timeoutMs: number): Promise<number> {
  return addon.fetchFd(dir, name, timeoutMs);
}

/** Resizes the terminal: the container's processes get SIGWINCH. */
export function setWindowSize(fd: number, rows: number, cols: number): void {
  addon.setWindowSize(fd, rows, cols);
}
