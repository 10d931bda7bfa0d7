import type { FastifyReply } from 'fastify';
import { isShoalError } from '../../shared/errors.ts';

/**
 * Answers with newline-delimited JSON: {"event": ...} lines while the work runs (progress,
 * log lines), then one {"result": ...} or {"error": {code, message, hint}} line.
 */
export async function streamNdjson(reply: FastifyReply, work: (emit: (event: unknown) => void, signal: AbortSignal) => Promise<unknown>): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
  const abort = new AbortController();
  raw.on('close', () => abort.abort());
  const write = (value: unknown) => {
    if (!raw.writableEnded) raw.write(`${JSON.stringify(value)}\n`);
  };
  try {
    const result = await work((event) => write({ event }), abort.signal);
    write({ result: result ?? null });
  } catch (error) {
    write({ error: isShoalError(error) ? error.toJSON() : { code: 'internal', message: (error as Error).message } });
  } finally {
    raw.end();
  }
}
