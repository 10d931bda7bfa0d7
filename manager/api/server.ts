import type { Readable } from 'node:stream';
import type { TlsOptions } from 'node:tls';
import type { ManagerMetrics } from '../metrics.ts';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { errors, isShoalError, ShoalError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { HostUsage } from '../../shared/p2p/protocol.ts';
import type { Store } from '../../shared/store/store.ts';
import { safeEqual, sha256 } from '../../shared/tokens.ts';
import { type ClusterKeys, readCluster } from '../cluster.ts';
import type { Leadership } from '../leadership.ts';
import { registerNodeRoutes } from './nodes.ts';
import { registerClusterRoutes } from './cluster.ts';
import { registerEngineRoutes } from './engine.ts';
import { registerEventRoutes } from './events.ts';
import { registerNetworkRoutes } from './networks.ts';
import { registerServiceRoutes } from './services.ts';
import { registerFileObjectRoutes } from './secrets.ts';
import { registerPolicyRoutes } from './policies.ts';
import { registerTraceRoutes } from './trace.ts';
import type { EngineClient } from '../engine/client.ts';
import type { EventLog } from '../event-log.ts';
import type { StoreWithTasks } from '../services.ts';
import { sessionContentType } from '../../shared/session-frames.ts';

export interface ApiContext {
  store: Store;
  /** Absent in unit tests that exercise the API without agents. */
  engines?: EngineClient;
  /** Absent in unit tests that do not follow events. */
  events?: EventLog;
  /** What a node said of its usage in its last heartbeat; only the leader hears them. */
  usageOf?: (nodeId: string) => HostUsage | undefined;
  leadership: Pick<Leadership, 'leaderId' | 'isLeader' | 'readLeader'>;
  managerId: string;
  version: string;
  log: Logger;
  /** False while this manager knows it cannot reach etcd (its lease is lost); absent in unit tests. */
  reachesStore?: () => boolean;
  /** The CA and seal key, to open and rotate join tokens; absent in unit tests that do not. */
  clusterKeys?: ClusterKeys;
  /** etcd's snapshot of the cluster's state, for `shoal cluster backup`; absent without etcd. */
  backup?: () => Promise<Readable>;
  /** Where request durations go; absent in unit tests. */
  metrics?: Pick<ManagerMetrics, 'apiRequest'>;
  /** The leader's control loop storing a new service with its first tasks; absent where no loop runs. */
  storeWithTasks?: StoreWithTasks;
}

/** The TCP API's TLS: its certificate, and whether it asks clients for one of the CA's. */
export type ServerTlsOptions = Pick<TlsOptions, 'key' | 'cert' | 'ca' | 'requestCert' | 'rejectUnauthorized'>;

/** Paths anyone may call without a token (liveness only; nothing about the cluster). */
const publicPaths = new Set(['/v1/ping']);

/**
 * The etcd client's own errors, and a call its retry policy gave up on (the client has no
 * circuit breaker any more: see shared/store/etcd.ts).
 */
function isEtcdFailure(error: unknown): boolean {
  const name = (error as Error | undefined)?.constructor?.name ?? '';
  return /^(GRPC|Etcd)|TaskCancelled/.test(name);
}

/** The manager's HTTP API: bearer-token auth, /v1 paths, JSON errors {code, message}. */
export async function buildApi(context: ApiContext, https?: ServerTlsOptions): Promise<FastifyInstance> {
  // Fastify types an HTTPS instance apart; the routes are the same either way.
  const app = (https ? Fastify({ logger: false, bodyLimit: 2 * 1024 * 1024, https }) : Fastify({ logger: false, bodyLimit: 2 * 1024 * 1024 })) as unknown as FastifyInstance;
  let tokenHash: string | undefined;

  if (context.metrics) {
    const histogram = context.metrics.apiRequest;
    // By route pattern, not path: one series per route however many services there are.
    app.addHook('onResponse', async (request, reply) => {
      histogram.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });
  }

  app.addHook('onRequest', async (request) => {
    if (publicPaths.has(request.url.split('?')[0] ?? '')) return;
    if (context.reachesStore && !context.reachesStore()) {
      throw new ShoalError('temporary', 'store_unavailable', 'the cluster store (etcd) is unavailable: this manager lost its lease on it', { hint: 'another manager may answer; `shoal manager ls` through one shows which lead' });
    }
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!presented) throw errors.unauthorized('missing bearer token; pass --token or set SHOAL_TOKEN');
    tokenHash ??= (await readCluster(context.store)).apiTokenSha256;
    if (!safeEqual(sha256(presented), tokenHash)) throw errors.unauthorized('the bearer token is not valid for this cluster');
  });

  // Archives and images come as raw bodies (`cp`, `image import`): the route reads the stream itself.
  app.addContentTypeParser(['application/x-tar', 'application/octet-stream', 'application/gzip', sessionContentType], (_request, payload, done) => done(null, payload));

  app.setErrorHandler((error: FastifyError | ShoalError | Error, _request, reply) => {
    if (isShoalError(error)) return reply.status(error.httpStatus).send(error.toJSON());
    const fastifyError = error as FastifyError;
    if (fastifyError.statusCode && fastifyError.statusCode < 500) {
      return reply.status(fastifyError.statusCode).send({ code: fastifyError.code ?? 'invalid_request', message: error.message });
    }
    if (isEtcdFailure(error)) {
      return reply.status(503).send({ code: 'store_unavailable', message: `the cluster store (etcd) is unavailable: ${error.message}` });
    }
    context.log.error('request failed', { error: String(error), stack: error.stack });
    return reply.status(500).send({ code: 'internal', message: error.message });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ code: 'route_not_found', message: `no such API path: ${request.method} ${request.url}` }),
  );

  app.get('/v1/ping', async () => ({ ok: true }));
  registerClusterRoutes(app, context);
  registerNodeRoutes(app, context);
  registerServiceRoutes(app, context);
  registerNetworkRoutes(app, context);
  registerFileObjectRoutes(app, context);
  registerPolicyRoutes(app, context);
  registerTraceRoutes(app, context);
  if (context.events) registerEventRoutes(app, { ...context, events: context.events });
  if (context.engines) registerEngineRoutes(app, { ...context, engines: context.engines });
  return app;
}
