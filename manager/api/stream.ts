import { once } from 'node:events';
import type { FastifyReply } from 'fastify';
import { isShoalError } from '../../shared/errors.ts';

/** How often a streaming answer says it is alive; clients give up after three silent periods. */
export const streamHeartbeatMs = 5_000;

/**
 * Answers with newline-delimited JSON: {"event": ...} lines while the work runs (progress,
 * log lines), then one {"result": ...} or {"error": {code, message, hint}} line. A
 * {"heartbeat": time} line goes out every `heartbeatMs`, so both ends notice a dead peer: the
 * client when lines stop coming, the server when a client stops reading (its writes back up).
 */
export async function streamNdjson(
  reply: FastifyReply,
  work: (emit: (event: unknown) => void, signal: AbortSignal) => Promise<unknown>,
  options: { heartbeatMs?: number } = {},
): Promise<void> {
  const heartbeatMs = options.heartbeatMs ?? streamHeartbeatMs;
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
  const abort = new AbortController();
  raw.on('close', () => abort.abort());
  // A client that went away mid-write: the 'close' above ends the work.
  raw.on('error', () => abort.abort());
  const write = (value: unknown) => {
    if (!raw.writableEnded && !raw.destroyed) raw.write(`${JSON.stringify(value)}\n`);
  };
  let backedUpSince: number | undefined;
  const heartbeat = setInterval(() => {
    if (raw.writableNeedDrain) {
      backedUpSince ??= Date.now();
      if (Date.now() - backedUpSince >= 3 * heartbeatMs) raw.destroy(new Error('the client stopped reading'));
      return;
    }
    backedUpSince = undefined;
    write({ heartbeat: new Date().toISOString() });
  }, heartbeatMs);
  try {
    const result = await work((event) => write({ event }), abort.signal);
    write({ result: result ?? null });
  } catch (error) {
    write({ error: isShoalError(error) ? error.toJSON() : { code: 'internal', message: (error as Error).message } });
  } finally {
    clearInterval(heartbeat);
    raw.end();
  }
}

/**
 * Answers with raw bytes (a tar) as `work` produces them, at the client's pace. An error before
 * the first byte is an ordinary JSON error answer; one after it can only cut the answer short,
 * which the client reports as a broken transfer.
 */
export async function streamBytes(
  reply: FastifyReply,
  contentType: string,
  work: (write: (chunk: Buffer) => Promise<void>, signal: AbortSignal) => Promise<unknown>,
): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  const abort = new AbortController();
  raw.on('close', () => abort.abort());
  raw.on('error', () => abort.abort());
  let started = false;
  const begin = () => {
    if (!started) raw.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache' });
    started = true;
  };
  const write = async (chunk: Buffer) => {
    begin();
    if (raw.destroyed) throw new Error('the client went away');
    if (!raw.write(chunk)) await once(raw, 'drain', { signal: abort.signal });
  };
  try {
    await work(write, abort.signal);
    begin();
    raw.end();
  } catch (error) {
    if (started) {
      raw.destroy(error as Error);
      return;
    }
    const shoalError = isShoalError(error) ? error : undefined;
    raw.writeHead(shoalError?.httpStatus ?? 500, { 'content-type': 'application/json' });
    raw.end(JSON.stringify(shoalError?.toJSON() ?? { code: 'internal', message: (error as Error).message }));
  }
}
