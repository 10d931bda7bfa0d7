/**
 * The CLI's registry logins, kept as Docker keeps them: config.json in ~/.shoal (or
 * $SHOAL_CONFIG), {"auths": {"host:port": {"auth": base64("user:password")}}}, mode 0600, never
 * printed. Only a request that pulls or pushes from that registry carries one.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { RegistryAuth } from '../shared/registry-auth.ts';
import { registryOfReference } from '../shared/registry-auth.ts';

interface ConfigFile {
  auths?: Record<string, { auth?: string }>;
  [key: string]: unknown;
}

export function configDir(): string {
  return process.env.SHOAL_CONFIG ?? join(homedir(), '.shoal');
}

async function readConfig(): Promise<ConfigFile> {
  const text = await readFile(join(configDir(), 'config.json'), 'utf8').catch(() => undefined);
  if (!text) return {};
  try {
    return JSON.parse(text) as ConfigFile;
  } catch {
    throw new Error(`${join(configDir(), 'config.json')} is not JSON; fix or remove it`);
  }
}

/** Written whole and renamed into place, readable by its owner only. */
async function writeConfig(config: ConfigFile): Promise<void> {
  await mkdir(configDir(), { recursive: true, mode: 0o700 });
  const file = join(configDir(), 'config.json');
  await writeFile(`${file}.tmp`, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await chmod(`${file}.tmp`, 0o600);
  await rename(`${file}.tmp`, file);
}

export async function storeLogin(server: string, username: string, password: string): Promise<string> {
  const config = await readConfig();
  config.auths = { ...config.auths, [server]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } };
  await writeConfig(config);
  return join(configDir(), 'config.json');
}

/** True when there was a login to remove. */
export async function removeLogin(server: string): Promise<boolean> {
  const config = await readConfig();
  if (!config.auths?.[server]) return false;
  delete config.auths[server];
  await writeConfig(config);
  return true;
}

export async function loginFor(server: string): Promise<RegistryAuth | undefined> {
  const entry = (await readConfig()).auths?.[server];
  if (!entry?.auth) return undefined;
  const text = Buffer.from(entry.auth, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1), serveraddress: server };
}

/** The stored login for the registry an image reference names, if any. */
export async function loginForImage(reference: string): Promise<RegistryAuth | undefined> {
  const registry = registryOfReference(reference);
  return registry ? loginFor(registry) : undefined;
}
