/**
 * The cluster's certificate authority and the certificates it issues: etcd's members and
 * clients, the managers' API, and each manager's libp2p identity. ECDSA P-256 throughout:
 * etcd (Go), gRPC and Node's TLS all take it, and keys are small and quick to make.
 *
 * Certificates are made with @peculiar/x509 (Node's crypto can read and verify X.509 but not
 * write it); they are read and checked with Node's own X509Certificate.
 */
import 'reflect-metadata';
import { createHash, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const dayMs = 24 * 60 * 60 * 1000;
/** Leaves last a year; a daemon issues its own again when fewer than 30 days are left. */
export const leafLifetimeDays = 365;
const caLifetimeDays = 10 * 365;

/** A certificate and its private key, both PEM. */
export interface KeyPair {
  certificate: string;
  privateKey: string;
}

export type Usage = 'server' | 'client' | 'peer';

export interface CertificateRequest {
  commonName: string;
  /** IP addresses and DNS names the certificate is valid for (server and peer certificates). */
  ips?: string[];
  dns?: string[];
  /** URIs it names, such as a manager's libp2p peer id (urn:shoal:peer:<id>). */
  uris?: string[];
  /** server: TLS server only; client: TLS client only; peer: both (etcd's peer links). */
  usage: Usage;
}

function serial(): string {
  // Positive and unique: a random 16-byte number with the top bit clear.
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  return bytes.toString('hex');
}

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']) as Promise<CryptoKey>;
}

/** A new self-signed CA for one cluster. */
export async function createCa(name: string): Promise<KeyPair> {
  const keys = await newKeys();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + caLifetimeDays * dayMs),
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificate: certificate.toString('pem'), privateKey: await privateKeyPem(keys.privateKey) };
}

/** A leaf certificate signed by the CA. */
export async function issueCertificate(ca: KeyPair, request: CertificateRequest): Promise<KeyPair> {
  const keys = await newKeys();
  const issuer = new x509.X509Certificate(ca.certificate);
  const usages = { server: [x509.ExtendedKeyUsage.serverAuth], client: [x509.ExtendedKeyUsage.clientAuth], peer: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] }[request.usage];
  const names = [
    ...(request.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(request.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(request.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${request.commonName}`,
    issuer: issuer.subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + leafLifetimeDays * dayMs),
    publicKey: keys.publicKey,
    signingKey: await importPrivateKey(ca.privateKey),
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(usages),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(issuer),
    ],
  });
  return { certificate: certificate.toString('pem'), privateKey: await privateKeyPem(keys.privateKey) };
}

/**
 * The CA's digest as join tokens carry it (as Swarm's tokens carry the CA's): the SHA-256 of
 * its DER encoding, base36, 50 characters. Whoever holds a token can check that a manager's
 * certificate chains to this CA and to no other.
 */
export function caDigest(caCertificate: string): string {
  if (lastDigest?.certificate === caCertificate) return lastDigest.digest;
  const der = new X509Certificate(caCertificate).raw;
  const hex = createHash('sha256').update(der).digest('hex');
  const digest = BigInt(`0x${hex}`).toString(36).padStart(50, '0');
  lastDigest = { certificate: caCertificate, digest };
  return digest;
}

/** A process knows one cluster CA, checked at every join: its digest is kept. */
let lastDigest: { certificate: string; digest: string } | undefined;

/** The URI a manager's identity certificate names its libp2p peer id by. */
export function peerUri(peerId: string): string {
  return `urn:shoal:peer:${peerId}`;
}

/**
 * Why `certificate` is not a current certificate of the CA's for `peerId`, or undefined when
 * it is: the agent's check of a manager before it trusts it with anything.
 */
export function identityProblem(certificate: string, caCertificate: string, peerId: string, at = new Date()): string | undefined {
  const key = `${peerId}\n${caCertificate}\n${certificate}`;
  let checked = identityChecks.get(key);
  if (!checked) {
    checked = checkIdentity(certificate, caCertificate, peerId);
    if (identityChecks.size >= 64) identityChecks.delete(identityChecks.keys().next().value!);
    identityChecks.set(key, checked);
  }
  if (typeof checked === 'string') return checked;
  if (at < checked.validFrom || at > checked.validTo) return `its certificate is not valid now (valid ${checked.validFrom.toUTCString()} to ${checked.validTo.toUTCString()})`;
  return undefined;
}

/**
 * Signature and names checked once per certificate: an agent sees the same managers'
 * certificates in every session and heartbeat answer, and parsing one costs about a millisecond.
 */
const identityChecks = new Map<string, string | { validFrom: Date; validTo: Date }>();

function checkIdentity(certificate: string, caCertificate: string, peerId: string): string | { validFrom: Date; validTo: Date } {
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(certificate);
    ca = new X509Certificate(caCertificate);
  } catch (error) {
    return `unreadable certificate: ${(error as Error).message}`;
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'its certificate is not signed by the cluster CA';
  const names = (cert.subjectAltName ?? '').split(', ');
  if (!names.includes(`URI:${peerUri(peerId)}`)) return `its certificate names another peer (${names.join(', ') || 'none'})`;
  return { validFrom: new Date(cert.validFrom), validTo: new Date(cert.validTo) };
}

/** Days until a certificate expires (negative once it has). */
export function daysLeft(certificate: string, at = new Date()): number {
  return (new Date(new X509Certificate(certificate).validTo).getTime() - at.getTime()) / dayMs;
}

/** The IP addresses and DNS names a certificate is valid for, sorted: to tell whether it still fits. */
export function subjectNames(certificate: string): string[] {
  return (new X509Certificate(certificate).subjectAltName ?? '')
    .split(', ')
    .filter(Boolean)
    .sort();
}
