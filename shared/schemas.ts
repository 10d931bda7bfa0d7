/**
 * One schema per object: it validates input at the edge (API, CLI, agent messages) and gives
 * the TypeScript type through z.infer.
 */
import { z } from 'zod';
import type { HostUsage } from './p2p/protocol.ts';

const labelKey = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/, 'a label key is letters, digits, ".", "_", "-" and "/"');
export const Labels = z.record(labelKey, z.string().max(1024));
export type Labels = z.infer<typeof Labels>;

/** Docker's label=KEY or label=KEY=VALUE filter against a label map. */
export function labelMatches(labels: Record<string, string>, value: string): boolean {
  const index = value.indexOf('=');
  if (index < 0) return value in labels;
  return labels[value.slice(0, index)] === value.slice(index + 1);
}

export const NodeAvailability = z.enum(['active', 'pause', 'drain']);
export type NodeAvailability = z.infer<typeof NodeAvailability>;

export const NodeRole = z.enum(['worker', 'manager']);
export type NodeRole = z.infer<typeof NodeRole>;

export const NodeState = z.enum(['unknown', 'ready', 'down']);
export type NodeState = z.infer<typeof NodeState>;

export const NodeSpec = z.object({
  availability: NodeAvailability,
  role: NodeRole,
  labels: Labels,
});
export type NodeSpec = z.infer<typeof NodeSpec>;

/** What an agent reports about its host when it joins and when its session starts. */
export const NodeDescription = z.object({
  hostname: z.string().min(1).max(253),
  address: z.string().min(1),
  cpus: z.number().int().positive(),
  memoryBytes: z.number().int().positive(),
  kernel: z.string(),
  os: z.string(),
  arch: z.string(),
  runtime: z.object({ name: z.string(), version: z.string() }),
  engineLabels: Labels,
  agentVersion: z.string(),
  /** Where managers reach the agent's engine over libp2p. */
  p2pAddrs: z.array(z.string()).default([]),
});
export type NodeDescription = z.infer<typeof NodeDescription>;

export const NodeStatus = z.object({
  state: NodeState,
  message: z.string(),
  /** When the leader last heard from the node (ISO time), as of the last status write. */
  lastSeenAt: z.string().optional(),
});
export type NodeStatus = z.infer<typeof NodeStatus>;

export const NodeObject = z.object({
  id: z.string(),
  spec: NodeSpec,
  description: NodeDescription,
  status: NodeStatus,
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type NodeObject = z.infer<typeof NodeObject>;

export const ManagerRecord = z.object({
  id: z.string(),
  hostname: z.string(),
  /** Where the manager's HTTP API listens (host:port), if it listens on TCP. */
  apiAddress: z.string().optional(),
  p2pAddrs: z.array(z.string()),
  peerId: z.string(),
  startedAt: z.string(),
  /** The cluster CA's certificate naming this peer id: what an agent checks before it trusts the manager. */
  certificate: z.string().optional(),
});
export type ManagerRecord = z.infer<typeof ManagerRecord>;

export const AddressPools = z.object({ swarm: z.string(), local: z.string(), maskLength: z.number().int().min(8).max(30) });
export type AddressPools = z.infer<typeof AddressPools>;
export const defaultAddressPools: AddressPools = { swarm: '198.19.0.0/17', local: '198.19.128.0/17', maskLength: 24 };

export const SealedToken = z.object({ sha256: z.string(), sealed: z.string() });
export type SealedToken = z.infer<typeof SealedToken>;

export const ClusterRecord = z.object({
  id: z.string(),
  createdAt: z.string(),
  /** sha256 of the API bearer token; the token itself is only given to whoever initialised the cluster. */
  apiTokenSha256: z.string(),
  /** The cluster CA's certificate and digest: a manager whose PKI directory holds another CA refuses to serve. */
  ca: z.object({ certificate: z.string(), digest: z.string() }),
  /**
   * Each join token as a hash (what a join is checked against) and sealed with the managers'
   * seal key (so `join-token` can print it): never in clear, in etcd or in a backup.
   */
  joinTokens: z.object({ worker: SealedToken, manager: SealedToken }),
  heartbeatPeriodMs: z.number().int().positive(),
  /**
   * Where networks created without --subnet get theirs (Docker's --default-addr-pool): swarm
   * networks from `swarm`, local ones from `local`, each a /`maskLength`.
   */
  addressPools: AddressPools.default(defaultAddressPools),
});
export type ClusterRecord = z.infer<typeof ClusterRecord>;

/** Body of PATCH /v1/nodes/:id (the CLI's `node update`). */
export const NodeUpdateRequest = z
  .object({
    availability: NodeAvailability.optional(),
    role: NodeRole.optional(),
    labelAdd: Labels.optional(),
    labelRm: z.array(labelKey).optional(),
  })
  .strict();
export type NodeUpdateRequest = z.infer<typeof NodeUpdateRequest>;

export const JoinTokenRole = z.enum(['worker', 'manager']);
export type JoinTokenRole = z.infer<typeof JoinTokenRole>;

/** What GET /v1/managers returns per manager. */
export const ManagerView = ManagerRecord.extend({ leader: z.boolean(), reachable: z.boolean() });
export type ManagerView = z.infer<typeof ManagerView>;

/** With `?summary=true`: what a node holds (its tasks, their reservations) and how busy it said it is. */
export interface NodeSummary {
  tasks: { running: number; total: number };
  reserved: { nanoCpus: number; memoryBytes: number };
  /** From the node's last heartbeat; only the leader hears them. */
  usage?: HostUsage;
}

/** What GET /v1/nodes returns per node: the object plus its version and manager status. */
export type NodeView = NodeObject & { version: number; managerStatus?: 'leader' | 'reachable' | 'unreachable'; summary?: NodeSummary };

/** Turns a zod failure into one line a user can act on. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}
