import test from 'ava';
import fc from 'fast-check';
import {
  decodeInner, decodeIpv4, decodeVxlan, encodeIcmpEcho, encodeInner, encodeTcp, encodeUdp, encodeVxlan, FrameError, internetChecksum,
} from '../../netplug/vxlan/codec.ts';

/** JSON with keys sorted: fast-check's records have no prototype, decoded objects do. */
const canonical = (value: unknown) => JSON.stringify(value, (_key, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v));
const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

test('the VXLAN header is RFC 7348\'s: the I flag, three reserved bytes, a 24-bit VNI, one reserved byte', (t) => {
  t.deepEqual(encodeVxlan({ vni: 4097 }, Buffer.alloc(0)), hex('08 000000 001001 00'));
  t.deepEqual(decodeVxlan(hex('08 000000 ffffff 00 aa')), { header: { vni: 0xffffff }, inner: hex('aa') });
  t.throws(() => decodeVxlan(hex('00 000000 001001 00')), { instanceOf: FrameError, message: /I flag/ });
  t.throws(() => encodeVxlan({ vni: 1 << 24 }, Buffer.alloc(0)), { message: /24-bit/ });
});

test('checksums match frames worked out by hand', (t) => {
  // The IPv4 header of RFC 1071's usual example (192.168.0.1 -> 192.168.0.199, UDP): b861.
  t.is(internetChecksum(hex('4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7')), 0xb861);
  t.true(decodeIpv4(Buffer.concat([hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7'), Buffer.alloc(0x73 - 20)])).headerChecksumOk);
  // Echo request id 1 seq 1 "abcd": 0800 + 0001 + 0001 + 6162 + 6364 = ccc8, complemented 3337.
  t.deepEqual(encodeIcmpEcho({ type: 'request', identifier: 1, sequence: 1, data: Buffer.from('abcd') }), hex('0800 3337 0001 0001 61626364'));
  // UDP 198.19.0.2:40000 -> 198.19.0.3:53 "hi", with the pseudo-header.
  t.deepEqual(encodeUdp({ sourcePort: 40000, destinationPort: 53, data: Buffer.from('hi') }, '198.19.0.2', '198.19.0.3'), hex('9c40 0035 000a 6ecf 6869'));
  // A bare SYN 198.19.0.2:40000 -> 198.19.0.3:80, seq 1, window 64240.
  t.deepEqual(encodeTcp({ sourcePort: 40000, destinationPort: 80, sequence: 1, acknowledgement: 0, flags: { syn: true }, window: 64240, data: Buffer.alloc(0) }, '198.19.0.2', '198.19.0.3'),
    hex('9c40 0050 00000001 00000000 5002 faf0 8c34 0000'));
});

test('a whole probe frame decodes back to what was encoded, checksums verified (property)', (t) => {
  const address = fc.tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 0, max: 255 })).map(([a, b]) => `198.19.${b}.${a}`);
  const mac = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 5, maxLength: 5 }).map((bytes) => ['02', ...bytes.map((b) => b.toString(16).padStart(2, '0'))].join(':'));
  const data = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
  const port = fc.integer({ min: 1, max: 65535 });
  const transport = fc.oneof(
    fc.record({ protocol: fc.constant('icmp' as const), type: fc.constantFrom('request' as const, 'reply' as const), identifier: fc.integer({ min: 0, max: 65535 }), sequence: fc.integer({ min: 0, max: 65535 }), data }),
    fc.record({ protocol: fc.constant('udp' as const), sourcePort: port, destinationPort: port, data }),
    fc.record({
      protocol: fc.constant('tcp' as const), sourcePort: port, destinationPort: port, sequence: fc.nat(), acknowledgement: fc.nat(),
      flags: fc.record({ syn: fc.boolean(), ack: fc.boolean(), fin: fc.boolean(), rst: fc.boolean(), psh: fc.boolean() }), window: fc.integer({ min: 0, max: 65535 }), data,
    }),
  );
  fc.assert(fc.property(address, address, mac, mac, transport, fc.integer({ min: 0, max: 0xffffff }), (source, destination, sourceMac, destinationMac, inner, vni) => {
    const packet = { sourceMac, destinationMac, source, destination, ttl: 64, identification: 7, transport: inner };
    const { header, inner: frame } = decodeVxlan(encodeVxlan({ vni }, encodeInner(packet)));
    const decoded = decodeInner(frame);
    const { checksumsOk, offloaded, ...rest } = decoded;
    return header.vni === vni && checksumsOk && !offloaded && canonical(rest) === canonical(packet);
  }));
  t.pass();
});

test('a damaged frame is reported, not trusted: a flipped byte fails its checksum, a short frame is refused', (t) => {
  const frame = encodeInner({ sourceMac: '02:42:c6:13:00:02', destinationMac: '02:42:c6:13:00:03', source: '198.19.0.2', destination: '198.19.0.3', transport: { protocol: 'udp', sourcePort: 1, destinationPort: 2, data: Buffer.from('probe') } });
  const damaged = Buffer.from(frame);
  damaged.writeUInt8(damaged.readUInt8(damaged.length - 1) ^ 0xff, damaged.length - 1);
  t.false(decodeInner(damaged).checksumsOk);
  t.true(decodeInner(frame).checksumsOk);
  t.throws(() => decodeInner(frame.subarray(0, 20)), { instanceOf: FrameError });
  // A checksum left to the card holds the pseudo-header's sum alone: told apart from a wrong one.
  const offloaded = Buffer.from(frame);
  offloaded.writeUInt16BE(~internetChecksum(hex('c6130002 c6130003 0011 000d')) & 0xffff, 14 + 20 + 6);
  t.like(decodeInner(offloaded), { checksumsOk: true, offloaded: true });
});
