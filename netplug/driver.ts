/**
 * What a data-plane driver does on one host (libnetwork's driverapi, in small): a core every
 * driver implements, and abilities apart that the plumbing finds with type guards.
 */
import type { Endpoint, Network, Sandbox } from './cnm.ts';
import type { ProbePath } from './vxlan/prober.ts';

export interface NetworkDriver {
  /** Makes the network's state on this host, finishing what a cut-off attempt left half made. */
  createNetwork(network: Network): Promise<void>;
  /** Removes the network's state on this host; succeeds on state half made or already gone. */
  deleteNetwork(network: Network): Promise<void>;
  /** Plumbs the sandbox into the network; on failure undoes its own finished steps. */
  join(endpoint: Endpoint, sandbox: Sandbox): Promise<void>;
  /** Undoes join; succeeds when the endpoint is already gone (its sandbox may be gone too). */
  leave(endpoint: Endpoint, sandbox: Sandbox): Promise<void>;
  /** What is missing or wrong in the kernel state the driver owns for the network here; empty when healthy. */
  check(network: Network): Promise<string[]>;
}

/** A remote endpoint of a network, as the leader's tables and the gossip carry it. */
export interface Peer {
  address: string;
  mac: string;
  /** The underlay address of the host it lives on (its VTEP, for overlays). */
  host: string;
}

/** A remote host's share of a network, routed to through that host (host-gw's subnets). */
export interface RouteEntry {
  subnet: string;
  /** The host's underlay address. */
  host: string;
}

/** A route in the host's namespace that the shared route-sync loop keeps. */
export interface WantedRoute {
  destination: string;
  via: string;
}

/** Drivers that program each remote endpoint (overlay: FDB and neighbour entries). */
export interface PeerAware {
  /** Makes the kernel hold exactly these remote endpoints of the network (this host's own left out). */
  setPeers(network: Network, peers: readonly Peer[]): Promise<void>;
}

/** Drivers whose remote hosts are reached by routes in the host's namespace (host-gw, calico). */
export interface RouteAware {
  /** The routes the network needs on this host, from the leader's route entries. */
  routes(network: Network, entries: readonly RouteEntry[]): WantedRoute[];
}

/** Drivers that can say what they hold for a network here, for `network inspect --verbose`. */
export interface Diagnosable {
  diagnose(network: Network): Promise<DriverDiagnosis | undefined>;
}

/** Drivers whose hosts meet over VXLAN: `network trace` sends a probe frame through the tunnel and watches where it passes. */
export interface VxlanProbeable {
  /** The kernel objects between this host's underlay and a local endpoint. */
  probePath(network: Network, endpoint: Endpoint, sandbox: Sandbox): ProbePath;
}

/** One driver's kernel state for a network on a host; `driver` says which shape the rest has. */
export interface DriverDiagnosis {
  driver: string;
  /** One line on what the host does for the network ("VTEP svx-4097 mtu 1450"), for the UI's host box. */
  summary: string;
  /** What joins this host to the network's other hosts ("VXLAN 4097", "routes"), for the UI's links; absent for one-host networks. */
  link?: string;
  [detail: string]: unknown;
}

/** The part of a diagnosis that lists a VTEP's remote entries (overlay, and any VXLAN-like driver). */
export interface PeerEntriesDiagnosis extends DriverDiagnosis {
  vtep?: { device: string; local: string; mtu: number };
  fdb: Array<{ mac: string; host: string }>;
  neighbours: Array<{ address: string; mac: string }>;
}

const broadcastMac = '00:00:00:00:00:00';

/**
 * What a VTEP's entries lack or hold too many of, against the remote peers it should hold:
 * one flood entry per remote host, and per peer an FDB entry and a neighbour entry. The
 * driver's own check and the manager's comparison with the leader's table both say it so.
 */
export function peerEntryProblems(peers: readonly Peer[], kernel: Pick<PeerEntriesDiagnosis, 'fdb' | 'neighbours'>): string[] {
  const problems: string[] = [];
  const fdb = new Set(kernel.fdb.map((e) => `${e.mac}/${e.host}`));
  const neighbours = new Map(kernel.neighbours.map((n) => [n.address, n.mac]));
  for (const host of new Set(peers.map((p) => p.host))) if (!fdb.has(`${broadcastMac}/${host}`)) problems.push(`missing flood entry towards ${host}`);
  for (const peer of peers) {
    if (!fdb.has(`${peer.mac}/${peer.host}`)) problems.push(`missing FDB entry ${peer.mac} -> ${peer.host} (${peer.address})`);
    if (neighbours.get(peer.address) !== peer.mac) problems.push(`missing neighbour entry ${peer.address} -> ${peer.mac}`);
  }
  const wantedFdb = new Set([...peers.map((p) => `${p.mac}/${p.host}`), ...peers.map((p) => `${broadcastMac}/${p.host}`)]);
  for (const entry of kernel.fdb) if (!wantedFdb.has(`${entry.mac}/${entry.host}`)) problems.push(`stale FDB entry ${entry.mac} -> ${entry.host}`);
  const wantedNeighbours = new Set(peers.map((p) => p.address));
  for (const entry of kernel.neighbours) if (!wantedNeighbours.has(entry.address)) problems.push(`stale neighbour entry ${entry.address} -> ${entry.mac}`);
  return problems;
}

export const hasPeerEntries = (detail: DriverDiagnosis | undefined): detail is PeerEntriesDiagnosis => detail !== undefined && Array.isArray(detail.fdb) && Array.isArray(detail.neighbours);

export const isPeerAware = (driver: NetworkDriver): driver is NetworkDriver & PeerAware => typeof (driver as Partial<PeerAware>).setPeers === 'function';
export const isRouteAware = (driver: NetworkDriver): driver is NetworkDriver & RouteAware => typeof (driver as Partial<RouteAware>).routes === 'function';
export const isDiagnosable = (driver: NetworkDriver): driver is NetworkDriver & Diagnosable => typeof (driver as Partial<Diagnosable>).diagnose === 'function';
export const isVxlanProbeable = (driver: NetworkDriver): driver is NetworkDriver & VxlanProbeable => typeof (driver as Partial<VxlanProbeable>).probePath === 'function';
