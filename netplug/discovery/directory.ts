/**
 * What this host's embedded DNS answers and its VIPs spread over: the leader's service tables
 * for swarm-scope networks, and the records this agent makes itself for local networks (whose
 * addresses only this host knows: host-local IPAM). Read per sandbox: only the networks a
 * sandbox is on.
 */
import type { IngressTable, NameRecord, ServiceTable, VirtualAddress } from '../../shared/p2p/protocol.ts';

export interface Lookup {
  /** The name is known on one of the networks asked about; `addresses` may be empty (no task runs). */
  addresses: string[];
  shuffle: boolean;
}

export class ServiceDirectory {
  private leader = new Map<string, ServiceTable>();
  private local = new Map<string, NameRecord[]>();
  private ingressTable: IngressTable | undefined;
  /** Per network: name -> record, rebuilt when a table changes. */
  private index = new Map<string, Map<string, NameRecord[]>>();
  private readonly listeners = new Set<(changed: ReadonlySet<string>) => void>();

  /** Calls `listener` with the networks whose tables changed. */
  onChange(listener: (changed: ReadonlySet<string>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The leader's whole set: networks it no longer lists are forgotten. */
  setLeaderTables(tables: readonly ServiceTable[], ingress: IngressTable | undefined): void {
    const next = new Map(tables.map((t) => [t.networkId, t]));
    const changed = new Set<string>();
    for (const id of new Set([...next.keys(), ...this.leader.keys()])) {
      if (JSON.stringify(next.get(id)) !== JSON.stringify(this.leader.get(id))) changed.add(id);
    }
    const ingressChanged = JSON.stringify(ingress) !== JSON.stringify(this.ingressTable);
    this.leader = next;
    this.ingressTable = ingress;
    if (ingressChanged) changed.add('ingress');
    this.changed(changed);
  }

  /** Records of local networks, made by this agent from its own sandboxes. */
  setLocalRecords(records: ReadonlyMap<string, NameRecord[]>): void {
    const changed = new Set<string>();
    for (const id of new Set([...records.keys(), ...this.local.keys()])) {
      if (JSON.stringify(records.get(id)) !== JSON.stringify(this.local.get(id))) changed.add(id);
    }
    this.local = new Map(records);
    this.changed(changed);
  }

  private changed(networks: ReadonlySet<string>): void {
    if (networks.size === 0) return;
    for (const id of networks) this.index.delete(id);
    for (const listener of this.listeners) listener(networks);
  }

  private indexOf(networkId: string): Map<string, NameRecord[]> {
    let found = this.index.get(networkId);
    if (!found) {
      found = new Map();
      for (const record of [...(this.leader.get(networkId)?.records ?? []), ...(this.local.get(networkId) ?? [])]) {
        const list = found.get(record.name);
        if (list) list.push(record);
        else found.set(record.name, [record]);
      }
      this.index.set(networkId, found);
    }
    return found;
  }

  /** A name on any of the networks, case-insensitive; undefined when none knows it. */
  lookup(networkIds: readonly string[], name: string): Lookup | undefined {
    const key = name.toLowerCase();
    let result: Lookup | undefined;
    for (const networkId of networkIds) {
      for (const record of this.indexOf(networkId).get(key) ?? []) {
        result ??= { addresses: [], shuffle: false };
        for (const address of record.addresses) if (!result.addresses.includes(address)) result.addresses.push(address);
        result.shuffle ||= record.shuffle === true;
      }
    }
    return result;
  }

  /** Whether any network of this host knows the name (so it is not sent upstream from a sandbox that may not see it). */
  knownAnywhere(name: string): boolean {
    const key = name.toLowerCase();
    return [...new Set([...this.leader.keys(), ...this.local.keys()])].some((id) => this.indexOf(id).has(key));
  }

  /** The names of an address on the networks, for reverse lookups (PTR). */
  namesOf(networkIds: readonly string[], address: string): string[] {
    const names: string[] = [];
    for (const networkId of networkIds) {
      for (const [name, records] of this.indexOf(networkId)) {
        if (!name.startsWith('tasks.') && records.some((r) => !r.shuffle && r.addresses.length === 1 && r.addresses[0] === address)) names.push(name);
      }
    }
    return names;
  }

  vips(networkId: string): VirtualAddress[] {
    return this.leader.get(networkId)?.vips ?? [];
  }

  records(networkId: string): NameRecord[] {
    return [...(this.leader.get(networkId)?.records ?? []), ...(this.local.get(networkId) ?? [])];
  }

  ingress(): IngressTable | undefined {
    return this.ingressTable;
  }

  /** Whether any of the addresses still takes traffic here: a VIP backend, an ingress backend or a name's address. */
  serves(addresses: readonly string[]): boolean {
    const wanted = new Set(addresses);
    for (const table of this.leader.values()) {
      if (table.vips.some((v) => v.backends.some((b) => wanted.has(b)))) return true;
      if (table.records.some((r) => r.addresses.some((a) => wanted.has(a)))) return true;
    }
    return this.ingressTable?.ports.some((p) => p.backends.some((b) => wanted.has(b))) ?? false;
  }
}
