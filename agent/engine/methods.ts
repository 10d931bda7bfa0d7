/**
 * The engine's verbs as managers call them: each validates its parameters with a schema and
 * calls the engine, image store or volume store. Events (pull progress, log lines) go out
 * through `emit` before the result.
 */
import { z } from 'zod';
import { ContainerName, ContainerSpec, ExecRequest, NetworkAttachment, ResourceUpdate, SignalName } from '../../shared/containers.ts';
import { errors } from '../../shared/errors.ts';
import { describeIssues } from '../../shared/schemas.ts';
import { type CommandError, firstComplaint, run, systemBinary } from '../../shared/exec.ts';
import type { Engine } from './containers/engine.ts';
import { buildBusyboxImage, busyboxVersion } from './images/build-base.ts';
import type { ImageStore } from './images/store.ts';
import type { RegistryClient } from './registry/client.ts';
import { RegistryAuth } from './registry/auth.ts';
import { parseReference } from './registry/reference.ts';
import { checkReference, imageHistory, importImage } from './images/local-images.ts';
import { ImageBuilder } from './images/build.ts';
import { mkdir, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { loadImages, saveImages } from './images/archive.ts';
import type { VolumeStore } from './volumes.ts';
import type { NetworkPlumbing } from '../../netplug/plumbing.ts';
import { packDiscovery, type ServiceDiscovery } from '../../netplug/discovery/discovery.ts';
import type { PolicyEnforcer } from '../../netplug/policy/enforcer.ts';
import { probeStages } from '../../netplug/vxlan/prober.ts';
import type { EngineUpstreamFrame } from '../../shared/p2p/protocol.ts';

export interface EngineServices {
  engine: Engine;
  images: ImageStore;
  volumes: VolumeStore;
  registry: RegistryClient;
  network?: NetworkPlumbing;
  discovery?: ServiceDiscovery;
  policy?: PolicyEnforcer;
}

/**
 * A call's side channels: `emit` sends an event before the result (progress, log lines,
 * archive bytes; await it to keep pace with the manager), `input` reads the bytes the manager
 * sends after the request (an archive to copy in), once.
 */
export interface CallIo {
  emit: (data: unknown) => Promise<void>;
  /** `emit` without waiting (progress, log lines): a frame the manager cannot take is dropped with the call. */
  notify: (data: unknown) => void;
  signal: AbortSignal;
  input: () => AsyncIterable<Buffer>;
  /** The same upstream as frames: bytes and window sizes of an interactive session, never timed out. */
  frames: () => AsyncIterable<EngineUpstreamFrame>;
}

/** Bytes (an archive, a terminal's output) as events the manager turns back into bytes. */
function asBytes(emit: CallIo['emit']): (chunk: Buffer) => Promise<void> {
  return (chunk) => emit({ bytes: chunk.toString('base64') });
}

type Method = (services: EngineServices, params: unknown, io: CallIo) => Promise<unknown>;

function method<S extends z.ZodType>(schema: S, handler: (services: EngineServices, params: z.infer<S>, io: CallIo) => Promise<unknown>): Method {
  return (services, raw, io) => {
    const parsed = schema.safeParse(raw ?? {});
    if (!parsed.success) throw errors.invalid(describeIssues(parsed.error));
    return handler(services, parsed.data, io);
  };
}

const Ref = z.object({ ref: z.string().min(1) });
const Ipv4Address = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, 'an IPv4 address');
const Nonce = z.number().int().min(0).max(0xffffffff);
const ProbeEndSchema = z.object({ address: Ipv4Address, mac: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i, 'a MAC address') });

function needNetwork(network: NetworkPlumbing | undefined): NetworkPlumbing {
  if (!network) throw errors.unavailable('this agent has no network data plane');
  return network;
}

export const engineMethods: Record<string, Method> = {
  'container.run': method(ContainerSpec.extend({ registryAuth: RegistryAuth.optional() }), async ({ engine }, { registryAuth, ...spec }) => engine.start((await engine.prepare(spec, [], registryAuth)).id)),
  'container.list': method(z.object({ all: z.boolean().default(false) }), async ({ engine }, { all }) =>
    engine.list().filter((c) => all || c.state === 'running'),
  ),
  'container.inspect': method(Ref, async ({ engine }, { ref }) => engine.inspect(ref)),
  'container.stop': method(Ref.extend({ timeout: z.number().min(0).optional() }), async ({ engine }, { ref, timeout }) => engine.stop(ref, timeout)),
  'container.create': method(ContainerSpec.extend({ registryAuth: RegistryAuth.optional() }), async ({ engine }, { registryAuth, ...spec }) => engine.prepare(spec, [], registryAuth)),
  'container.start': method(Ref, async ({ engine }, { ref }) => engine.start(ref)),
  'container.restart': method(Ref.extend({ timeout: z.number().min(0).optional() }), async ({ engine }, { ref, timeout }) => engine.restart(ref, timeout)),
  'container.kill': method(Ref.extend({ signal: SignalName.default('KILL') }), async ({ engine }, { ref, signal }) => engine.kill(ref, signal)),
  'container.pause': method(Ref, async ({ engine }, { ref }) => engine.pause(ref)),
  'container.unpause': method(Ref, async ({ engine }, { ref }) => engine.unpause(ref)),
  'container.rename': method(Ref.extend({ name: ContainerName }), async ({ engine }, { ref, name }) => engine.rename(ref, name)),
  'container.top': method(Ref.extend({ args: z.array(z.string()).default([]) }), async ({ engine }, { ref, args }) => engine.top(ref, args)),
  'container.update': method(Ref.extend({ resources: ResourceUpdate }), async ({ engine }, { ref, resources }) => engine.update(ref, resources)),
  /** `cp C:PATH -`: the tar comes as events of base64 bytes. */
  'container.archive.get': method(Ref.extend({ path: z.string().min(1) }), async ({ engine }, { ref, path }, { emit, signal }) => {
    await engine.archive(ref, path, asBytes(emit), signal);
    return null;
  }),
  /** `cp - C:PATH`: the tar comes after the request. */
  'container.archive.put': method(Ref.extend({ path: z.string().min(1), keepOwner: z.boolean().default(false), contents: z.boolean().default(false) }), async ({ engine }, { ref, path, ...options }, { input }) => {
    await engine.extract(ref, path, input(), options);
    return null;
  }),
  'container.export': method(Ref, async ({ engine }, { ref }, { emit, signal }) => {
    await engine.export(ref, asBytes(emit), signal);
    return null;
  }),
  'container.commit': method(
    Ref.extend({ reference: z.string().optional(), changes: z.array(z.string()).default([]), message: z.string().optional(), author: z.string().optional(), pause: z.boolean().default(true) }),
    async ({ engine }, { ref, ...options }) => engine.commit(ref, options),
  ),
  /** An interactive session: output as events of base64 bytes, keyboard and window sizes as upstream frames. */
  'container.attach': method(Ref, async ({ engine }, { ref }, { emit, frames, signal }) =>
    engine.attach(ref, { output: asBytes(emit), input: frames(), signal }),
  ),
  'container.exec.session': method(Ref.extend(ExecRequest.shape), async ({ engine }, { ref, ...request }, { emit, frames, signal }) =>
    engine.execSession(ref, request, { output: asBytes(emit), input: frames(), signal }),
  ),
  'container.diff': method(Ref, async ({ engine }, { ref }) => engine.diff(ref)),
  'container.prune': method(z.object({ labels: z.array(z.string()).default([]) }), async ({ engine }, { labels }) => engine.prune(labels)),
  /** The kernel state this host holds for a network (undefined: the host has no endpoint on it). */
  'network.diagnose': method(z.object({ networkId: z.string(), mtu: z.boolean().default(false) }), async ({ network }, { networkId, mtu }) => (await network?.diagnose(networkId, { mtu })) ?? null),
  /** What this host's embedded DNS and VIPs hold for a network (null: no service discovery here). */
  'network.discovery': method(z.object({ networkId: z.string() }), async ({ discovery }, { networkId }) => {
    const state = await discovery?.diagnose(networkId);
    return state ? packDiscovery(state) : null;
  }),
  /**
   * `network trace`'s live probe, from a container's namespace: a TCP connection, an ICMP echo
   * of `size` bytes, or a UDP datagram (which nothing answers), with busybox from the host.
   */
  'network.probe': method(
    Ref.extend({ address: Ipv4Address, protocol: z.enum(['tcp', 'udp', 'icmp']), port: z.number().int().min(1).max(65535).optional(), size: z.number().int().min(0).max(65000).optional() }),
    async ({ engine }, { ref, address, protocol, port, size }) => {
      const netns = engine.netnsOf(ref);
      const began = performance.now();
      const args = protocol === 'icmp'
        ? ['ping', '-c', '1', '-W', '1', '-s', String(size ?? 56), address]
        : protocol === 'tcp' ? ['nc', '-w', '1', address, String(port ?? 80)] : ['sh', '-c', `echo probe | nc -u -w 1 ${address} ${port ?? 53}`];
      // busybox nc stays connected until the server closes: for TCP, still connected when the
      // time is up (killed, with nothing said) means the connection was made.
      const ok = await run('ip', ['netns', 'exec', netns, 'timeout', protocol === 'tcp' ? '1.5' : '3', systemBinary('busybox'), ...args], protocol === 'tcp' ? '' : undefined).then(
        () => true,
        (error: CommandError) => protocol === 'tcp' && error.exitCode === 124 && !/can't connect|timed out|refused/i.test(error.stderr),
      );
      return { ok, ms: Math.round(performance.now() - began) };
    },
  ),
  /** `network trace`'s VXLAN prober: a watch for a nonce on the way to a local endpoint, the frame sent from the source host, the watch read and removed. */
  'network.probe.watch': method(z.object({ networkId: z.string(), address: Ipv4Address, nonce: Nonce }), async ({ network }, { networkId, address, nonce }) => needNetwork(network).watchProbe(networkId, address, nonce)),
  'network.probe.send': method(
    z.object({ networkId: z.string(), from: ProbeEndSchema, to: ProbeEndSchema, vtep: Ipv4Address, nonce: Nonce, size: z.number().int().min(4).max(65000).optional() }),
    async ({ network }, { networkId, from, to, vtep, nonce, size }) => ({ bytes: await needNetwork(network).sendProbe(networkId, from, to, vtep, nonce, size) }),
  ),
  'network.probe.read': method(z.object({ nonce: Nonce, last: z.enum(probeStages), waitMs: z.number().int().min(0).max(5000) }), async ({ network }, { nonce, last, waitMs }) => needNetwork(network).readProbe(nonce, last, waitMs)),
  /** `network check --repair`: the network's peer entries, routes, DNS and VIP rules, and policy tables programmed again. */
  'network.repair': method(z.object({ networkId: z.string() }), async ({ network, discovery, policy }, { networkId }) => {
    const joined = (await network?.repair(networkId)) ?? false;
    const sandboxes = (await discovery?.repair(networkId)) ?? 0;
    if (joined) await policy?.repair();
    return { joined, sandboxes };
  }),
  /** Each local sandbox's policy rules with their packet and byte counters (null: no data plane here). */
  'policy.status': method(z.object({ network: z.string().optional() }), async ({ policy }, { network }) => (await policy?.status(network)) ?? null),
  'container.connect': method(Ref.extend({ attachment: NetworkAttachment }), async ({ engine }, { ref, attachment }) => engine.connect(ref, attachment)),
  'container.disconnect': method(Ref.extend({ networkId: z.string() }), async ({ engine }, { ref, networkId }) => engine.disconnect(ref, networkId)),
  'container.remove': method(Ref.extend({ force: z.boolean().default(false) }), async ({ engine }, { ref, force }) => engine.remove(ref, force)),
  'container.exec': method(Ref.extend(ExecRequest.shape), async ({ engine }, { ref, ...request }) => engine.exec(ref, request)),
  'container.stats': method(Ref, async ({ engine }, { ref }) => engine.stats(ref)),
  'container.wait': method(Ref, async ({ engine }, { ref }, { signal }) => engine.wait(ref, signal)),
  'container.logs': method(
    Ref.extend({ tail: z.number().int().min(0).optional(), since: z.string().optional(), follow: z.boolean().default(false) }),
    async ({ engine }, { ref, ...query }, { notify, signal }) => {
      await engine.logs(ref, query, notify, signal);
      return null;
    },
  ),
  'image.pull': method(Ref.extend({ registryAuth: RegistryAuth.optional() }), async ({ images }, { ref, registryAuth }, { notify }) => images.pull(ref, notify, registryAuth)),
  /** `shoal login`: the registry reached with the login, as a pull would. */
  'registry.login': method(z.object({ server: z.string().min(1), auth: RegistryAuth }), async ({ registry }, { server, auth }) => {
    await registry.login(server, auth);
    return { server };
  }),
  /** `image import`: the tar comes after the request. */
  'image.import': method(z.object({ reference: z.string().optional(), changes: z.array(z.string()).default([]), message: z.string().optional() }), async ({ images }, options, { input }) =>
    importImage(images, input(), options),
  ),
  'image.history': method(Ref, async ({ images }, { ref }) => imageHistory(images, ref)),
  /** `image save`: the archive comes as events of base64 bytes. */
  'image.save': method(z.object({ refs: z.array(z.string().min(1)).min(1, 'name at least one image') }), async ({ images }, { refs }, { emit, signal }) => {
    await saveImages(images, refs, asBytes(emit), signal);
    return null;
  }),
  'image.load': method(z.object({}), async ({ images }, _params, { input }) => loadImages(images, input())),
  /** `image build`: the context comes as a tar after the request; progress as events. */
  'image.build': method(
    z.object({ dockerfile: z.string().default('Dockerfile'), tags: z.array(z.string()).default([]), buildArgs: z.record(z.string(), z.string()).default({}), target: z.string().optional(), noCache: z.boolean().default(false) }),
    async ({ engine, images }, options, { input, notify }) => {
      for (const tag of options.tags) checkReference(images, tag);
      const context = images.stagingPath();
      await mkdir(context, { recursive: true });
      try {
        await run('tar', ['-x', '-f', '-', '-C', context, '--no-same-owner'], { inputStream: Readable.from(input()) }).catch((error: unknown) => {
          throw errors.invalid(`the build context could not be unpacked: ${firstComplaint(error)}`);
        });
        return await new ImageBuilder(engine, images).build(context, options, notify);
      } finally {
        await rm(context, { recursive: true, force: true });
      }
    },
  ),
  'image.tag': method(z.object({ source: z.string().min(1), target: z.string().min(1) }), async ({ images }, { source, target }) => images.tag(source, target)),
  'image.list': method(z.object({}), async ({ images, engine }) => images.list().map((image) => ({ ...image, containers: engine.usersOfImage(image.id).length }))),
  'image.inspect': method(Ref, async ({ images }, { ref }) => {
    const image = images.find(ref);
    if (!image) throw errors.notFound('image', ref, 'pull it with `shoal image pull`');
    return image;
  }),
  'image.remove': method(Ref, async ({ images, engine }, { ref }) => images.remove(ref, (id) => engine.usersOfImage(id))),
  'image.prune': method(z.object({}), async ({ images, engine }) => images.prune((id) => engine.usersOfImage(id))),
  'image.push': method(Ref.extend({ target: z.string().optional(), registryAuth: RegistryAuth.optional() }), async ({ images }, { ref, target, registryAuth }) => images.push(ref, target, registryAuth)),
  'image.buildBase': method(z.object({}), async ({ images, registry }, _params, { notify }) => {
    const version = await busyboxVersion();
    notify({ phase: 'build', detail: `busybox ${version} from the host's busybox-static` });
    const target = parseReference('busybox', images.defaultRegistry);
    const built = await buildBusyboxImage(registry, { registry: target.registry, repository: target.repository }, [version, 'latest']);
    notify({ phase: 'push', detail: `${target.registry}/busybox:${version} and :latest` });
    return { ...built, references: built.tags.map((tag) => `${target.registry}/busybox:${tag}`) };
  }),
  'volume.list': method(z.object({}), async ({ volumes, engine }) =>
    (await volumes.list()).map((volume) => ({ ...volume, containers: engine.usersOfVolume(volume.name) })),
  ),
  'volume.inspect': method(z.object({ name: z.string() }), async ({ volumes, engine }, { name }) => ({ ...(await volumes.inspect(name)), containers: engine.usersOfVolume(name) })),
  'volume.remove': method(z.object({ name: z.string() }), async ({ volumes, engine }, { name }) => {
    await volumes.remove(name, engine.usersOfVolume(name));
    return { name };
  }),
};
