/**
 * `shoal network trace A B`: why task A can or cannot reach B, hop by hop, from what each
 * agent holds in its kernel and what the cluster intends: A's host's entries for B (FDB and
 * neighbour entries, routes), the underlay's MTU against the network's, the policy verdicts
 * at both ends, B's host's entries for A (the reply path), and a live probe from A's
 * namespace. The first failing hop names its host, the kernel object and the fix.
 * `composeTrace` is the pure part; the API gathers its input.
 */
import type { NodeObject } from '../../shared/schemas.ts';
import type { HostNetworkState } from '../../netplug/plumbing.ts';
import type { NetworkObject } from '../../netplug/model.ts';
import { decide } from '../../netplug/policy/evaluate.ts';
import type { PolicyTable } from '../../netplug/policy/model.ts';
import type { PeerTables } from '../dispatcher/dispatcher.ts';
import { compareWithTable } from './diagnose.ts';
import type { ProbeSighting, ProbeStage } from '../../netplug/vxlan/prober.ts';
import type { VxlanProbeResult } from './vxlan-probe.ts';

export interface TraceHop {
  hop: string;
  ok: boolean;
  detail: string;
  /** The host whose state is wrong, and the kernel object (which entry, route, rule). */
  host?: string;
  object?: string;
  fix?: string;
}

export interface TraceEnd {
  name: string;
  node: NodeObject;
  address: string;
  mac: string;
  labels: Record<string, string>;
}

export interface TraceInput {
  network: NetworkObject;
  from: TraceEnd;
  /** A workload, or a service's VIP with its backends (the first backend is followed). */
  to: TraceEnd & { vip?: { service: string; address: string; backends: string[] } };
  protocol: 'tcp' | 'udp' | 'icmp';
  port?: number;
  size?: number;
  /** Each end's host: what its agent reported of the network, or why it could not be asked. */
  states: Map<string, { state?: HostNetworkState; error?: string }>;
  /** What the leader intends each node to hold. */
  tables: Map<string, PeerTables>;
  policy: PolicyTable;
  probe?: { ok: boolean; ms: number; error?: string };
  /** The VXLAN probe frame's stages on both hosts (overlay networks, ends on two hosts). */
  vxlanProbe?: VxlanProbeResult;
}

const mentions = (problem: string, words: readonly string[]) => words.some((w) => w && new RegExp(`(^|[^0-9a-f.:])${w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([^0-9a-f.:]|$)`, 'i').test(problem));

/** A host's problems that break the way towards `peer` (its address, MAC or host), or the whole network there. */
function entryProblems(input: TraceInput, on: TraceEnd, peer: TraceEnd): string[] {
  const seen = input.states.get(on.node.id)?.state;
  const table = input.tables.get(on.node.id)?.find((t) => t.networkId === input.network.id);
  const problems = compareWithTable(seen, table);
  const aboutPeer = problems.filter((p) => mentions(p, [peer.address, peer.mac, ...(peer.node.id === on.node.id ? [] : [peer.node.description.address])]));
  const general = problems.filter((p) => /no VTEP|no data plane|is missing$|check failed/.test(p));
  return [...new Set([...aboutPeer, ...general])];
}

function hostHop(input: TraceInput, end: TraceEnd, role: string): TraceHop {
  const host = end.node.description.hostname;
  if (end.node.status.state !== 'ready') {
    return { hop: `${role} host`, ok: false, host, object: `node ${host} (${end.node.status.state})`, detail: `${host} is ${end.node.status.state}: its agent does not answer`, fix: `start the agent on ${host} (shoal node ls shows when it is Ready again)` };
  }
  const asked = input.states.get(end.node.id);
  if (asked?.error) return { hop: `${role} host`, ok: false, host, object: `agent on ${host}`, detail: `the agent on ${host} did not answer: ${asked.error}`, fix: `start the agent on ${host} if it stopped (its log says why)` };
  if (!asked?.state) return { hop: `${role} host`, ok: false, host, object: `network ${input.network.spec.name} on ${host}`, detail: `${host} holds nothing of network ${input.network.spec.name}`, fix: `shoal network check --repair ${input.network.spec.name}` };
  return { hop: `${role} host`, ok: true, host, detail: `${end.name} ${end.address} on ${host}, ${asked.state.detail?.summary ?? asked.state.driver}` };
}

function entriesHop(input: TraceInput, on: TraceEnd, towards: TraceEnd, label: string): TraceHop {
  const host = on.node.description.hostname;
  const problems = entryProblems(input, on, towards);
  if (problems.length > 0) return { hop: label, ok: false, host, object: problems[0]!, detail: problems.join('; '), fix: `shoal network check --repair ${input.network.spec.name}` };
  const kind = on.node.id === towards.node.id ? 'same host' : input.states.get(on.node.id)?.state?.routes ? 'route' : input.states.get(on.node.id)?.state?.detail?.link ? 'FDB and neighbour entries' : 'path';
  return { hop: label, ok: true, host, detail: `${host} holds the ${kind} towards ${towards.address}${on.node.id === towards.node.id ? '' : ` on ${towards.node.description.hostname}`}` };
}

function mtuHop(input: TraceInput): TraceHop {
  const a = input.states.get(input.from.node.id)?.state?.mtu;
  const b = input.states.get(input.to.node.id)?.state?.mtu;
  if (!a || !b) return { hop: 'path MTU', ok: true, detail: 'not known (a host did not say)' };
  const overhead = Math.max(a.overhead, b.overhead);
  const underlay = Math.min(a.underlay, b.underlay);
  const largest = underlay - overhead;
  const endpoint = a.endpoint ?? b.endpoint ?? largest;
  const wanted = input.size !== undefined ? input.size + 28 : endpoint;
  const low = a.underlay <= b.underlay ? input.from.node : input.to.node;
  if (wanted > largest && input.from.node.id !== input.to.node.id) {
    return {
      hop: 'path MTU', ok: false, host: low.description.hostname, object: `underlay MTU ${underlay} on ${low.description.hostname}`,
      detail: `${low.description.hostname}'s underlay MTU is ${underlay}${overhead ? ` and the encapsulation adds ${overhead} bytes` : ''}: the largest packet that passes is ${largest} bytes, the sandboxes send up to ${wanted}`,
      fix: `raise ${low.description.hostname}'s underlay MTU to ${Math.max(wanted, endpoint) + overhead}, or create the network with -o mtu=${largest}`,
    };
  }
  return { hop: 'path MTU', ok: true, detail: `packets up to ${largest} bytes pass (sandbox MTU ${endpoint}${overhead ? `, ${overhead} bytes of encapsulation` : ''}, underlay ${underlay})` };
}

function policyHop(input: TraceInput): TraceHop {
  const flow = {
    protocol: input.protocol,
    source: { address: input.from.address, labels: input.from.labels, port: 40000 },
    destination: { address: input.to.address, labels: input.to.labels, ...(input.port !== undefined ? { port: input.port } : {}) },
  };
  for (const [direction, end] of [['egress', input.from], ['ingress', input.to]] as const) {
    const verdict = decide(input.policy.policies, direction, flow);
    if (verdict.allowed) continue;
    const what = verdict.reason === 'rule' ? `policy ${verdict.policy} ${direction} rule ${verdict.rule} (deny)` : `${direction} default deny of the policies selecting ${end.name}`;
    return {
      hop: 'policy', ok: false, host: end.node.description.hostname, object: what,
      detail: `${what} drops ${input.protocol}${input.port ? `/${input.port}` : ''} from ${input.from.name} to ${input.to.name}`,
      fix: verdict.policy ? `shoal policy inspect --pretty ${verdict.policy}` : 'add a rule that allows it, or see `shoal policy ls`',
    };
  }
  return { hop: 'policy', ok: true, detail: input.policy.policies.length ? 'the policies allow it at both ends' : 'no policy' };
}

interface StageStep {
  side: 'destination' | 'source';
  stage: ProbeStage;
  /** Where it was lost, when this stage saw nothing: the host, the kernel object, what it means, the fix. */
  lost: (names: StageNames) => { host: string; object: string; detail: string; fix: string };
}

interface StageNames {
  from: TraceEnd;
  to: TraceEnd;
  a: string;
  b: string;
  vni: number;
  network: string;
  /** The inner packet's size against the MTU of the destination's interface, which its veth enforces. */
  packet: number;
  endpointMtu?: number;
}

const allowVxlan = (host: string, network: string) => `let UDP 4789 in on ${host} (\`nft list ruleset\` there shows what drops it); \`shoal network check --repair ${network}\` if its VXLAN device is missing`;

/** The stages in the order a frame passes them: the request into B's namespace and the reply out, then the reply into A's. */
const stageSteps: StageStep[] = [
  { side: 'destination', stage: 'underlay', lost: (n) => ({ host: n.b, object: `UDP ${n.from.node.description.address} -> ${n.to.node.description.address}:4789 on the underlay`, detail: `the probe frame sent from ${n.a}'s underlay never arrived on ${n.b}'s`, fix: `let UDP 4789 pass between ${n.a} and ${n.b} (firewalls, security groups) and check the underlay's route and MTU` }) },
  { side: 'destination', stage: 'vxlan', lost: (n) => ({ host: n.b, object: `UDP 4789 input on ${n.b} (VTEP of VNI ${n.vni})`, detail: `the frame arrived on ${n.b}'s underlay but its VTEP never decapsulated it: a firewall on ${n.b} drops UDP 4789, or no VXLAN device there takes VNI ${n.vni}`, fix: allowVxlan(n.b, n.network) }) },
  { side: 'destination', stage: 'to-endpoint', lost: (n) => ({ host: n.b, object: `bridge port of ${n.to.name} on ${n.b}`, detail: `${n.b}'s VTEP decapsulated the frame but its bridge did not forward it to ${n.to.name}'s port (the port is down, or ${n.to.mac} is learned elsewhere)`, fix: `shoal network check --repair ${n.network}` }) },
  { side: 'destination', stage: 'in-sandbox', lost: (n) => ({ host: n.b, object: `veth of ${n.to.name} on ${n.b}`, ...(n.endpointMtu !== undefined && n.packet > n.endpointMtu
    ? { detail: `the bridge on ${n.b} sent the frame to ${n.to.name}'s veth, which dropped it: its packet of ${n.packet} bytes is larger than the interface's MTU ${n.endpointMtu}`, fix: `send at most ${n.endpointMtu - 28} bytes of ICMP data (--size), or give the network a larger MTU (-o mtu=)` }
    : { detail: `the bridge on ${n.b} sent the frame to ${n.to.name}'s veth but it never arrived in its namespace (the veth pair is down?)`, fix: `shoal network check --repair ${n.network}` }) }) },
  { side: 'destination', stage: 'out-sandbox', lost: (n) => ({ host: n.b, object: `${n.to.name} ${n.to.address}`, detail: `${n.to.name} received the echo but did not answer: a policy or its own kernel dropped it`, fix: 'see the policy hop, or `shoal policy ls`' }) },
  { side: 'destination', stage: 'from-endpoint', lost: (n) => ({ host: n.b, object: `route of ${n.to.name} towards ${n.from.address}`, detail: `${n.to.name} answered, but the reply never left its veth for the bridge on ${n.b}`, fix: `shoal network check --repair ${n.network}` }) },
  { side: 'source', stage: 'underlay', lost: (n) => ({ host: n.b, object: `${n.b}'s entries for ${n.from.address} (${n.from.mac})`, detail: `${n.to.name}'s reply left it on ${n.b} but never arrived on ${n.a}'s underlay: ${n.b}'s VTEP does not send ${n.from.mac} to ${n.a}`, fix: `shoal network check --repair ${n.network}` }) },
  { side: 'source', stage: 'vxlan', lost: (n) => ({ host: n.a, object: `UDP 4789 input on ${n.a} (VTEP of VNI ${n.vni})`, detail: `the reply arrived on ${n.a}'s underlay but its VTEP never decapsulated it: a firewall on ${n.a} drops UDP 4789`, fix: allowVxlan(n.a, n.network) }) },
  { side: 'source', stage: 'to-endpoint', lost: (n) => ({ host: n.a, object: `bridge port of ${n.from.name} on ${n.a}`, detail: `${n.a}'s bridge did not forward the reply to ${n.from.name}'s port`, fix: `shoal network check --repair ${n.network}` }) },
  { side: 'source', stage: 'in-sandbox', lost: (n) => ({ host: n.a, object: `veth of ${n.from.name} on ${n.a}`, detail: `the reply never arrived in ${n.from.name}'s namespace`, fix: `shoal network check --repair ${n.network}` }) },
];

/** A stage that saw nothing, or could not be watched while nothing after it on that host saw the frame either. */
function lostAt(steps: readonly StageStep[], sightings: Record<StageStep['side'], ProbeSighting>): { step: StageStep; unwatched?: string } | undefined {
  for (const [i, step] of steps.entries()) {
    const sighting = sightings[step.side];
    if (sighting.counts[step.stage] > 0) continue;
    const unwatched = sighting.unwatched[step.stage];
    const seenLater = steps.slice(i + 1).some((later) => later.side === step.side && sighting.counts[later.stage] > 0);
    if (unwatched && seenLater) continue;
    return { step, ...(unwatched ? { unwatched } : {}) };
  }
  return undefined;
}

function vxlanProbeHop(input: TraceInput, probe: VxlanProbeResult): TraceHop {
  const endpointMtu = input.states.get(input.to.node.id)?.state?.mtu?.endpoint;
  const names: StageNames = {
    from: input.from, to: input.to, a: input.from.node.description.hostname, b: input.to.node.description.hostname, vni: probe.vni, network: input.network.spec.name,
    // The VXLAN payload less its header and the inner Ethernet header.
    packet: (probe.bytes ?? 0) - 8 - 14, ...(endpointMtu !== undefined ? { endpointMtu } : {}),
  };
  const label = 'VXLAN probe';
  if (probe.error || !probe.destination || !probe.source) return { hop: label, ok: false, detail: `not sent: ${probe.error ?? 'a host did not say what it saw'}` };
  const lost = lostAt(stageSteps, { destination: probe.destination, source: probe.source });
  const frame = `frame ${probe.bytes} bytes, nonce ${probe.nonce.toString(16).padStart(8, '0')}`;
  if (!lost) {
    return { hop: label, ok: true, detail: `${frame}: ${names.a} -> ${names.b} underlay, VTEP ${probe.vni}, bridge, ${input.to.name}; answered; the reply reached ${input.from.name} on ${names.a}` };
  }
  const where = lost.step.lost(names);
  return { hop: label, ok: false, host: where.host, object: where.object, detail: `${frame}: ${where.detail}${lost.unwatched ? ` (that stage could not be watched: ${lost.unwatched})` : ''}`, fix: where.fix };
}

export function composeTrace(input: TraceInput): TraceHop[] {
  const hops: TraceHop[] = [hostHop(input, input.from, 'source')];
  if (input.to.vip) {
    const vip = input.to.vip;
    hops.push(vip.backends.length > 0
      ? { hop: 'service VIP', ok: true, detail: `${vip.service} ${vip.address} spreads over ${vip.backends.length} backend(s); following ${input.to.address}` }
      : { hop: 'service VIP', ok: false, object: `VIP ${vip.address} of ${vip.service}`, detail: `${vip.service}'s VIP ${vip.address} has no healthy backend`, fix: `shoal service ps ${vip.service}` });
  }
  hops.push(entriesHop(input, input.from, input.to, 'towards the destination'), mtuHop(input), policyHop(input), hostHop(input, input.to, 'destination'), entriesHop(input, input.to, input.from, 'reply path'));
  if (input.vxlanProbe) hops.push(vxlanProbeHop(input, input.vxlanProbe));
  if (input.probe) {
    const what = `${input.protocol}${input.port ? `/${input.port}` : ''}${input.size !== undefined ? ` ${input.size} bytes` : ''} from ${input.from.name} to ${input.to.vip?.address ?? input.to.address}`;
    hops.push(input.probe.ok
      ? { hop: 'live probe', ok: true, detail: `${what}: answered in ${input.probe.ms} ms${input.protocol === 'udp' ? ' (sent; UDP has no answer to wait for)' : ''}` }
      : { hop: 'live probe', ok: false, detail: `${what}: ${input.probe.error ?? 'no answer'}`, ...(hops.every((h) => h.ok) ? { fix: 'the hops above look right: is the destination listening on that port?' } : {}) });
  }
  return hops;
}
