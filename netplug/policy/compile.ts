/**
 * Compiles the policies that govern one sandbox's endpoints into one nftables table for that
 * sandbox's namespace (`inet shoal-policy`), as evaluate.ts states the semantics:
 *
 *   input/output base chains: replies of allowed connections (conntrack) and loopback pass,
 *     then a verdict map on the endpoint's address jumps to its chain for the direction;
 *   endpoint chain: a jump to each governing policy's chain in order, then a counted drop;
 *   policy chain: one rule per policy rule, each with a counter: allow accepts, deny drops,
 *     log logs and goes on, pass returns to the endpoint chain (the next policy).
 *
 * The local end of a rule (the destination of an ingress rule, the source of an egress rule)
 * is known here, so its selectors and CIDRs are decided now and a rule that cannot match is
 * left out; the remote end's selectors become named sets of workload addresses, which change
 * as workloads come and go without touching a rule. Enforcing in each workload's own
 * namespace is what every driver shares: a macvlan endpoint's packets meet no host hook.
 */
import { createHash } from 'node:crypto';
import { type PolicyDirection, type PolicyPeer, type PolicyRule, type PolicySpec, type Port, type WorkloadEndpoint } from './model.ts';
import { peerMatches, policiesSelecting, portRange, selectorOf } from './evaluate.ts';
import { selects } from './selector.ts';

export const policyTable = 'shoal-policy';

/** One rule as installed: which policy rule (or an endpoint's default deny) a counter belongs to. */
export interface InstalledRule {
  endpoint: string;
  direction: PolicyDirection;
  /** Absent for the endpoint's default deny. */
  policy?: string;
  rule?: number;
  action: PolicyRule['action'] | 'default-deny';
}

export interface CompiledSandbox {
  /** The table's chains and rules, its sets declared without their elements: when it is unchanged, only the sets need updating. */
  structure: string;
  /** The chains alone (the structure after the set declarations). */
  chains: string;
  /** Each named set's addresses, sorted. */
  sets: Map<string, string[]>;
  /** Empty: no policy governs any endpoint here, and the table should not exist. */
  rules: InstalledRule[];
}

const setName = (selector: string) => `w-${createHash('sha1').update(selector).digest('hex').slice(0, 12)}`;
const comment = (rule: InstalledRule) => `"${[rule.endpoint, rule.direction, rule.policy ?? '', rule.rule ?? '', rule.action].join('|')}"`;

/** An installed rule back from its comment (counters come back with it). */
export function installedRuleOf(text: string): InstalledRule | undefined {
  const [endpoint, direction, policy, rule, action] = text.split('|');
  if (!endpoint || (direction !== 'ingress' && direction !== 'egress') || !action) return undefined;
  return { endpoint, direction, ...(policy ? { policy } : {}), ...(rule ? { rule: Number(rule) } : {}), action: action as InstalledRule['action'] };
}

const portList = (ports: readonly Port[]) => `{ ${ports.map((p) => {
  const [low, high] = portRange(p);
  return low === high ? String(low) : `${low}-${high}`;
}).join(', ')} }`;
const netList = (nets: readonly string[]) => `{ ${nets.join(', ')} }`;

/**
 * Every selector a remote end names, with the addresses of the workloads it selects. A set is
 * named after its selector's text, so two rules with one selector share it.
 */
function remoteSets(rules: Iterable<{ rule: PolicyRule; direction: PolicyDirection }>, workloads: readonly WorkloadEndpoint[]): Map<string, string[]> {
  const sets = new Map<string, string[]>();
  for (const { rule, direction } of rules) {
    const remote = direction === 'ingress' ? rule.source : rule.destination;
    for (const text of [remote.selector, remote.notSelector]) {
      const name = text === undefined ? undefined : setName(text);
      if (name === undefined || sets.has(name)) continue;
      const selector = selectorOf(text!);
      sets.set(name, [...new Set(workloads.filter((w) => selects(selector, w.labels)).map((w) => w.address))].sort());
    }
  }
  return sets;
}

/** The nft match of one rule, or undefined when its local end cannot match this endpoint. */
function ruleMatch(rule: PolicyRule, direction: PolicyDirection, local: WorkloadEndpoint): string | undefined {
  const localPeer: PolicyPeer = direction === 'ingress' ? rule.destination : rule.source;
  // Ports are judged per packet; the rest of the local end is known now.
  if (!peerMatches({ ...localPeer, ports: undefined, notPorts: undefined }, { address: local.address, labels: local.labels })) return undefined;
  const remote = direction === 'ingress' ? rule.source : rule.destination;
  const remoteAddress = direction === 'ingress' ? 'ip saddr' : 'ip daddr';
  const parts: string[] = [];
  if (rule.protocol) parts.push(`meta l4proto ${rule.protocol}`);
  if (remote.selector !== undefined) parts.push(`${remoteAddress} @${setName(remote.selector)}`);
  if (remote.notSelector !== undefined) parts.push(`${remoteAddress} != @${setName(remote.notSelector)}`);
  if (remote.nets) parts.push(`${remoteAddress} ${netList(remote.nets)}`);
  if (remote.notNets) parts.push(`${remoteAddress} != ${netList(remote.notNets)}`);
  for (const [peer, field] of [[rule.source, 'sport'], [rule.destination, 'dport']] as const) {
    if (peer.ports) parts.push(`${rule.protocol} ${field} ${portList(peer.ports)}`);
    if (peer.notPorts) parts.push(`${rule.protocol} ${field} != ${portList(peer.notPorts)}`);
  }
  return parts.join(' ');
}

const verdictOf = (rule: PolicyRule, policy: string, direction: PolicyDirection, index: number) => {
  switch (rule.action) {
    case 'allow':
      return 'accept';
    case 'deny':
      return 'drop';
    case 'pass':
      return 'return';
    case 'log':
      return `log prefix "shoal-policy ${policy.slice(0, 60)} ${direction} ${index}: "`;
  }
};

export function compileSandbox(endpoints: readonly WorkloadEndpoint[], policies: readonly PolicySpec[], workloads: readonly WorkloadEndpoint[]): CompiledSandbox {
  const chains: string[] = [];
  const dispatch: Record<PolicyDirection, string[]> = { ingress: [], egress: [] };
  const installed: InstalledRule[] = [];
  const used: Array<{ rule: PolicyRule; direction: PolicyDirection }> = [];
  for (const [e, endpoint] of endpoints.entries()) {
    for (const direction of ['ingress', 'egress'] as const) {
      const governing = policiesSelecting(policies, endpoint.labels, direction);
      if (governing.length === 0) continue;
      const endpointChain = `e${e}-${direction}`;
      dispatch[direction].push(`${endpoint.address} : jump ${endpointChain}`);
      const jumps: string[] = [];
      for (const [p, policy] of governing.entries()) {
        const chain = `${endpointChain}-p${p}`;
        const lines: string[] = [];
        for (const [index, rule] of policy[direction].entries()) {
          const match = ruleMatch(rule, direction, endpoint);
          if (match === undefined) continue;
          const entry: InstalledRule = { endpoint: endpoint.address, direction, policy: policy.name, rule: index, action: rule.action };
          installed.push(entry);
          used.push({ rule, direction });
          lines.push(`    ${[match, 'counter', verdictOf(rule, policy.name, direction, index), 'comment', comment(entry)].filter(Boolean).join(' ')}`);
        }
        chains.push(`  chain ${chain} {`, ...lines, '  }');
        jumps.push(`    jump ${chain}`);
      }
      const deny: InstalledRule = { endpoint: endpoint.address, direction, action: 'default-deny' };
      installed.push(deny);
      chains.push(`  chain ${endpointChain} {`, ...jumps, `    counter drop comment ${comment(deny)}`, '  }');
    }
  }
  const sets = remoteSets(used, workloads);
  const base = (direction: PolicyDirection) => {
    if (dispatch[direction].length === 0) return [];
    const [hook, device, address] = direction === 'ingress' ? ['input', 'iifname', 'daddr'] : ['output', 'oifname', 'saddr'];
    return [
      `  chain ${direction} {`,
      `    type filter hook ${hook} priority filter; policy accept;`,
      '    ct state established,related accept',
      '    ct state invalid drop',
      `    ${device} "lo" accept`,
      `    ip ${address} vmap { ${dispatch[direction].join(', ')} }`,
      '  }',
    ];
  };
  const body = installed.length === 0 ? '' : [...base('ingress'), ...base('egress'), ...chains].join('\n');
  const compiled = { chains: body, sets, rules: installed };
  return { ...compiled, structure: installed.length === 0 ? '' : tableBody({ ...compiled, sets: new Map([...sets.keys()].map((name) => [name, []])) }) };
}

/** The set declarations (with their elements) and the chains. */
function tableBody(compiled: Pick<CompiledSandbox, 'sets' | 'chains'>): string {
  const declarations = [...compiled.sets].map(([name, elements]) => `  set ${name} { type ipv4_addr;${elements.length > 0 ? ` elements = { ${elements.join(', ')} }` : ''} }`);
  return [...declarations, compiled.chains].join('\n');
}

/** The whole table, elements included, as one `nft -f` transaction that replaces what was there. */
export function tableText(compiled: CompiledSandbox): string {
  return [`table inet ${policyTable} {}`, `delete table inet ${policyTable}`, ...(compiled.rules.length > 0 ? [`table inet ${policyTable} {`, tableBody(compiled), '}'] : []), ''].join('\n');
}

/** The element changes that take the sets from `before` to `after` (same structure), as nft commands. */
export function setChanges(before: ReadonlyMap<string, readonly string[]>, after: ReadonlyMap<string, readonly string[]>): string {
  const lines: string[] = [];
  for (const [name, elements] of after) {
    const old = new Set(before.get(name) ?? []);
    const now = new Set(elements);
    const added = elements.filter((a) => !old.has(a));
    const removed = [...old].filter((a) => !now.has(a));
    if (added.length > 0) lines.push(`add element inet ${policyTable} ${name} { ${added.join(', ')} }`);
    if (removed.length > 0) lines.push(`delete element inet ${policyTable} ${name} { ${removed.join(', ')} }`);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
