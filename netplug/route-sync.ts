/**
 * The one loop that keeps the routes of every route-aware driver in the host's namespace, as
 * flannel's RouteNetwork: each network says which routes it wants (a remote host's subnet via
 * that host's underlay address); the loop adds what is missing and removes what no network
 * wants any more. Its routes carry a protocol number of their own, so it never touches a
 * route it did not make. A next hop that is not on this host's underlay subnet (no L2
 * adjacency) is refused with the reason, as flannel's host-gw refuses it.
 */
import type { WantedRoute } from './driver.ts';
import type { HostNamespace } from './host.ts';
import { contains, parseIpv4, parsePrefix, type Prefix } from './ipam/ipv4.ts';

/** rtnetlink protocol number marking Shoal's routes (a private value; the kernel's own are below 20). */
export const routeProtocol = 83;

export interface RouteState {
  destination: string;
  via: string;
  /** In the kernel now. */
  present: boolean;
  /** Why the route is not programmed, when it is refused. */
  refused?: string;
}

interface KernelRoute {
  dst: string;
  gateway?: string;
}

export class RouteSync {
  private readonly wanted = new Map<string, readonly WantedRoute[]>();
  private readonly refused = new Map<string, string>();
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly host: HostNamespace) {}

  /** The routes one network wants now (empty: none). */
  set(networkId: string, routes: readonly WantedRoute[]): void {
    if (routes.length === 0) this.wanted.delete(networkId);
    else this.wanted.set(networkId, routes);
  }

  /** Brings the kernel to what the networks want; passes asked for while one runs are folded into one more. */
  sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  private async kernelRoutes(): Promise<KernelRoute[]> {
    return JSON.parse(await this.host.ip(['-j', '-4', 'route', 'show', 'proto', String(routeProtocol)]).catch(() => '[]')) as KernelRoute[];
  }

  /** The subnets directly connected to this host (its link-scope routes): one read per pass, whatever the number of next hops. */
  private async connected(): Promise<Prefix[]> {
    const routes = JSON.parse(await this.host.ip(['-j', '-4', 'route', 'show', 'scope', 'link']).catch(() => '[]')) as Array<{ dst: string; gateway?: string }>;
    return routes.filter((r) => !r.gateway && r.dst !== 'default').map((r) => parsePrefix(r.dst.includes('/') ? r.dst : `${r.dst}/32`, false));
  }

  /** Why `via` cannot be a next hop from here, asked of the kernel only for one off every connected subnet. */
  private async refusal(via: string): Promise<string> {
    const answer = JSON.parse(await this.host.ip(['-j', 'route', 'get', via]).catch(() => '[]')) as Array<{ gateway?: string; type?: string; dev?: string }>;
    const route = answer[0];
    if (!route) return `no route to host ${via} from this host`;
    if (route.type === 'local') return `${via} is this host's own address`;
    if (route.gateway) return `host ${via} is not on this host's underlay subnet (reached through ${route.gateway}); host-gw needs every host on one L2 segment`;
    return `host ${via} is not on a subnet directly connected to this host`;
  }

  private async pass(): Promise<void> {
    const want = new Map<string, string>();
    for (const routes of this.wanted.values()) for (const route of routes) want.set(route.destination, route.via);
    this.refused.clear();
    const connected = want.size > 0 ? await this.connected() : [];
    const reasons = new Map<string, string | undefined>();
    for (const [destination, via] of want) {
      if (!reasons.has(via)) reasons.set(via, connected.some((subnet) => contains(subnet, parseIpv4(via))) ? undefined : await this.refusal(via));
      const reason = reasons.get(via);
      if (reason) this.refused.set(destination, reason);
    }
    const kernel = await this.kernelRoutes();
    const lines: string[] = [];
    for (const route of kernel) {
      if (want.get(route.dst) !== route.gateway || this.refused.has(route.dst)) lines.push(`route del ${route.dst} proto ${routeProtocol}`);
    }
    for (const [destination, via] of want) {
      if (this.refused.has(destination) || kernel.some((r) => r.dst === destination && r.gateway === via)) continue;
      lines.push(`route replace ${destination} via ${via} proto ${routeProtocol}`);
    }
    // One bad line must not keep the others out: -force goes on past it.
    if (lines.length > 0) await this.host.run('ip', ['-force', '-batch', '-'], `${lines.join('\n')}\n`).catch(() => undefined);
  }

  /** Each route a network wants, and whether the kernel holds it. */
  async state(networkId: string): Promise<RouteState[]> {
    const kernel = await this.kernelRoutes();
    return (this.wanted.get(networkId) ?? []).map((route) => {
      const refused = this.refused.get(route.destination);
      return { ...route, present: kernel.some((r) => r.dst === route.destination && r.gateway === route.via), ...(refused ? { refused } : {}) };
    });
  }

  /** What is missing or refused of one network's routes, said plainly. */
  async check(networkId: string): Promise<string[]> {
    return routeStateProblems(await this.state(networkId));
  }
}

/** The routes of a state that the kernel lacks, each with why. */
export function routeStateProblems(routes: readonly RouteState[]): string[] {
  return routes.filter((r) => !r.present).map((r) => (r.refused ? `route ${r.destination} via ${r.via} refused: ${r.refused}` : `missing route ${r.destination} via ${r.via}`));
}
