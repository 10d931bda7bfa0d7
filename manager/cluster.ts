import { errors } from '../shared/errors.ts';
import { keys } from '../shared/keys.ts';
import { type AddressPools, ClusterRecord, defaultAddressPools, type JoinTokenRole } from '../shared/schemas.ts';
import { now, updateObject } from '../shared/store/objects.ts';
import type { Store } from '../shared/store/store.ts';
import { newApiToken, newClusterId, newJoinToken, sha256 } from '../shared/tokens.ts';

export interface ClusterInit {
  cluster: ClusterRecord;
  /** Set only when this call created the cluster: the one moment the API token is known. */
  apiToken?: string;
}

/** Creates the cluster record on first start (exactly once, whoever races), else reads it. */
export async function initCluster(store: Store, options: { heartbeatPeriodMs: number; addressPools?: AddressPools }): Promise<ClusterInit> {
  const existing = await store.get<ClusterRecord>(keys.cluster);
  if (existing) return { cluster: ClusterRecord.parse(existing.value) };
  const id = newClusterId();
  const apiToken = newApiToken();
  const cluster: ClusterRecord = {
    id,
    createdAt: now(),
    apiTokenSha256: sha256(apiToken),
    joinTokens: { worker: newJoinToken(id, 'worker'), manager: newJoinToken(id, 'manager') },
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

/** Replaces one join token; nodes that joined with the old one stay joined. */
export async function rotateJoinToken(store: Store, role: JoinTokenRole): Promise<ClusterRecord> {
  const updated = await updateObject<ClusterRecord>(store, keys.cluster, (cluster) => ({
    ...cluster,
    joinTokens: { ...cluster.joinTokens, [role]: newJoinToken(cluster.id, role) },
  }));
  if (!updated) throw errors.unavailable('the cluster is not initialised yet');
  return updated.value;
}
