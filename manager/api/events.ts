import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { type ClusterEvent, type EventLog } from '../event-log.ts';
import type { ApiContext } from './server.ts';
import { streamNdjson } from './stream.ts';
import { parseInput } from './validate.ts';

/**
 * GET /v1/events: changes to services, tasks and nodes, one JSON line each: first those kept
 * since `since` (an ISO time), then live ones until the client goes.
 */
export function registerEventRoutes(app: FastifyInstance, context: ApiContext & { events: EventLog }): void {
  app.get('/v1/events', async (request, reply) => {
    const query = parseInput(
      z.object({ type: z.enum(['service', 'task', 'node', 'network']).optional(), since: z.iso.datetime({ message: 'since is an ISO time such as 2026-01-01T10:00:00Z' }).optional() }),
      request.query,
      'query',
    );
    const wanted = (event: ClusterEvent) => !query.type || event.type === query.type;
    await streamNdjson(reply, async (emit, signal) => {
      const live = (event: ClusterEvent) => {
        if (wanted(event)) emit(event);
      };
      context.events.on('event', live);
      try {
        if (query.since) for (const event of context.events.since(new Date(query.since).toISOString())) if (wanted(event)) emit(event);
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      } finally {
        context.events.off('event', live);
      }
      return null;
    });
  });
}
