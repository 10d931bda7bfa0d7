import { errors } from '../shared/errors.ts';
import { keys } from '../shared/keys.ts';
import type { Labels, NodeDescription, NodeObject, NodeRole, NodeState, NodeUpdateRequest } from '../shared/schemas.ts';
import { now, updateObject } from '../shared/store/objects.ts';
import type { Store, Versioned, WriteOp } from '../shared/store/store.ts';

export interface NodeJoin {
  nodeId: string;
  role: NodeRole;
  description: NodeDescription;
  labels: Labels;
}

function newNode(join: NodeJoin, time: string): NodeObject {
  return {
    id: join.nodeId,
    spec: { availability: 'active', role: join.role, labels: join.labels },
    description: join.description,
    status: { state: 'unknown', message: 'joined; waiting for its session' },
    createdAt: time,
    updatedAt: time,
  };
}

/** Registers a joining node, or refreshes the description of one that joins again with the same key. */
export async function registerNode(store: Store, join: NodeJoin): Promise<NodeObject> {
  const time = now();
  const node = newNode(join, time);
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
 * Registers many joining nodes in one transaction when all are new (a cluster's first start);
 * when any is not, each goes on its own (rejoins refresh their description).
 */
export async function registerNodes(store: Store, joins: readonly NodeJoin[]): Promise<NodeObject[]> {
  const time = now();
  const nodes = joins.map((join) => newNode(join, time));
  const unique = new Set(joins.map((j) => j.nodeId)).size === joins.length;
  if (unique && joins.length > 1) {
    const created = await store.commit(nodes.map((node) => ({ op: 'create' as const, key: keys.node(node.id), value: node })));
    if (created.ok) return nodes;
  }
  const registered: NodeObject[] = [];
  for (const join of joins) registered.push(await registerNode(store, join));
  return registered;
}

/**
 * Marks nodes whose sessions just opened ready, in one transaction under the leader's fence;
 * when that meets a conflict (a node written meanwhile), each on its own. Answers each with its
 * node as written, or undefined for a node the store does not hold (removed).
 */
export async function markSessionsOpen(
  store: Store,
  opened: readonly { nodeId: string; description: NodeDescription }[],
  fence: readonly WriteOp[],
): Promise<(NodeObject | undefined)[]> {
  const time = now();
  const stored = new Map((await store.getMany<NodeObject>(opened.map((o) => keys.node(o.nodeId)))).map((n) => [n.value.id, n]));
  const ops: WriteOp[] = [];
  const written = opened.map(({ nodeId, description }) => {
    const current = stored.get(nodeId);
    if (!current) return undefined;
    const node = inState(current.value, 'ready', 'session open', time, description);
    ops.push({ op: 'update', key: current.key, value: node, version: current.version });
    return node;
  });
  if (ops.length === 0) return written;
  const result = await store.commit([...fence, ...ops]);
  if (result.ok) return written;
  const one: (NodeObject | undefined)[] = [];
  for (const { nodeId, description } of opened) one.push(await setNodeState(store, nodeId, 'ready', 'session open', { description, fence }));
  return one;
}

/** A node as it is once observed in `state` (a ready node is seen now), with its new description if one came. */
function inState(current: NodeObject, state: NodeState, message: string, time: string, description?: NodeDescription): NodeObject {
  return {
    ...current,
    description: description ?? current.description,
    status: { state, message, lastSeenAt: state === 'ready' ? time : current.status.lastSeenAt },
    updatedAt: time,
  };
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
        : inState(current, state, message, time, options.description),
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
  return matchNode(await listNodes(store), reference);
}

/** `findNode` over nodes already read (a mirror's). */
export function matchNode(nodes: readonly Versioned<NodeObject>[], reference: string): Versioned<NodeObject> {
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
