/**
 * The frames a VXLAN probe is made of, encoded and decoded by hand: the VXLAN header (RFC 7348:
 * flags with the I bit, a 24-bit VNI), then the inner Ethernet frame, its IPv4 header and an
 * ICMP echo, UDP or TCP segment, with their checksums (RFC 791, 792, 768, 793). Hand-written:
 * the npm packet libraries either need libpcap or do not build frames with checksums, and these
 * few formats are fixed by their RFCs.
 */

export const vxlanPort = 4789;
const ethertypeIpv4 = 0x0800;
const vxlanFlagI = 0x08;

export type TransportProtocol = 'icmp' | 'udp' | 'tcp';
const protocolNumbers: Record<TransportProtocol, number> = { icmp: 1, tcp: 6, udp: 17 };
const protocolNames = new Map(Object.entries(protocolNumbers).map(([name, number]) => [number, name as TransportProtocol]));

export class FrameError extends Error {}

/** The Internet checksum: the ones' complement of the ones' complement sum of 16-bit words. */
export function internetChecksum(...parts: Buffer[]): number {
  let sum = 0;
  let odd: number | undefined;
  for (const part of parts) {
    let i = 0;
    if (odd !== undefined && part.length > 0) {
      sum += (odd << 8) | part[0]!;
      odd = undefined;
      i = 1;
    }
    for (; i + 1 < part.length; i += 2) sum += part.readUInt16BE(i);
    if (i < part.length) odd = part[i]!;
  }
  if (odd !== undefined) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const macBytes = (mac: string) => {
  const bytes = mac.split(':').map((h) => Number.parseInt(h, 16));
  if (bytes.length !== 6 || bytes.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) throw new FrameError(`"${mac}" is not a MAC address`);
  return Buffer.from(bytes);
};
const macText = (bytes: Buffer) => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
const ipBytes = (address: string) => {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new FrameError(`"${address}" is not an IPv4 address`);
  return Buffer.from(parts);
};
const ipText = (bytes: Buffer) => [...bytes].join('.');

export interface VxlanHeader {
  vni: number;
}

export function encodeVxlan(header: VxlanHeader, inner: Buffer): Buffer {
  if (!Number.isInteger(header.vni) || header.vni < 0 || header.vni > 0xffffff) throw new FrameError(`VNI ${header.vni} is not a 24-bit number`);
  const out = Buffer.alloc(8);
  out[0] = vxlanFlagI;
  out.writeUIntBE(header.vni, 4, 3);
  return Buffer.concat([out, inner]);
}

export function decodeVxlan(packet: Buffer): { header: VxlanHeader; inner: Buffer } {
  if (packet.length < 8) throw new FrameError(`a VXLAN header is 8 bytes; got ${packet.length}`);
  if ((packet[0]! & vxlanFlagI) === 0) throw new FrameError('the VXLAN I flag is not set (no valid VNI)');
  return { header: { vni: packet.readUIntBE(4, 3) }, inner: packet.subarray(8) };
}

export interface EthernetFrame {
  destination: string;
  source: string;
  ethertype: number;
  payload: Buffer;
}

export function encodeEthernet(frame: EthernetFrame): Buffer {
  const header = Buffer.alloc(14);
  macBytes(frame.destination).copy(header, 0);
  macBytes(frame.source).copy(header, 6);
  header.writeUInt16BE(frame.ethertype, 12);
  return Buffer.concat([header, frame.payload]);
}

export function decodeEthernet(frame: Buffer): EthernetFrame {
  if (frame.length < 14) throw new FrameError(`an Ethernet header is 14 bytes; got ${frame.length}`);
  return { destination: macText(frame.subarray(0, 6)), source: macText(frame.subarray(6, 12)), ethertype: frame.readUInt16BE(12), payload: frame.subarray(14) };
}

export interface Ipv4Packet {
  source: string;
  destination: string;
  protocol: TransportProtocol;
  ttl: number;
  identification: number;
  dontFragment: boolean;
  payload: Buffer;
}

export function encodeIpv4(packet: Ipv4Packet): Buffer {
  const header = Buffer.alloc(20);
  header[0] = 0x45;
  header.writeUInt16BE(20 + packet.payload.length, 2);
  header.writeUInt16BE(packet.identification & 0xffff, 4);
  header.writeUInt16BE(packet.dontFragment ? 0x4000 : 0, 6);
  header[8] = packet.ttl;
  header[9] = protocolNumbers[packet.protocol];
  ipBytes(packet.source).copy(header, 12);
  ipBytes(packet.destination).copy(header, 16);
  header.writeUInt16BE(internetChecksum(header), 10);
  return Buffer.concat([header, packet.payload]);
}

export function decodeIpv4(bytes: Buffer): Ipv4Packet & { headerChecksumOk: boolean } {
  if (bytes.length < 20) throw new FrameError(`an IPv4 header is at least 20 bytes; got ${bytes.length}`);
  if (bytes[0]! >> 4 !== 4) throw new FrameError(`not IPv4 (version ${bytes[0]! >> 4})`);
  const headerLength = (bytes[0]! & 0x0f) * 4;
  const total = bytes.readUInt16BE(2);
  if (headerLength < 20 || total < headerLength || total > bytes.length) throw new FrameError(`IPv4 lengths do not fit: header ${headerLength}, total ${total}, have ${bytes.length}`);
  const protocol = protocolNames.get(bytes[9]!);
  if (!protocol) throw new FrameError(`IP protocol ${bytes[9]} is not ICMP, UDP or TCP`);
  return {
    source: ipText(bytes.subarray(12, 16)),
    destination: ipText(bytes.subarray(16, 20)),
    protocol,
    ttl: bytes[8]!,
    identification: bytes.readUInt16BE(4),
    dontFragment: (bytes.readUInt16BE(6) & 0x4000) !== 0,
    payload: bytes.subarray(headerLength, total),
    headerChecksumOk: internetChecksum(bytes.subarray(0, headerLength)) === 0,
  };
}

/**
 * A UDP or TCP checksum as found: right, wrong, or left for the network card to fill in (a
 * sender with checksum offload writes only the pseudo-header's sum; over veth, as in a lab,
 * nobody ever fills it in, and the receiving kernel trusts the packet anyway).
 */
export type ChecksumState = 'ok' | 'offloaded' | 'bad';

function transportChecksum(pseudo: Buffer, segment: Buffer, offset: number): ChecksumState {
  if (internetChecksum(pseudo, segment) === 0) return 'ok';
  return segment.readUInt16BE(offset) === (~internetChecksum(pseudo) & 0xffff) ? 'offloaded' : 'bad';
}

/** The pseudo-header UDP and TCP checksums cover (RFC 768, 793). */
function pseudoHeader(source: string, destination: string, protocol: TransportProtocol, length: number): Buffer {
  const header = Buffer.alloc(12);
  ipBytes(source).copy(header, 0);
  ipBytes(destination).copy(header, 4);
  header[9] = protocolNumbers[protocol];
  header.writeUInt16BE(length, 10);
  return header;
}

export interface IcmpEcho {
  type: 'request' | 'reply';
  identifier: number;
  sequence: number;
  data: Buffer;
}

export function encodeIcmpEcho(echo: IcmpEcho): Buffer {
  const header = Buffer.alloc(8);
  header[0] = echo.type === 'request' ? 8 : 0;
  header.writeUInt16BE(echo.identifier & 0xffff, 4);
  header.writeUInt16BE(echo.sequence & 0xffff, 6);
  const message = Buffer.concat([header, echo.data]);
  message.writeUInt16BE(internetChecksum(message), 2);
  return message;
}

export function decodeIcmpEcho(bytes: Buffer): IcmpEcho & { checksumOk: boolean } {
  if (bytes.length < 8) throw new FrameError(`an ICMP echo is at least 8 bytes; got ${bytes.length}`);
  if (bytes[0] !== 8 && bytes[0] !== 0) throw new FrameError(`ICMP type ${bytes[0]} is not an echo`);
  return { type: bytes[0] === 8 ? 'request' : 'reply', identifier: bytes.readUInt16BE(4), sequence: bytes.readUInt16BE(6), data: bytes.subarray(8), checksumOk: internetChecksum(bytes) === 0 };
}

export interface UdpDatagram {
  sourcePort: number;
  destinationPort: number;
  data: Buffer;
}

export function encodeUdp(datagram: UdpDatagram, source: string, destination: string): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16BE(datagram.sourcePort, 0);
  header.writeUInt16BE(datagram.destinationPort, 2);
  header.writeUInt16BE(8 + datagram.data.length, 4);
  const segment = Buffer.concat([header, datagram.data]);
  // A computed 0 is sent as all ones: 0 means "no checksum" in UDP.
  segment.writeUInt16BE(internetChecksum(pseudoHeader(source, destination, 'udp', segment.length), segment) || 0xffff, 6);
  return segment;
}

export function decodeUdp(bytes: Buffer, source: string, destination: string): UdpDatagram & { checksum: ChecksumState } {
  if (bytes.length < 8) throw new FrameError(`a UDP header is 8 bytes; got ${bytes.length}`);
  const length = bytes.readUInt16BE(4);
  if (length < 8 || length > bytes.length) throw new FrameError(`UDP length ${length} does not fit ${bytes.length} bytes`);
  const segment = bytes.subarray(0, length);
  const sent = segment.readUInt16BE(6);
  return {
    sourcePort: segment.readUInt16BE(0),
    destinationPort: segment.readUInt16BE(2),
    data: segment.subarray(8),
    checksum: sent === 0 ? 'ok' : transportChecksum(pseudoHeader(source, destination, 'udp', length), segment, 6),
  };
}

export interface TcpSegment {
  sourcePort: number;
  destinationPort: number;
  sequence: number;
  acknowledgement: number;
  flags: { syn?: boolean; ack?: boolean; fin?: boolean; rst?: boolean; psh?: boolean };
  window: number;
  data: Buffer;
}

const tcpFlagBits = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10 } as const;

export function encodeTcp(segment: TcpSegment, source: string, destination: string): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt16BE(segment.sourcePort, 0);
  header.writeUInt16BE(segment.destinationPort, 2);
  header.writeUInt32BE(segment.sequence >>> 0, 4);
  header.writeUInt32BE(segment.acknowledgement >>> 0, 8);
  header[12] = 5 << 4;
  header[13] = Object.entries(tcpFlagBits).reduce((bits, [name, bit]) => (segment.flags[name as keyof typeof tcpFlagBits] ? bits | bit : bits), 0);
  header.writeUInt16BE(segment.window, 14);
  const whole = Buffer.concat([header, segment.data]);
  whole.writeUInt16BE(internetChecksum(pseudoHeader(source, destination, 'tcp', whole.length), whole), 16);
  return whole;
}

export function decodeTcp(bytes: Buffer, source: string, destination: string): TcpSegment & { checksum: ChecksumState } {
  if (bytes.length < 20) throw new FrameError(`a TCP header is at least 20 bytes; got ${bytes.length}`);
  const offset = (bytes[12]! >> 4) * 4;
  if (offset < 20 || offset > bytes.length) throw new FrameError(`TCP data offset ${offset} does not fit ${bytes.length} bytes`);
  const bits = bytes[13]!;
  return {
    sourcePort: bytes.readUInt16BE(0),
    destinationPort: bytes.readUInt16BE(2),
    sequence: bytes.readUInt32BE(4),
    acknowledgement: bytes.readUInt32BE(8),
    flags: Object.fromEntries(Object.entries(tcpFlagBits).map(([name, bit]) => [name, (bits & bit) !== 0])),
    window: bytes.readUInt16BE(14),
    data: bytes.subarray(offset),
    checksum: transportChecksum(pseudoHeader(source, destination, 'tcp', bytes.length), bytes, 16),
  };
}

/** A whole probe as it travels inside the tunnel: inner Ethernet, IPv4, then ICMP echo, UDP or TCP. */
export interface InnerPacket {
  sourceMac: string;
  destinationMac: string;
  source: string;
  destination: string;
  ttl?: number;
  identification?: number;
  transport: ({ protocol: 'icmp' } & IcmpEcho) | ({ protocol: 'udp' } & UdpDatagram) | ({ protocol: 'tcp' } & TcpSegment);
}

export function encodeInner(packet: InnerPacket): Buffer {
  const { transport } = packet;
  const payload = transport.protocol === 'icmp' ? encodeIcmpEcho(transport) : transport.protocol === 'udp' ? encodeUdp(transport, packet.source, packet.destination) : encodeTcp(transport, packet.source, packet.destination);
  const ip = encodeIpv4({ source: packet.source, destination: packet.destination, protocol: transport.protocol, ttl: packet.ttl ?? 64, identification: packet.identification ?? 0, dontFragment: true, payload });
  return encodeEthernet({ destination: packet.destinationMac, source: packet.sourceMac, ethertype: ethertypeIpv4, payload: ip });
}

/**
 * Decodes an inner frame; every checksum is verified and reported rather than thrown:
 * `checksumsOk` is false only for a wrong one, `offloaded` tells a transport checksum left to
 * the card.
 */
export function decodeInner(frame: Buffer): InnerPacket & { checksumsOk: boolean; offloaded: boolean } {
  const ethernet = decodeEthernet(frame);
  if (ethernet.ethertype !== ethertypeIpv4) throw new FrameError(`ethertype 0x${ethernet.ethertype.toString(16).padStart(4, '0')} is not IPv4`);
  const ip = decodeIpv4(ethernet.payload);
  const base = { sourceMac: ethernet.source, destinationMac: ethernet.destination, source: ip.source, destination: ip.destination, ttl: ip.ttl, identification: ip.identification };
  if (ip.protocol === 'icmp') {
    const { checksumOk, ...echo } = decodeIcmpEcho(ip.payload);
    return { ...base, transport: { protocol: 'icmp', ...echo }, checksumsOk: ip.headerChecksumOk && checksumOk, offloaded: false };
  }
  if (ip.protocol === 'udp') {
    const { checksum, ...datagram } = decodeUdp(ip.payload, ip.source, ip.destination);
    return { ...base, transport: { protocol: 'udp', ...datagram }, checksumsOk: ip.headerChecksumOk && checksum !== 'bad', offloaded: checksum === 'offloaded' };
  }
  const { checksum, ...segment } = decodeTcp(ip.payload, ip.source, ip.destination);
  return { ...base, transport: { protocol: 'tcp', ...segment }, checksumsOk: ip.headerChecksumOk && checksum !== 'bad', offloaded: checksum === 'offloaded' };
}
