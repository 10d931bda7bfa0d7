import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const shoalMain = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the shoal CLI as a user would, optionally inside a network namespace. */
export function runShoal(args: string[], options: { env?: NodeJS.ProcessEnv; netns?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const command = options.netns ? 'nsenter' : process.execPath;
  const fullArgs = options.netns ? [`--net=/run/netns/${options.netns}`, '--', process.execPath, shoalMain, ...args] : [shoalMain, ...args];
  return new Promise((resolve) => {
    execFile(command, fullArgs, { env: { ...process.env, ...options.env }, timeout: options.timeoutMs ?? 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Polls until `check` returns a value (not undefined) or the time is up; returns it and the time taken. */
export async function eventually<T>(timeoutMs: number, check: () => Promise<T | undefined>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  let lastError: unknown;
  while (Date.now() - started < timeoutMs) {
    try {
      const value = await check();
      if (value !== undefined) return { value, ms: Date.now() - started };
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`not within ${timeoutMs} ms${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
}
