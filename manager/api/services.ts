import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { keys } from '../../shared/keys.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { ServiceSpec, ServiceUpdateRequest, type TaskObject, taskName } from '../../shared/services.ts';
import { findNode, listNodes } from '../nodes.ts';
import { errors } from '../../shared/errors.ts';
import { seal } from '../../shared/pki/seal.ts';
import { decodeRegistryAuth, registryAuthHeader } from '../../shared/registry-auth.ts';
import { createService, findService, listServices, removeService, rollbackService, tasksOf, updateService } from '../services.ts';
import { streamNdjson } from './stream.ts';
import type { ApiContext } from './server.ts';
import { parseInput } from './validate.ts';

const Ref = z.object({ ref: z.string().min(1) });

export function registerServiceRoutes(app: FastifyInstance, context: ApiContext): void {
  const { store } = context;

  const withNames = (tasks: TaskObject[], nodes: NodeObject[]) => {
    const hostnames = new Map(nodes.map((n) => [n.id, n.description.hostname]));
    return tasks.map((task) => ({ ...task, name: taskName(task), node: (task.nodeId && hostnames.get(task.nodeId)) || null }));
  };

  /** `--with-registry-auth`: the request's registry login, sealed for the store; the managers' seal key alone opens it. */
  const sealedLogin = (headers: Record<string, string | string[] | undefined>): string | undefined => {
    const auth = decodeRegistryAuth(headers[registryAuthHeader]);
    if (!auth) return undefined;
    const sealKey = context.clusterKeys?.sealKey;
    if (!sealKey) throw errors.unavailable('this manager holds no seal key to keep a registry login with');
    return seal(sealKey, JSON.stringify(auth));
  };

  app.post('/v1/services', async (request) => createService(store, parseInput(ServiceSpec, request.body, 'service'), sealedLogin(request.headers), context.storeWithTasks));

  app.get('/v1/services', async () => {
    const [services, tasks] = await Promise.all([listServices(store), store.list<TaskObject>(keys.tasks)]);
    const counts = new Map<string, { running: number; desired: number }>();
    for (const { value: task } of tasks) {
      if (task.desiredState !== 'running') continue;
      const count = counts.get(task.serviceId) ?? { running: 0, desired: 0 };
      count.desired++;
      if (task.status.state === 'running') count.running++;
      counts.set(task.serviceId, count);
    }
    return services.map(({ value: service }) => ({ ...service, ...(counts.get(service.id) ?? { running: 0, desired: 0 }) }));
  });

  app.get('/v1/services/:ref', async (request) => {
    const found = await findService(store, parseInput(Ref, request.params, 'service').ref);
    return { ...found.value, version: found.version };
  });

  // Tasks of every service, or of one node's (`node ps`).
  app.get('/v1/tasks', async (request) => {
    const { node } = parseInput(z.object({ node: z.string().min(1).optional() }), request.query, 'query');
    const [tasks, nodes] = await Promise.all([store.list<TaskObject>(keys.tasks), listNodes(store)]);
    const nodeId = node ? (await findNode(store, node)).value.id : undefined;
    const wanted = tasks.map((t) => t.value).filter((t) => nodeId === undefined || t.nodeId === nodeId);
    return withNames(wanted, nodes.map((n) => n.value))
      .sort((a, b) => a.serviceName.localeCompare(b.serviceName) || a.slot - b.slot || b.createdAt.localeCompare(a.createdAt))
      .map(({ spec, ...task }) => ({ ...task, image: spec.container.image }));
  });

  app.get('/v1/services/:ref/tasks', async (request) => {
    const service = await findService(store, parseInput(Ref, request.params, 'service').ref);
    // With summary=true, each task without its spec (the service's, repeated): a tenth of the bytes.
    const { summary } = parseInput(z.object({ summary: z.enum(['true', 'false']).optional() }), request.query, 'query');
    const [tasks, nodes] = await Promise.all([tasksOf(store, service.value.id), listNodes(store)]);
    const named = withNames(tasks, nodes.map((n) => n.value)).sort((a, b) => a.slot - b.slot || b.createdAt.localeCompare(a.createdAt));
    return summary === 'true' ? named.map(({ spec: _spec, ...task }) => task) : named;
  });

  app.patch('/v1/services/:ref', async (request) =>
    updateService(store, parseInput(Ref, request.params, 'service').ref, parseInput(ServiceUpdateRequest, request.body ?? {}, 'service update'), sealedLogin(request.headers)),
  );

  app.post('/v1/services/:ref/rollback', async (request) => rollbackService(store, parseInput(Ref, request.params, 'service').ref));

  // Logs of every task of the service, merged: each line carries its task and node.
  app.get('/v1/services/:ref/logs', async (request, reply) => {
    const { ref } = parseInput(Ref, request.params, 'service');
    const query = parseInput(
      z.object({ follow: z.enum(['true', 'false']).optional(), tail: z.coerce.number().int().min(0).optional(), since: z.iso.datetime({ message: 'since is an ISO time such as 2026-01-01T10:00:00Z' }).optional() }),
      request.query,
      'query',
    );
    const service = await findService(store, ref);
    const engines = context.engines;
    if (!engines) throw errors.unavailable('this manager cannot reach agents');
    const [tasks, nodes] = await Promise.all([tasksOf(store, service.value.id), listNodes(store)]);
    const live = withNames(tasks.filter((t) => t.nodeId && t.status.containerId), nodes.map((n) => n.value));
    await streamNdjson(reply, async (emit, signal) => {
      await Promise.all(
        live.map(async (task) => {
          const node = nodes.find((n) => n.value.id === task.nodeId)?.value;
          if (!node || node.status.state !== 'ready') return;
          await engines
            .call(node, 'container.logs', { ref: task.status.containerId, follow: query.follow === 'true', tail: query.tail, since: query.since }, {
              onEvent: (line) => emit({ ...(line as object), task: task.name, taskId: task.id, node: task.node, nodeId: task.nodeId }),
              signal,
            })
            .catch(() => undefined);
        }),
      );
      return null;
    });
  });

  app.delete('/v1/services/:ref', async (request) => {
    const removed = await removeService(store, parseInput(Ref, request.params, 'service').ref);
    return { id: removed.id, name: removed.spec.name };
  });
}
