/**
 * What the leader tells every node its embedded DNS and VIPs hold: only tasks that may take
 * traffic count, names are per network, and the routing mesh's ports go to nodes with an
 * ingress sandbox.
 */
import test from 'ava';
import { ingressSandboxOwner } from '../../manager/network/lease-owners.ts';
import { serviceTablesFrom } from '../../manager/network/service-tables.ts';
import type { NetworkObject } from '../../netplug/model.ts';
import type { NodeObject } from '../../shared/schemas.ts';
import { type ServiceObject, ServiceSpec, type TaskObject } from '../../shared/services.ts';

const time = '2026-01-01T00:00:00.000Z';
const node = (id: string, state: NodeObject['status']['state'] = 'ready') => ({ id, description: { address: `198.18.0.${id.length}` }, status: { state } }) as unknown as NodeObject;
const network = (id: string, extra: Partial<NetworkObject['spec']> = {}) =>
  ({ id, spec: { name: id, driver: 'overlay', ingress: false, internal: false, attachable: false, options: {}, labels: {}, ipam: { pools: [] }, ...extra }, scope: 'swarm', pools: [{ subnet: '198.19.0.0/24', gateway: '198.19.0.1', ipRange: '198.19.0.0/24' }], data: { vni: '4097' } }) as unknown as NetworkObject;

function service(name: string, networks: Array<{ networkId: string; vip?: string; ingress?: boolean }>, spec: Record<string, unknown> = {}): ServiceObject {
  return {
    id: `svc-${name}`,
    spec: ServiceSpec.parse({ name, container: { image: 'busybox' }, ...spec }),
    specVersion: 1,
    endpoint: { networks: networks.map((n) => ({ networkName: n.networkId, ...n })) },
    createdAt: time,
    updatedAt: time,
  };
}

function task(id: string, svc: ServiceObject, address: string, nodeId: string, status: Partial<TaskObject['status']> = {}, networkId = 'app'): TaskObject {
  return {
    id, serviceId: svc.id, serviceName: svc.spec.name, slot: Number(id.replace(/\D/g, '')) || 1, nodeId, spec: svc.spec, specVersion: 1, desiredState: 'running',
    status: { state: 'running', message: '', timestamp: time, ...status },
    attachments: [{ networkId, networkName: networkId, driver: 'overlay', subnet: '198.19.0.0/24', gateway: '198.19.0.1', address, mac: '', internal: false, owner: id }],
    createdAt: time, updatedAt: time,
  } as TaskObject;
}

const lease = (networkId: string, address: string, owner: string, nodeId: string) => ({ networkId, address, owner, nodeId, allocatedAt: time });

test('a VIP spreads over tasks that run, are healthy or unchecked, and are on ready nodes; tasks.NAME lists the same', (t) => {
  const web = service('web', [{ networkId: 'app', vip: '198.19.0.2' }]);
  const tasks = [
    task('t1', web, '198.19.0.3', 'a'),
    task('t2', web, '198.19.0.4', 'a', { health: 'healthy' }),
    task('t3', web, '198.19.0.5', 'a', { health: 'starting' }),
    task('t4', web, '198.19.0.6', 'a', { health: 'unhealthy' }),
    task('t5', web, '198.19.0.7', 'b'),
    task('t6', web, '198.19.0.8', 'a', { state: 'preparing' }),
    { ...task('t7', web, '198.19.0.9', 'a'), desiredState: 'shutdown' as const },
  ];
  const leases = tasks.map((tk) => lease('app', tk.attachments![0]!.address, tk.id, tk.nodeId!));
  const tables = serviceTablesFrom({ services: [web], tasks, leases, nodes: [node('a'), node('b', 'down')], networks: [network('app')] });
  const app = tables.get('a')!.tables.find((x) => x.networkId === 'app')!;
  t.deepEqual(app.vips, [{ address: '198.19.0.2', service: 'web', backends: ['198.19.0.3', '198.19.0.4'] }]);
  t.deepEqual(app.records.find((r) => r.name === 'web')?.addresses, ['198.19.0.2']);
  t.deepEqual(app.records.find((r) => r.name === 'tasks.web')?.addresses, ['198.19.0.3', '198.19.0.4']);
  t.truthy(app.records.find((r) => r.name === `web.1.t1`), 'a task answers to its name');
});

test('dnsrr answers the task addresses; aliases answer as the service; names are only on the networks they are on', (t) => {
  const rr = service('rr', [{ networkId: 'app' }], { container: { image: 'busybox', aliases: { app: ['db'] } } });
  const lonely = service('lonely', [{ networkId: 'other', vip: '198.19.1.2' }]);
  const tasks = [task('t1', rr, '198.19.0.3', 'a'), task('t2', rr, '198.19.0.4', 'a'), task('t3', lonely, '198.19.1.3', 'b', {}, 'other')];
  const leases = tasks.map((tk) => lease(tk.attachments![0]!.networkId, tk.attachments![0]!.address, tk.id, tk.nodeId!));
  const tables = serviceTablesFrom({ services: [rr, lonely], tasks, leases, nodes: [node('a'), node('b')], networks: [network('app'), network('other')] });
  const onA = tables.get('a')!.tables;
  t.deepEqual(onA.map((x) => x.networkId), ['app'], 'a node holds tables only of networks it has endpoints on');
  const app = onA[0]!;
  t.deepEqual(app.records.find((r) => r.name === 'rr'), { name: 'rr', addresses: ['198.19.0.3', '198.19.0.4'], shuffle: true });
  t.deepEqual(app.records.find((r) => r.name === 'db')?.addresses, ['198.19.0.3', '198.19.0.4']);
  t.deepEqual(app.records.find((r) => r.name === 'tasks.db')?.addresses, ['198.19.0.3', '198.19.0.4'], 'tasks.ALIAS answers as tasks.NAME (a stack\'s tasks.web)');
  t.deepEqual(app.vips, []);
  t.false(app.records.some((r) => r.name === 'lonely'));
});

test('ingress ports go to every node with an ingress sandbox, with the tasks on the ingress network as backends', (t) => {
  const web = service('web', [{ networkId: 'app', vip: '198.19.0.2' }, { networkId: 'ingress', vip: '198.19.127.2', ingress: true }], {
    endpoint: { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, mode: 'ingress' }] },
  });
  const t1 = task('t1', web, '198.19.127.3', 'a', {}, 'ingress');
  const leases = [lease('ingress', '198.19.127.3', 't1', 'a'), lease('ingress', '198.19.127.10', ingressSandboxOwner('a'), 'a'), lease('ingress', '198.19.127.11', ingressSandboxOwner('b'), 'b')];
  const tables = serviceTablesFrom({ services: [web], tasks: [t1], leases, nodes: [node('a'), node('b'), node('c')], networks: [network('app'), network('ingress', { ingress: true })] });
  t.deepEqual(tables.get('b')!.ingress?.ports, [{ protocol: 'tcp', publishedPort: 8080, targetPort: 80, service: 'web', backends: ['198.19.127.3'] }]);
  t.is(tables.get('b')!.ingress?.attachment.address, '198.19.127.11');
  t.deepEqual(tables.get('a')!.ingress?.sandboxes, ['198.19.127.10', '198.19.127.11'], 'every node learns every sandbox, to send replies back through the one a connection came by');
  t.is(tables.get('c')!.ingress, undefined, 'a node without its sandbox address yet has no mesh');
  t.false(tables.get('a')!.tables.some((x) => x.networkId === 'ingress'), 'the ingress network has no names');
});
