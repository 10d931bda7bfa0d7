/**
 * A load and probe client run inside a namespace (`ip netns exec NS shoal-node netns-probe.js
 * MODE ...`), so it goes through that sandbox's VIP rules and embedded DNS as a task would.
 * Prints one JSON line.
 * - http URL MS CONCURRENCY: closed-loop GETs for MS milliseconds; requests/s and latencies.
 * - dns NAME RATE MS: A queries to 127.0.0.11:53 at RATE per second for MS ms; answered/s and latencies.
 * - resolves NAME: the epoch ms at which NAME first answers an address (polled every 5 ms, 30 s at most).
 */
import dgram from 'node:dgram';
import http from 'node:http';
import dnsPacket from 'dns-packet';

const [mode, ...args] = process.argv.slice(2);

function get(url: string, agent: http.Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent, timeout: 3000 }, (response) => {
      response.resume();
      response.on('end', () => (response.statusCode === 200 ? resolve() : reject(new Error(`status ${response.statusCode}`))));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', reject);
  });
}

async function httpLoad(url: string, ms: number, concurrency: number): Promise<object> {
  // A new connection per request, as short-lived clients make: each one is balanced by the VIP.
  const agent = new http.Agent({ keepAlive: false });
  const latencies: number[] = [];
  let errors = 0;
  const until = performance.now() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const started = performance.now();
        try {
          await get(url, agent);
          latencies.push(performance.now() - started);
        } catch {
          errors++;
        }
      }
    }),
  );
  return { requests: latencies.length, errors, rps: Math.round(latencies.length / (ms / 1000)), latencies };
}

async function dnsLoad(name: string, rate: number, ms: number): Promise<object> {
  const socket = dgram.createSocket('udp4');
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];
  socket.on('message', (message) => {
    const id = message.readUInt16BE(0);
    const at = sentAt.get(id);
    if (at === undefined) return;
    sentAt.delete(id);
    latencies.push(performance.now() - at);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const started = performance.now();
  let sent = 0;
  let id = 0;
  // Sends in 1 ms ticks what the rate asks for by then (timers are not precise enough for one per 200 µs).
  while (performance.now() - started < ms) {
    const due = Math.floor(((performance.now() - started) / 1000) * rate);
    for (; sent < due; sent++) {
      id = (id + 1) & 0xffff;
      sentAt.set(id, performance.now());
      socket.send(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), 53, '127.0.0.11');
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  socket.close();
  return { sent, answered: latencies.length, lost: sent - latencies.length, qps: Math.round(latencies.length / (ms / 1000)), latencies };
}

async function resolves(name: string): Promise<object> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const deadline = Date.now() + 30_000;
  try {
    for (let id = 1; Date.now() < deadline; id = (id + 1) & 0xffff) {
      const answer = await new Promise<Buffer | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 200);
        socket.once('message', (message) => {
          clearTimeout(timer);
          resolve(message);
        });
        socket.send(dnsPacket.encode({ type: 'query', id, questions: [{ type: 'A', name }] }), 53, '127.0.0.11');
      });
      if (answer && (dnsPacket.decode(answer).answers ?? []).length > 0) return { at: Date.now() };
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return { at: null };
  } finally {
    socket.close();
  }
}

const result =
  mode === 'http' ? await httpLoad(args[0]!, Number(args[1]), Number(args[2]))
  : mode === 'dns' ? await dnsLoad(args[0]!, Number(args[1]), Number(args[2]))
  : mode === 'resolves' ? await resolves(args[0]!)
  : { error: `unknown mode ${mode}` };
process.stdout.write(`${JSON.stringify(result)}\n`);
