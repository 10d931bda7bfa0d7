/**
 * The host-gw driver, as flannel's host-gw backend: the network's pool is split into one
 * subnet per host (leased by the manager in etcd); on each host a bridge `slb-<id>` is that
 * subnet's gateway and holds the local endpoints; every other host's subnet is reached by a
 * plain route via that host's underlay address, programmed by the shared route loop. No
 * encapsulation: the hosts must share one L2 segment. Traffic leaving the pool is masqueraded.
 */
import type { Endpoint, Network, Sandbox } from '../../cnm.ts';
import type { DriverDiagnosis, NetworkDriver, RouteAware, RouteEntry, WantedRoute } from '../../driver.ts';
import type { HostNamespace } from '../../host.ts';
import { endpointDeviceName } from '../../links.ts';
import type { Underlay } from '../../underlay.ts';
import { routesToOtherShares } from '../split-pool.ts';
import { HostBridge } from '../bridge/bridge.ts';

const vethName = (endpoint: Endpoint) => endpointDeviceName('shv-', endpoint);

export interface HostGwDiagnosis extends DriverDiagnosis {
  /** This host's subnet, and the whole pool. */
  subnet: string;
  pool: string;
  bridge?: string;
  gateway?: string;
  endpoints: string[];
  nat: boolean;
}

export class HostGwDriver implements NetworkDriver, RouteAware {
  constructor(
    private readonly host: HostNamespace,
    private readonly underlay: Underlay,
  ) {}

  /** Also named slb-: the egress guard shuts the control plane to every slb- bridge. */
  private bridge(network: Network): HostBridge {
    return new HostBridge(this.host, `slb-${network.id.slice(0, 10)}`, `shoal-${network.id.slice(0, 10)}`);
  }

  private pool(network: Network): string {
    return network.data.pool ?? network.subnet;
  }

  createNetwork(network: Network): Promise<void> {
    return this.bridge(network).create(network, { from: network.subnet, notTo: this.pool(network) });
  }

  deleteNetwork(network: Network): Promise<void> {
    return this.bridge(network).delete();
  }

  join(endpoint: Endpoint, sandbox: Sandbox): Promise<void> {
    // Internal: the other hosts' subnets only, through this host's gateway.
    return this.bridge(endpoint.network).join(endpoint, sandbox, vethName(endpoint), { routes: endpoint.network.internal ? [this.pool(endpoint.network)] : ['default'] });
  }

  async leave(endpoint: Endpoint): Promise<void> {
    await this.host.ip(['link', 'del', vethName(endpoint)]).catch(() => undefined);
  }

  routes(network: Network, entries: readonly RouteEntry[]): WantedRoute[] {
    return routesToOtherShares(network, entries, this.underlay.address);
  }

  check(network: Network): Promise<string[]> {
    return this.bridge(network).check(network);
  }

  async diagnose(network: Network): Promise<HostGwDiagnosis> {
    const found = await this.bridge(network).diagnose();
    return {
      driver: 'hostgw', summary: `subnet ${network.subnet}${found ? ` on ${found.bridge}` : ', no bridge'}`, link: 'routes',
      subnet: network.subnet, pool: this.pool(network), endpoints: [], nat: false, ...found,
    };
  }
}
