import { errors } from '../shared/errors.ts';
import { keys } from '../shared/keys.ts';
import { type AddressPools, ClusterRecord, defaultAddressPools, type JoinTokenRole, type SealedToken } from '../shared/schemas.ts';
import { seal, unseal } from '../shared/pki/seal.ts';
import { now, updateObject } from '../shared/store/objects.ts';
import type { Store } from '../shared/store/store.ts';
import { newApiToken, newClusterId, newJoinToken, sha256 } from '../shared/tokens.ts';

export interface ClusterInit {
  cluster: ClusterRecord;
  /** Set only when this call created the cluster: the one moment the API token is known. */
  apiToken?: string;
}

/** What of the PKI the cluster record needs: the CA (its digest goes into join tokens) and the seal key. */
export interface ClusterKeys {
  caCertificate: string;
  caDigest: string;
  sealKey: Buffer;
}

function sealedToken(keysOf: ClusterKeys, clusterId: string, role: JoinTokenRole): SealedToken {
  const token = newJoinToken(keysOf.caDigest, clusterId, role);
  return { sha256: sha256(token), sealed: seal(keysOf.sealKey, token) };
}

/** Creates the cluster record on first start (exactly once, whoever races), else reads it. */
export async function initCluster(store: Store, options: { heartbeatPeriodMs: number; addressPools?: AddressPools; keys: ClusterKeys }): Promise<ClusterInit> {
  const existing = await store.get<ClusterRecord>(keys.cluster);
  if (existing) return { cluster: ClusterRecord.parse(existing.value) };
  const id = newClusterId();
  const apiToken = newApiToken();
  const cluster: ClusterRecord = {
    id,
    createdAt: now(),
    apiTokenSha256: sha256(apiToken),
    ca: { certificate: options.keys.caCertificate, digest: options.keys.caDigest },
    joinTokens: { worker: sealedToken(options.keys, id, 'worker'), manager: sealedToken(options.keys, id, 'manager') },
    heartbeatPeriodMs: options.heartbeatPeriodMs,
    addressPools: options.addressPools ?? defaultAddressPools,
  };
  const result = await store.commit([{ op: 'create', key: keys.cluster, value: cluster }]);
  if (result.ok) return { cluster, apiToken };
  return initCluster(store, options);
}

export async function readCluster(store: Store): Promise<ClusterRecord> {
  const found = await store.get<ClusterRecord>(keys.cluster);
  if (!found) throw errors.unavailable('the cluster is not initialised yet');
  return ClusterRecord.parse(found.value);
}

/** A join token in clear, for an authenticated caller of `join-token`. */
export function openJoinToken(cluster: ClusterRecord, role: JoinTokenRole, sealKey: Buffer): string {
  return unseal(sealKey, cluster.joinTokens[role].sealed);
}

/** Replaces one join token; nodes that joined with the old one stay joined. Returns the new token. */
export async function rotateJoinToken(store: Store, role: JoinTokenRole, keysOf: ClusterKeys): Promise<string> {
  const updated = await updateObject<ClusterRecord>(store, keys.cluster, (cluster) => ({
    ...cluster,
    joinTokens: { ...cluster.joinTokens, [role]: sealedToken(keysOf, cluster.id, role) },
  }));
  if (!updated) throw errors.unavailable('the cluster is not initialised yet');
  return openJoinToken(ClusterRecord.parse(updated.value), role, keysOf.sealKey);
}
