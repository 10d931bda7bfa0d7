/**
 * What an agent holds to be the remote endpoints of each overlay network it is on, from two
 * sources: the leader's full peer tables (through the dispatcher, resent every 10 s: the
 * anti-entropy) and the owning agents' own announcements (gossipsub: the fast path, with no
 * hop through the leader). An endpoint is held while either source holds it. The leader alone
 * says which hosts are members of a network (ready, with endpoints on it): announcements from
 * any other host are kept but not used, so a host marked down loses its endpoints everywhere
 * at once, whatever it said last.
 */
import type { EndpointAnnouncement, NetworkMember } from '../shared/p2p/protocol.ts';
import type { Peer } from './driver.ts';

export interface LeaderTable {
  networkId: string;
  peers: Peer[];
  members: NetworkMember[];
}

/** An announcement counts this long after it was heard; agents repeat theirs every 10 s. */
export const announcementTtlMs = 30_000;
/** Hosts heard on a network that the leader does not list, kept per network at most. */
export const maxStrangers = 64;

interface Heard {
  seq: number;
  endpoints: EndpointAnnouncement['endpoints'];
  at: number;
}

/** What one member last announced, for diagnosis. */
export interface IgnoredFrom {
  node: string;
  endpoints: number;
  ageMs: number;
}

export interface HeardFrom {
  node: string;
  host: string;
  endpoints: number;
  /** Milliseconds since it was heard; absent when nothing fresh was heard from that member. */
  ageMs?: number;
}

export class PeerView {
  private leader = new Map<string, LeaderTable>();
  /** Per network, per announcing node: its latest announcement. */
  private readonly heard = new Map<string, Map<string, Heard>>();

  /** Takes the leader's full tables: a network absent from them has no peers and no members. */
  setLeaderTables(tables: readonly LeaderTable[]): void {
    this.leader = new Map(tables.map((t) => [t.networkId, t]));
  }

  /** Records an announcement; false when it is older than one already held from that node. */
  hear(nodeId: string, announcement: EndpointAnnouncement, now: number): boolean {
    let perNode = this.heard.get(announcement.networkId);
    if (!perNode) this.heard.set(announcement.networkId, (perNode = new Map()));
    const held = perNode.get(nodeId);
    if (held && held.seq >= announcement.seq) return false;
    if (!held && !this.members(announcement.networkId).some((m) => m.nodeId === nodeId)) this.makeRoomForStranger(announcement.networkId, perNode, now);
    perNode.set(nodeId, { seq: announcement.seq, endpoints: announcement.endpoints, at: now });
    return true;
  }

  /** The network's other member hosts, as the leader last said. */
  members(networkId: string): NetworkMember[] {
    return this.leader.get(networkId)?.members ?? [];
  }

  /** Every remote endpoint to program: the leader's, plus what members announced recently. */
  peers(networkId: string, now: number): Peer[] {
    const table = this.leader.get(networkId);
    const byAddress = new Map((table?.peers ?? []).map((p) => [p.address, p]));
    for (const member of table?.members ?? []) {
      const heard = this.fresh(networkId, member.nodeId, now);
      // The leader's entry wins for an address both name: it comes from the lease itself.
      for (const endpoint of heard?.endpoints ?? []) if (!byAddress.has(endpoint.address)) byAddress.set(endpoint.address, { ...endpoint, host: member.host });
    }
    return [...byAddress.values()].sort((a, b) => a.address.localeCompare(b.address));
  }

  /** Each member with what it last announced, for `network inspect --verbose`. */
  heardFrom(networkId: string, now: number): HeardFrom[] {
    return this.members(networkId).map((member) => {
      const heard = this.fresh(networkId, member.nodeId, now);
      return { node: member.nodeId, host: member.host, endpoints: heard?.endpoints.length ?? 0, ...(heard ? { ageMs: now - heard.at } : {}) };
    });
  }

  /**
   * Hosts heard on the network's topic that the leader does not list as its members: their
   * announcements are kept (a new member can be heard before the leader's table names it) but
   * never programmed. A signed announcement from a peer that is no member at all stays here.
   */
  ignoredFrom(networkId: string, now: number): IgnoredFrom[] {
    const members = new Set(this.members(networkId).map((m) => m.nodeId));
    return [...(this.heard.get(networkId)?.entries() ?? [])]
      .filter(([nodeId, heard]) => !members.has(nodeId) && now - heard.at < announcementTtlMs)
      .map(([nodeId, heard]) => ({ node: nodeId, endpoints: heard.endpoints.length, ageMs: now - heard.at }));
  }

  /**
   * Keeps at most `maxStrangers` hosts the leader does not list per network: a member can be
   * heard a moment before the leader's table names it, but a flood of forged peers must not
   * grow the agent without bound. Stale ones go first, then the oldest.
   */
  private makeRoomForStranger(networkId: string, perNode: Map<string, Heard>, now: number): void {
    const members = new Set(this.members(networkId).map((m) => m.nodeId));
    const strangers = [...perNode.entries()].filter(([nodeId]) => !members.has(nodeId));
    for (const [nodeId, heard] of strangers) if (now - heard.at >= announcementTtlMs) perNode.delete(nodeId);
    const fresh = strangers.filter(([nodeId]) => perNode.has(nodeId)).sort((a, b) => a[1].at - b[1].at);
    while (fresh.length >= maxStrangers) perNode.delete(fresh.shift()![0]);
  }

  /** Drops what was heard on a network this host has left. */
  forget(networkId: string): void {
    this.heard.delete(networkId);
  }

  private fresh(networkId: string, nodeId: string, now: number): Heard | undefined {
    const heard = this.heard.get(networkId)?.get(nodeId);
    return heard && now - heard.at < announcementTtlMs ? heard : undefined;
  }
}
