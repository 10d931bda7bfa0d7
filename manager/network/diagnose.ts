import type { SandboxPolicyStatus } from '../../netplug/policy/enforcer.ts';
import type { HostNetworkState } from '../../netplug/plumbing.ts';
import { hasPeerEntries, peerEntryProblems } from '../../netplug/driver.ts';
import type { PeerTables } from '../dispatcher/dispatcher.ts';
import type { DiscoveryHostState } from '../../netplug/discovery/discovery.ts';
import type { ServiceTable } from '../../shared/p2p/protocol.ts';

export type { HostNetworkState };

/** One host's view of a network: what its kernel holds, and where that differs from its peer table. */
export interface HostDiagnosis {
  node: string;
  hostname: string;
  address: string;
  /** Undefined when the host has no endpoint on the network (or could not be asked). */
  kernel?: HostNetworkState;
  /** What its embedded DNS answers and its sandboxes' VIP rules spread over (swarm-scope networks). */
  discovery?: DiscoveryHostState;
  /** The network policy rules of its workloads on this network, with their counters (only those some policy governs). */
  policy?: SandboxPolicyStatus[];
  error?: string;
  /** Each difference between the kernel and the desired table, said plainly; empty when healthy. */
  problems: string[];
}

/**
 * What is wrong with a host's state of a network: what its agent's driver check found, and
 * where its kernel differs from the tables the leader wants it to hold now (a VTEP's FDB and
 * neighbour entries, the routes to other hosts' subnets), and which member hosts it has not
 * heard from over gossip.
 */
export function compareWithTable(state: HostNetworkState | undefined, table: PeerTables[number] | undefined): string[] {
  const peers = table?.peers ?? [];
  if (!state) return peers.length > 0 || (table?.routes.length ?? 0) > 0 ? ['the host has endpoints on the network but no data plane for it'] : [];
  const problems = [...state.problems];
  const kernel = state.detail;
  if (hasPeerEntries(kernel)) {
    if (!kernel.vtep && peers.length > 0) problems.push('the host has endpoints on the network but no VTEP');
    problems.push(...peerEntryProblems(peers, kernel));
  }
  if (state.routes) {
    for (const route of table?.routes ?? []) {
      const held = state.routes.find((r) => r.destination === route.subnet && r.via === route.host);
      if (!held?.present && !held?.refused) problems.push(`missing route ${route.subnet} via ${route.host}`);
    }
  }
  // The tables still heal the data plane, but the fast path from that host is broken.
  for (const member of state.heard ?? []) if (member.ageMs === undefined) problems.push(`no endpoint announcement heard from ${member.host} lately (gossip)`);
  return [...new Set(problems)];
}

const list = (addresses: readonly string[]) => (addresses.length > 0 ? addresses.join(', ') : 'nothing');

/** Name -> its addresses, sorted, with repeated names merged (a service alias can equal a task name). */
function byName(records: ServiceTable['records']): Map<string, string[]> {
  const names = new Map<string, Set<string>>();
  for (const record of records) {
    const set = names.get(record.name) ?? new Set<string>();
    for (const address of record.addresses) set.add(address);
    names.set(record.name, set);
  }
  return new Map([...names].map(([name, set]) => [name, [...set].sort()]));
}

/**
 * Compares what a host's embedded DNS answers and what each of its sandboxes' VIP rules spread
 * over with the service table the leader computes for that host and network.
 */
export function compareDiscovery(state: DiscoveryHostState | undefined, wanted: ServiceTable | undefined): string[] {
  if (!state) return [];
  const problems: string[] = [];
  const served = byName(state.records);
  const intended = byName(wanted?.records ?? []);
  for (const [name, addresses] of intended) {
    const answer = served.get(name);
    if (!answer) problems.push(`DNS: no record for ${name} (wanted ${list(addresses)})`);
    else if (answer.join() !== addresses.join()) problems.push(`DNS: ${name} answers ${list(answer)} where the manager wants ${list(addresses)}`);
  }
  for (const [name, addresses] of served) if (!intended.has(name)) problems.push(`DNS: stale record ${name} -> ${list(addresses)}`);
  const vips = wanted?.vips ?? [];
  for (const sandbox of state.sandboxes) {
    if (!sandbox.dnsRedirected) problems.push(`sandbox ${sandbox.name}: 127.0.0.11:53 is not redirected to the embedded DNS`);
    const kernel = new Map(sandbox.vips.map((v) => [v.address, v.backends]));
    for (const vip of vips) {
      const backends = kernel.get(vip.address);
      const want = [...vip.backends].sort();
      if (!backends) problems.push(`sandbox ${sandbox.name}: no rule for VIP ${vip.address} (${vip.service})`);
      else if (backends.join() !== want.join()) {
        const missing = want.filter((b) => !backends.includes(b));
        const stale = backends.filter((b) => !want.includes(b));
        const what = [...(missing.length ? [`missing backend ${missing.join(', ')}`] : []), ...(stale.length ? [`stale backend ${stale.join(', ')}`] : [])].join('; ');
        problems.push(`sandbox ${sandbox.name}: VIP ${vip.address} (${vip.service}) spreads over ${list(backends)}: ${what}`);
      }
    }
    for (const address of kernel.keys()) if (!vips.some((v) => v.address === address)) problems.push(`sandbox ${sandbox.name}: stale rule for VIP ${address}`);
  }
  return problems;
}
