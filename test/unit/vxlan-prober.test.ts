import test from 'ava';
import { decodeInner, decodeVxlan } from '../../netplug/vxlan/codec.ts';
import { probeFrame, probeStages, type ProbeSighting, type ProbeStage, stageCounts, watchTables } from '../../netplug/vxlan/prober.ts';
import { HostNamespace } from '../../netplug/host.ts';
import { composeTrace, type TraceEnd, type TraceInput } from '../../manager/network/trace.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import type { NetworkObject } from '../../netplug/model.ts';

const from = { address: '198.18.200.3', mac: '02:42:c6:12:c8:03' };
const to = { address: '198.18.200.4', mac: '02:42:c6:12:c8:04' };

test('a probe frame is an ICMP echo between the two endpoints inside VXLAN, with the nonce where the watch rules look for it', (t) => {
  const frame = probeFrame(4097, from, to, 0x5a17c0de, 100);
  const { header, inner } = decodeVxlan(frame);
  t.is(header.vni, 4097);
  const packet = decodeInner(inner);
  t.true(packet.checksumsOk);
  t.like(packet, { sourceMac: from.mac, destinationMac: to.mac, source: from.address, destination: to.address });
  t.is(packet.transport.protocol, 'icmp');
  if (packet.transport.protocol === 'icmp') {
    t.is(packet.transport.type, 'request');
    t.is(packet.transport.data.length, 100);
  }
  // The underlay rule: 464 bits from the UDP header (8 bytes before the VXLAN header).
  t.is(frame.readUInt32BE(464 / 8 - 8), 0x5a17c0de);
  // The inner rules: 64 bits from the ICMP header (after Ethernet 14 and IPv4 20).
  t.is(inner.readUInt32BE(14 + 20 + 8), 0x5a17c0de);
  const [underlay, vxlan, bridge, sandbox] = watchTables({ vni: 4097, host: new HostNamespace('h2'), underlayDevice: 'eth0', networkNetns: 'n', vxlanDevice: 'svx-4097', bridge: 'sbr-4097', veth: 'sve-1', sandboxNetns: 's' }, 0x5a17c0de);
  t.regex(underlay!.text, /udp dport 4789 @th,464,32 0x5a17c0de counter comment "underlay"/);
  t.regex(vxlan!.text, /hook ingress device "svx-4097"/);
  t.regex(bridge!.text, /oifname "sve-1" @th,64,32 0x5a17c0de counter comment "to-endpoint".*iifname "sve-1"/);
  t.is(sandbox!.netns.netns, 's');
  t.is(probeFrame(1, from, to, 1, 0).length, 8 + 14 + 20 + 8 + 4, 'the data holds at least the nonce');
});

test('stage counts come from the watch rules\' comments in nft\'s JSON', (t) => {
  const json = JSON.stringify({ nftables: [
    { metainfo: {} },
    { table: { family: 'inet', name: 'shoal-probe-5a17c0de' } },
    { rule: { comment: 'in-sandbox', expr: [{ match: {} }, { counter: { packets: 1, bytes: 84 } }] } },
    { rule: { comment: 'out-sandbox', expr: [{ counter: { packets: 0, bytes: 0 } }] } },
    { rule: { comment: 'something else', expr: [{ counter: { packets: 9, bytes: 9 } }] } },
  ] });
  t.deepEqual(stageCounts(json), { 'in-sandbox': 1, 'out-sandbox': 0 });
});

const node = (id: string, hostname: string, address: string) => ({ id, description: { hostname, address }, status: { state: 'ready' } }) as unknown as NodeObject;
const end = (name: string, n: NodeObject, e: { address: string; mac: string }): TraceEnd => ({ name, node: n, ...e, labels: {} });
const h1 = node('n1', 'h1', '198.18.0.1');
const h2 = node('n2', 'h2', '198.18.0.2');
const sighting = (seen: readonly ProbeStage[], unwatched: ProbeSighting['unwatched'] = {}): ProbeSighting => ({ counts: Object.fromEntries(probeStages.map((s) => [s, seen.includes(s) ? 1 : 0])) as ProbeSighting['counts'], unwatched });

function traceWith(destination: ProbeSighting, source: ProbeSighting, mtu?: number) {
  const network = { id: 'net', spec: { name: 'pn', driver: 'overlay' }, data: { vni: '4097' } } as unknown as NetworkObject;
  const input: TraceInput = {
    network, from: end('a', h1, from), to: end('b', h2, to), protocol: 'icmp',
    states: new Map([['n2', { state: { driver: 'overlay', endpoints: 1, problems: [], ...(mtu ? { mtu: { underlay: 1500, endpoint: mtu, overhead: 50 } } : {}) } }], ['n1', { state: { driver: 'overlay', endpoints: 1, problems: [] } }]]),
    tables: new Map(), policy: { policies: [], workloads: [] },
    vxlanProbe: { nonce: 0x5a17c0de, vni: 4097, bytes: 106, destination, source },
  };
  return composeTrace(input).find((h) => h.hop === 'VXLAN probe')!;
}

test('the VXLAN probe hop names the first stage where the frame was not seen, on the host it was lost on', (t) => {
  const all = ['underlay', 'vxlan', 'to-endpoint', 'in-sandbox', 'out-sandbox', 'from-endpoint'] as const;
  t.true(traceWith(sighting(all), sighting(['underlay', 'vxlan', 'to-endpoint', 'in-sandbox'])).ok);
  const firewalled = traceWith(sighting(['underlay']), sighting([]));
  t.like(firewalled, { ok: false, host: 'h2', object: 'UDP 4789 input on h2 (VTEP of VNI 4097)' });
  t.regex(firewalled.detail, /a firewall on h2 drops UDP 4789/);
  t.like(traceWith(sighting([]), sighting([])), { host: 'h2', object: 'UDP 198.18.0.1 -> 198.18.0.2:4789 on the underlay' });
  t.like(traceWith(sighting(['underlay', 'vxlan']), sighting([])), { host: 'h2', object: 'bridge port of b on h2' });
  t.like(traceWith(sighting(['underlay', 'vxlan', 'to-endpoint', 'in-sandbox']), sighting([])), { host: 'h2', object: 'b 198.18.200.4' }, 'received, not answered');
  t.like(traceWith(sighting(all), sighting([])), { host: 'h2', object: 'h2\'s entries for 198.18.200.3 (02:42:c6:12:c8:03)' }, 'the reply never reached the source host');
  t.like(traceWith(sighting(all), sighting(['underlay'])), { host: 'h1', object: 'UDP 4789 input on h1 (VTEP of VNI 4097)' });
});

test('a stage that could not be watched is passed over when a later one saw the frame, and named with why when none did', (t) => {
  const noDevice = { vxlan: 'Error: No such file or directory: device svx-4097' };
  t.true(traceWith(sighting(['underlay', 'to-endpoint', 'in-sandbox', 'out-sandbox', 'from-endpoint'], noDevice), sighting(['underlay', 'vxlan', 'to-endpoint', 'in-sandbox'])).ok);
  const lost = traceWith(sighting(['underlay'], noDevice), sighting([]));
  t.like(lost, { host: 'h2', object: 'UDP 4789 input on h2 (VTEP of VNI 4097)' });
  t.regex(lost.detail, /could not be watched: .*device svx-4097/);
});

test('a frame larger than the destination\'s MTU is named as such where its veth drops it', (t) => {
  const hop = traceWith(sighting(['underlay', 'vxlan', 'to-endpoint']), sighting([]), 50);
  t.regex(hop.detail, /packet of 84 bytes is larger than the interface's MTU 50/);
  t.regex(hop.fix!, /at most 22 bytes/);
  t.regex(traceWith(sighting(['underlay', 'vxlan', 'to-endpoint']), sighting([]), 1450).detail, /veth pair is down/);
});
