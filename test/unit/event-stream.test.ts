import test from 'ava';
import Fastify from 'fastify';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient, parseEndpoint } from '../../cli/client.ts';
import { streamNdjson } from '../../manager/api/stream.ts';
import { isShoalError } from '../../shared/errors.ts';

async function socketDir(t: import('ava').ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-stream-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'api.sock');
}

function listen(t: import('ava').ExecutionContext, server: Server, socket: string): Promise<void> {
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return new Promise((resolve) => server.listen(socket, resolve));
}

/** A server on a Unix socket that answers every request with these lines and then keeps the answer open. */
async function ndjsonServer(t: import('ava').ExecutionContext, lines: string): Promise<string> {
  const socket = await socketDir(t);
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/x-ndjson' });
    response.write(lines);
  });
  await listen(t, server, socket);
  return socket;
}

test('a quiet stream stays open on the server\'s heartbeats, and its result arrives', async (t) => {
  const socket = await socketDir(t);
  const app = Fastify();
  app.get('/slow', async (_request, reply) =>
    streamNdjson(reply, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      return { done: true };
    }, { heartbeatMs: 100 }),
  );
  t.teardown(() => app.close());
  await app.listen({ path: socket });
  const client = new ApiClient([parseEndpoint(socket)], undefined, 15_000, 400);
  const events: unknown[] = [];
  t.deepEqual(await client.stream('GET', '/slow', undefined, (e) => events.push(e)), { done: true });
  t.deepEqual(events, [], 'heartbeats are not events');
});

test('a stream that goes silent is given up with a clear error, not followed forever', async (t) => {
  // Answers, then says nothing more: a connection that died without a word.
  const socket = await ndjsonServer(t, '{"event":{"n":1}}\n');
  const client = new ApiClient([parseEndpoint(socket)], undefined, 15_000, 300);
  const started = Date.now();
  const error = await t.throwsAsync(client.stream('GET', '/v1/events', undefined, () => undefined));
  t.true(isShoalError(error) && error.code === 'stream_silent', String(error));
  t.true(Date.now() - started < 3_000);
});

test('a malformed line rejects the call; the process goes on', async (t) => {
  const socket = await ndjsonServer(t, '{"event":{"n":1}}\nthis is not json\n');
  const client = new ApiClient([parseEndpoint(socket)], undefined, 15_000, 5_000);
  const seen: unknown[] = [];
  const error = await t.throwsAsync(client.stream('GET', '/v1/events', undefined, (e) => seen.push(e)));
  t.true(isShoalError(error) && error.code === 'bad_stream_line', String(error));
  t.deepEqual(seen, [{ n: 1 }]);
});

test('an event handler that throws rejects the call instead of escaping the socket\'s handler', async (t) => {
  const socket = await ndjsonServer(t, '{"event":{"n":1}}\n');
  const client = new ApiClient([parseEndpoint(socket)], undefined, 15_000, 5_000);
  const error = await t.throwsAsync(client.stream('GET', '/v1/events', undefined, () => {
    throw new Error('boom');
  }));
  t.true(isShoalError(error) && error.code === 'event_handler_failed', String(error));
});
