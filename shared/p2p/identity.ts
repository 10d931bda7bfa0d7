import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';

/** Loads the libp2p identity key from the state dir, creating it on first start. */
export async function loadOrCreateIdentity(stateDir: string): Promise<PrivateKey> {
  const path = join(stateDir, 'identity.key');
  try {
    return privateKeyFromProtobuf(await readFile(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = await generateKeyPair('Ed25519');
  await mkdir(stateDir, { recursive: true });
  await writeFile(path, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' });
  return key;
}
