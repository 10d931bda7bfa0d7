/**
 * Policy's semantics, as plain code: what the nftables rules compiled from the same policies
 * decide, for one connection. The agent uses it to find the established connections a new
 * deny forbids (their conntrack entries are removed); docs/networking.md states the same.
 *
 * For one workload endpoint and one direction: no policy selecting it, everything passes;
 * otherwise its policies are evaluated in order, and in each its rules in order: the first
 * allow or deny decides, log records and goes on, pass leaves this policy for the next one;
 * when no rule decided, the connection is denied.
 */
import { contains, parsePrefix, parseIpv4 } from '../ipam/ipv4.ts';
import { directionsOf, inEvaluationOrder, type PolicyDirection, type PolicyPeer, type PolicyRule, type PolicySpec, type Port } from './model.ts';
import { parseSelector, type Selector, selects } from './selector.ts';

const parsed = new Map<string, Selector>();

/** A selector's tree, parsed once per text. */
export function selectorOf(text: string): Selector {
  let selector = parsed.get(text);
  if (!selector) {
    selector = parseSelector(text);
    if (parsed.size > 10_000) parsed.clear();
    parsed.set(text, selector);
  }
  return selector;
}

export type Labels = Readonly<Record<string, string>>;

/** The policies that govern an endpoint with these labels in a direction, in evaluation order. */
export function policiesSelecting(policies: readonly PolicySpec[], labels: Labels, direction: PolicyDirection): PolicySpec[] {
  const governing = policies.filter((spec) => directionsOf(spec).includes(direction) && selects(selectorOf(spec.selector), labels));
  return inEvaluationOrder(governing.map((spec) => ({ spec }))).map((p) => p.spec);
}

/** One end of a connection: its address, its labels when it is a workload of the cluster, its port. */
export interface FlowEnd {
  address: string;
  labels?: Labels;
  port?: number;
}

export interface Flow {
  protocol: string;
  source: FlowEnd;
  destination: FlowEnd;
}

export interface Verdict {
  allowed: boolean;
  /** The policy and rule (0-based) that decided; none when no policy selects the endpoint or none decided. */
  policy?: string;
  rule?: number;
  reason: 'not selected' | 'rule' | 'default deny';
}

export function portRange(port: Port): [number, number] {
  if (typeof port === 'number') return [port, port];
  const [low, high = low] = port.split(':').map(Number);
  return [low!, high!];
}

const inPorts = (ports: readonly Port[], port: number | undefined) => port !== undefined && ports.some((p) => {
  const [low, high] = portRange(p);
  return port >= low && port <= high;
});

const inNets = (nets: readonly string[], address: string) => {
  const value = parseIpv4(address);
  return nets.some((net) => contains(parsePrefix(net.includes('/') ? net : `${net}/32`, false), value));
};

/** Whether one end of a connection matches a rule's source or destination. */
export function peerMatches(peer: PolicyPeer, end: FlowEnd): boolean {
  if (peer.selector !== undefined && !(end.labels && selects(selectorOf(peer.selector), end.labels))) return false;
  if (peer.notSelector !== undefined && end.labels && selects(selectorOf(peer.notSelector), end.labels)) return false;
  if (peer.nets && !inNets(peer.nets, end.address)) return false;
  if (peer.notNets && inNets(peer.notNets, end.address)) return false;
  if (peer.ports && !inPorts(peer.ports, end.port)) return false;
  if (peer.notPorts && inPorts(peer.notPorts, end.port)) return false;
  return true;
}

export function ruleMatches(rule: PolicyRule, flow: Flow): boolean {
  return (rule.protocol === undefined || rule.protocol === flow.protocol) && peerMatches(rule.source, flow.source) && peerMatches(rule.destination, flow.destination);
}

/**
 * The verdict for a connection at one end: `direction` ingress judges it for its destination
 * (whose labels are `flow.destination.labels`), egress for its source.
 */
export function decide(policies: readonly PolicySpec[], direction: PolicyDirection, flow: Flow): Verdict {
  const local = direction === 'ingress' ? flow.destination : flow.source;
  const governing = policiesSelecting(policies, local.labels ?? {}, direction);
  if (governing.length === 0) return { allowed: true, reason: 'not selected' };
  for (const policy of governing) {
    const rules = policy[direction];
    for (const [index, rule] of rules.entries()) {
      if (!ruleMatches(rule, flow)) continue;
      if (rule.action === 'allow' || rule.action === 'deny') return { allowed: rule.action === 'allow', policy: policy.name, rule: index, reason: 'rule' };
      if (rule.action === 'pass') break;
    }
  }
  return { allowed: false, reason: 'default deny' };
}
