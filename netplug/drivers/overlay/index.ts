import { errors } from '../../../shared/errors.ts';
import { type DriverRegistry, mtuOption } from '../../registry.ts';
import { OverlayDriver } from './overlay.ts';

/** VNIs start above Docker's 4096, as its overlay allocator does; the ingress network takes 4096 itself. */
const firstVni = 4097;
const lastVni = 16_777_215;
const ingressVni = 4096;
const claimOf = (vni: number) => `vni:${vni}`;

export function register(registry: DriverRegistry): void {
  registry.register({
    type: 'overlay',
    scopes: ['swarm'],
    creatable: true,
    addressed: true,
    options: { mtu: mtuOption },
    ingress: true,
    overhead: 50,
    vxlanProbe: true,
    egress: 'gateway-bridge',
    allocator: {
      network(spec, claimed) {
        const free = (vni: number) => !claimed.has(claimOf(vni));
        let vni = spec.ingress && free(ingressVni) ? ingressVni : undefined;
        for (let candidate = firstVni; vni === undefined && candidate <= lastVni; candidate++) if (free(candidate)) vni = candidate;
        if (vni === undefined) throw errors.conflict('no VXLAN network identifier is free');
        return { data: { vni: String(vni) }, claims: [claimOf(vni)] };
      },
    },
    agent: (context) => new OverlayDriver(context.host, context.underlay, context.netnsPrefix),
  });
}
