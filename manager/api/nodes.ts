import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { NodeUpdateRequest, type NodeView } from '../../shared/schemas.ts';
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
    const managers = await listManagers(context.store, context.leadership.leaderId);
    return nodes.map(({ value, version }) => {
      const manager = managers.find((m) => m.hostname === value.description.hostname);
      const view: NodeView = { ...value, version };
      if (value.spec.role === 'manager' && manager) {
        view.managerStatus = manager.leader ? 'leader' : manager.reachable ? 'reachable' : 'unreachable';
      }
      return view;
    });
  }

  app.get('/v1/nodes', async () => toViews(await listNodes(context.store)));

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
