import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { idOfKey, keys } from '../../shared/keys.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import type { ServiceObject, TaskObject } from '../../shared/services.ts';
import type { StoreWatch } from '../../shared/store/store.ts';
import type { ApiContext } from './server.ts';
import { streamNdjson } from './stream.ts';
import { parseInput } from './validate.ts';

const kinds = { service: keys.services, task: keys.tasks, node: keys.nodes } as const;
type Kind = keyof typeof kinds;

export interface ClusterEvent {
  time: string;
  type: Kind;
  action: 'create' | 'update' | 'remove';
  id: string;
  name?: string;
  state?: string;
}

function describe(type: Kind, value: unknown): Pick<ClusterEvent, 'name' | 'state'> {
  if (type === 'service') return { name: (value as ServiceObject).spec.name };
  if (type === 'node') return { name: (value as NodeObject).description.hostname, state: (value as NodeObject).status.state };
  const task = value as TaskObject;
  return { name: `${task.serviceName}.${task.slot}`, state: task.status.state };
}

/** GET /v1/events: a live stream of changes to services, tasks and nodes, one JSON line each. */
export function registerEventRoutes(app: FastifyInstance, context: ApiContext): void {
  app.get('/v1/events', async (request, reply) => {
    const query = parseInput(z.object({ type: z.enum(['service', 'task', 'node']).optional() }), request.query, 'query');
    const types = (query.type ? [query.type] : (Object.keys(kinds) as Kind[]));
    await streamNdjson(reply, async (emit, signal) => {
      const known = new Set<string>();
      const watches: StoreWatch[] = [];
      for (const type of types) {
        for (const { key } of await context.store.list(kinds[type])) known.add(key);
        watches.push(
          await context.store.watch(kinds[type], (event) => {
            const id = idOfKey(event.key);
            const time = new Date().toISOString();
            if (event.type === 'delete') {
              known.delete(event.key);
              emit({ time, type, action: 'remove', id } satisfies ClusterEvent);
              return;
            }
            const action = known.has(event.key) ? 'update' : 'create';
            known.add(event.key);
            emit({ time, type, action, id, ...describe(type, event.value) } satisfies ClusterEvent);
          }),
        );
      }
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      await Promise.all(watches.map((w) => w.close()));
      return null;
    });
  });
}
