import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { ContainerName, ContainerRunRequest, type ContainerRecord, ExecRequest, ResourceUpdate, SignalName } from '../../shared/containers.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { errors, isShoalError, type ShoalError, warningHeader } from '../../shared/errors.ts';
import type { EngineClient } from '../engine/client.ts';
import { attachNetworks, detachNetworks } from '../networks.ts';
import type { ApiContext } from './server.ts';
import { streamBytes, streamNdjson } from './stream.ts';
import { decodeFrames, encodeFrame, type FrameType, framePayload, frameTypes, sessionContentType, SessionOpen, WindowSize } from '../../shared/session-frames.ts';
import type { EngineUpstreamFrame } from '../../shared/p2p/protocol.ts';
import { decodeRegistryAuth, registryAuthHeader } from '../../shared/registry-auth.ts';
import { parseInput } from './validate.ts';

const Ref = z.object({ ref: z.string().min(1) });
const NodeQuery = z.object({ node: z.string().optional() });
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
/** A query key given once or repeated (?change=a&change=b), as a list. */
const QueryList = z.union([z.string(), z.array(z.string())]).optional().transform((v) => (v === undefined ? [] : [v].flat()));

function where(node: NodeObject) {
  return { nodeId: node.id, node: node.description.hostname };
}

/**
 * A listing from every node asked: each node's items with where they are. A node that did not
 * answer is named in a warning header: leaving it out silently would read as "nothing there".
 * When none answered, the first failure is the answer.
 */
function listedFrom<T extends object>(reply: FastifyReply, results: Array<{ node: NodeObject; value?: T[]; error?: ShoalError }>, what: string) {
  const missed = results.filter((r) => r.error);
  if (missed.length > 0 && missed.length === results.length) throw missed[0]!.error!;
  if (missed.length > 0) {
    reply.header(warningHeader, missed.map((r) => encodeURIComponent(`${r.node.description.hostname} did not answer, so its ${what} are not listed: ${r.error!.message}`)));
  }
  return results.flatMap((r) => (r.value ?? []).map((item) => ({ ...item, ...where(r.node) })));
}

/** Containers, images and volumes: thin paths from the API onto the agents' engines. */
export function registerEngineRoutes(app: FastifyInstance, context: ApiContext & { engines: EngineClient }): void {
  const { engines } = context;

  const locateContainer = (ref: string, node?: string) => engines.locate<ContainerRecord>(ref, 'container.inspect', { ref }, node);

  /** `--network host` and `--network container:NAME` (alone), as Docker has them; otherwise a namespace of its own. */
  const networkModeOf = async (networks: readonly string[], node: NodeObject): Promise<string> => {
    const shared = networks.find((n) => n === 'host' || n.startsWith('container:'));
    if (!shared) return 'private';
    if (networks.length > 1) throw errors.invalid(`--network ${shared} cannot be combined with other networks`);
    if (shared === 'host') return 'host';
    const target = await locateContainer(shared.slice('container:'.length), node.id);
    return `container:${target.value.id}`;
  };

  /** `container run` (started) and `container create` (not): networks are attached by the manager, the rest by the node's engine. */
  const createContainer = (path: string, method: 'container.run' | 'container.create') => app.post(path, async (request) => {
    const { node: nodeRef, ...asked } = parseInput(ContainerRunRequest, request.body, 'container');
    const began = performance.now();
    const [node] = await engines.nodes(nodeRef);
    const foundAt = performance.now();
    if (asked.ip && asked.networks.length === 0) throw errors.invalid('--ip needs --network', 'name the network the address is on');
    // As `docker run`: a container given no network joins the default bridge.
    const spec = asked.networks.length > 0 ? asked : { ...asked, networks: ['bridge'] };
    const networkMode = await networkModeOf(spec.networks, node!);
    const attachments = networkMode === 'private' ? await attachNetworks(context.store, spec.networks, node!.id, { standalone: true, names: containerNames(spec), labels: spec.labels, ...(spec.ip ? { address: spec.ip } : {}) }) : [];
    try {
      const registryAuth = decodeRegistryAuth(request.headers[registryAuthHeader]);
      const attachedAt = performance.now();
      const record = await engines.call<ContainerRecord>(node!, method, { ...spec, attachments, networkMode, ...(registryAuth ? { registryAuth } : {}) }, { signal: AbortSignal.timeout(300_000) });
      const ms = (from: number, to: number) => Math.round((to - from) * 10) / 10;
      const now = performance.now();
      context.log.debug('container start stages', { method, node: node!.description.hostname, ms: { node: ms(began, foundAt), networks: ms(foundAt, attachedAt), engine: ms(attachedAt, now), total: ms(began, now) } });
      return { ...record, ...where(node!) };
    } catch (error) {
      await detachNetworks(context.store, attachments);
      throw error;
    }
  });
  createContainer('/v1/containers', 'container.run');
  createContainer('/v1/containers/create', 'container.create');

  /** Every node's (or one node's) stopped containers removed; service tasks' stay, their runners own them. */
  app.post('/v1/containers/prune', async (request) => {
    const body = parseInput(z.object({ node: z.string().optional(), labels: z.array(z.string()).default([]) }), request.body ?? {}, 'prune');
    const results = await engines.fanOut<{ removed: string[]; reclaimedBytes: number }>(await engines.nodes(body.node), 'container.prune', { labels: body.labels });
    return results.map((r) => ({ ...where(r.node), ...(r.value ?? { removed: [], reclaimedBytes: 0 }), ...(r.error ? { error: r.error.message } : {}) }));
  });

  app.get('/v1/containers', async (request, reply) => {
    const query = parseInput(NodeQuery.extend({ all: bool.optional() }), request.query, 'query');
    return listedFrom(reply, await engines.fanOut<ContainerRecord[]>(await engines.nodes(query.node), 'container.list', { all: query.all ?? false }), 'containers');
  });

  app.get('/v1/containers/:ref', async (request) => {
    const { ref } = parseInput(Ref, request.params, 'container');
    const { node } = parseInput(NodeQuery, request.query, 'query');
    const found = await locateContainer(ref, node);
    return { ...found.value, ...where(found.node) };
  });

  const action = (path: string, method: string, body: z.ZodType = z.object({})) =>
    app.post(`/v1/containers/:ref/${path}`, async (request) => {
      const { ref } = parseInput(Ref, request.params, 'container');
      const { node } = parseInput(NodeQuery, request.query, 'query');
      const params = parseInput(body, request.body ?? {}, path) as Record<string, unknown>;
      const found = await locateContainer(ref, node);
      const value = await engines.call<Record<string, unknown>>(found.node, method, { ref: found.value.id, ...params }, { signal: AbortSignal.timeout(600_000) });
      return { ...value, ...where(found.node) };
    });
  action('stop', 'container.stop', z.object({ timeout: z.number().min(0).optional() }));
  action('start', 'container.start');
  action('restart', 'container.restart', z.object({ timeout: z.number().min(0).optional() }));
  action('kill', 'container.kill', z.object({ signal: SignalName.optional() }));
  action('pause', 'container.pause');
  action('unpause', 'container.unpause');
  action('rename', 'container.rename', z.object({ name: ContainerName }));
  action('top', 'container.top', z.object({ args: z.array(z.string()).default([]) }));
  action('update', 'container.update', z.object({ resources: ResourceUpdate }));
  action('commit', 'container.commit', z.object({ reference: z.string().optional(), changes: z.array(z.string()).default([]), message: z.string().optional(), author: z.string().optional(), pause: z.boolean().default(true) }));
  action('exec', 'container.exec', ExecRequest);
  action('wait', 'container.wait');
  /** Event payloads of archive bytes (base64) onto the HTTP answer. */
  const bytesOf = (event: unknown) => Buffer.from((event as { bytes?: string }).bytes ?? '', 'base64');

  app.get('/v1/containers/:ref/archive', async (request, reply) => {
    const { ref } = parseInput(Ref, request.params, 'container');
    const query = parseInput(NodeQuery.extend({ path: z.string().min(1, 'path is the file or directory to copy') }), request.query, 'query');
    const found = await locateContainer(ref, query.node);
    await streamBytes(reply, 'application/x-tar', (write, signal) =>
      engines.call(found.node, 'container.archive.get', { ref: found.value.id, path: query.path }, { onEvent: (event) => write(bytesOf(event)), signal }),
    );
  });

  app.put('/v1/containers/:ref/archive', async (request) => {
    const { ref } = parseInput(Ref, request.params, 'container');
    const query = parseInput(NodeQuery.extend({ path: z.string().min(1, 'path is where to copy to'), keepOwner: bool.optional(), contents: bool.optional() }), request.query, 'query');
    const found = await locateContainer(ref, query.node);
    await engines.call(found.node, 'container.archive.put', { ref: found.value.id, path: query.path, keepOwner: query.keepOwner ?? false, contents: query.contents ?? false }, { input: bodyBytes(request.body), signal: AbortSignal.timeout(3_600_000) });
    return { path: query.path, name: found.value.name, ...where(found.node) };
  });

  /**
   * An interactive session (attach, exec -it): the request body carries the keyboard, the answer
   * the terminal, both as session frames, for as long as the session lasts; the end is an exit
   * frame with the code, or an error frame. A client that goes away detaches.
   */
  app.post('/v1/containers/:ref/session', async (request, reply) => {
    const { ref } = parseInput(Ref, request.params, 'container');
    const { node } = parseInput(NodeQuery, request.query, 'query');
    const body = bodyBytes(request.body);
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': sessionContentType, 'cache-control': 'no-cache' });
    raw.flushHeaders();
    const abort = new AbortController();
    raw.on('close', () => abort.abort());
    raw.on('error', () => abort.abort());
    const send = (type: FrameType, payload: Buffer | object) => {
      if (!raw.destroyed && !raw.writableEnded) raw.write(encodeFrame(type, payload));
    };
    try {
      const frames = decodeFrames(body);
      const opened = await frames.next();
      if (opened.done || opened.value.type !== frameTypes.open) throw errors.invalid('a session starts with its open frame');
      const open = framePayload(opened.value, SessionOpen);
      const found = await locateContainer(ref, node);
      async function* upstream(): AsyncGenerator<EngineUpstreamFrame> {
        for await (const frame of frames) {
          if (frame.type === frameTypes.data) yield { type: 'data', data: frame.payload.toString('base64') };
          else if (frame.type === frameTypes.resize) yield { type: 'resize', ...framePayload(frame, WindowSize) };
        }
      }
      const method = open.kind === 'exec' ? 'container.exec.session' : 'container.attach';
      const params = open.kind === 'exec' ? { ref: found.value.id, ...open.exec } : { ref: found.value.id };
      const result = await engines.call<{ exitCode?: number; detached?: boolean }>(found.node, method, params, {
        frames: upstream(),
        onEvent: (event) => send(frameTypes.data, bytesOf(event)),
        signal: abort.signal,
      });
      send(frameTypes.exit, result);
    } catch (error) {
      send(frameTypes.error, isShoalError(error) ? error.toJSON() : { code: 'session_cut', message: `the session with the node was cut (${(error as Error).message})`, hint: 'the container runs on: `shoal container attach` it again' });
    } finally {
      raw.end();
    }
  });

  app.get('/v1/containers/:ref/export', async (request, reply) => {
    const { ref } = parseInput(Ref, request.params, 'container');
    const found = await locateContainer(ref, parseInput(NodeQuery, request.query, 'query').node);
    await streamBytes(reply, 'application/x-tar', (write, signal) => engines.call(found.node, 'container.export', { ref: found.value.id }, { onEvent: (event) => write(bytesOf(event)), signal }));
  });

  app.get('/v1/containers/:ref/changes', async (request) => {
    const { ref } = parseInput(Ref, request.params, 'container');
    const found = await locateContainer(ref, parseInput(NodeQuery, request.query, 'query').node);
    return engines.call<unknown[]>(found.node, 'container.diff', { ref: found.value.id });
  });

  app.get('/v1/containers/:ref/stats', async (request) => {
    const { ref } = parseInput(Ref, request.params, 'container');
    const found = await locateContainer(ref, parseInput(NodeQuery, request.query, 'query').node);
    return { ...(await engines.call<object>(found.node, 'container.stats', { ref: found.value.id })), name: found.value.name, ...where(found.node) };
  });

  app.delete('/v1/containers/:ref', async (request) => {
    const { ref } = parseInput(Ref, request.params, 'container');
    const query = parseInput(NodeQuery.extend({ force: bool.optional() }), request.query, 'query');
    const found = await locateContainer(ref, query.node);
    const removed = await engines.call<ContainerRecord>(found.node, 'container.remove', { ref: found.value.id, force: query.force ?? false });
    await detachNetworks(context.store, removed.spec.attachments ?? []);
    return { ...removed, ...where(found.node) };
  });

  app.get('/v1/containers/:ref/logs', async (request, reply) => {
    const { ref } = parseInput(Ref, request.params, 'container');
    const query = parseInput(
      NodeQuery.extend({ follow: bool.optional(), tail: z.coerce.number().int().min(0).optional(), since: z.string().optional() }),
      request.query,
      'query',
    );
    const found = await locateContainer(ref, query.node);
    await streamNdjson(reply, (emit, signal) =>
      engines.call(found.node, 'container.logs', { ref: found.value.id, follow: query.follow ?? false, tail: query.tail, since: query.since }, { onEvent: emit, signal }),
    );
  });

  // Images and volumes: one node with ?node=, else every Ready node.
  app.get('/v1/images', async (request, reply) => {
    const { node } = parseInput(NodeQuery, request.query, 'query');
    return listedFrom(reply, await engines.fanOut<object[]>(await engines.nodes(node), 'image.list', {}), 'images');
  });

  app.post('/v1/images/pull', async (request, reply) => {
    const body = parseInput(z.object({ ref: z.string().min(1), node: z.string().optional() }), request.body, 'pull');
    const registryAuth = decodeRegistryAuth(request.headers[registryAuthHeader]);
    const nodes = await engines.nodes(body.node);
    await streamNdjson(reply, async (emit, signal) =>
      Promise.all(
        nodes.map(async (node) => ({
          ...where(node),
          image: await engines.call(node, 'image.pull', { ref: body.ref, ...(registryAuth ? { registryAuth } : {}) }, { onEvent: (event) => emit({ ...where(node), ...(event as object) }), signal }),
        })),
      ),
    );
  });

  app.post('/v1/images/push', async (request) => {
    const body = parseInput(z.object({ ref: z.string().min(1), target: z.string().optional(), node: z.string().optional() }), request.body, 'push');
    const found = await engines.locate<object>(body.ref, 'image.inspect', { ref: body.ref }, body.node).catch(async (error) => {
      if (body.node) throw error;
      // The same image on several nodes is one image: push it from the first that has it.
      const [first] = (await engines.fanOut<object>(await engines.nodes(), 'image.inspect', { ref: body.ref })).filter((r) => r.value);
      if (!first) throw error;
      return { node: first.node, value: first.value! };
    });
    const registryAuth = decodeRegistryAuth(request.headers[registryAuthHeader]);
    return { ...(await engines.call<object>(found.node, 'image.push', { ref: body.ref, target: body.target, ...(registryAuth ? { registryAuth } : {}) })), ...where(found.node) };
  });

  /** `shoal login`: a node reaches the registry with the login (its CA, its network), as a pull would. */
  app.post('/v1/registry/login', async (request) => {
    const body = parseInput(z.object({ server: z.string().min(1), username: z.string().min(1), password: z.string().min(1), node: z.string().optional() }), request.body, 'login');
    const [node] = await engines.nodes(body.node);
    if (!node) throw errors.unavailable('no Ready node to check the login from');
    await engines.call(node, 'registry.login', { server: body.server, auth: { username: body.username, password: body.password } });
    return { server: body.server, status: 'Login Succeeded', ...where(node) };
  });

  app.post('/v1/images/import', async (request) => {
    const query = parseInput(
      NodeQuery.extend({ reference: z.string().optional(), change: QueryList, message: z.string().optional() }),
      request.query,
      'query',
    );
    const [node] = await engines.nodes(query.node);
    if (!node) throw errors.unavailable('no Ready node to import on');
    const image = await engines.call<object>(node, 'image.import', { reference: query.reference, changes: query.change, message: query.message }, { input: bodyBytes(request.body), signal: AbortSignal.timeout(3_600_000) });
    return { ...image, ...where(node) };
  });

  /** `image build`: the context tar streams to one node, the steps stream back as they run. */
  app.post('/v1/images/build', async (request, reply) => {
    const query = parseInput(
      NodeQuery.extend({ tag: QueryList, buildArg: QueryList, dockerfile: z.string().optional(), target: z.string().optional(), noCache: bool.optional() }),
      request.query,
      'query',
    );
    const buildArgs = Object.fromEntries(query.buildArg.map((pair) => {
      const index = pair.indexOf('=');
      if (index <= 0) throw errors.invalid(`--build-arg "${pair}": write it NAME=value`);
      return [pair.slice(0, index), pair.slice(index + 1)];
    }));
    const [node] = await engines.nodes(query.node);
    if (!node) throw errors.unavailable('no Ready node to build on');
    const body = bodyBytes(request.body);
    await streamNdjson(reply, async (emit, signal) => ({
      ...where(node),
      image: await engines.call(node, 'image.build', { tags: query.tag, buildArgs, ...(query.dockerfile ? { dockerfile: query.dockerfile } : {}), ...(query.target ? { target: query.target } : {}), noCache: query.noCache ?? false }, { input: body, onEvent: emit, signal }),
    }));
  });

  /** One node's images as an archive: the node named, else the first that has the first image. */
  app.get('/v1/images/save', async (request, reply) => {
    const { ref: refs, node: nodeRef } = parseInput(NodeQuery.extend({ ref: QueryList.refine((list) => list.length > 0, 'name at least one image (ref=...)') }), request.query, 'query');
    const node = nodeRef
      ? (await engines.nodes(nodeRef))[0]!
      : (await engines.fanOut<object>(await engines.nodes(), 'image.inspect', { ref: refs[0] })).find((r) => r.value)?.node;
    if (!node) throw errors.notFound('image', refs[0]!, 'pull it first, or name the node with --node');
    await streamBytes(reply, 'application/x-tar', (write, signal) => engines.call(node, 'image.save', { refs }, { onEvent: (event) => write(bytesOf(event)), signal }));
  });

  app.post('/v1/images/load', async (request) => {
    const { node: nodeRef } = parseInput(NodeQuery, request.query, 'query');
    const [node] = await engines.nodes(nodeRef);
    if (!node) throw errors.unavailable('no Ready node to load on');
    const loaded = await engines.call<object[]>(node, 'image.load', {}, { input: bodyBytes(request.body), signal: AbortSignal.timeout(3_600_000) });
    return loaded.map((entry) => ({ ...entry, ...where(node) }));
  });

  /** The same image may be on several nodes: each that has it takes the tag. */
  app.post('/v1/images/tag', async (request) => {
    const body = parseInput(z.object({ source: z.string().min(1), target: z.string().min(1), node: z.string().optional() }), request.body, 'tag');
    const results = await engines.fanOut<object>(await engines.nodes(body.node), 'image.tag', { source: body.source, target: body.target });
    const tagged = results.filter((r) => r.value);
    if (tagged.length === 0) throw results.find((r) => r.error?.kind !== 'not_found')?.error ?? errors.notFound('image', body.source, 'list images with `shoal image ls`');
    return tagged.map((r) => ({ ...where(r.node), image: r.value }));
  });

  app.post('/v1/images/build-base', async (request, reply) => {
    const body = parseInput(z.object({ node: z.string().optional() }), request.body ?? {}, 'build');
    const [node] = await engines.nodes(body.node);
    await streamNdjson(reply, async (emit, signal) => ({ ...where(node!), ...(await engines.call<object>(node!, 'image.buildBase', {}, { onEvent: emit, signal })) }));
  });

  const perNode = (verb: 'get' | 'delete' | 'post', path: string, method: string, params: (p: Record<string, string>) => object) =>
    app[verb](path, async (request) => {
      const { node } = parseInput(NodeQuery, request.query, 'query');
      const results = await engines.fanOut<unknown>(await engines.nodes(node), method, params(request.params as Record<string, string>));
      const answered = results.filter((r) => r.value !== undefined);
      if (answered.length === 0) throw results.find((r) => r.error?.kind === 'not_found')?.error ?? results[0]?.error ?? new Error('no Ready node');
      return answered.map((r) => ({ ...where(r.node), result: r.value }));
    });
  perNode('get', '/v1/images/:ref', 'image.inspect', (p) => ({ ref: p.ref }));
  perNode('get', '/v1/images/:ref/history', 'image.history', (p) => ({ ref: p.ref }));
  perNode('delete', '/v1/images/:ref', 'image.remove', (p) => ({ ref: p.ref }));
  perNode('post', '/v1/images/prune', 'image.prune', () => ({}));
  perNode('get', '/v1/volumes/:name', 'volume.inspect', (p) => ({ name: p.name }));
  perNode('delete', '/v1/volumes/:name', 'volume.remove', (p) => ({ name: p.name }));
  app.get('/v1/volumes', async (request, reply) => {
    const { node } = parseInput(NodeQuery, request.query, 'query');
    return listedFrom(reply, await engines.fanOut<object[]>(await engines.nodes(node), 'volume.list', {}), 'volumes');
  });
}

/** What a standalone container answers to in the embedded DNS, per network: its name, hostname and aliases. */
/** The names a standalone container answers to on a network: its name, hostname and that network's aliases. */
export function containerNames(spec: { name?: string; hostname?: string; aliases: Record<string, string[]> }): (network: { id: string; name: string }) => string[] {
  return (network) => [...new Set([spec.name, spec.hostname, ...(spec.aliases[network.name] ?? spec.aliases[network.id] ?? [])].filter((n): n is string => Boolean(n)))];
}

/** A raw request body (a tar) as the bytes the engine call sends on; anything else is a 4xx. */
export function bodyBytes(body: unknown): AsyncIterable<Buffer> {
  if (!(body instanceof Readable)) throw errors.invalid('send the archive as the body, with content-type application/x-tar');
  return body;
}
