/**
 * The nftables rules of service discovery, rendered as whole tables (each applied in one
 * transaction: `table; flush table; table {...}`, so a change never leaves a half-made set):
 *
 * - in each sandbox (`ip shoal-sandbox`): 127.0.0.11:53 to the embedded DNS's ports, and each
 *   VIP of the sandbox's networks spread over its backends (numgen round robin). The balancing is
 *   in the client's own namespace, as Docker's per-sandbox IPVS: the backend sees the client's
 *   address, replies go straight back, and conntrack holds each flow's choice (established flows
 *   keep their backend when the set changes, and live as long as conntrack's default);
 * - on the host (`ip shoal-publish`): published ports to a task (host mode, `container run -p`)
 *   or to the ingress sandbox (ingress mode);
 * - in the ingress sandbox (`ip shoal-ingress`): each ingress port spread over the tasks'
 *   ingress addresses, the client's address kept; each task sends its replies back through the
 *   sandbox that brought the connection (`MeshReturn`).
 */
import { ipBatch, run } from '../../shared/exec.ts';
import { nftIn, nftInNamespaces } from '../../native/netns.ts';
import { parseIpv4, type Prefix } from '../ipam/ipv4.ts';
import { macFor } from '../model.ts';
import type { IngressPort, VirtualAddress } from '../../shared/p2p/protocol.ts';


/** numgen over `targets`, as an nft map ("a, b" -> "numgen inc mod 2 map { 0 : a, 1 : b }"). */
function spread(targets: readonly string[]): string {
  return `numgen inc mod ${targets.length} map { ${targets.map((t, i) => `${i} : ${t}`).join(', ')} }`;
}

function table(name: string, chains: string[]): string {
  return [`table ip ${name} {}`, `flush table ip ${name}`, `table ip ${name} {`, ...chains, '}', ''].join('\n');
}

export const sandboxTable = 'shoal-sandbox';

/**
 * Where a task's replies to the routing mesh go: each node's ingress sandbox, known on the
 * task's ingress interface by its MAC; a connection it brings is marked with that sandbox's
 * mark, and packets of marked connections take the sandbox's routing table.
 */
export interface MeshReturn {
  /** The task's interface on the ingress network. */
  device: string;
  sandboxes: Array<{ address: string; mac: string; mark: number; table: number }>;
}

/** Marks of routing-mesh connections: this prefix in the top half, the sandbox's offset in its subnet below. */
const meshMarkPrefix = 0x5e000000;
const meshTableBase = 20000;
/** Shoal's policy rules in a sandbox, apart from any other (ip rule's preference). */
export const meshRulePreference = 20000;

export function meshReturn(device: string, subnet: Prefix, sandboxAddresses: readonly string[]): MeshReturn {
  return {
    device,
    sandboxes: sandboxAddresses.map((address) => {
      const offset = (parseIpv4(address) - subnet.base) & 0xffff;
      return { address, mac: macFor(address), mark: meshMarkPrefix | offset, table: meshTableBase + offset };
    }),
  };
}

export function sandboxRules(dns: { udpPort: number; tcpPort: number } | undefined, vips: readonly VirtualAddress[], mesh?: MeshReturn): string {
  const nat: string[] = [];
  if (dns) {
    nat.push(`    ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:${dns.udpPort}`);
    nat.push(`    ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:${dns.tcpPort}`);
  }
  const empty: string[] = [];
  for (const vip of vips) {
    if (vip.backends.length === 0) empty.push(vip.address);
    else nat.push(`    ip daddr ${vip.address} dnat to ${spread(vip.backends)}`);
  }
  const chains = ['  chain output {', '    type nat hook output priority -100; policy accept;', ...nat, '  }'];
  // A VIP with no backend refuses at once instead of leaving the client to time out.
  if (empty.length > 0) chains.push('  chain refuse {', '    type filter hook output priority 0; policy accept;', `    ip daddr { ${empty.join(', ')} } meta l4proto tcp reject with tcp reset`, `    ip daddr { ${empty.join(', ')} } reject`, '  }');
  if (mesh && mesh.sandboxes.length > 0) {
    const marks = mesh.sandboxes.map((s) => `${s.mac} : 0x${s.mark.toString(16)}`).join(', ');
    chains.push(
      '  chain mesh-in {',
      '    type filter hook prerouting priority mangle; policy accept;',
      `    iifname "${mesh.device}" ct state new ct mark set ether saddr map { ${marks} }`,
      '  }',
      // A route chain: the reply's new mark makes the kernel route it again, by the mark's table.
      '  chain mesh-out {',
      '    type route hook output priority mangle; policy accept;',
      `    ct mark and 0xffff0000 == 0x${meshMarkPrefix.toString(16)} meta mark set ct mark`,
      '  }',
    );
  }
  return table(sandboxTable, chains);
}

/** The policy rules and routes behind `MeshReturn`: one table per sandbox, its default route through that sandbox. */
export async function applyMeshRoutes(netns: string, mesh: MeshReturn | undefined): Promise<void> {
  const listed = JSON.parse((await run('ip', ['-n', netns, '-j', 'rule', 'show'])) || '[]') as Array<{ priority?: number; fwmark?: string; table?: string }>;
  const current = listed.filter((r) => r.priority === meshRulePreference);
  const wanted = mesh?.sandboxes ?? [];
  const lines: string[] = [];
  for (const rule of current) {
    if (!wanted.some((s) => Number(rule.fwmark) === s.mark && rule.table === String(s.table))) lines.push(`rule del pref ${meshRulePreference} fwmark ${rule.fwmark} table ${rule.table}`);
  }
  for (const sandbox of wanted) {
    lines.push(`route replace default via ${sandbox.address} dev ${mesh!.device} table ${sandbox.table}`);
    if (!current.some((r) => Number(r.fwmark) === sandbox.mark && r.table === String(sandbox.table))) lines.push(`rule add pref ${meshRulePreference} fwmark 0x${sandbox.mark.toString(16)} table ${sandbox.table}`);
  }
  await ipBatch(lines, netns);
}

export interface HostPublish {
  protocol: 'tcp' | 'udp';
  publishedPort: number;
  /** Where to: an address and port reachable from the host. */
  to: string;
  toPort: number;
  hostIp?: string;
}

export const publishTable = 'shoal-publish';

/**
 * Published ports on the host: traffic to one of the host's own addresses (from other hosts, or
 * from the host itself) on the port goes to its target. Loopback is left alone (routing it out
 * would need route_localnet).
 */
export function publishRules(ports: readonly HostPublish[]): string {
  const lines = ports.map((p) => `    ${p.hostIp ? `ip daddr ${p.hostIp}` : 'fib daddr type local'} ${p.protocol} dport ${p.publishedPort} dnat to ${p.to}:${p.toPort}`);
  return table(publishTable, [
    '  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;', ...lines, '  }',
    '  chain output {', '    type nat hook output priority -100; policy accept;', ...lines.map((l) => l.replace('    ', '    ip daddr != 127.0.0.0/8 ')), '  }',
  ]);
}

export const ingressTable = 'shoal-ingress';

/** The ingress sandbox's rules. */
export function ingressRules(ports: readonly IngressPort[]): string {
  const lines: string[] = [];
  // A port with no backend is left to the sandbox's own stack, which refuses it (nothing listens).
  for (const port of ports) {
    if (port.backends.length > 0) lines.push(`    ${port.protocol} dport ${port.publishedPort} dnat ip to ${spread(port.backends.map((b) => `${b} . ${port.targetPort}`))}`);
  }
  // No masquerade: the task sees the client's own address and sends its replies back through
  // this sandbox by the mark of the connection (see MeshReturn).
  return table(ingressTable, ['  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;', ...lines, '  }']);
}

/** Applies a rendered table in a named namespace, or in the agent's own when `netns` is undefined. */
export async function applyTable(script: string, netns?: string): Promise<void> {
  await nftIn(netns, script);
}

export async function deleteTable(name: string, netns?: string): Promise<void> {
  await nftIn(netns, `delete table ip ${name}`).catch(() => undefined);
}

/** A table as each namespace's kernel holds it now (`nft list table`), '' where it is not there; one thread reads them all. */
export async function listTables(name: string, netnsNames: readonly string[]): Promise<string[]> {
  return (await nftInNamespaces(netnsNames, `list table ip ${name}`)).map((r) => (r.error ? '' : r.output));
}

/** A sandbox's table as read back from the kernel: where its DNS redirect points, and each VIP's backends. */
export interface SandboxKernelRules {
  dnsPorts: { udp?: number; tcp?: number };
  /** A VIP with no backend is listed with none (it refuses connections). */
  vips: Array<{ address: string; backends: string[] }>;
}

/** Reads `nft list table ip shoal-sandbox` back into what `sandboxRules` rendered. */
export function parseSandboxRules(listing: string): SandboxKernelRules {
  const dnsPorts: SandboxKernelRules['dnsPorts'] = {};
  const vips = new Map<string, string[]>();
  for (const line of listing.split('\n').map((l) => l.trim())) {
    const dns = /^ip daddr 127\.0\.0\.11 (udp|tcp) dport 53 dnat (?:ip )?to 127\.0\.0\.11:(\d+)$/.exec(line);
    if (dns) dnsPorts[dns[1] as 'udp' | 'tcp'] = Number(dns[2]);
    const vip = /^ip daddr (\S+) dnat (?:ip )?to numgen inc mod \d+ map \{ (.*) \}$/.exec(line);
    if (vip) vips.set(vip[1]!, vip[2]!.split(',').map((entry) => entry.split(':')[1]!.trim()).sort());
    const refused = /^ip daddr \{ (.*) \} reject$/.exec(line);
    for (const address of refused?.[1]!.split(',').map((a) => a.trim()) ?? []) if (!vips.has(address)) vips.set(address, []);
  }
  return { dnsPorts, vips: [...vips].map(([address, backends]) => ({ address, backends })).sort((a, b) => a.address.localeCompare(b.address)) };
}

/** Whether a sandbox's kernel table still does what `sandboxRules(dns, vips)` rendered. */
export function rulesHold(kernel: SandboxKernelRules, dns: { udpPort: number; tcpPort: number }, vips: readonly VirtualAddress[]): boolean {
  if (kernel.dnsPorts.udp !== dns.udpPort || kernel.dnsPorts.tcp !== dns.tcpPort) return false;
  // Both sides keyed and sorted the same way (198.19.0.2 and 198.19.0.20 sort apart otherwise).
  const key = (list: ReadonlyArray<{ address: string; backends: readonly string[] }>) => list.map((v) => `${v.address}=${[...v.backends].sort().join(',')}`).sort().join(' ');
  return key(vips) === key(kernel.vips);
}
