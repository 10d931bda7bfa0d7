import { splitPoolAllocator, splitPoolProblem } from '../split-pool.ts';
import { booleanOption, type DriverRegistry, mtuOption } from '../../registry.ts';
import { join } from 'node:path';
import { CalicoDriver } from './calico.ts';

const defaultBlockSize = 26;
const blockSize = (options: Record<string, string>) => Number(options.block_size ?? defaultBlockSize);

export function register(registry: DriverRegistry): void {
  registry.register({
    type: 'calico',
    scopes: ['swarm'],
    creatable: true,
    addressed: true,
    options: {
      block_size: (value) => (/^\d+$/.test(value) && Number(value) >= 20 && Number(value) <= 30 ? undefined : 'must be a prefix length from 20 to 30'),
      nat_outgoing: booleanOption,
      routing: (value) => (value === 'static' || value === 'bgp' ? undefined : 'must be static (the agents program the routes) or bgp (BIRD spreads them, as Calico\'s)'),
      mtu: mtuOption,
    },
    egress: 'own',
    validate: (spec) =>
      splitPoolProblem(spec, {
        driver: 'calico', share: 'block', length: blockSize(spec.options), noGateway: 'has no gateway (workloads route via 169.254.1.1)',
        example: 'such as --subnet 198.19.64.0/20 (with -o block_size=26: 63 hosts, one block kept for service VIPs)',
      }),
    allocator: splitPoolAllocator('blockSize', blockSize, true),
    agent: (context) => new CalicoDriver(context.host, context.underlay, join(context.stateDir, 'bird')),
  });
}
