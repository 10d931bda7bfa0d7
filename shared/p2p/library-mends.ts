/**
 * Costs in libp2p's libraries (at the versions in package-lock.json) that every message or
 * connection of a large cluster pays, mended from outside the libraries. Each was measured in a
 * CPU profile of a manager taking 1,000 joins (`npm run bench -- scale-simulation`). A mend
 * reaches into a library's internals, so each checks that what it replaces is there and
 * otherwise leaves the library as it is; test/unit/library-mends.test.ts fails if one no
 * longer applies (after an upgrade, say), so that it is looked at again rather than lost.
 */
import { noise } from '@chainsafe/libp2p-noise';
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream';
import type { ComponentLogger, Libp2p, Logger } from '@libp2p/interface';

/**
 * Noise reads each message's two-byte length through a decoder that is asked again after the
 * last whole message of every read, and says "not enough bytes" by throwing a new RangeError.
 * Building the error's stack trace was 0.44 s of a manager's 14.5 s busy in a join storm, and the
 * same again in the joining nodes. The decoder stops at any RangeError: one made once does.
 */
const incompleteLength = new RangeError('a noise message length needs two bytes');

/** What the decoder hands over: its buffer, a Uint8ArrayList, or a plain array. */
type Bytes = Uint8Array | { length: number; get(index: number): number };

/** The length, read byte by byte: the list's own getUint16 makes a subarray and a DataView for two bytes. */
export function noiseLength(data: Bytes): number {
  if (data.length < 2) throw incompleteLength;
  return data instanceof Uint8Array ? (data[0]! << 8) | data[1]! : (data.get(0) << 8) | data.get(1);
}

interface LengthDecoding {
  decoder?: { lengthDecoder?: unknown };
}

/** Gives a secured connection's message decoder the cheap length, if it has the decoder the mend knows. */
function mendNoiseConnection(connection: unknown): void {
  const decoder = (connection as LengthDecoding | undefined)?.decoder;
  if (typeof decoder?.lengthDecoder === 'function') decoder.lengthDecoder = noiseLength;
}

type NoiseFactory = ReturnType<typeof noise>;

/** Noise as libp2p's `connectionEncrypters` take it, each secured connection mended. */
export function mendedNoise(): NoiseFactory {
  const factory = noise();
  return (components) => {
    const encrypter = factory(components);
    const inbound = encrypter.secureInbound.bind(encrypter);
    const outbound = encrypter.secureOutbound.bind(encrypter);
    encrypter.secureInbound = async (...args: Parameters<typeof inbound>) => {
      mendSocketWrites(args[0]);
      const secured = await inbound(...args);
      mendNoiseConnection(secured.connection);
      return secured;
    };
    encrypter.secureOutbound = async (...args: Parameters<typeof outbound>) => {
      mendSocketWrites(args[0]);
      const secured = await outbound(...args);
      mendNoiseConnection(secured.connection);
      return secured;
    };
    return encrypter;
  };
}

/** A message as the connection's `sendData` takes it: a Uint8ArrayList of buffers. */
interface BufferList {
  bufs: Uint8Array[];
  byteLength: number;
  subarray(): Uint8Array;
}

interface SocketConnection {
  socket?: { write(chunk: Uint8Array): boolean };
}

type SendData = ((this: SocketConnection, data: BufferList) => { sentBytes: number; canSendMore: boolean }) & { mended?: true };

/** Messages up to this size are joined into one buffer before they are written. */
const joinedWriteBytes = 64 * 1024;

/**
 * libp2p's TCP connection writes each buffer of a message with a write of its own, and noise
 * hands it two per message (a two-byte length, then the ciphertext): every message was two
 * system calls and, with Nagle's algorithm off, two segments the other end may wake for
 * separately. The socket writes were 1.1 s of a manager's 17 s busy in 1,000 joins. A message
 * up to 64 KiB is copied into one buffer and written once; a larger one keeps the library's
 * path. Applied once, to the connection's class (not exported by the library), on the first
 * connection secured; whether it is in place.
 */
export function mendSocketWrites(connection: unknown): boolean {
  if (typeof (connection as SocketConnection | undefined)?.socket?.write !== 'function') return false;
  const prototype = Object.getPrototypeOf(connection) as { sendData?: SendData };
  const original = Object.hasOwn(prototype, 'sendData') ? prototype.sendData : undefined;
  if (typeof original !== 'function') return false;
  if (original.mended) return true;
  prototype.sendData = Object.assign(
    function (this: SocketConnection, data: BufferList) {
      if (data.bufs.length < 2 || data.byteLength > joinedWriteBytes || !this.socket) return original.call(this, data);
      return { sentBytes: data.byteLength, canSendMore: this.socket.write(data.subarray()) };
    },
    { mended: true as const },
  );
  return true;
}

interface ConnectionListing {
  components?: {
    connectionManager?: {
      getConnections?: (peerId?: unknown) => unknown[];
      getConnectionsMap?: () => { forEach(each: (connections: unknown[]) => void): void };
    };
  };
}

/**
 * The connection manager lists every connection by concatenating each peer's list onto a new
 * array, so a listing copies O(N²) elements, and it lists twice for every inbound connection
 * (its limit and its pruner): 0.74 s of the manager's 14.5 s busy in 1,000 joins. One copy does
 * the same in O(N), walked with the map's own forEach: its `values()` is a hand-written iterator
 * that, with a spread and `flat()`, still cost 0.7 s in 1,000 joins. Returns whether it could.
 */
export function mendConnectionListing(node: Libp2p): boolean {
  const manager = (node as unknown as ConnectionListing).components?.connectionManager;
  const byPeer = manager?.getConnectionsMap?.bind(manager);
  const listing = manager?.getConnections?.bind(manager);
  if (!manager || !byPeer || !listing) return false;
  manager.getConnections = (peerId?: unknown) => {
    if (peerId != null) return listing(peerId);
    const all: unknown[] = [];
    byPeer().forEach((connections) => {
      for (const connection of connections) all.push(connection);
    });
    return all;
  };
  return true;
}

interface WindowAccounting {
  state: StreamState;
  recvWindow: number;
  recvWindowCapacity: number;
}

/**
 * yamux answers every data frame it reads with a window update frame (a second socket write
 * per message on each side: 7.8% of the joining nodes' busy time and 3.2% of the manager's in
 * 1,000 joins). go-yamux, the protocol's other end in the wild, gives the window back once half
 * of it is used; so does this. Streams being opened or paused keep the library's own path (it
 * carries their flags and timing). Applied once, to the stream class; whether it is in place.
 */
export function mendYamuxWindowUpdates(): boolean {
  const prototype = YamuxStream.prototype as unknown as { sendWindowUpdate?: (() => void) & { mended?: true } };
  const original = prototype.sendWindowUpdate;
  if (typeof original !== 'function') return false;
  if (original.mended) return true;
  const mended = Object.assign(function (this: WindowAccounting) {
    if (this.state === StreamState.Established && this.recvWindowCapacity > this.recvWindow / 2) return;
    original.call(this);
  }, { mended: true as const });
  prototype.sendWindowUpdate = mended;
  return true;
}

const silent: Logger = Object.assign(() => undefined, {
  error: () => undefined,
  trace: () => undefined,
  enabled: false,
  newScope: () => silent,
});

/**
 * libp2p's own logger makes a `debug` logger (with a check of the terminal) for every stream
 * and connection, even when nothing is enabled: 0.47 s of the manager's busy time in 1,000
 * joins. With libp2p's debugging off (no DEBUG in the environment, which is what enables it)
 * every component gets one logger that does nothing; with DEBUG set, libp2p's own.
 */
export function libp2pLogger(env: NodeJS.ProcessEnv = process.env): ComponentLogger | undefined {
  return env.DEBUG ? undefined : { forComponent: () => silent };
}
