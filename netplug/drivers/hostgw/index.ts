import { parsePrefix } from '../../ipam/ipv4.ts';
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
    validate(spec) {
      const pool = spec.ipam.pools[0];
      if (!pool) return { message: 'a host-gw network splits its subnet into one subnet per host: it needs --subnet', hint: 'such as --subnet 198.19.96.0/20 (with -o host_subnet_size=24: 15 hosts, one /24 kept for service VIPs)' };
      if (spec.ipam.pools.length > 1) return { message: 'a host-gw network takes one --subnet' };
      if (pool.gateway || pool.ipRange) return { message: 'a host-gw network has one gateway per host (its subnet\'s first address): leave out --gateway and --ip-range' };
      const size = hostSubnetSize(spec.options);
      if (parsePrefix(pool.subnet).length >= size) return { message: `subnet ${pool.subnet} cannot hold two /${size} host subnets (one for a host, one for service VIPs)`, hint: 'give a larger --subnet or a larger -o host_subnet_size' };
      if (spec.ingress) return { message: 'a host-gw network cannot be the routing mesh\'s network' };
      return undefined;
    },
    allocator: {
      network: (spec) => ({ data: { pool: spec.ipam.pools[0]!.subnet, hostSubnetSize: String(hostSubnetSize(spec.options)) }, claims: [] }),
      nodeSubnetLength: (network) => hostSubnetSize(network.spec.options),
    },
    agent: (context) => new HostGwDriver(context.host, context.underlay),
  });
}
