import type { BridgeDiagnosis } from '../../netplug/bridge/bridge.ts';
import type { OverlayHostState } from '../../netplug/plumbing.ts';
import type { PeerTables } from '../dispatcher/dispatcher.ts';

/** One host's view of a network: what its kernel holds, and where that differs from its peer table. */
export interface HostDiagnosis {
  node: string;
  hostname: string;
  address: string;
  /** Undefined when the host has no endpoint on the network (or could not be asked). */
  kernel?: HostNetworkState;
  error?: string;
  /** Each difference between the kernel and the desired table, said plainly; empty when healthy. */
  problems: string[];
}

/** What a host's agent reports of one network: an overlay's VTEP and peers, or a local bridge. */
export type HostNetworkState = OverlayHostState | BridgeDiagnosis;

export const isOverlayState = (state: HostNetworkState | undefined): state is OverlayHostState => state !== undefined && 'vni' in state;

const broadcast = '00:00:00:00:00:00';

/**
 * Compares a host's FDB and neighbour entries with the peer table the leader wants it to hold,
 * and says which member hosts it has not heard from over gossip.
 */
export function compareWithTable(state: HostNetworkState | undefined, table: PeerTables[number] | undefined): string[] {
  const peers = table?.peers ?? [];
  // A local bridge has no peers to compare.
  if (state && !isOverlayState(state)) return [];
  const kernel = state;
  if (!kernel) return peers.length > 0 ? ['the host has endpoints on the network but no VTEP'] : [];
  const problems: string[] = [];
  const fdb = new Set(kernel.fdb.map((e) => `${e.mac}/${e.host}`));
  const neighbours = new Map(kernel.neighbours.map((n) => [n.address, n.mac]));
  for (const host of new Set(peers.map((p) => p.host))) if (!fdb.has(`${broadcast}/${host}`)) problems.push(`missing flood entry towards ${host}`);
  for (const peer of peers) {
    if (!fdb.has(`${peer.mac}/${peer.host}`)) problems.push(`missing FDB entry ${peer.mac} -> ${peer.host} (${peer.address})`);
    if (neighbours.get(peer.address) !== peer.mac) problems.push(`missing neighbour entry ${peer.address} -> ${peer.mac}`);
  }
  const wantedFdb = new Set([...peers.map((p) => `${p.mac}/${p.host}`), ...peers.map((p) => `${broadcast}/${p.host}`)]);
  for (const entry of kernel.fdb) if (!wantedFdb.has(`${entry.mac}/${entry.host}`)) problems.push(`stale FDB entry ${entry.mac} -> ${entry.host}`);
  const wantedNeighbours = new Set(peers.map((p) => p.address));
  for (const entry of kernel.neighbours) if (!wantedNeighbours.has(entry.address)) problems.push(`stale neighbour entry ${entry.address} -> ${entry.mac}`);
  // The tables still heal the data plane, but the fast path from that host is broken.
  for (const member of kernel.heard ?? []) if (member.ageMs === undefined) problems.push(`no endpoint announcement heard from ${member.host} lately (gossip)`);
  return problems;
}
