import { splitPoolAllocator, splitPoolProblem } from '../split-pool.ts';
import { type DriverRegistry, mtuOption } from '../../registry.ts';
import { HostGwDriver } from './hostgw.ts';

const defaultHostSubnetSize = 24;
const hostSubnetSize = (options: Record<string, string>) => Number(options.host_subnet_size ?? defaultHostSubnetSize);

export function register(registry: DriverRegistry): void {
  registry.register({
    type: 'hostgw',
    scopes: ['swarm'],
    creatable: true,
    addressed: true,
    options: {
      mtu: mtuOption,
      host_subnet_size: (value) => (/^\d+$/.test(value) && Number(value) >= 16 && Number(value) <= 29 ? undefined : 'must be a prefix length from 16 to 29'),
    },
    egress: 'own',
    validate: (spec) =>
      splitPoolProblem(spec, {
        driver: 'host-gw', share: 'subnet', length: hostSubnetSize(spec.options), noGateway: 'has one gateway per host (its subnet\'s first address)',
        example: 'such as --subnet 198.19.96.0/20 (with -o host_subnet_size=24: 15 hosts, one /24 kept for service VIPs)',
      }),
    allocator: splitPoolAllocator('hostSubnetSize', hostSubnetSize),
    agent: (context) => new HostGwDriver(context.host, context.underlay),
  });
}
