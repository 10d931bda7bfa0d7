/**
 * A registry login as it travels: the CLI reads it from its config.json and sends it for one
 * request in the X-Registry-Auth header (base64 of JSON, as Docker's), the manager hands it to
 * the node that pulls or pushes. Never logged, never stored in the cluster's store in clear.
 */
import { z } from 'zod';
import { errors } from './errors.ts';

export const RegistryAuth = z.object({ username: z.string().min(1), password: z.string().min(1), serveraddress: z.string().optional() });
export type RegistryAuth = z.infer<typeof RegistryAuth>;

export const registryAuthHeader = 'x-registry-auth';

export function encodeRegistryAuth(auth: RegistryAuth): string {
  return Buffer.from(JSON.stringify(auth)).toString('base64url');
}

/** The header's login, or undefined without one; a malformed one is a 400. */
export function decodeRegistryAuth(header: string | string[] | undefined): RegistryAuth | undefined {
  if (!header || Array.isArray(header)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
  } catch {
    throw errors.invalid(`the ${registryAuthHeader} header is not base64 JSON`);
  }
  const parsed = RegistryAuth.safeParse(value);
  if (!parsed.success) throw errors.invalid(`the ${registryAuthHeader} header needs a username and a password`);
  return parsed.data;
}

/** The registry an image reference names, as Docker tells it: a first part with a dot, a port or localhost; none otherwise. */
export function registryOfReference(reference: string): string | undefined {
  const first = reference.split('/')[0]!;
  if (!reference.includes('/')) return undefined;
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first : undefined;
}
