/**
 * A PKI directory, as a manager's host keeps it (0700, keys 0600):
 *   ca.crt, ca.key   the cluster CA, made once (`shoal pki init`, the lab, or the first manager)
 *   seal.key         the key join tokens are sealed with in the store
 *   NAME.crt/.key    certificates issued from it (etcd members, a manager's etcd client, its API)
 * Hosts that only run etcd hold ca.crt and their own NAME.crt/.key, never ca.key.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../errors.ts';
import { type CertificateRequest, createCa, daysLeft, issueCertificate, type KeyPair, subjectNames } from './certificates.ts';
import { newSealKey, sealKeyBytes } from './seal.ts';

export interface IssuedFiles extends KeyPair {
  certificateFile: string;
  keyFile: string;
  caFile: string;
}

async function writeSecret(path: string, data: string | Buffer): Promise<void> {
  // Written aside and renamed: a crash never leaves half a key where a daemon would read it.
  await writeFile(`${path}.tmp`, data, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

const readText = (path: string) => readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : Promise.reject(error)));

async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** The CA of the directory, made (with the seal key) if it has none yet. Returns whether it was made. */
export async function ensureCa(dir: string, name = 'Shoal cluster CA'): Promise<{ ca: KeyPair; created: boolean }> {
  await ensureDir(dir);
  const [certificate, privateKey] = await Promise.all([readText(join(dir, 'ca.crt')), readText(join(dir, 'ca.key'))]);
  if (!(await readText(join(dir, 'seal.key')))) await writeSecret(join(dir, 'seal.key'), newSealKey().toString('base64'));
  if (certificate && privateKey) return { ca: { certificate, privateKey }, created: false };
  if (certificate && !privateKey) throw errors.invalid(`${dir} has ca.crt but no ca.key`, 'copy ca.key from the first manager\'s PKI directory, or point --pki at one that has it');
  const ca = await createCa(name);
  await writeSecret(join(dir, 'ca.key'), ca.privateKey);
  await writeFile(join(dir, 'ca.crt'), ca.certificate, { mode: 0o644 });
  return { ca, created: true };
}

/** The CA's certificate and key; a clear error when the directory has none. */
export async function readCa(dir: string): Promise<KeyPair> {
  const [certificate, privateKey] = await Promise.all([readText(join(dir, 'ca.crt')), readText(join(dir, 'ca.key'))]);
  if (!certificate || !privateKey) throw errors.invalid(`${dir} holds no cluster CA (ca.crt and ca.key)`, 'run `shoal pki init --dir DIR` once, and copy the directory to every manager host');
  return { certificate, privateKey };
}

export async function readSealKey(dir: string): Promise<Buffer> {
  const text = await readText(join(dir, 'seal.key'));
  const key = text ? Buffer.from(text.trim(), 'base64') : undefined;
  if (!key || key.length !== sealKeyBytes) throw errors.invalid(`${dir}/seal.key is missing or not ${sealKeyBytes} bytes`, 'copy seal.key from the first manager\'s PKI directory');
  return key;
}

function expectedNames(request: CertificateRequest): string[] {
  return [...(request.dns ?? []).map((n) => `DNS:${n}`), ...(request.ips ?? []).map((n) => `IP Address:${n}`), ...(request.uris ?? []).map((n) => `URI:${n}`)].sort();
}

function issuedPaths(dir: string, name: string): Omit<IssuedFiles, keyof KeyPair> {
  return { certificateFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`), caFile: join(dir, 'ca.crt') };
}

/**
 * NAME.crt/.key of the directory, issued from its CA when missing, when they name other
 * addresses than asked, or when fewer than 30 days are left.
 */
export async function ensureIssued(dir: string, name: string, request: CertificateRequest): Promise<IssuedFiles> {
  const files = issuedPaths(dir, name);
  const [certificate, privateKey] = await Promise.all([readText(files.certificateFile), readText(files.keyFile)]);
  if (certificate && privateKey && daysLeft(certificate) > 30 && JSON.stringify(subjectNames(certificate)) === JSON.stringify(expectedNames(request))) {
    return { ...files, certificate, privateKey };
  }
  const issued = await issueCertificate(await readCa(dir), request);
  await writeSecret(files.keyFile, issued.privateKey);
  await writeFile(files.certificateFile, issued.certificate, { mode: 0o644 });
  return { ...files, ...issued };
}

/** Certificate, key and CA as one daemon reads them to open TLS connections. */
export async function readIssued(dir: string, name: string): Promise<IssuedFiles> {
  const files = issuedPaths(dir, name);
  const [certificate, privateKey] = await Promise.all([readText(files.certificateFile), readText(files.keyFile)]);
  if (!certificate || !privateKey) throw errors.invalid(`${dir} has no ${name}.crt and ${name}.key`, `issue them with \`shoal pki issue --dir ${dir} --name ${name} ...\``);
  return { ...files, certificate, privateKey };
}

/** Copies the CA and the seal key to another manager's PKI directory (what an operator does with scp). */
export async function sharePki(from: string, to: string): Promise<void> {
  await ensureDir(to);
  for (const name of ['ca.key', 'seal.key']) {
    const text = await readText(join(from, name));
    if (!text) throw errors.invalid(`${from} has no ${name}`, 'make the CA first with `shoal pki init`');
    await writeSecret(join(to, name), text);
  }
  await writeFile(join(to, 'ca.crt'), (await readText(join(from, 'ca.crt'))) ?? '', { mode: 0o644 });
}
