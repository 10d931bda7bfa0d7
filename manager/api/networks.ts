import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { keys } from '../../shared/keys.ts';
import { NetworkSpec } from '../../netplug/model.ts';
import type { AddressLease, NetworkObject, NodeSubnetLease } from '../../netplug/model.ts';
import { readCluster } from '../cluster.ts';
import type { SandboxPolicyStatus } from '../../netplug/policy/enforcer.ts';
import { compareDiscovery, compareWithTable, type HostDiagnosis, type HostNetworkState } from '../network/diagnose.ts';
import { liveLeases, peerTablesFrom } from '../network/peer-tables.ts';
import { serviceTablesFrom } from '../network/service-tables.ts';
import { type PackedDiscoveryHostState, unpackDiscovery } from '../../netplug/discovery/discovery.ts';
import { listNodes } from '../nodes.ts';
import { attachNetworks, endpointsOf, createNetwork, detachNetworks, findNetwork, listNetworks, pruneNetworks, removeNetwork } from '../networks.ts';
import type { ContainerRecord, NetworkAttachment } from '../../shared/containers.ts';
import { errors } from '../../shared/errors.ts';
import { type ServiceObject, type TaskObject, taskName } from '../../shared/services.ts';
import { isVipLease, leaseHolder } from '../network/lease-owners.ts';
import type { ApiContext } from './server.ts';
import { parseInput } from './validate.ts';
import { containerNames } from './engine.ts';

const Ref = z.object({ ref: z.string().min(1) });

/** A network in a listing: its endpoints, and how many hosts they are on. */
export type NetworkView = NetworkObject & { endpoints: number; hosts: number };
/** A service's virtual address on a network. */
export interface NetworkVip {
  serviceId: string;
  service?: string;
  address: string;
}
/** One network in full: its endpoints and the VIPs of services on it; with --verbose, each endpoint's task by name and each host's kernel state. */
/** A node's share of a network split per host (host-gw's subnet, a calico block), as inspect shows it. */
export interface NetworkShare {
  subnet: string;
  node: string;
  renewedAt: string;
  /** Its lease ran out unrenewed (its node is down or gone): no host routes to it, and an empty one is given back. */
  expired: boolean;
}

export type NetworkDetail = NetworkObject & { endpoints: Array<AddressLease & { name?: string }>; vips: NetworkVip[]; shares?: NetworkShare[]; hosts?: HostDiagnosis[] };

export function registerNetworkRoutes(app: FastifyInstance, context: ApiContext): void {
  const { store } = context;

  /** The VIP leases among a network's, each with its service's name. */
  async function vipsOf(leases: readonly AddressLease[]): Promise<NetworkVip[]> {
    const vips = leases.flatMap((l) => {
      const holder = leaseHolder(l.owner);
      return holder.kind === 'vip' ? [{ serviceId: holder.serviceId, address: l.address }] : [];
    });
    const services = new Map((await store.getMany<ServiceObject>(vips.map((v) => keys.service(v.serviceId)))).map(({ value }) => [value.id, value.spec.name]));
    return vips.map((v) => ({ ...v, ...(services.has(v.serviceId) ? { service: services.get(v.serviceId)! } : {}) })).sort((a, b) => (a.service ?? '').localeCompare(b.service ?? ''));
  }

  app.post('/v1/networks', async (request, reply) => {
    const spec = parseInput(NetworkSpec, request.body, 'network');
    const network = await createNetwork(store, await readCluster(store), spec);
    reply.code(201);
    return network;
  });

  app.get('/v1/networks', async (): Promise<NetworkView[]> => {
    const [networks, leases, local] = await Promise.all([listNetworks(store), store.list<AddressLease>(keys.addresses), store.list<AddressLease>(keys.localEndpoints)]);
    const counts = new Map<string, number>();
    const hosts = new Map<string, Set<string>>();
    for (const { value } of [...leases, ...local]) {
      if (isVipLease(value)) continue;
      counts.set(value.networkId, (counts.get(value.networkId) ?? 0) + 1);
      if (!hosts.has(value.networkId)) hosts.set(value.networkId, new Set());
      if (value.nodeId) hosts.get(value.networkId)!.add(value.nodeId);
    }
    return networks
      .map(({ value }) => ({ ...value, endpoints: counts.get(value.id) ?? 0, hosts: hosts.get(value.id)?.size ?? 0 }))
      .sort((a, b) => a.spec.name.localeCompare(b.spec.name));
  });

  app.get('/v1/networks/:ref', async (request): Promise<NetworkDetail> => {
    const network = (await findNetwork(store, parseInput(Ref, request.params, 'network').ref)).value;
    const { verbose } = parseInput(z.object({ verbose: z.enum(['true', 'false']).optional() }), request.query, 'query');
    const all = (await endpointsOf(store, network.id)).map((l) => l.value);
    const leases = all.filter((l) => !isVipLease(l));
    const vips = await vipsOf(all);
    const held = await store.list<NodeSubnetLease>(keys.networkNodeSubnets(network.id));
    const now = Date.now();
    const shares = held.map(({ value }) => ({ subnet: value.subnet, node: value.nodeId, renewedAt: new Date(value.renewedAt).toISOString(), expired: now - value.renewedAt > value.ttlMs }))
      .sort((a, b) => a.subnet.localeCompare(b.subnet, undefined, { numeric: true }));
    const split = shares.length > 0 ? { shares } : {};
    if (verbose !== 'true' || !context.engines) return { ...network, endpoints: leases, vips, ...split };
    const tasks = new Map((await store.getMany<TaskObject>(leases.map((l) => keys.task(l.owner)))).map(({ value }) => [value.id, taskName(value)]));
    const endpoints = leases.map((lease) => ({ ...lease, ...(tasks.has(lease.owner) ? { name: tasks.get(lease.owner)! } : {}) }));
    // Each host's kernel state, set against the peer and service tables the leader computes for it.
    const [nodes, allLeases, allTasks, services, networks] = await Promise.all([
      listNodes(store),
      store.list<AddressLease>(keys.addresses),
      store.list<TaskObject>(keys.tasks),
      store.list<ServiceObject>(keys.services),
      listNetworks(store),
    ]);
    const tasksNow = allTasks.map((t) => t.value);
    const live = liveLeases(allLeases.map((l) => l.value), tasksNow);
    const tables = peerTablesFrom(live, nodes.map((n) => n.value));
    const serviceTables = serviceTablesFrom({ services: services.map((s) => s.value), tasks: tasksNow, leases: live, nodes: nodes.map((n) => n.value), networks: networks.map((n) => n.value) });
    const ready = nodes.map((n) => n.value).filter((n) => n.status.state === 'ready');
    // The ingress network has no names or VIPs of its own: its ports are the routing mesh's.
    const named = network.scope === 'swarm' && !network.spec.ingress;
    const [answers, discovered, policed] = await Promise.all([
      context.engines.fanOut<HostNetworkState | null>(ready, 'network.diagnose', { networkId: network.id }),
      named ? context.engines.fanOut<PackedDiscoveryHostState | null>(ready, 'network.discovery', { networkId: network.id }).then((all) => all.map((d) => ({ ...d, value: d.value ? unpackDiscovery(d.value) : d.value }))) : Promise.resolve([]),
      context.engines.fanOut<SandboxPolicyStatus[] | null>(ready, 'policy.status', { network: network.spec.name }),
    ]);
    const hosts: HostDiagnosis[] = answers.map(({ node, value, error }) => {
      const discovery = discovered.find((d) => d.node.id === node.id);
      const wanted = serviceTables.get(node.id)?.tables.find((t) => t.networkId === network.id);
      // Each governed workload's rules for its endpoint on this network (policy's `network` label names it).
      const policy: SandboxPolicyStatus[] = [];
      const policyProblems: string[] = [];
      for (const sandbox of policed.find((p) => p.node.id === node.id)?.value ?? []) {
        const here = new Set(sandbox.endpoints.filter((e) => e.labels.network === network.spec.name).map((e) => e.address));
        const rules = sandbox.rules.filter((r) => here.has(r.endpoint));
        if (rules.length > 0) policy.push({ ...sandbox, endpoints: sandbox.endpoints.filter((e) => here.has(e.address)), rules });
        for (const address of (sandbox.missing ?? []).filter((a) => here.has(a))) policyProblems.push(`missing policy rules of ${sandbox.name} (${address}): ${sandbox.error ?? 'not in the kernel'}`);
      }
      return {
        node: node.id,
        hostname: node.description.hostname,
        address: node.description.address,
        ...(value ? { kernel: value } : {}),
        ...(discovery?.value ? { discovery: discovery.value } : {}),
        ...(policy.length > 0 ? { policy } : {}),
        ...(error ? { error: error.message } : discovery?.error ? { error: discovery.error.message } : {}),
        problems: error ? [] : [...compareWithTable(value ?? undefined, tables.get(node.id)?.find((t) => t.networkId === network.id)), ...compareDiscovery(discovery?.value ?? undefined, wanted), ...policyProblems],
      };
    });
    return { ...network, endpoints, vips, ...split, hosts: hosts.sort((a, b) => a.hostname.localeCompare(b.hostname)) };
  });

  /** `network check --repair`: every ready host programs the network again from the tables it holds. */
  app.post('/v1/networks/:ref/repair', async (request) => {
    const network = (await findNetwork(store, parseInput(Ref, request.params, 'network').ref)).value;
    if (!context.engines) throw errors.unavailable('this manager does not reach the agents');
    const ready = (await listNodes(store)).map((n) => n.value).filter((n) => n.status.state === 'ready');
    const answers = await context.engines.fanOut<{ joined: boolean; sandboxes: number }>(ready, 'network.repair', { networkId: network.id });
    return answers.map(({ node, value, error }) => ({ hostname: node.description.hostname, ...(value ?? {}), ...(error ? { error: error.message } : {}) }));
  });

  const Connect = z
    .object({
      container: z.string().min(1),
      node: z.string().optional(),
      ip: z.string().optional(),
      aliases: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'an alias is letters, digits, "_", "." and "-"')).default([]),
    })
    .strict();

  /** Joins a container (standalone) to one more network, as its next interface. */
  app.post('/v1/networks/:ref/connect', async (request) => {
    const engines = context.engines;
    if (!engines) throw errors.unavailable('this manager does not reach the agents');
    const network = (await findNetwork(store, parseInput(Ref, request.params, 'network').ref)).value;
    const body = parseInput(Connect, request.body, 'connect');
    const found = await engines.locate<ContainerRecord>(body.container, 'container.inspect', { ref: body.container }, body.node);
    // The container answers on the new network to its name, its hostname and the aliases given here.
    const names = containerNames({ name: found.value.name, hostname: found.value.spec.hostname, aliases: { [network.spec.name]: body.aliases } });
    const [attachment] = await attachNetworks(store, [network.id], found.node.id, { standalone: true, names, labels: found.value.spec.labels, ...(body.ip ? { address: body.ip } : {}) });
    if (!attachment) throw errors.invalid(`network "${network.spec.name}" has nothing to connect to`);
    try {
      return await engines.call<ContainerRecord>(found.node, 'container.connect', { ref: found.value.id, attachment });
    } catch (error) {
      await detachNetworks(store, [attachment]);
      throw error;
    }
  });

  app.post('/v1/networks/:ref/disconnect', async (request) => {
    const engines = context.engines;
    if (!engines) throw errors.unavailable('this manager does not reach the agents');
    const network = (await findNetwork(store, parseInput(Ref, request.params, 'network').ref)).value;
    const body = parseInput(Connect.omit({ ip: true, aliases: true }), request.body, 'disconnect');
    const found = await engines.locate<ContainerRecord>(body.container, 'container.inspect', { ref: body.container }, body.node);
    const { record, removed } = await engines.call<{ record: ContainerRecord; removed: NetworkAttachment }>(found.node, 'container.disconnect', { ref: found.value.id, networkId: network.id });
    await detachNetworks(store, [removed]);
    return record;
  });

  app.delete('/v1/networks/:ref', async (request) => removeNetwork(store, parseInput(Ref, request.params, 'network').ref));

  app.post('/v1/networks/prune', async () => ({ removed: await pruneNetworks(store) }));
}
