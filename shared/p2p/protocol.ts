/** The messages agents and managers exchange over libp2p, one schema per direction. */
import { z } from 'zod';
import { Labels, ManagerRecord, NodeDescription, NodeRole } from '../schemas.ts';
import { type TaskAssignment, TaskState } from '../services.ts';
import { NetworkAttachment } from '../containers.ts';
import { PolicyTable } from '../../netplug/policy/model.ts';

/** 2.0.0: the manager shows its identity first, and the agent sends its token only if it checks out. */
export const joinProtocol = '/shoal/join/2.0.0';
export const dispatcherProtocol = '/shoal/dispatcher/1.0.0';

export const JoinRequest = z.object({ token: z.string(), description: NodeDescription, labels: Labels });
export type JoinRequest = z.infer<typeof JoinRequest>;

export const Refusal = z.object({
  ok: z.literal(false),
  code: z.string(),
  message: z.string(),
  hint: z.string().optional(),
  /** With code "not_leader": where to join instead. */
  leader: ManagerRecord.optional(),
});
export type Refusal = z.infer<typeof Refusal>;

export const JoinResponse = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), nodeId: z.string(), role: NodeRole, managers: z.array(ManagerRecord) }),
  Refusal,
]);
export type JoinResponse = z.infer<typeof JoinResponse>;

/** A manager's identity: the cluster CA and the CA's certificate naming the manager's peer id. */
export const ManagerIdentity = z.object({ caCertificate: z.string(), certificate: z.string() });
export type ManagerIdentity = z.infer<typeof ManagerIdentity>;

/** The first frame of a join, from the manager; then the agent's request, then the response. */
export const JoinServerMessage = z.union([z.object({ type: z.literal('identity'), identity: ManagerIdentity }), JoinResponse]);
export type JoinServerMessage = z.infer<typeof JoinServerMessage>;

export const TaskStatusReport = z.object({
  taskId: z.string(),
  state: TaskState,
  message: z.string(),
  error: z.string().optional(),
  containerId: z.string().optional(),
  exitCode: z.number().int().optional(),
  health: z.enum(['starting', 'healthy', 'unhealthy']).optional(),
});
export type TaskStatusReport = z.infer<typeof TaskStatusReport>;

/** A ready host with endpoints on a network, as the leader sees it. */
export const NetworkMember = z.object({ nodeId: z.string(), host: z.string(), p2pAddrs: z.array(z.string()) });
export type NetworkMember = z.infer<typeof NetworkMember>;

/**
 * The gossipsub topic on which the agents of one overlay network announce their endpoints
 * (libnetwork's NetworkDB plays this part in Docker).
 */
export const networkTopic = (networkId: string) => `/shoal/network/${networkId}/endpoints/1`;

/**
 * One agent's endpoints on one network, the whole list each time (a lost message is healed by
 * the next); `seq` orders one agent's announcements, so a late one never undoes a newer one.
 */
export const EndpointAnnouncement = z.object({
  networkId: z.string(),
  seq: z.number().int().nonnegative(),
  endpoints: z.array(z.object({ address: z.string(), mac: z.string() })).max(65_536),
});
export type EndpointAnnouncement = z.infer<typeof EndpointAnnouncement>;

/** How busy a host is, sent with each heartbeat: CPU used since the last one (0 to 1), memory in use. */
export const HostUsage = z.object({ cpuFraction: z.number().min(0).max(1), memoryUsedBytes: z.number().int().nonnegative() });
export type HostUsage = z.infer<typeof HostUsage>;

/** A name the embedded DNS answers on a network, with its addresses (shuffled per answer when `shuffle`). */
export const NameRecord = z.object({ name: z.string(), addresses: z.array(z.string()), shuffle: z.boolean().optional() });
export type NameRecord = z.infer<typeof NameRecord>;

/** A service's virtual address on a network and the task addresses connections to it are spread over. */
export const VirtualAddress = z.object({ address: z.string(), service: z.string(), backends: z.array(z.string()) });
export type VirtualAddress = z.infer<typeof VirtualAddress>;

/** What the embedded DNS and the VIPs of one network should hold on a node. */
export const ServiceTable = z.object({ networkId: z.string(), records: z.array(NameRecord), vips: z.array(VirtualAddress) });
export type ServiceTable = z.infer<typeof ServiceTable>;

/** An ingress-mode port: every node answers on it and forwards to these task addresses on the ingress network. */
export const IngressPort = z.object({
  protocol: z.enum(['tcp', 'udp']),
  publishedPort: z.number().int(),
  targetPort: z.number().int(),
  service: z.string(),
  backends: z.array(z.string()),
});
export type IngressPort = z.infer<typeof IngressPort>;

/**
 * The routing mesh on one node: its ingress sandbox's endpoint, the ports it forwards, and the
 * ingress addresses of every node's sandbox (a task routes each reply back through the sandbox
 * that brought its connection, so the task sees the client's own address).
 */
export const IngressTable = z.object({ attachment: NetworkAttachment, ports: z.array(IngressPort), sandboxes: z.array(z.string()).default([]) });
export type IngressTable = z.infer<typeof IngressTable>;

export const AgentMessage = z.discriminatedUnion('type', [
  /** `features` names what this agent understands beyond the first protocol (older agents send none). */
  z.object({ type: z.literal('hello'), description: NodeDescription, features: z.array(z.string()).optional() }),
  z.object({ type: z.literal('heartbeat'), usage: HostUsage.optional() }),
  /** What happened to assigned tasks; states only move forward. */
  z.object({ type: z.literal('task-status'), statuses: z.array(TaskStatusReport) }),
  /** Every sandbox, the routing mesh and the published ports of the node hold the service tables of this revision. */
  z.object({ type: z.literal('tables-applied'), revision: z.number() }),
]);
export type AgentMessage = z.infer<typeof AgentMessage>;

const TaskAssignmentShape = z.custom<TaskAssignment>((value) => typeof value === 'object' && value !== null && 'id' in value);

/** The feature an agent names in its hello to get `assignment-changes`. */
export const assignmentChangesFeature = 'assignmentChanges';

export const DispatcherMessage = z.discriminatedUnion('type', [
  /** The session is open; heartbeat at this period. */
  z.object({ type: z.literal('welcome'), heartbeatPeriodMs: z.number(), managers: z.array(ManagerRecord), certificate: z.string() }),
  z.object({ type: z.literal('heartbeat-ack'), heartbeatPeriodMs: z.number(), managers: z.array(ManagerRecord) }),
  /** This manager does not lead; try the leader named here (if one is known). */
  z.object({ type: z.literal('redirect'), leader: ManagerRecord.optional() }),
  /** Every task the node should hold now, with its desired state (the whole set). */
  z.object({ type: z.literal('assignments'), tasks: z.array(TaskAssignmentShape) }),
  /**
   * What changed in the node's tasks since the last `assignments` or changes of this session:
   * tasks new or changed, and ids no longer assigned. Sent only to an agent whose hello names
   * `assignmentChanges`; a node of a large service otherwise got its whole list again for every
   * chunk the scheduler placed.
   */
  z.object({ type: z.literal('assignment-changes'), set: z.array(TaskAssignmentShape), removed: z.array(z.string()) }),
  /**
   * Every remote endpoint of each network the node has endpoints on (the whole table, each
   * time), the network's other member hosts (the agents whose announcements to trust), and on
   * networks split per host the other hosts' subnets, to route to through them.
   */
  z.object({
    type: z.literal('network-peers'),
    tables: z.array(
      z.object({
        networkId: z.string(),
        peers: z.array(z.object({ address: z.string(), mac: z.string(), host: z.string() })),
        members: z.array(NetworkMember).default([]),
        routes: z.array(z.object({ subnet: z.string(), host: z.string() })).default([]),
      }),
    ),
  }),
  /**
   * Names and VIPs of every network the node has endpoints on (the whole set, each time), and
   * the routing mesh's ports when any service publishes in ingress mode.
   */
  z.object({ type: z.literal('service-tables'), tables: z.array(ServiceTable), ingress: IngressTable.optional(), revision: z.number().optional() }),
  /**
   * Every node in session holds the service tables of this revision or a later one: a task
   * withdrawn by then gets no new connection from anywhere, and may be stopped (drain first).
   */
  z.object({ type: z.literal('tables-settled'), revision: z.number() }),
  /** Every network policy and every workload endpoint with its labels (the whole table, each time). */
  z.object({ type: z.literal('policy-table'), table: PolicyTable }),
  /** The node may not hold a session (removed from the cluster); the agent stops. */
  z.object({ type: z.literal('refused'), code: z.string(), message: z.string() }),
]);
export type DispatcherMessage = z.infer<typeof DispatcherMessage>;

/** Managers call an agent's engine: one request, then events (progress, log lines), then a result or an error. */
export const engineProtocol = '/shoal/engine/1.0.0';

export const EngineRequest = z.object({ method: z.string(), params: z.unknown() });
export type EngineRequest = z.infer<typeof EngineRequest>;

/**
 * What a manager sends after a request that carries bytes (an archive to copy in, an image to
 * import or load): base64 pieces, then an end. Chunks stay well under the frame limit.
 */
export const EngineInput = z.discriminatedUnion('type', [
  z.object({ type: z.literal('data'), data: z.string() }),
  /** An interactive session's window, resized. */
  z.object({ type: z.literal('resize'), rows: z.number().int().min(1).max(10_000), cols: z.number().int().min(1).max(10_000) }),
  z.object({ type: z.literal('end') }),
]);
/** What a call's upstream carries before its end: bytes, or a new window size. */
export type EngineUpstreamFrame = Exclude<EngineInput, { type: 'end' }>;
export type EngineInput = z.infer<typeof EngineInput>;
export const EngineUpstream = z.union([EngineRequest, EngineInput]);
export type EngineUpstream = z.infer<typeof EngineUpstream>;
/** Bytes per data frame: 256 KiB, 342 KiB as base64, against the 4 MiB frame limit. */
export const engineChunkBytes = 256 * 1024;

export const EngineFrame = z.discriminatedUnion('type', [
  z.object({ type: z.literal('event'), data: z.unknown() }),
  z.object({ type: z.literal('result'), value: z.unknown() }),
  z.object({ type: z.literal('error'), kind: z.string(), code: z.string(), message: z.string(), hint: z.string().optional() }),
]);
export type EngineFrame = z.infer<typeof EngineFrame>;
