/**
 * Network policy objects, one schema for the API, the CLI's policy files and stacks'
 * `x-shoal-policies`. The shape is Calico's NetworkPolicy: a selector over workload labels,
 * an order, and ordered ingress and egress rules whose source and destination each take
 * selectors, CIDRs and ports.
 */
import { z } from 'zod';
import { Labels } from '../../shared/schemas.ts';
import { parsePrefix } from '../ipam/ipv4.ts';
import { parseSelector, SelectorError } from './selector.ts';

/** A selector's text, checked by parsing it; the issue names its column in the selector. */
export const SelectorText = z.string({ error: 'a selector is a string, such as "role == \'db\'"' }).superRefine((text, context) => {
  try {
    parseSelector(text);
  } catch (error) {
    if (!(error instanceof SelectorError)) throw error;
    context.addIssue({ code: 'custom', message: `selector ${JSON.stringify(text)}: ${error.message}`, params: { selectorColumn: error.column } });
  }
});

const Cidr = z.string().superRefine((text, context) => {
  try {
    parsePrefix(text.includes('/') ? text : `${text}/32`, false);
  } catch {
    context.addIssue({ code: 'custom', message: `"${text}" is not an IPv4 address or CIDR such as 198.19.0.0/16` });
  }
});

/** A port, or a range written "1000:2000" as Calico writes it. */
const Port = z.union([
  z.number().int().min(1).max(65535),
  z.string().regex(/^\d{1,5}(:\d{1,5})?$/, 'a port is a number or a range such as "8000:8080"').refine((text) => {
    const [low, high = low] = text.split(':').map(Number);
    return low! >= 1 && high! <= 65535 && low! <= high!;
  }, 'a port range runs from 1 to 65535, low:high'),
], { error: 'a port is a number or a range such as "8000:8080"' });
export type Port = z.infer<typeof Port>;

/** The source or the destination of a rule: every field given must match. */
export const PolicyPeer = z.strictObject({
  /** Workloads whose labels match. */
  selector: SelectorText.optional(),
  /** Not workloads whose labels match (a workload's address outside the cluster's never matches a selector). */
  notSelector: SelectorText.optional(),
  nets: z.array(Cidr).optional(),
  notNets: z.array(Cidr).optional(),
  ports: z.array(Port).min(1).optional(),
  notPorts: z.array(Port).min(1).optional(),
});
export type PolicyPeer = z.infer<typeof PolicyPeer>;

export const policyActions = ['allow', 'deny', 'log', 'pass'] as const;
export type PolicyAction = (typeof policyActions)[number];
export const policyProtocols = ['tcp', 'udp', 'icmp', 'sctp'] as const;
export type PolicyProtocol = (typeof policyProtocols)[number];

export const PolicyRule = z
  .strictObject({
    action: z.enum(policyActions, { error: 'action is allow, deny, log or pass' }),
    protocol: z.enum(policyProtocols, { error: 'protocol is tcp, udp, icmp or sctp' }).optional(),
    source: PolicyPeer.default({}),
    destination: PolicyPeer.default({}),
  })
  .superRefine((rule, context) => {
    for (const side of ['source', 'destination'] as const) {
      const peer = rule[side];
      if ((peer.ports || peer.notPorts) && !['tcp', 'udp', 'sctp'].includes(rule.protocol ?? '')) {
        context.addIssue({ code: 'custom', message: 'ports need protocol: tcp, udp or sctp', path: [side, peer.ports ? 'ports' : 'notPorts'] });
      }
    }
  });
export type PolicyRule = z.infer<typeof PolicyRule>;
export type PolicyRuleInput = z.input<typeof PolicyRule>;

export const policyDirections = ['ingress', 'egress'] as const;
export type PolicyDirection = (typeof policyDirections)[number];

export const policyNamePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export const PolicySpec = z
  .strictObject({
    name: z.string({ error: 'a policy needs a name' }).regex(policyNamePattern, 'a policy name is letters, digits, "_", "." and "-" (up to 63)'),
    /** Lower first; a policy without an order comes after every ordered one (as Calico's). */
    order: z.number({ error: 'order is a number' }).min(0).optional(),
    /** The workloads it applies to. */
    selector: SelectorText.default('all()'),
    /** Which directions it governs; by default ingress, and egress too when it has egress rules (as Calico's). */
    types: z.array(z.enum(policyDirections, { error: 'a type is ingress or egress' })).min(1).optional(),
    ingress: z.array(PolicyRule).default([]),
    egress: z.array(PolicyRule).default([]),
    labels: Labels.default({}),
  });
export type PolicySpec = z.infer<typeof PolicySpec>;
export type PolicySpecInput = z.input<typeof PolicySpec>;

export interface PolicyObject {
  spec: PolicySpec;
  /** The store's revision, in API answers. */
  version?: number;
  createdAt: string;
  updatedAt: string;
}

/** The directions a policy governs (its `types`, or Calico's default). */
export function directionsOf(spec: Pick<PolicySpec, 'types' | 'egress'>): PolicyDirection[] {
  if (spec.types) return policyDirections.filter((d) => spec.types!.includes(d));
  return spec.egress.length > 0 ? ['ingress', 'egress'] : ['ingress'];
}

/** Policies in the order they are evaluated: by order (none last), then by name. */
export function inEvaluationOrder<T extends { spec: Pick<PolicySpec, 'order' | 'name'> }>(policies: readonly T[]): T[] {
  const order = (p: T) => p.spec.order ?? Number.POSITIVE_INFINITY;
  return [...policies].sort((a, b) => order(a) - order(b) || a.spec.name.localeCompare(b.spec.name));
}

/** A workload's endpoint as policy sees it: its address on one network and its labels there. */
export const WorkloadEndpoint = z.object({ address: z.string(), labels: z.record(z.string(), z.string()) });
export type WorkloadEndpoint = z.infer<typeof WorkloadEndpoint>;

/** What every agent holds: all policies, and every workload endpoint of the cluster with its labels. */
export const PolicyTable = z.object({
  policies: z.array(PolicySpec),
  workloads: z.array(WorkloadEndpoint),
});
export type PolicyTable = z.infer<typeof PolicyTable>;
