import { errors } from '../../shared/errors.ts';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { JoinTokenRole } from '../../shared/schemas.ts';
import { openJoinToken, readCluster, rotateJoinToken } from '../cluster.ts';
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
      leaderId: (await context.leadership.readLeader()) ?? null,
      isLeader: context.leadership.isLeader,
      heartbeatPeriodMs: cluster.heartbeatPeriodMs,
      version: context.version,
    };
  });

  /** The whole store as an etcd snapshot: services, networks, nodes, the cluster's key and tokens. */
  app.get('/v1/cluster/backup', async (_request, reply) => {
    if (!context.backup) throw errors.unavailable('this manager has no etcd to take a backup from');
    const snapshot = await context.backup();
    context.log.info('backup taken');
    return reply.header('content-type', 'application/octet-stream').send(snapshot);
  });

  app.get('/v1/managers', async () => listManagers(context.store, await context.leadership.readLeader()));

  const clusterKeys = () => {
    if (!context.clusterKeys) throw errors.unavailable('this manager holds no seal key to open the join tokens with');
    return context.clusterKeys;
  };

  app.get('/v1/join-tokens/:role', async (request) => {
    const { role } = parseInput(TokenParams, request.params, 'token role');
    const cluster = await readCluster(context.store);
    return { role, token: openJoinToken(cluster, role, clusterKeys().sealKey) };
  });

  app.post('/v1/join-tokens/:role/rotate', async (request) => {
    const { role } = parseInput(TokenParams, request.params, 'token role');
    const token = await rotateJoinToken(context.store, role, clusterKeys());
    context.log.info('join token rotated', { role });
    return { role, token };
  });
}
