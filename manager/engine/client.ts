import type { Libp2p, Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { type ErrorKind, errors, ShoalError } from '../../shared/errors.ts';
import { FramedChannel } from '../../shared/p2p/framed.ts';
import { engineChunkBytes, EngineFrame, type EngineUpstream, type EngineUpstreamFrame, engineProtocol } from '../../shared/p2p/protocol.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import type { Store, Versioned } from '../../shared/store/store.ts';
import { findNode, listNodes, matchNode } from '../nodes.ts';
import { keys } from '../../shared/keys.ts';
import type { StoreMirror } from '../../shared/store/mirror.ts';
import { inBackground } from '../../shared/concurrency.ts';

export interface EngineCallOptions {
  /** Each event; a promise returned holds the next frame back (a slow HTTP client slows the agent). */
  onEvent?: (data: unknown) => void | Promise<void>;
  signal?: AbortSignal;
  /** Bytes sent to the agent after the request (an archive to copy in, an image to import). */
  input?: AsyncIterable<Buffer>;
  /** Or frames (an interactive session's keyboard and window sizes). */
  frames?: AsyncIterable<EngineUpstreamFrame>;
  /**
   * Whether to keep a stream ready for the node's next call (the default). A call to every
   * node (a listing) keeps none: it would open a thousand streams for one command.
   */
  spare?: boolean;
}

async function* dataFrames(input: AsyncIterable<Buffer>): AsyncGenerator<EngineUpstreamFrame> {
  for await (const chunk of chunked(input, engineChunkBytes)) yield { type: 'data', data: chunk.toString('base64') };
}

/** Pieces of at most `size` bytes. */
async function* chunked(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  for await (const chunk of source) for (let at = 0; at < chunk.length; at += size) yield chunk.subarray(at, at + size);
}

/**
 * How long a spare stream waits for a call before it is closed. The agent waits longer for a
 * stream's first frame (`engineFirstFrameMs`), so a spare is never one the agent gave up on.
 */
const spareMs = 30_000;
/** Spares are kept for at most this many nodes, the ones called last. */
const maxSpares = 64;

/** A node's spare: on its way (no stream yet), or open and waiting until its timer closes it. */
interface Spare {
  stream?: Stream;
  timer?: NodeJS.Timeout;
}

/** Open both ways, as when it was negotiated: a spare the agent closed or reset is not used. */
const usable = (stream: Stream) =>
  stream.status === 'open' && stream.writeStatus === 'writable' && stream.readStatus === 'readable' && stream.remoteWriteStatus === 'writable' && stream.remoteReadStatus === 'readable';

/** A manager's calls to agents' engines, dialled directly over libp2p by the node's addresses. */
export class EngineClient {
  /**
   * One negotiated engine stream kept ready for each node called lately: the next call to it
   * starts at once instead of after a protocol negotiation's round trip (measured: 3.5-6.6 ms
   * of a 70 ms container start on a one-host lab). A call takes the spare and opens the next
   * once it is answered.
   */
  private readonly spares = new Map<string, Spare>();

  constructor(
    private readonly p2p: Libp2p,
    private readonly store: Store,
    /**
     * The nodes, kept current by a watch: every engine call names its node, and reading the
     * node table from etcd for each cost a round trip and a parse of every node.
     */
    private readonly nodeTable?: Pick<StoreMirror, 'values'>,
  ) {}

  async call<T>(node: NodeObject, method: string, params: unknown, options: EngineCallOptions = {}): Promise<T> {
    if (node.status.state !== 'ready') {
      throw new ShoalError('conflict', 'node_not_ready', `node ${node.description.hostname} is ${node.status.state}`, { hint: 'pick a Ready node (`shoal node ls`)' });
    }
    if (node.description.p2pAddrs.length === 0) throw errors.unavailable(`node ${node.description.hostname} has not told where its engine listens`);
    const signal = options.signal ?? AbortSignal.timeout(120_000);
    const stream = this.takeSpare(node) ?? (await this.dial(node, signal));
    const channel = new FramedChannel<typeof EngineFrame, EngineUpstream>(stream, EngineFrame);
    const abort = () => inBackground(channel.close(), () => undefined);
    signal.addEventListener('abort', abort, { once: true });
    try {
      await channel.send({ method, params });
      let sending: Promise<void> | undefined;
      const upstream = options.frames ?? (options.input ? dataFrames(options.input) : undefined);
      if (upstream) {
        // Sent beside the reading: the agent may answer (an error) before it has read it all.
        sending = (async () => {
          for await (const frame of upstream) await channel.send(frame, signal);
          await channel.send({ type: 'end' }, signal);
        })();
        sending.catch(() => abort());
      }
      for (;;) {
        const frame = await channel.receive(signal);
        if (frame.type === 'event') await options.onEvent?.(frame.data);
        else if (frame.type === 'result') return frame.value as T;
        else throw new ShoalError(frame.kind as ErrorKind, frame.code, frame.message, { hint: frame.hint });
      }
    } finally {
      signal.removeEventListener('abort', abort);
      // The answer is in; closing the stream and opening the next need not hold up the caller, so
      // both wait until the caller has had its turn (its HTTP reply written: 1 ms of a start here).
      // The next call's stream is opened once this one is answered. Opened beside the call, its
      // negotiation ran on the agent while the agent made the container: 3-5 ms of a 70 ms start.
      setImmediate(() => {
        inBackground(channel.close(), () => undefined);
        if (options.spare !== false) this.keepSpare(node);
      });
    }
  }

  private async dial(node: NodeObject, signal?: AbortSignal): Promise<Stream> {
    const timeout = AbortSignal.timeout(10_000);
    try {
      return await this.p2p.dialProtocol(node.description.p2pAddrs.map((a) => multiaddr(a)), engineProtocol, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (error) {
      throw errors.unavailable(`cannot reach the agent on ${node.description.hostname}: ${(error as Error).message}`, error);
    }
  }

  private takeSpare(node: NodeObject): Stream | undefined {
    const spare = this.spares.get(node.id);
    if (!spare?.stream) return undefined;
    this.spares.delete(node.id);
    clearTimeout(spare.timer);
    if (usable(spare.stream)) return spare.stream;
    spare.stream.abort(new Error('stale spare engine stream'));
    return undefined;
  }

  /** Opens the node's next spare in the background, unless one is there or on its way. */
  private keepSpare(node: NodeObject): void {
    if (this.spares.has(node.id)) return;
    const spare: Spare = {};
    this.spares.set(node.id, spare);
    for (const [id, other] of this.spares) {
      if (this.spares.size <= maxSpares) break;
      this.dropSpare(id, other);
    }
    const dialled = this.dial(node).then((stream) => {
      if (this.spares.get(node.id) !== spare) return stream.abort(new Error('spare engine stream not needed'));
      spare.stream = stream;
      spare.timer = setTimeout(() => this.dropSpare(node.id, spare), spareMs).unref();
    });
    // A node that cannot be reached gets no spare; the next call dials and says why.
    inBackground(dialled, () => {
      if (this.spares.get(node.id) === spare) this.spares.delete(node.id);
    });
  }

  private dropSpare(id: string, spare: Spare): void {
    if (this.spares.get(id) === spare) this.spares.delete(id);
    clearTimeout(spare.timer);
    if (spare.stream) inBackground(spare.stream.close(), () => spare.stream!.abort(new Error('close failed')));
  }

  /** The node named, or every Ready node when none is. */
  async nodes(reference?: string): Promise<NodeObject[]> {
    const all = this.nodeTable ? this.nodeTable.values<NodeObject>(keys.nodes) : undefined;
    if (reference) {
      // The table can lag a change by a few milliseconds: a node it does not show ready is read again.
      const cached = all ? tryMatch(all, reference) : undefined;
      return [(cached?.value.status.state === 'ready' ? cached : await findNode(this.store, reference)).value];
    }
    return (all ?? (await listNodes(this.store))).map((n) => n.value).filter((n) => n.status.state === 'ready');
  }

  /** Calls every node at once; a node that fails is reported, not fatal. */
  async fanOut<T>(nodes: NodeObject[], method: string, params: unknown): Promise<Array<{ node: NodeObject; value?: T; error?: ShoalError }>> {
    return Promise.all(
      nodes.map(async (node) => {
        try {
          return { node, value: await this.call<T>(node, method, params, { spare: false }) };
        } catch (error) {
          return { node, error: error instanceof ShoalError ? error : errors.unavailable((error as Error).message, error) };
        }
      }),
    );
  }

  /** Finds which node holds a container (or image, volume) by asking each; ambiguity is an error. */
  async locate<T>(reference: string, method: string, params: unknown, nodeReference?: string): Promise<{ node: NodeObject; value: T }> {
    const results = await this.fanOut<T>(await this.nodes(nodeReference), method, params);
    const found = results.filter((r) => r.value !== undefined) as Array<{ node: NodeObject; value: T }>;
    if (found.length === 1) return found[0]!;
    if (found.length > 1) throw errors.conflict(`"${reference}" matches on ${found.length} nodes (${found.map((f) => f.node.description.hostname).join(', ')})`, 'add --node to pick one');
    // Nobody has it: "not found" says the most; otherwise the first node's failure.
    const errorsSeen = results.map((r) => r.error).filter((e): e is ShoalError => e !== undefined);
    throw errorsSeen.find((e) => e.kind === 'not_found') ?? errorsSeen[0] ?? errors.notFound('object', reference);
  }
}

function tryMatch(nodes: readonly Versioned<NodeObject>[], reference: string): Versioned<NodeObject> | undefined {
  try {
    return matchNode(nodes, reference);
  } catch {
    return undefined;
  }
}
