/**
 * The mends to libp2p's libraries (shared/p2p/library-mends.ts) still apply at the installed
 * versions, and messages still arrive whole through them: real peers on loopback, no lab.
 */
import { YamuxStream } from '@chainsafe/libp2p-yamux/stream';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Libp2p } from '@libp2p/interface';
import { LengthPrefixedDecoder } from '@libp2p/utils';
import test, { type ExecutionContext } from 'ava';
import { z } from 'zod';
import { libp2pLogger, mendConnectionListing, mendSocketWrites, mendYamuxWindowUpdates, noiseLength } from '../../shared/p2p/library-mends.ts';
import { FramedChannel } from '../../shared/p2p/framed.ts';
import { createP2pNode } from '../../shared/p2p/node.ts';
import { eventually } from '../helpers/cli.ts';

test('the cheap noise length decodes frames split anywhere, as the library\'s decoder reads them', (t) => {
  const frames = [new Uint8Array(300).fill(7), new Uint8Array(1).fill(9), new Uint8Array(70).fill(3)];
  const wire = new Uint8Array(frames.reduce((sum, f) => sum + 2 + f.length, 0));
  let at = 0;
  for (const frame of frames) {
    wire[at] = frame.length >> 8;
    wire[at + 1] = frame.length & 255;
    wire.set(frame, at + 2);
    at += 2 + frame.length;
  }
  // Every way of cutting the bytes in two, and one byte at a time.
  const cuttings = [...Array.from({ length: wire.length + 1 }, (_, cut) => [wire.subarray(0, cut), wire.subarray(cut)]), [...wire].map((b) => Uint8Array.of(b))];
  for (const chunks of cuttings) {
    const decoder = new LengthPrefixedDecoder({ lengthDecoder: noiseLength, encodingLength: () => 2 });
    const got = chunks.flatMap((chunk) => [...decoder.decode(chunk)].map((buf) => buf.subarray()));
    t.deepEqual(got, frames);
  }
  t.throws(() => noiseLength(Uint8Array.of(1)), { instanceOf: RangeError }, 'too few bytes is the RangeError the decoder waits on');
});

test('peers made by createP2pNode use the mends, and a message larger than noise\'s frames arrives whole', async (t) => {
  const listener = await createP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] });
  const dialer = await createP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: [] });
  t.teardown(async () => {
    await dialer.stop();
    await listener.stop();
  });
  const big = 'x'.repeat(300_000);
  await listener.handle('/shoal-test/echo/1', async (stream) => {
    const channel = new FramedChannel(stream, z.string());
    await channel.send(await channel.receive());
    await channel.close();
  });
  const channel = new FramedChannel(await dialer.dialProtocol(listener.getMultiaddrs()[0]!, '/shoal-test/echo/1'), z.string());
  await channel.send(big);
  t.is(await channel.receive(), big);
  // Where libp2p keeps it: the connection's muxer runs over noise's message stream.
  const lengthDecoder = (connection: unknown) => (connection as { muxer?: { maConn?: { decoder?: { lengthDecoder?: unknown } } } }).muxer?.maConn?.decoder?.lengthDecoder;
  t.is(lengthDecoder(listener.getConnections()[0]), noiseLength, 'the listener\'s end reads lengths the cheap way');
  t.is(lengthDecoder(dialer.getConnections()[0]), noiseLength, 'and so does the dialer\'s');
  t.true(mendConnectionListing(listener), 'the connection manager still lists connections where the mend looks');
  t.is(listener.getConnections().length, 1, 'the mended listing of every connection');
  t.is(listener.getConnections(dialer.peerId).length, 1, 'and of one peer\'s');
});

test('libp2p logs through its own logger only when DEBUG asks for it', (t) => {
  t.is(libp2pLogger({ DEBUG: 'libp2p:*' }), undefined);
  const quiet = libp2pLogger({})!;
  const log = quiet.forComponent('libp2p:test');
  t.false(log.enabled);
  t.is(log.newScope('inner'), log, 'one logger for every scope: nothing is made per stream');
});

/** Two peers on loopback: what the dialer sends on `channel` the listener keeps in `received`, until "end". */
async function sinkPeers(t: ExecutionContext): Promise<{ channel: FramedChannel<z.ZodString, string>; received: string[]; done: Promise<void>; dialer: Libp2p }> {
  const listener = await createP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] });
  const dialer = await createP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: [] });
  t.teardown(async () => {
    await dialer.stop();
    await listener.stop();
  });
  const received: string[] = [];
  let finished: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finished = resolve));
  await listener.handle('/shoal-test/sink/1', async (stream) => {
    const channel = new FramedChannel(stream, z.string());
    for (let message = await channel.receive(); message !== 'end'; message = await channel.receive()) received.push(message);
    finished();
  });
  const channel = new FramedChannel(await dialer.dialProtocol(listener.getMultiaddrs()[0]!, '/shoal-test/sink/1'), z.string());
  return { channel, received, done, dialer };
}

// Serial: it counts through the stream class, which every test's peers share.
test.serial('yamux gives a stream\'s window back once half is used, not after every frame, and large messages still flow', async (t) => {
  t.true(mendYamuxWindowUpdates(), 'the stream class still has the method the mend replaces');
  const prototype = YamuxStream.prototype as unknown as { sendWindowUpdate: (this: { recvWindowCapacity: number; protocol?: string }) => void };
  const inner = prototype.sendWindowUpdate;
  let updates = 0;
  prototype.sendWindowUpdate = function () {
    const before = this.recvWindowCapacity;
    inner.call(this);
    // The sink's stream only: the peers' connection checks open streams of their own meanwhile.
    if (this.recvWindowCapacity !== before && this.protocol === '/shoal-test/sink/1') updates++;
  };
  t.teardown(() => (prototype.sendWindowUpdate = inner));
  const { channel, received, done } = await sinkPeers(t);
  for (let i = 0; i < 1000; i++) await channel.send(`${i}`.padEnd(100, '.'));
  // Sent is not yet received: on a busy machine the last frames can take a while to be read.
  await eventually(10_000, async () => (received.length >= 1000 ? true : undefined)).catch(() => undefined);
  t.is(received.length, 1000);
  t.true(updates <= 1, `1,000 small messages (100 KB, under half the window) need no window update beyond the stream's acknowledgement (${updates})`);
  const big = 'y'.repeat(2 * 1024 * 1024);
  await channel.send(big);
  await channel.send('end');
  await done;
  t.is(received.at(-1), big, 'a message eight times the window arrives whole');
  t.true(updates > 0 && updates < 40, `the window came back in halves (${updates} updates for 2 MiB)`);
});

test('a message goes to the socket in one write, not one per buffer, and large ones still arrive whole', async (t) => {
  const { channel, received, done, dialer } = await sinkPeers(t);
  // Where libp2p keeps it: the muxer's connection is noise's stream over the TCP connection.
  const tcp = (dialer.getConnections()[0] as unknown as { muxer: { maConn: { stream: { socket: { write: (chunk: Uint8Array) => boolean } } } } }).muxer.maConn.stream;
  t.true(mendSocketWrites(tcp), 'the TCP connection still has the method the mend replaces');
  const write = tcp.socket.write.bind(tcp.socket);
  let writes = 0;
  tcp.socket.write = (chunk: Uint8Array) => {
    writes++;
    return write(chunk);
  };
  for (let i = 0; i < 200; i++) await channel.send(`${i}`.padEnd(100, '.'));
  t.true(writes <= 210, `200 small messages took ${writes} socket writes (two each before the mend)`);
  const big = 'z'.repeat(300_000);
  await channel.send(big);
  await channel.send('end');
  await done;
  t.is(received.length, 201);
  t.is(received.at(-1), big, 'a message larger than the joined writes arrives whole');
});
