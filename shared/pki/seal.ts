/**
 * Secrets kept in the store sealed with AES-256-GCM under a key the managers hold on disk
 * (the PKI directory's seal.key): whoever reads etcd, or a backup of it, reads no join token.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const sealKeyBytes = 32;

export function newSealKey(): Buffer {
  return randomBytes(sealKeyBytes);
}

/** "v1.<iv>.<ciphertext>.<tag>", base64url: one line that is safe in JSON. */
export function seal(key: Buffer, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv, body, cipher.getAuthTag()].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.');
}

/** The plaintext, or an error that says the key is not the one it was sealed with. */
export function unseal(key: Buffer, sealed: string): string {
  const [version, iv, body, tag] = sealed.split('.');
  if (version !== 'v1' || !iv || body === undefined || !tag) throw new Error('not a sealed secret');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  try {
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new Error('the sealed secret does not open with this seal key (another cluster\'s PKI directory?)');
  }
}
