import test from 'ava';
import { type Model, violations } from '../chaos/invariants.ts';
import type { ClusterPicture, ListedService, ListedTask } from '../chaos/observe.ts';
import { Random } from '../chaos/random.ts';
import type { NodeView } from '../../shared/schemas.ts';

const node = (hostname: string, address: string, state: 'ready' | 'down' = 'ready') =>
  ({ id: `id-${hostname}`, description: { hostname, address }, status: { state, message: '' } }) as unknown as NodeView;
const service = (name: string, replicas: number, env: string[] = []) => ({ spec: { name, replicas, container: { env } } }) as unknown as ListedService;
const task = (id: string, name: string, slot: number, host: string, desiredState = 'running') =>
  ({ id, serviceName: name, slot, node: host, desiredState, status: { state: 'running' } }) as unknown as ListedTask;

/** Two slots of web, one on each host, on an overlay whose FDB and neighbours are right. */
function healthy(): { model: Model; picture: ClusterPicture } {
  return {
    model: { services: new Map([['web', { replicas: 2, env: ['A=1'] }]]), networks: new Set(['net']), removedNetworks: new Set() },
    picture: {
      containers: [
        { host: 'h1', id: 'a'.repeat(64), status: 'running', name: 'web.1.t1', taskId: 't1' },
        { host: 'h2', id: 'b'.repeat(64), status: 'running', name: 'web.2.t2', taskId: 't2' },
      ],
      interfaces: [
        { host: 'h1', container: 'web.1.t1', address: '198.19.0.2', mac: 'm2' },
        { host: 'h2', container: 'web.2.t2', address: '198.19.0.3', mac: 'm3' },
      ],
      peers: [
        { host: 'h1', vni: 4097, kind: 'fdb', mac: 'm3', target: '198.18.0.2' },
        { host: 'h1', vni: 4097, kind: 'neighbour', mac: 'm3', target: '198.19.0.3' },
        { host: 'h2', vni: 4097, kind: 'fdb', mac: 'm2', target: '198.18.0.1' },
      ],
      containerNamespaces: ['shoal-x-c-aaaaaaaaaaaa', 'shoal-x-c-bbbbbbbbbbbb'],
      mounts: [{ host: 'h1', container: 'a'.repeat(64), mountPoint: '/l/h1/agent/engine/containers/a/rootfs' }],
      agentsRunning: ['h1', 'h2'],
      managersRunning: ['h1'],
      managers: [{ hostname: 'h1', reachable: true }],
      nodes: [node('h1', '198.18.0.1'), node('h2', '198.18.0.2')],
      services: [service('web', 2, ['A=1'])],
      tasks: [task('t1', 'web', 1, 'h1'), task('t2', 'web', 2, 'h2')],
      networks: [{ id: 'n', name: 'net', driver: 'overlay', scope: 'swarm', subnets: ['198.19.0.0/24'] }],
    },
  };
}

test('a healthy picture breaks no invariant', (t) => {
  const { model, picture } = healthy();
  t.deepEqual(violations(model, picture), {});
});

test('each invariant catches its own breakage', (t) => {
  const cases: Array<[string, (m: Model, p: ClusterPicture) => void]> = [
    ['desired counts met', (m) => void (m.services.get('web')!.replicas = 3)],
    ['no slot twice', (_m, p) => void p.containers.push({ host: 'h2', id: 'c'.repeat(64), status: 'running', name: 'web.1.t9', taskId: 't9' })],
    ['no address twice', (_m, p) => void p.interfaces.push({ host: 'h2', container: 'other', address: '198.19.0.2', mac: 'm9' })],
    ['no stale peer entry', (_m, p) => void p.peers.push({ host: 'h2', vni: 4097, kind: 'neighbour', mac: 'm7', target: '198.19.0.7' })],
    ['nodes Ready iff heartbeating', (_m, p) => void (p.agentsRunning = ['h1'])],
    ['managers reachable iff running', (_m, p) => void (p.managers[0]!.reachable = false)],
    ['no desired state lost', (m) => void m.networks.add('gone')],
    ['no orphan', (_m, p) => void p.containerNamespaces.push('shoal-x-c-dddddddddddd')],
  ];
  for (const [name, breakIt] of cases) {
    const { model, picture } = healthy();
    breakIt(model, picture);
    t.truthy(violations(model, picture)[name as keyof ReturnType<typeof violations>], name);
  }
});

test('a host-local bridge hands out the same address on each host without counting as a duplicate', (t) => {
  const { model, picture } = healthy();
  picture.interfaces.push({ host: 'h1', container: 'web.1.t1', address: '198.19.255.2', mac: 'g1' }, { host: 'h2', container: 'web.2.t2', address: '198.19.255.2', mac: 'g1' });
  t.deepEqual(violations(model, picture), {});
});

test('the same seed draws the same rounds', (t) => {
  const draw = (seed: number) => Array.from({ length: 5 }, (() => {
    const random = new Random(seed);
    return () => random.int(0, 1000);
  })());
  t.deepEqual(draw(7), draw(7));
  t.notDeepEqual(draw(7), draw(8));
});
