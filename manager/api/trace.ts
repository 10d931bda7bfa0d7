import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { errors } from '../../shared/errors.ts';
import { keys } from '../../shared/keys.ts';
import type { ContainerRecord, NetworkAttachment } from '../../shared/containers.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { type ServiceObject, type TaskObject, taskName } from '../../shared/services.ts';
import { type AddressLease, macFor, type NetworkObject, type NodeSubnetLease } from '../../netplug/model.ts';
import type { PolicyObject } from '../../netplug/policy/model.ts';
import type { HostNetworkState } from '../../netplug/plumbing.ts';
import { listNodes } from '../nodes.ts';
import { listNetworks } from '../networks.ts';
import { liveLeases, peerTablesFrom } from '../network/peer-tables.ts';
import { policyTableFrom } from '../network/policy-table.ts';
import { composeTrace, type TraceEnd, type TraceHop } from '../network/trace.ts';
import { runVxlanProbe, type VxlanProbeResult } from '../network/vxlan-probe.ts';
import { driverRegistry } from '../../netplug/drivers/index.ts';
import type { ApiContext } from './server.ts';
import { parseInput } from './validate.ts';

const TraceRequest = z.strictObject({
  from: z.string().min(1),
  to: z.string().min(1),
  protocol: z.enum(['tcp', 'udp', 'icmp']).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  size: z.number().int().min(0).max(65000).optional(),
});

export interface TraceAnswer {
  network: string;
  from: string;
  to: string;
  hops: TraceHop[];
  ok: boolean;
}

/** An end of a trace: a task (by its container name or id, known from the store even when its node is down) or a container. */
interface Located {
  name: string;
  node: NodeObject;
  attachments: Array<Pick<NetworkAttachment, 'networkId' | 'address' | 'mac'>>;
  /** The container to probe from, when it is reachable. */
  containerId?: string;
}

/** POST /v1/networks/trace: `shoal network trace A B`. */
export function registerTraceRoutes(app: FastifyInstance, context: ApiContext): void {
  const { store } = context;
  app.post('/v1/networks/trace', async (request): Promise<TraceAnswer> => {
    const engines = context.engines;
    if (!engines) throw errors.unavailable('this manager does not reach the agents');
    const body = parseInput(TraceRequest, request.body, 'trace');
    const [nodes, tasks, services, networks, leases, shares, policies] = await Promise.all([
      listNodes(store).then((l) => l.map((n) => n.value)),
      store.list<TaskObject>(keys.tasks).then((l) => l.map((t) => t.value)),
      store.list<ServiceObject>(keys.services).then((l) => l.map((s) => s.value)),
      listNetworks(store).then((l) => l.map((n) => n.value)),
      store.list<AddressLease>(keys.addresses).then((l) => l.map((a) => a.value)),
      store.list<NodeSubnetLease>(keys.nodeSubnets).then((l) => l.map((s) => s.value)),
      store.list<PolicyObject>(keys.policies).then((l) => l.map((p) => p.value)),
    ]);
    const live = tasks.filter((t) => t.desiredState === 'running' && t.nodeId);
    const locate = async (reference: string): Promise<Located | undefined> => {
      const task = live.find((t) => taskName(t) === reference || t.id === reference || t.id.startsWith(reference));
      const node = task && nodes.find((n) => n.id === task.nodeId);
      if (task && node) return { name: taskName(task), node, attachments: task.attachments ?? [], ...(task.status.containerId ? { containerId: task.status.containerId } : {}) };
      const found = await engines.locate<ContainerRecord>(reference, 'container.inspect', { ref: reference }).catch(() => undefined);
      if (found) return { name: found.value.name, node: found.node, attachments: found.value.spec.attachments, containerId: found.value.id };
      // A standalone container whose node does not answer: its address leases name it.
      const held = leases.filter((l) => l.names?.includes(reference) && l.nodeId);
      const holder = held[0] && nodes.find((n) => n.id === held[0]!.nodeId);
      return holder ? { name: reference, node: holder, attachments: held.map((l) => ({ networkId: l.networkId, address: l.address, mac: macFor(l.address) })) } : undefined;
    };
    const from = await locate(body.from);
    if (!from) throw errors.notFound('task or container', body.from, 'name a running task (service.slot.id, as `shoal service ps` shows) or container');
    // The destination: a task or container, or a service through its VIP.
    let to = await locate(body.to);
    let vip: { service: string; address: string; backends: string[] } | undefined;
    if (!to) {
      const service = services.find((s) => s.spec.name === body.to);
      if (!service) throw errors.notFound('task, container or service', body.to);
      const shared = service.endpoint?.networks.find((n) => n.vip && from.attachments.some((a) => a.networkId === n.networkId));
      if (!shared?.vip) throw errors.invalid(`service ${body.to} has no VIP on a network ${from.name} is on`, 'trace to one of its tasks instead (shoal service ps)');
      const backends = live.filter((t) => t.serviceId === service.id && t.status.state === 'running');
      const addresses = backends.flatMap((t) => (t.attachments ?? []).filter((a) => a.networkId === shared.networkId).map((a) => a.address));
      vip = { service: service.spec.name, address: shared.vip, backends: addresses };
      const first = backends[0];
      to = first ? await locate(first.id) : { name: service.spec.name, node: from.node, attachments: [] };
    }
    const vipNetworks = new Set(vip ? (services.find((s) => s.spec.name === vip.service)?.endpoint?.networks ?? []).map((n) => n.networkId) : []);
    const shared = from.attachments.find((a) => to!.attachments.some((b) => b.networkId === a.networkId) || vipNetworks.has(a.networkId));
    if (!shared) throw errors.invalid(`${from.name} and ${to!.name} share no network`, 'connect them to one network first (shoal network connect)');
    const network = networks.find((n) => n.id === shared.networkId) as NetworkObject;
    const policy = policyTableFrom({ policies, services, tasks, leases: liveLeases(leases, tasks), nodes, networks });
    const labelsOf = (address: string) => policy.workloads.find((w) => w.address === address)?.labels ?? {};
    const endOf = (located: Located): TraceEnd => {
      const attachment = located.attachments.find((a) => a.networkId === network.id);
      return { name: located.name, node: located.node, address: attachment?.address ?? '', mac: attachment?.mac ?? '', labels: labelsOf(attachment?.address ?? '') };
    };
    const fromEnd = endOf(from);
    const toEnd = endOf(to!);
    const ask = [...new Map([from.node, to!.node].map((n) => [n.id, n])).values()];
    const answers = await engines.fanOut<HostNetworkState | null>(ask.filter((n) => n.status.state === 'ready'), 'network.diagnose', { networkId: network.id, mtu: true });
    const states = new Map(answers.map(({ node, value, error }) => [node.id, { ...(value ? { state: value } : {}), ...(error ? { error: error.message } : {}) }]));
    const protocol = body.protocol ?? (body.port ? 'tcp' : 'icmp');
    const target = vip?.address ?? toEnd.address;
    const liveProbe = from.containerId
      ? engines.call<{ ok: boolean; ms: number }>(from.node, 'network.probe', { ref: from.containerId, address: target, protocol, ...(body.port ? { port: body.port } : {}), ...(body.size !== undefined ? { size: body.size } : {}) })
        .catch((error: Error) => ({ ok: false, ms: 0, error: `not probed: ${error.message}` }))
      : Promise.resolve({ ok: false, ms: 0, error: 'not probed: the source has no running container' });
    // Through the tunnel itself when the ends are on two hosts that answered: where the frame is lost.
    const tunnelled = driverRegistry.get(network.spec.driver)?.vxlanProbe && fromEnd.node.id !== toEnd.node.id && toEnd.address
      && [fromEnd, toEnd].every((end) => end.node.status.state === 'ready' && states.get(end.node.id)?.state);
    const [probe, vxlanProbe] = await Promise.all([
      liveProbe,
      tunnelled ? runVxlanProbe(engines, network.id, Number(network.data.vni), fromEnd, toEnd, body.size) : Promise.resolve<VxlanProbeResult | undefined>(undefined),
    ]);
    const hops = composeTrace({
      network, from: fromEnd, to: { ...toEnd, ...(vip ? { vip } : {}) }, protocol, ...(body.port ? { port: body.port } : {}), ...(body.size !== undefined ? { size: body.size } : {}),
      states, tables: peerTablesFrom(liveLeases(leases, tasks), nodes, shares), policy, probe, ...(vxlanProbe ? { vxlanProbe } : {}),
    });
    return { network: network.spec.name, from: fromEnd.name, to: vip ? `${vip.service} (VIP ${vip.address})` : toEnd.name, hops, ok: hops.every((h) => h.ok) };
  });
}
