import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { JoinTokenRole } from '../../shared/schemas.ts';
import { readCluster, rotateJoinToken } from '../cluster.ts';
import { listManagers } from '../managers.ts';
import type { ApiContext } from './server.ts';
import { parseInput } from './validate.ts';

const TokenParams = z.object({ role: JoinTokenRole });

export function registerClusterRoutes(app: FastifyInstance, context: ApiContext): void {
  app.get('/v1/info', async () => {
    const cluster = await readCluster(context.store);
    return {
      clusterId: cluster.id,
      managerId: context.managerId,
      leaderId: context.leadership.leaderId ?? null,
      isLeader: context.leadership.isLeader,
      heartbeatPeriodMs: cluster.heartbeatPeriodMs,
      version: context.version,
    };
  });

  app.get('/v1/managers', async () => listManagers(context.store, context.leadership.leaderId));

  app.get('/v1/join-tokens/:role', async (request) => {
    const { role } = parseInput(TokenParams, request.params, 'token role');
    const cluster = await readCluster(context.store);
    return { role, token: cluster.joinTokens[role] };
  });

  app.post('/v1/join-tokens/:role/rotate', async (request) => {
    const { role } = parseInput(TokenParams, request.params, 'token role');
    const cluster = await rotateJoinToken(context.store, role);
    context.log.info('join token rotated', { role });
    return { role, token: cluster.joinTokens[role] };
  });
}
