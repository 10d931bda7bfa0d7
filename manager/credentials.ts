/**
 * What a manager holds of the cluster's PKI: a client certificate for etcd, a server
 * certificate for its TCP API, and a certificate binding its libp2p peer id to the cluster
 * CA, which agents check before they trust it (join tokens carry the CA's digest). Each is
 * issued from the CA in the manager's PKI directory when missing, stale or for other
 * addresses: no certificate step is left to the operator.
 */
import { hostname } from 'node:os';
import { caDigest, peerUri } from '../shared/pki/certificates.ts';
import { ensureCa, ensureIssued, type IssuedFiles, readSealKey } from '../shared/pki/pki-dir.ts';
import type { EtcdCredentials } from '../shared/store/etcd.ts';
import type { Logger } from '../shared/log.ts';

export interface ManagerPki {
  dir: string;
  caCertificate: string;
  caDigest: string;
  sealKey: Buffer;
  etcd: EtcdCredentials;
}

export async function loadManagerPki(dir: string, log: Logger): Promise<ManagerPki> {
  const { ca, created } = await ensureCa(dir);
  if (created) log.info('cluster CA created; copy this directory to every other manager host', { pki: dir });
  const client = await ensureIssued(dir, 'etcd-client', { commonName: `shoal-manager-${hostname()}`, usage: 'client' });
  return {
    dir,
    caCertificate: ca.certificate,
    caDigest: caDigest(ca.certificate),
    sealKey: await readSealKey(dir),
    etcd: { rootCertificate: Buffer.from(ca.certificate), certChain: Buffer.from(client.certificate), privateKey: Buffer.from(client.privateKey) },
  };
}

/** The API's server certificate, for the address it listens on (and the host's name). */
export async function apiCertificate(pki: ManagerPki, listenHost: string): Promise<IssuedFiles> {
  const ip = /^[\d.]+$|:/.test(listenHost) ? [listenHost] : [];
  const dns = [...new Set([hostname(), 'localhost', ...(ip.length === 0 ? [listenHost] : [])])];
  return ensureIssued(pki.dir, 'api', { commonName: `shoal-api-${hostname()}`, ips: [...ip, '127.0.0.1'], dns, usage: 'server' });
}

/** The certificate naming this manager's peer id, which it shows agents at join and session open. */
export async function identityCertificate(pki: ManagerPki, peerId: string): Promise<string> {
  return (await ensureIssued(pki.dir, 'identity', { commonName: 'shoal-manager', uris: [peerUri(peerId)], usage: 'client' })).certificate;
}
