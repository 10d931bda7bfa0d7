/**
 * Network policies in the store: one key per name. `create` refuses a name in use; `apply`
 * (what a stack deploy does) creates or replaces, compared against the revision it read.
 * The leader's policy table picks every change up from its watch.
 */
import { errors } from '../shared/errors.ts';
import { keys } from '../shared/keys.ts';
import type { Store, Versioned } from '../shared/store/store.ts';
import type { PolicyObject, PolicySpec } from '../netplug/policy/model.ts';

const now = () => new Date().toISOString();

export async function listPolicies(store: Store): Promise<Versioned<PolicyObject>[]> {
  return store.list<PolicyObject>(keys.policies);
}

/** A policy as the API shows it: with the revision it was read at. */
export const policyView = (found: Versioned<PolicyObject>): PolicyObject => ({ ...found.value, version: found.version });

export async function findPolicy(store: Store, name: string): Promise<Versioned<PolicyObject>> {
  const found = await store.get<PolicyObject>(keys.policy(name));
  if (!found) throw errors.notFound('policy', name, 'list them with `shoal policy ls`');
  return found;
}

export async function createPolicy(store: Store, spec: PolicySpec): Promise<PolicyObject> {
  const time = now();
  const policy: PolicyObject = { spec, createdAt: time, updatedAt: time };
  const result = await store.commit([{ op: 'create', key: keys.policy(spec.name), value: policy }]);
  if (!result.ok) throw errors.conflict(`a policy named "${spec.name}" exists already`, `change it with \`shoal policy create --replace -f FILE\`, or remove it first with \`shoal policy rm ${spec.name}\``);
  return policy;
}

/** Creates the policy, or replaces the one of that name (its creation time kept). Unchanged: not written. */
export async function applyPolicy(store: Store, spec: PolicySpec): Promise<{ policy: PolicyObject; outcome: 'created' | 'updated' | 'unchanged' }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const found = await store.get<PolicyObject>(keys.policy(spec.name));
    if (!found) {
      try {
        return { policy: await createPolicy(store, spec), outcome: 'created' };
      } catch (error) {
        if (attempt < 4) continue;
        throw error;
      }
    }
    if (JSON.stringify(found.value.spec) === JSON.stringify(spec)) return { policy: policyView(found), outcome: 'unchanged' };
    const policy: PolicyObject = { spec, createdAt: found.value.createdAt, updatedAt: now() };
    const result = await store.commit([{ op: 'update', key: found.key, value: policy, version: found.version }]);
    if (result.ok) return { policy, outcome: 'updated' };
  }
  throw errors.versionConflict(keys.policy(spec.name));
}

export async function removePolicy(store: Store, name: string): Promise<PolicyObject> {
  const found = await findPolicy(store, name);
  const result = await store.commit([{ op: 'delete', key: found.key, version: found.version }]);
  if (!result.ok) throw errors.versionConflict(found.key);
  return found.value;
}
