/**
 * The VXLAN prober of `network trace`: the source host's agent sends one encapsulated ICMP echo
 * from a UDP socket it holds on its underlay straight to the destination host's VTEP (port
 * 4789), as the source's own VTEP would: inner MACs and addresses are the two endpoints', and
 * the echo's data starts with a 32-bit nonce. Both hosts watch for the nonce at each stage with
 * nftables counters in a table of the probe's own: on the underlay (UDP 4789, prerouting, before
 * any firewall), on the VXLAN device (netdev ingress, after decapsulation), on the bridge (forward
 * towards the endpoint's veth, and from it), and in the endpoint's namespace (in, and the echo
 * reply out). The destination's kernel answers the echo to the source's address along the real
 * reply path, so the source host sees the reply's stages too: the first stage with no count is
 * where the frame was lost. The probe never enters the source's own sandbox or VTEP, so a
 * broken source side is for the trace's other hops to name.
 */
import dgram from 'node:dgram';
import { inBackground } from '../../shared/concurrency.ts';
import { netnsPath, socketInNetns } from '../../native/netns.ts';
import { HostNamespace } from '../host.ts';
import { encodeInner, encodeVxlan, vxlanPort } from './codec.ts';


/** Where a probe can be seen on one host, in the order a frame towards the endpoint passes them. */
export const probeStages = ['underlay', 'vxlan', 'to-endpoint', 'in-sandbox', 'out-sandbox', 'from-endpoint'] as const;
export type ProbeStage = (typeof probeStages)[number];

/** The kernel objects on one host between its underlay and one local endpoint of a VXLAN network. */
export interface ProbePath {
  vni: number;
  /** The host's namespace, where the VTEP's UDP socket listens. */
  host: HostNamespace;
  underlayDevice: string;
  /** The network's namespace on the host, holding the VXLAN device, bridge and host-side veths. */
  networkNetns: string;
  vxlanDevice: string;
  bridge: string;
  /** The endpoint's veth on the bridge. */
  veth: string;
  sandboxNetns: string;
}

export interface ProbeEnd {
  address: string;
  mac: string;
}

/** What one host saw of a probe: packets per stage, and the stages it could not watch (and why). */
export interface ProbeSighting {
  counts: Record<ProbeStage, number>;
  unwatched: Partial<Record<ProbeStage, string>>;
}

const icmpHeader = 8;
/** Bits from the outer UDP header to the nonce: UDP 8, VXLAN 8, inner Ethernet 14, IPv4 20 (no options), ICMP 8. */
const outerNonceOffset = (8 + 8 + 14 + 20 + icmpHeader) * 8;
/** Bits from the inner ICMP header to the nonce. */
const innerNonceOffset = icmpHeader * 8;

/** The VXLAN payload of a probe: an ICMP echo request from `from` to `to` whose data starts with the nonce. */
export function probeFrame(vni: number, from: ProbeEnd, to: ProbeEnd, nonce: number, size = 56): Buffer {
  const data = Buffer.alloc(Math.max(4, size));
  data.writeUInt32BE(nonce >>> 0, 0);
  data.write('shoal-probe', 4);
  return encodeVxlan({ vni }, encodeInner({
    sourceMac: from.mac, destinationMac: to.mac, source: from.address, destination: to.address,
    transport: { protocol: 'icmp', type: 'request', identifier: nonce & 0xffff, sequence: 1, data },
  }));
}

const hex = (nonce: number) => `0x${(nonce >>> 0).toString(16).padStart(8, '0')}`;
export const probeTableName = (nonce: number) => `shoal-probe-${(nonce >>> 0).toString(16).padStart(8, '0')}`;

interface WatchTable {
  netns: HostNamespace;
  family: 'ip' | 'netdev' | 'bridge' | 'inet';
  stages: ProbeStage[];
  text: string;
}

/**
 * The watch's tables, one per namespace and family. Priorities come before every other hook
 * (conntrack, a firewall, Shoal's policy), so a frame a later rule drops is still counted.
 */
export function watchTables(path: ProbePath, nonce: number): WatchTable[] {
  const name = probeTableName(nonce);
  const match = `@th,${innerNonceOffset},32 ${hex(nonce)}`;
  const counted = (stage: ProbeStage, condition: string) => `${condition} counter comment "${stage}"`;
  const network = new HostNamespace(path.networkNetns);
  const chain = (chainName: string, hook: string, rules: string[]) => `chain ${chainName} { ${hook}; ${rules.map((r) => `${r};`).join(' ')} };`;
  return [
    {
      netns: path.host, family: 'ip', stages: ['underlay'],
      text: `table ip ${name} { ${chain('underlay', 'type filter hook prerouting priority raw - 10', [counted('underlay', `udp dport ${vxlanPort} @th,${outerNonceOffset},32 ${hex(nonce)}`)])} }`,
    },
    {
      netns: network, family: 'netdev', stages: ['vxlan'],
      text: `table netdev ${name} { ${chain('vxlan', `type filter hook ingress device "${path.vxlanDevice}" priority -500`, [counted('vxlan', match)])} }`,
    },
    {
      netns: network, family: 'bridge', stages: ['to-endpoint', 'from-endpoint'],
      text: `table bridge ${name} { ${chain('forward', 'type filter hook forward priority -500', [counted('to-endpoint', `oifname "${path.veth}" ${match}`), counted('from-endpoint', `iifname "${path.veth}" ${match}`)])} }`,
    },
    {
      netns: new HostNamespace(path.sandboxNetns), family: 'inet', stages: ['in-sandbox', 'out-sandbox'],
      text: `table inet ${name} { ${chain('in', 'type filter hook prerouting priority raw - 10', [counted('in-sandbox', match)])} ${chain('out', 'type filter hook output priority raw - 10', [counted('out-sandbox', match)])} }`,
    },
  ];
}

/** Packets per stage from `nft -j list table`, by the rules' comments. */
export function stageCounts(json: string): Partial<Record<ProbeStage, number>> {
  const parsed = JSON.parse(json) as { nftables?: Array<{ rule?: { comment?: string; expr?: Array<Record<string, unknown>> } }> };
  const counts: Partial<Record<ProbeStage, number>> = {};
  for (const { rule } of parsed.nftables ?? []) {
    const stage = rule?.comment as ProbeStage | undefined;
    if (!stage || !(probeStages as readonly string[]).includes(stage)) continue;
    const counter = rule!.expr?.find((e) => 'counter' in e)?.counter as { packets?: number } | undefined;
    counts[stage] = counter?.packets ?? 0;
  }
  return counts;
}

interface Watch {
  nonce: number;
  tables: Array<WatchTable & { error?: string }>;
  expiry: NodeJS.Timeout;
}

/** A watch left unread (its trace gave up) is removed after this long. */
const watchLifetimeMs = 15_000;

/**
 * One agent's side of the prober: the underlay socket it sends from, and the watches it keeps
 * for traces in flight (by nonce). Every failure is reported to the caller, none kills the agent.
 */
export class VxlanProber {
  private socket: Promise<dgram.Socket> | undefined;
  private readonly watches = new Map<number, Watch>();

  constructor(
    private readonly host: HostNamespace,
    private readonly underlayAddress: string,
  ) {}

  /** The socket on the underlay, opened on first use; one that failed is opened again next time. */
  private underlaySocket(): Promise<dgram.Socket> {
    this.socket ??= (async () => {
      const socket = dgram.createSocket('udp4');
      socket.on('error', () => {
        this.socket = undefined;
        socket.close();
      });
      // An agent driving a named host namespace (the conformance suite) opens it there.
      const fd = this.host.netns ? await socketInNetns(netnsPath(this.host.netns), 'udp', this.underlayAddress, 0) : undefined;
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(fd !== undefined ? { fd } : { address: this.underlayAddress, port: 0 }, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      socket.unref();
      return socket;
    })();
    const opening = this.socket;
    opening.catch(() => {
      if (this.socket === opening) this.socket = undefined;
    });
    return opening;
  }

  /** Sends the probe frame to a remote VTEP; resolves with the bytes sent. */
  async send(vni: number, from: ProbeEnd, to: ProbeEnd, vtep: string, nonce: number, size?: number): Promise<number> {
    const frame = probeFrame(vni, from, to, nonce, size);
    const socket = await this.underlaySocket();
    await new Promise<void>((resolve, reject) => socket.send(frame, vxlanPort, vtep, (error) => (error ? reject(error) : resolve())));
    return frame.length;
  }

  /** Puts up the watch for a nonce; a stage whose table cannot be made (a missing device) is reported, not thrown. */
  async watch(path: ProbePath, nonce: number): Promise<Partial<Record<ProbeStage, string>>> {
    await this.unwatch(nonce);
    const tables = await Promise.all(watchTables(path, nonce).map(async (table) => {
      const error = await table.netns.nft(table.text).then(() => undefined, (e: Error) => e.message.split('\n')[0] ?? String(e));
      return { ...table, ...(error ? { error } : {}) };
    }));
    const expiry = setTimeout(() => inBackground(this.unwatch(nonce), () => undefined), watchLifetimeMs);
    expiry.unref();
    this.watches.set(nonce, { nonce, tables, expiry });
    return unwatchedOf(tables);
  }

  /**
   * Reads the watch, waiting up to `waitMs` for `last` to count (the stage a whole round trip
   * ends at on this host), then removes it.
   */
  async read(nonce: number, last: ProbeStage, waitMs: number): Promise<ProbeSighting> {
    const watch = this.watches.get(nonce);
    if (!watch) throw new Error(`no probe watch ${hex(nonce)} on this host (it expired, or the agent restarted)`);
    const deadline = performance.now() + waitMs;
    let counts = await this.counts(watch);
    while (counts[last] === 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      counts = await this.counts(watch);
    }
    await this.unwatch(nonce);
    return { counts, unwatched: unwatchedOf(watch.tables) };
  }

  private async counts(watch: Watch): Promise<Record<ProbeStage, number>> {
    const counts = Object.fromEntries(probeStages.map((s) => [s, 0])) as Record<ProbeStage, number>;
    const read = await Promise.all(watch.tables.filter((t) => !t.error).map((t) => t.netns.nft(`list table ${t.family} ${probeTableName(watch.nonce)}`, { json: true }).then(stageCounts, () => ({}))));
    for (const found of read) Object.assign(counts, found);
    return counts;
  }

  /** Removes a watch's tables; gone ones (a sandbox removed meanwhile) are fine. */
  async unwatch(nonce: number): Promise<void> {
    const watch = this.watches.get(nonce);
    if (!watch) return;
    this.watches.delete(nonce);
    clearTimeout(watch.expiry);
    await Promise.all(watch.tables.filter((t) => !t.error).map((t) => t.netns.nft(`delete table ${t.family} ${probeTableName(nonce)}`).catch(() => undefined)));
  }

  close(): void {
    for (const nonce of [...this.watches.keys()]) inBackground(this.unwatch(nonce), () => undefined);
    if (this.socket) inBackground(this.socket.then((socket) => socket.close()), () => undefined);
    this.socket = undefined;
  }
}

function unwatchedOf(tables: ReadonlyArray<WatchTable & { error?: string }>): Partial<Record<ProbeStage, string>> {
  const unwatched: Partial<Record<ProbeStage, string>> = {};
  for (const table of tables) if (table.error) for (const stage of table.stages) unwatched[stage] = table.error;
  return unwatched;
}
