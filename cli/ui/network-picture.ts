/**
 * How a network spans the hosts, from `network inspect --verbose`: a box per host with its
 * endpoints, and the links between hosts, each marked broken with the reason when some host's
 * kernel state disagrees with the peer table it should hold.
 */
import type { UiNetworkDetail } from './source.ts';

export interface PictureEndpoint {
  address: string;
  /** The task (or container) that holds it. */
  name: string;
  /** Its task's or container's id: what a trace names it by. */
  owner: string;
  /** Hosts missing its neighbour entry, said plainly; empty when every host has it. */
  problems: string[];
  /** Packets network policy dropped for it (deny rules and default deny), when a policy governs it. */
  drops?: number;
  /** Its drops rose since the picture before. */
  dropping?: boolean;
}

/** A route a route-aware driver (host-gw, calico) holds on a host: another host's block or subnet. */
export interface PictureRoute {
  destination: string;
  /** The host it leads to, by name (its underlay address when unknown). */
  via: string;
  present: boolean;
  refused?: string;
}

export interface PictureHost {
  hostname: string;
  address: string;
  /** What the host does for the network: "VTEP svx-4097 mtu 1450", "bridge slb-..." */
  role: string;
  endpoints: PictureEndpoint[];
  routes: PictureRoute[];
  /** Problems of this host not tied to one link (no VTEP, could not be asked). */
  problems: string[];
}

export interface PictureLink {
  from: string;
  to: string;
  /** "VXLAN 4097" */
  kind: string;
  /** Each reason the link is broken, with the host that holds the wrong state; empty when healthy. */
  problems: string[];
}

export interface NetworkPicture {
  hosts: PictureHost[];
  links: PictureLink[];
}

const pairKey = (a: string, b: string) => [a, b].sort().join(' ');

/**
 * `before`: the picture of the previous refresh, to tell which endpoints' policy drops rose.
 */
export function networkPicture(detail: UiNetworkDetail, before?: NetworkPicture): NetworkPicture {
  const diagnoses = detail.hosts ?? [];
  const byAddress = new Map(diagnoses.map((h) => [h.address, h]));
  const hostOfNode = new Map(diagnoses.map((h) => [h.node, h]));
  // Hosts the network spans: those with endpoints (by lease) or with kernel state for it.
  const spanned = diagnoses.filter((h) => h.kernel || detail.endpoints.some((e) => e.nodeId === h.node));
  const hostOfEndpoint = new Map(detail.endpoints.map((e) => [e.address, e.nodeId ? hostOfNode.get(e.nodeId)?.hostname : undefined]));
  const endpointProblems = new Map<string, string[]>();
  const linkProblems = new Map<string, string[]>();
  const hostProblems = new Map<string, string[]>();
  const blame = (on: string, towards: string | undefined, problem: string) => {
    if (!towards || towards === on) {
      hostProblems.set(on, [...(hostProblems.get(on) ?? []), problem]);
      return;
    }
    const key = pairKey(on, towards);
    linkProblems.set(key, [...(linkProblems.get(key) ?? []), `${on}: ${problem}`]);
  };
  for (const host of spanned) {
    if (host.error) blame(host.hostname, undefined, `not asked: ${host.error}`);
    for (const problem of host.problems) {
      // A problem names a remote host by its underlay address, or endpoints by theirs (a
      // neighbour entry, a VIP backend, a DNS record, a sandbox's policy rules); what is
      // missing follows the word ("spreads over A: missing backend B", "no record for web (wanted A)").
      const addressesIn = (text: string) => [...text.matchAll(/\d+\.\d+\.\d+\.\d+/g)].map((m) => m[0]);
      const addresses = addressesIn(problem);
      const named = addresses.filter((a) => hostOfEndpoint.has(a));
      const lacking = problem.search(/missing|wanted/);
      const missing = lacking >= 0 ? addressesIn(problem.slice(lacking)).filter((a) => hostOfEndpoint.has(a)) : [];
      const remoteHost = addresses.map((a) => byAddress.get(a)?.hostname).find((h) => h !== undefined);
      const towards = remoteHost ?? named.map((a) => hostOfEndpoint.get(a)).findLast((h) => h !== undefined && h !== host.hostname);
      for (const address of missing) {
        const marks = endpointProblems.get(address) ?? [];
        if (!marks.includes(`missing on ${host.hostname}`)) endpointProblems.set(address, [...marks, `missing on ${host.hostname}`]);
      }
      blame(host.hostname, towards, problem);
    }
  }
  const dropsBefore = new Map((before?.hosts ?? []).flatMap((h) => h.endpoints).map((e) => [e.address, e.drops ?? 0]));
  const hosts = spanned.map((host): PictureHost => {
    const kernel = host.kernel;
    const role = !kernel ? 'no data plane' : (kernel.detail?.summary ?? `${kernel.driver}, no state`);
    const drops = new Map<string, number>();
    for (const rule of (host.policy ?? []).flatMap((s) => s.rules)) {
      if (rule.action === 'deny' || rule.action === 'default-deny') drops.set(rule.endpoint, (drops.get(rule.endpoint) ?? 0) + rule.packets);
    }
    const endpoints = detail.endpoints
      .filter((e) => e.nodeId === host.node)
      .map((e): PictureEndpoint => {
        const dropped = drops.get(e.address);
        return {
          address: e.address || 'local',
          name: e.name ?? e.owner.slice(0, 12),
          owner: e.owner,
          problems: endpointProblems.get(e.address) ?? [],
          ...(dropped !== undefined ? { drops: dropped, dropping: before !== undefined && dropped > (dropsBefore.get(e.address) ?? 0) } : {}),
        };
      })
      .sort((a, b) => a.address.localeCompare(b.address, undefined, { numeric: true }));
    const routes = (kernel?.routes ?? []).map((r) => ({ destination: r.destination, via: byAddress.get(r.via)?.hostname ?? r.via, present: r.present, ...(r.refused ? { refused: r.refused } : {}) }));
    return { hostname: host.hostname, address: host.address, role, endpoints, routes, problems: hostProblems.get(host.hostname) ?? [] };
  });
  const links: PictureLink[] = [];
  // The drivers that join hosts say how ("VXLAN 4097", "routes", "LAN"); one-host networks draw no link.
  const kind = spanned.map((h) => h.kernel?.detail?.link).find((k) => k !== undefined);
  if (kind !== undefined) {
    for (const [i, a] of hosts.entries()) {
      for (const b of hosts.slice(i + 1)) links.push({ from: a.hostname, to: b.hostname, kind, problems: linkProblems.get(pairKey(a.hostname, b.hostname)) ?? [] });
    }
  }
  return { hosts, links };
}
