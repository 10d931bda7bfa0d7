import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { keys } from '../../shared/keys.ts';
import { type NodeSummary, NodeUpdateRequest, type NodeView } from '../../shared/schemas.ts';
import type { TaskObject } from '../../shared/services.ts';
import type { Versioned } from '../../shared/store/store.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { listManagers } from '../managers.ts';
import { findNode, listNodes, removeNode, updateNodeSpec } from '../nodes.ts';
import type { ApiContext } from './server.ts';
import { parseInput } from './validate.ts';

const NodeParams = z.object({ id: z.string().min(1) });
const RemoveQuery = z.object({ force: z.enum(['true', 'false']).optional() });

export function registerNodeRoutes(app: FastifyInstance, context: ApiContext): void {
  /** Adds the version and, for manager nodes, whether that manager leads or is reachable. */
  async function toViews(nodes: Versioned<NodeObject>[]): Promise<NodeView[]> {
    const managers = await listManagers(context.store, await context.leadership.readLeader());
    return nodes.map(({ value, version }) => {
      const manager = managers.find((m) => m.hostname === value.description.hostname);
      const view: NodeView = { ...value, version };
      if (value.spec.role === 'manager' && manager) {
        view.managerStatus = manager.leader ? 'leader' : manager.reachable ? 'reachable' : 'unreachable';
      }
      return view;
    });
  }

  app.get('/v1/nodes', async (request) => {
    const { summary } = parseInput(z.object({ summary: z.enum(['true', 'false']).optional() }), request.query, 'query');
    const views = await toViews(await listNodes(context.store));
    if (summary !== 'true') return views;
    const perNode = new Map<string, NodeSummary>();
    const summaryOf = (nodeId: string): NodeSummary => {
      let entry = perNode.get(nodeId);
      if (!entry) perNode.set(nodeId, (entry = { tasks: { running: 0, total: 0 }, reserved: { nanoCpus: 0, memoryBytes: 0 } }));
      return entry;
    };
    for (const { value: task } of await context.store.list<TaskObject>(keys.tasks)) {
      if (!task.nodeId || task.desiredState !== 'running') continue;
      const entry = summaryOf(task.nodeId);
      entry.tasks.total++;
      if (task.status.state === 'running') entry.tasks.running++;
      entry.reserved.nanoCpus += task.spec.reservations.nanoCpus;
      entry.reserved.memoryBytes += task.spec.reservations.memoryBytes;
    }
    return views.map((view) => {
      const usage = context.usageOf?.(view.id);
      return { ...view, summary: { ...summaryOf(view.id), ...(usage ? { usage } : {}) } };
    });
  });

  app.get('/v1/nodes/:id', async (request) => {
    const { id } = parseInput(NodeParams, request.params, 'node reference');
    const [view] = await toViews([await findNode(context.store, id)]);
    return view;
  });

  app.patch('/v1/nodes/:id', async (request) => {
    const { id } = parseInput(NodeParams, request.params, 'node reference');
    const update = parseInput(NodeUpdateRequest, request.body ?? {}, 'node update');
    await updateNodeSpec(context.store, id, update);
    const [view] = await toViews([await findNode(context.store, id)]);
    return view;
  });

  app.delete('/v1/nodes/:id', async (request) => {
    const { id } = parseInput(NodeParams, request.params, 'node reference');
    const { force } = parseInput(RemoveQuery, request.query, 'query');
    const removed = await removeNode(context.store, id, force === 'true');
    return { id: removed.id, hostname: removed.description.hostname };
  });
}
