import type { ClusterKeys } from '../../manager/cluster.ts';
import { caDigest, createCa } from '../../shared/pki/certificates.ts';
import { newSealKey } from '../../shared/pki/seal.ts';
import { type AddressPools, type ClusterRecord, defaultAddressPools } from '../../shared/schemas.ts';

/** A fresh CA and seal key, as a manager's PKI directory would hold them. */
export async function testClusterKeys(): Promise<ClusterKeys> {
  const ca = await createCa('test CA');
  return { caCertificate: ca.certificate, caDigest: caDigest(ca.certificate), sealKey: newSealKey() };
}

/** A cluster record for code that reads only its settings (address pools, heartbeat period). */
export function settingsOnlyCluster(pools: AddressPools = defaultAddressPools): ClusterRecord {
  const none = { sha256: '', sealed: '' };
  return { id: 'c', createdAt: '', apiTokenSha256: '', ca: { certificate: '', digest: '' }, joinTokens: { worker: none, manager: none }, heartbeatPeriodMs: 1000, addressPools: pools };
}
