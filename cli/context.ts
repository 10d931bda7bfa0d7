import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';

/** Where the CLI finds a cluster: the manager addresses (first that answers wins) and the token. */
export const CliContext = z.object({
  hosts: z.array(z.string()).min(1),
  token: z.string(),
  lab: z.string().optional(),
  /** For https:// hosts: the cluster CA (PEM), and a client certificate and key when the managers ask for one. */
  tls: z.object({ ca: z.string(), cert: z.string().optional(), key: z.string().optional() }).optional(),
});
export type CliContext = z.infer<typeof CliContext>;

export function defaultContextPath(): string {
  // An empty SHOAL_CONTEXT (`SHOAL_CONTEXT= shoal ...`) means unset, as an empty DOCKER_CONTEXT does.
  return process.env.SHOAL_CONTEXT || join(homedir(), '.shoal', 'context.json');
}

export async function readContext(path = defaultContextPath()): Promise<CliContext | undefined> {
  try {
    return CliContext.parse(JSON.parse(await readFile(path, 'utf8')));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`the context file ${path} is unreadable (${(error as Error).message}); remove it or bring a lab up again`);
  }
}

export async function writeContext(path: string, context: CliContext): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(context, null, 2)}\n`, { mode: 0o600 });
}
