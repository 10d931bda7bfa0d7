/**
 * The agent's side of network policy: the leader's policy table (every policy, every workload
 * endpoint with its labels) compiled into each local sandbox's namespace. A change of policy
 * (the rules a sandbox needs) replaces its table in one transaction; a workload coming, going or
 * changing labels only adds and deletes set elements. After either, the established
 * connections the new rules forbid lose their conntrack entries, so a new deny cuts them.
 */
import { systemBinary } from '../../shared/exec.ts';
import { nftInNamespaces } from '../../native/netns.ts';
import type { Logger } from '../../shared/log.ts';
import { HostNamespace } from '../host.ts';
import { compileSandbox, type CompiledSandbox, type InstalledRule, installedRuleOf, policyTable, setChanges, tableText } from './compile.ts';
import { decide, type Flow } from './evaluate.ts';
import type { PolicyTable, WorkloadEndpoint } from './model.ts';

const conntrack = systemBinary('conntrack');

/** A local workload's sandbox: its namespace and its endpoints with the labels it had when it was made. */
export interface CoveredSandbox {
  /** The container's name, for listings. */
  name: string;
  netns: string;
  endpoints: WorkloadEndpoint[];
}

export interface RuleCounters extends InstalledRule {
  packets: number;
  bytes: number;
}

export interface SandboxPolicyStatus {
  name: string;
  endpoints: WorkloadEndpoint[];
  rules: RuleCounters[];
  /** Endpoints whose rules should be there and are not. */
  missing?: string[];
  error?: string;
}

/** One entry of `conntrack -L`: the original direction's tuple and the reply's source. */
export interface TrackedConnection {
  protocol: string;
  source: string;
  destination: string;
  sport?: number;
  dport?: number;
  /** Where the reply comes from: the real destination when the original was a VIP (DNAT). */
  replySource: string;
  replySport?: number;
}

/** Parses `conntrack -L` lines (the first src=/dst=/sport=/dport= are the original direction's, the next the reply's). */
export function parseConntrack(text: string): TrackedConnection[] {
  const found: TrackedConnection[] = [];
  for (const line of text.split('\n')) {
    const protocol = /^(\w+)\s/.exec(line)?.[1];
    if (!protocol) continue;
    const values = (key: string) => [...line.matchAll(new RegExp(`\\b${key}=(\\S+)`, 'g'))].map((m) => m[1]!);
    const [source, replySource] = values('src');
    const [destination] = values('dst');
    const [sport, replySport] = values('sport').map(Number);
    const [dport] = values('dport').map(Number);
    if (!source || !destination || !replySource) continue;
    found.push({ protocol, source, destination, replySource, ...(sport !== undefined ? { sport } : {}), ...(dport !== undefined ? { dport } : {}), ...(replySport !== undefined ? { replySport } : {}) });
  }
  return found;
}

export class PolicyEnforcer {
  /** Undefined until the leader's first table: until then nothing is installed or removed. */
  private table: PolicyTable | undefined;
  private labelsByAddress = new Map<string, Record<string, string>>();
  private readonly sandboxes = new Map<string, CoveredSandbox>();
  private readonly installed = new Map<string, CompiledSandbox>();
  /** The last table applied, as text: the leader sends its table again every 10 s, mostly unchanged. */
  private tableKey = '';
  /** Passes run one at a time: a table change and a new sandbox never interleave their nft calls. */
  private queue: Promise<void> = Promise.resolve();
  /** A pass over every sandbox is waiting in the queue: another asked for meanwhile is the same pass. */
  private refreshQueued = false;

  constructor(private readonly log: Logger) {}

  /** The leader's table arrived: every sandbox is brought to it. */
  setTable(table: PolicyTable): Promise<void> {
    const key = JSON.stringify(table);
    if (key === this.tableKey) return this.queue;
    this.tableKey = key;
    this.table = table;
    this.labelsByAddress = new Map(table.workloads.map((w) => [w.address, w.labels]));
    return this.enqueue(() => this.applyAll());
  }

  /** A new sandbox, covered before its container starts; `endpoints` carry the labels known locally. */
  cover(sandbox: CoveredSandbox): Promise<void> {
    this.sandboxes.set(sandbox.netns, sandbox);
    const covered = this.enqueue(() => this.apply(sandbox));
    this.refreshForLocal(sandbox);
    return covered;
  }

  /** The sandbox is gone (its namespace with it). */
  release(netns: string): void {
    const sandbox = this.sandboxes.get(netns);
    if (!sandbox) return;
    this.sandboxes.delete(netns);
    this.installed.delete(netns);
    this.refreshForLocal(sandbox);
  }

  /**
   * The other sandboxes' selectors see a sandbox the leader does not list (on a local network
   * only this host knows it): they are brought up to date. One the leader lists reaches them
   * with its next table.
   */
  private refreshForLocal(sandbox: CoveredSandbox): void {
    if (this.refreshQueued || sandbox.endpoints.every((e) => this.labelsByAddress.has(e.address))) return;
    this.refreshQueued = true;
    this.enqueue(() => {
      this.refreshQueued = false;
      return this.applyAll();
    }).catch(() => undefined);
  }

  private enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async applyAll(): Promise<void> {
    for (const sandbox of this.sandboxes.values()) {
      // One sandbox's failure (its namespace just went away) does not keep the others behind.
      await this.apply(sandbox).catch((error: unknown) => this.log.warn('policy not applied to a sandbox', { sandbox: sandbox.name, error: String(error) }));
    }
  }

  /** The endpoints with the leader's labels where it knows them (current service labels), the local ones otherwise. */
  private endpointsOf(sandbox: CoveredSandbox): WorkloadEndpoint[] {
    return sandbox.endpoints.map((e) => ({ address: e.address, labels: this.labelsByAddress.get(e.address) ?? e.labels }));
  }

  /**
   * The cluster's workloads, and this host's endpoints the leader does not list (on local
   * networks, whose addresses this host gives): selectors see them too.
   */
  private workloads(table: PolicyTable): WorkloadEndpoint[] {
    const local = this.localOnly();
    return local.length === 0 ? table.workloads : [...table.workloads, ...local];
  }

  /** This host's endpoints the leader's table does not list. */
  private localOnly(): WorkloadEndpoint[] {
    return [...this.sandboxes.values()].flatMap((s) => s.endpoints).filter((e) => !this.labelsByAddress.has(e.address));
  }

  private async apply(sandbox: CoveredSandbox): Promise<void> {
    const table = this.table;
    if (!table || !this.sandboxes.has(sandbox.netns)) return;
    const endpoints = this.endpointsOf(sandbox);
    const compiled = compileSandbox(endpoints, table.policies, this.workloads(table));
    const before = this.installed.get(sandbox.netns);
    const host = new HostNamespace(sandbox.netns);
    if (before && before.structure === compiled.structure) {
      const changes = setChanges(before.sets, compiled.sets);
      if (changes === '') return;
      try {
        await host.nft(changes);
      } catch {
        // The sets were not what this agent thought (changed by hand): replace the table whole.
        await host.nft(tableText(compiled));
      }
    } else if (before || compiled.rules.length > 0) {
      await host.nft(tableText(compiled));
      // A connection cut by conntrack must not come back mid-stream as a new one: such packets are
      // invalid and dropped (per namespace; the table loaded conntrack).
      if (compiled.rules.length > 0) await host.sysctl('net/netfilter/nf_conntrack_tcp_loose', '0').catch(() => undefined);
    } else return;
    this.installed.set(sandbox.netns, compiled);
    if (compiled.rules.length > 0) await this.cutForbidden(host, endpoints, table);
  }

  /** Removes the conntrack entries of established connections the rules now deny. */
  private async cutForbidden(host: HostNamespace, endpoints: readonly WorkloadEndpoint[], table: PolicyTable): Promise<void> {
    const listing = await host.run(conntrack, ['-L']).catch(() => '');
    const local = new Map(endpoints.map((e) => [e.address, e.labels]));
    const localOnly = new Map(this.localOnly().map((e) => [e.address, e.labels]));
    const labelsOf = (address: string) => this.labelsByAddress.get(address) ?? localOnly.get(address);
    for (const entry of parseConntrack(listing)) {
      const denied = (['egress', 'ingress'] as const).some((direction) => {
        const mine = direction === 'egress' ? entry.source : entry.destination;
        const labels = local.get(mine);
        if (!labels) return false;
        const flow: Flow = direction === 'egress'
          ? { protocol: entry.protocol, source: { address: mine, labels, port: entry.sport }, destination: { address: entry.replySource, labels: labelsOf(entry.replySource), port: entry.replySport } }
          : { protocol: entry.protocol, source: { address: entry.source, labels: labelsOf(entry.source), port: entry.sport }, destination: { address: mine, labels, port: entry.dport } };
        return !decide(table.policies, direction, flow).allowed;
      });
      if (!denied) continue;
      const ports = entry.sport !== undefined && entry.dport !== undefined ? ['--orig-port-src', String(entry.sport), '--orig-port-dst', String(entry.dport)] : [];
      await host.run(conntrack, ['-D', '-p', entry.protocol, '--orig-src', entry.source, '--orig-dst', entry.destination, ...ports]).catch(() => undefined);
      this.log.info('connection cut by policy', { source: entry.source, destination: entry.destination, protocol: entry.protocol, port: entry.dport });
    }
  }

  /** `network check --repair`: every covered sandbox's table written whole again, whatever was installed before. */
  repair(): Promise<void> {
    return this.enqueue(async () => {
      this.installed.clear();
      await this.applyAll();
    });
  }

  /** Each covered sandbox's rules with their counters, read from the kernel; `network`: only the sandboxes with an endpoint on it. */
  async status(network?: string): Promise<SandboxPolicyStatus[]> {
    const shown = [...this.sandboxes.values()].map((sandbox) => ({ sandbox, endpoints: this.endpointsOf(sandbox), installed: this.installed.get(sandbox.netns) }))
      .filter(({ endpoints }) => network === undefined || endpoints.some((e) => e.labels.network === network));
    const policed = shown.filter(({ installed }) => installed?.rules.length);
    const listings = await nftInNamespaces(policed.map(({ sandbox }) => sandbox.netns), `list table inet ${policyTable}`, { json: true });
    const listed = new Map(policed.map(({ sandbox }, i) => [sandbox.netns, listings[i]!]));
    return shown.map(({ sandbox, endpoints, installed }): SandboxPolicyStatus => {
      const listing = listed.get(sandbox.netns);
      if (!installed?.rules.length || !listing) return { name: sandbox.name, endpoints, rules: [] };
      if (!listing.error) return { name: sandbox.name, endpoints, rules: countersOf(listing.output) };
      // Installed, yet not in the kernel: someone removed it (check names it, --repair puts it back).
      const wanted = [...new Set(installed.rules.map((r) => r.endpoint))];
      return { name: sandbox.name, endpoints, rules: [], missing: wanted, error: `its nftables table inet ${policyTable} is missing` };
    });
  }
}

/** The counters of the installed rules, from `nft -j list table`. */
export function countersOf(json: string): RuleCounters[] {
  const parsed = JSON.parse(json) as { nftables?: Array<{ rule?: { comment?: string; expr?: Array<Record<string, unknown>> } }> };
  const found: RuleCounters[] = [];
  for (const item of parsed.nftables ?? []) {
    const rule = item.rule;
    const installed = rule?.comment ? installedRuleOf(rule.comment) : undefined;
    if (!installed) continue;
    const counter = rule!.expr?.find((e) => 'counter' in e)?.counter as { packets?: number; bytes?: number } | undefined;
    found.push({ ...installed, packets: counter?.packets ?? 0, bytes: counter?.bytes ?? 0 });
  }
  return found;
}
