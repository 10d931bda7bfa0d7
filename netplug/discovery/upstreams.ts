/**
 * Forwarding to the upstream resolvers (the host's resolv.conf, or a container's --dns), from
 * the agent's own namespace: so a loopback resolver of the host (127.0.0.53) works too. At most
 * three, tried in order; one that timed out is tried last for a while, so a dead upstream costs
 * one timeout, not one per query.
 */
import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import net from 'node:net';

const deadForMs = 30_000;

/** The nameservers of a resolv.conf (IPv4, at most three, as the C library reads them). */
export function nameserversOf(text: string): string[] {
  return text
    .split('\n')
    .map((line) => /^\s*nameserver\s+(\d{1,3}(?:\.\d{1,3}){3})\s*$/.exec(line)?.[1])
    .filter((s): s is string => s !== undefined)
    .slice(0, 3);
}

/** The search domains and options of a resolv.conf, for containers that use the host's. */
export function searchOf(text: string): { search: string[]; options: string[] } {
  const search = text.split('\n').flatMap((line) => /^\s*(?:search|domain)\s+(.+)$/.exec(line)?.[1]?.trim().split(/\s+/) ?? []);
  const options = text.split('\n').flatMap((line) => /^\s*options\s+(.+)$/.exec(line)?.[1]?.trim().split(/\s+/) ?? []);
  return { search, options };
}

export async function readNameservers(path: string): Promise<string[]> {
  return nameserversOf(await readFile(path, 'utf8').catch(() => ''));
}

export class Upstreams {
  /** Per server: until when it counts as dead. */
  private readonly deadUntil = new Map<string, number>();

  constructor(private readonly timeoutMs = 2000) {}

  /** Live servers first, in their order, then the dead ones. */
  private order(servers: readonly string[]): string[] {
    const now = Date.now();
    const dead = (s: string) => (this.deadUntil.get(s) ?? 0) > now;
    return [...servers.filter((s) => !dead(s)), ...servers.filter(dead)];
  }

  /** Sends the query to each server in turn until one answers; rejects when none did. */
  async forward(servers: readonly string[], query: Buffer, tcp: boolean): Promise<Buffer> {
    if (servers.length === 0) throw new Error('no upstream resolver is configured');
    let lastError: unknown;
    for (const server of this.order(servers)) {
      try {
        const answer = await (tcp ? this.overTcp(server, query) : this.overUdp(server, query));
        this.deadUntil.delete(server);
        return answer;
      } catch (error) {
        this.deadUntil.set(server, Date.now() + deadForMs);
        lastError = error;
      }
    }
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }

  /** Over a connected socket: a server with nothing on port 53 answers ICMP, which fails at once instead of timing out. */
  private overUdp(server: string, query: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket('udp4');
      const id = query.readUInt16BE(0);
      let finished = false;
      const done = (error?: Error, answer?: Buffer) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        socket.close();
        if (error) reject(error);
        else resolve(answer!);
      };
      const timer = setTimeout(() => done(new Error(`${server} did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      socket.on('error', (error) => done(error));
      socket.on('message', (message) => {
        // Only the answer to this query; anything else is ignored.
        if (message.length >= 2 && message.readUInt16BE(0) === id) done(undefined, message);
      });
      socket.connect(53, server, () => {
        socket.send(query, (error) => {
          if (error) done(error);
        });
      });
    });
  }

  private overTcp(server: string, query: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: server, port: 53 });
      let received = Buffer.alloc(0);
      const done = (error?: Error, answer?: Buffer) => {
        clearTimeout(timer);
        socket.destroy();
        if (error) reject(error);
        else resolve(answer!);
      };
      const timer = setTimeout(() => done(new Error(`${server} did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      socket.on('error', (error) => done(error));
      socket.on('connect', () => {
        const length = Buffer.alloc(2);
        length.writeUInt16BE(query.length);
        socket.write(Buffer.concat([length, query]));
      });
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) done(undefined, received.subarray(2, 2 + received.readUInt16BE(0)));
      });
      socket.on('end', () => done(new Error(`${server} closed the connection before answering`)));
    });
  }
}
