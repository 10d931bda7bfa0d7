/**
 * A real terminal for interactive tests: a tmux pane on a server of the test's own, in which a
 * command runs as a user would run it; keys are typed into it and the screen is read back.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { shoalMain } from './cli.ts';

const run = promisify(execFile);

export class TmuxPane {
  private constructor(
    private readonly socket: string,
    readonly name: string,
  ) {}

  /** Starts `command` (a shell line) in a pane of `cols` x `rows`; the pane stays after it exits, with its exit code. */
  static async start(socket: string, name: string, command: string, env: Record<string, string>, size = { cols: 80, rows: 24 }): Promise<TmuxPane> {
    const envArgs = Object.entries(env).flatMap(([key, value]) => ['-e', `${key}=${value}`]);
    await run('tmux', ['-L', socket, 'new-session', '-d', '-s', name, '-x', String(size.cols), '-y', String(size.rows), ...envArgs, `${command}; echo "EXIT=$?"; sleep 600`]);
    return new TmuxPane(socket, name);
  }

  /** The shoal CLI's command line, for `start`. */
  static shoal(...args: string[]): string {
    return [process.execPath, shoalMain, ...args].map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(' ');
  }

  async keys(...keys: string[]): Promise<void> {
    await run('tmux', ['-L', this.socket, 'send-keys', '-t', this.name, ...keys]);
  }

  /** Types a line and presses Enter. */
  async type(line: string): Promise<void> {
    await run('tmux', ['-L', this.socket, 'send-keys', '-t', this.name, '-l', line]);
    await this.keys('Enter');
  }

  async screen(): Promise<string> {
    return (await run('tmux', ['-L', this.socket, 'capture-pane', '-p', '-t', this.name])).stdout;
  }

  /** Waits until the screen matches; returns the screen. */
  async waitFor(pattern: RegExp, timeoutMs = 15_000): Promise<string> {
    const started = Date.now();
    let screen = '';
    while (Date.now() - started < timeoutMs) {
      screen = await this.screen();
      if (pattern.test(screen)) return screen;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the terminal did not show ${pattern} within ${timeoutMs} ms; it shows:\n${screen}`);
  }

  async resize(cols: number, rows: number): Promise<void> {
    await run('tmux', ['-L', this.socket, 'resize-window', '-t', this.name, '-x', String(cols), '-y', String(rows)]);
  }

  async kill(): Promise<void> {
    await run('tmux', ['-L', this.socket, 'kill-session', '-t', this.name]).catch(() => undefined);
  }
}

/** Ends a test's tmux server and every pane in it. */
export async function killTmuxServer(socket: string): Promise<void> {
  await run('tmux', ['-L', socket, 'kill-server']).catch(() => undefined);
}
