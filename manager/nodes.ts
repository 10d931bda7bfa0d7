import { errors } from '../shared/errors.ts';
import { keys } from '../shared/keys.ts';
import type { Labels, NodeDescription, NodeObject, NodeRole, NodeState, NodeUpdateRequest } from '../shared/schemas.ts';
import { now, updateObject } from '../shared/store/objects.ts';
import type { Store, Versioned, WriteOp } from '../shared/store/store.ts';

/** Registers a joining node, or refreshes the description of one that joins again with the same key. */
export async function registerNode(
  store: Store,
  join: { nodeId: string; role: NodeRole; description: NodeDescription; labels: Labels },
): Promise<NodeObject> {
  const time = now();
  const node: NodeObject = {
    id: join.nodeId,
    spec: { availability: 'active', role: join.role, labels: join.labels },
    description: join.description,
    status: { state: 'unknown', message: 'joined; waiting for its session' },
    createdAt: time,
    updatedAt: time,
  };
  const created = await store.commit([{ op: 'create', key: keys.node(join.nodeId), value: node }]);
  if (created.ok) return node;
  const updated = await updateObject<NodeObject>(store, keys.node(join.nodeId), (current) => ({
    ...current,
    description: join.description,
    updatedAt: time,
  }));
  if (!updated) return registerNode(store, join);
  return updated.value;
}

/**
 * Writes an observed state change; returns undefined if the node no longer exists. With
 * `unless`, the change is skipped when it holds at write time. Only a leader observes nodes:
 * its `fence` makes the write fail once it no longer leads, however late the write comes.
 */
export async function setNodeState(
  store: Store,
  nodeId: string,
  state: NodeState,
  message: string,
  options: { description?: NodeDescription; unless?: () => boolean; fence: readonly WriteOp[] },
): Promise<NodeObject | undefined> {
  const time = now();
  const updated = await updateObject<NodeObject>(
    store,
    keys.node(nodeId),
    (current) =>
      options.unless?.()
        ? undefined
        : {
            ...current,
            description: options.description ?? current.description,
            status: { state, message, lastSeenAt: state === 'ready' ? time : current.status.lastSeenAt },
            updatedAt: time,
          },
    5,
    options.fence,
  );
  return updated?.value;
}

export async function listNodes(store: Store): Promise<Versioned<NodeObject>[]> {
  return store.list<NodeObject>(keys.nodes);
}

/**
 * Finds a node by id, hostname, or a unique part of its id: a prefix as in Docker, or a
 * suffix, since libp2p peer ids share their first characters and the CLI shows the last ones.
 */
export async function findNode(store: Store, reference: string): Promise<Versioned<NodeObject>> {
  // One read serves every way of naming a node.
  const nodes = await listNodes(store);
  const exact = nodes.find((n) => n.value.id === reference) ?? nodes.find((n) => n.value.description.hostname === reference);
  if (exact) return exact;
  const matches = nodes.filter((n) => n.value.id.startsWith(reference) || n.value.id.endsWith(reference));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) {
    throw errors.conflict(`"${reference}" matches ${matches.length} nodes`, 'use more of the node id to pick one');
  }
  throw errors.notFound('node', reference, 'list nodes with `shoal node ls`');
}

export async function updateNodeSpec(store: Store, reference: string, request: NodeUpdateRequest): Promise<NodeObject> {
  const node = await findNode(store, reference);
  const updated = await updateObject<NodeObject>(store, node.key, (current) => {
    const labels = { ...current.spec.labels, ...request.labelAdd };
    for (const key of request.labelRm ?? []) delete labels[key];
    return {
      ...current,
      spec: {
        availability: request.availability ?? current.spec.availability,
        role: request.role ?? current.spec.role,
        labels,
      },
      updatedAt: now(),
    };
  });
  if (!updated) throw errors.notFound('node', reference);
  return updated.value;
}

/** Removes a node from the cluster; a node that is still up needs `force`, as in Docker. */
export async function removeNode(store: Store, reference: string, force: boolean): Promise<NodeObject> {
  const node = await findNode(store, reference);
  if (node.value.status.state === 'ready' && !force) {
    throw errors.conflict(
      `node ${node.value.description.hostname} is ready and would keep running`,
      'stop its agent first (it is then marked down), or pass --force',
    );
  }
  // Revoked with the removal: the node's identity may never connect again.
  const revoked = { peerId: node.value.id, hostname: node.value.description.hostname, revokedAt: now() };
  const result = await store.commit([
    { op: 'delete', key: node.key, version: node.version },
    { op: 'create', key: keys.revokedPeer(node.value.id), value: revoked },
  ]);
  if (!result.ok) throw errors.versionConflict(node.key);
  return node.value;
}
