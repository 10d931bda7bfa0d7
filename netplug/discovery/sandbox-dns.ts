/**
 * One sandbox's embedded DNS: a UDP and a TCP socket the agent holds inside the sandbox's
 * namespace, bound to 127.0.0.11 on free ports (the sandbox's rules send port 53 there, as
 * Docker does, so a container may run its own DNS server on port 53). The sockets are made in
 * the namespace by the native addon and served from the agent's event loop like any other.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket, { type Packet } from 'dns-packet';
import { netnsPath, socketInNetns } from '../../native/netns.ts';
import type { Logger } from '../../shared/log.ts';
import { inBackground } from '../../shared/concurrency.ts';
import { reply, resolve, type SandboxView } from './resolver.ts';
import type { Upstreams } from './upstreams.ts';

export const dnsAddress = '127.0.0.11';
/** What fits a UDP answer without EDNS (RFC 1035). */
const classicUdpLimit = 512;

export interface SandboxDnsOptions {
  view: () => SandboxView;
  upstreams: Upstreams;
  /** The upstream servers for this sandbox: its --dns, or the host's. */
  servers: () => readonly string[];
  log: Logger;
}

export class SandboxDns {
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly connections = new Set<net.Socket>();
  udpPort = 0;
  tcpPort = 0;

  constructor(private readonly options: SandboxDnsOptions) {}

  async open(netns: string): Promise<void> {
    const path = netnsPath(netns);
    const [udpFd, tcpFd] = await Promise.all([socketInNetns(path, 'udp', dnsAddress, 0), socketInNetns(path, 'tcp', dnsAddress, 0)]);
    const udp = dgram.createSocket('udp4');
    udp.on('error', (error) => this.options.log.warn('embedded DNS socket error', { netns, error: String(error) }));
    udp.on('message', (message, from) => {
      inBackground(this.answer(message, false).then((answer) => {
        if (answer) udp.send(answer, from.port, from.address, () => undefined);
      }), () => undefined);
    });
    await new Promise<void>((done) => udp.bind({ fd: udpFd }, done));
    this.udp = udp;
    this.udpPort = udp.address().port;
    const tcp = net.createServer((socket) => this.serveTcp(socket));
    tcp.on('error', (error) => this.options.log.warn('embedded DNS listener error', { netns, error: String(error) }));
    await new Promise<void>((done) => tcp.listen({ fd: tcpFd }, done));
    this.tcp = tcp;
    this.tcpPort = (tcp.address() as net.AddressInfo).port;
  }

  /** DNS over TCP: two-byte length, then the message, any number per connection. */
  private serveTcp(socket: net.Socket): void {
    this.connections.add(socket);
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.connections.delete(socket));
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const message = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + message.length);
        inBackground(this.answer(message, true).then((answer) => {
          if (!answer || socket.destroyed) return;
          const length = Buffer.alloc(2);
          length.writeUInt16BE(answer.length);
          socket.write(Buffer.concat([length, answer]));
        }), () => socket.destroy());
      }
    });
  }

  /** The answer to one message; never rejects (a broken query gets FORMERR or nothing). */
  async answer(message: Buffer, tcp: boolean): Promise<Buffer | undefined> {
    let query: Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      // Too broken to read its id: nothing to answer.
      if (message.length < 12) return undefined;
      const formerr = Buffer.from(message.subarray(0, 12));
      formerr.writeUInt16BE(0x8001, 2);
      formerr.fill(0, 4);
      return formerr;
    }
    try {
      const resolution = resolve(query, this.options.view());
      if (resolution.kind === 'answer') return this.fit(resolution.packet, query, tcp);
      try {
        return await this.options.upstreams.forward(this.options.servers(), message, tcp);
      } catch {
        return dnsPacket.encode(reply(query, 'SERVFAIL'));
      }
    } catch (error) {
      this.options.log.warn('embedded DNS failed a query', { error: String(error) });
      return dnsPacket.encode(reply(query, 'SERVFAIL'));
    }
  }

  /** Over UDP an answer larger than the client takes is cut to its header and truncated (TC), so the client asks over TCP. */
  private fit(packet: Packet, query: Packet, tcp: boolean): Buffer {
    const encoded = dnsPacket.encode(packet);
    if (tcp) return encoded;
    const edns = (query.additionals ?? []).find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    const limit = Math.max(classicUdpLimit, Math.min(edns?.udpPayloadSize ?? classicUdpLimit, 4096));
    if (encoded.length <= limit) return encoded;
    return dnsPacket.encode({ ...packet, answers: [], flags: (packet.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE });
  }

  close(): void {
    for (const socket of this.connections) socket.destroy();
    this.udp?.close();
    this.tcp?.close();
    this.udp = undefined;
    this.tcp = undefined;
  }
}
