import type { Libp2p } from '@libp2p/interface';
import { isShoalError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { FramedChannel } from '../../shared/p2p/framed.ts';
import { type EngineFrame, EngineUpstream, type EngineUpstreamFrame, engineProtocol } from '../../shared/p2p/protocol.ts';
import { errors } from '../../shared/errors.ts';
import { inBackground } from '../../shared/concurrency.ts';
import { type EngineServices, engineMethods } from './methods.ts';

/**
 * What a manager sends after its request, until its end frame. A silence of a minute ends a
 * transfer; an interactive session (`patient`) may be idle for as long as its user is.
 */
async function* upstreamFrames(channel: FramedChannel<typeof EngineUpstream, EngineFrame>, signal: AbortSignal, patient: boolean): AsyncGenerator<EngineUpstreamFrame> {
  for (;;) {
    const frame = await channel.receive(patient ? signal : AbortSignal.any([signal, AbortSignal.timeout(60_000)]));
    if ('method' in frame) throw errors.invalid('a second request arrived where bytes were expected');
    if (frame.type === 'end') return;
    yield frame;
  }
}

async function* bytesOnly(frames: AsyncIterable<EngineUpstreamFrame>): AsyncGenerator<Buffer> {
  for await (const frame of frames) if (frame.type === 'data') yield Buffer.from(frame.data, 'base64');
}

/**
 * How long a stream may wait for its call: a manager keeps a negotiated stream ready for the
 * next call to a node it called lately (for 30 s), so the wait is longer than that.
 */
export const engineFirstFrameMs = 60_000;

/**
 * Serves the engine to managers over libp2p. Only peers the agent knows as managers of its
 * cluster may call it (noise authenticates the peer id); anyone else is refused.
 */
export async function serveEngine(
  p2p: Libp2p,
  services: EngineServices,
  isManager: (peerId: string) => boolean,
  log: Logger,
  /** Told each call's method, duration and outcome (the agent's metrics). */
  observe: (method: string, seconds: number, ok: boolean) => void = () => undefined,
): Promise<void> {
  await p2p.handle(
    engineProtocol,
    async (stream, connection) => {
      const channel = new FramedChannel<typeof EngineUpstream, EngineFrame>(stream, EngineUpstream);
      const abort = new AbortController();
      stream.addEventListener('close', () => abort.abort(), { once: true });
      try {
        const request = await channel.receive(AbortSignal.timeout(engineFirstFrameMs)).catch((error: unknown) => {
          // A spare stream the manager closed unused: nothing was asked, nothing to answer.
          if ((error as Error).name === 'UnexpectedEOFError') return undefined;
          throw error;
        });
        if (request === undefined) return;
        if (!('method' in request)) throw errors.invalid('an engine call starts with its method');
        const caller = connection.remotePeer.toString();
        if (!isManager(caller)) {
          await channel.send({ type: 'error', kind: 'forbidden', code: 'not_a_manager', message: 'only the cluster\'s managers may call the engine' });
          return;
        }
        const handler = engineMethods[request.method];
        if (!handler) {
          await channel.send({ type: 'error', kind: 'invalid', code: 'unknown_method', message: `the engine has no method "${request.method}"` });
          return;
        }
        const emit = (data: unknown) => channel.send({ type: 'event', data }).catch(() => abort.abort());
        const notify = (data: unknown) => inBackground(emit(data), () => undefined);
        const startedAt = performance.now();
        let ok = false;
        try {
          const value = await handler(services, request.params, {
            emit,
            notify,
            signal: abort.signal,
            input: () => bytesOnly(upstreamFrames(channel, abort.signal, false)),
            frames: () => upstreamFrames(channel, abort.signal, true),
          });
          ok = true;
          await channel.send({ type: 'result', value: value ?? null });
        } finally {
          observe(request.method, (performance.now() - startedAt) / 1000, ok);
        }
      } catch (error) {
        if (!isShoalError(error)) log.warn('engine call failed', { error: String(error), stack: (error as Error).stack });
        const frame: EngineFrame = isShoalError(error)
          ? { type: 'error', kind: error.kind, code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) }
          : { type: 'error', kind: 'internal', code: 'engine_error', message: (error as Error).message };
        await channel.send(frame).catch(() => undefined);
      } finally {
        await channel.close();
      }
    },
    { maxInboundStreams: 256 },
  );
}
