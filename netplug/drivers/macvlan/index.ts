import { errors } from '../../../shared/errors.ts';
import { booleanOption, type DriverRegistry, interfaceOption, mtuOption } from '../../registry.ts';
import { MacvlanDriver, macvlanModes } from './macvlan.ts';

/** `parent:NODE:IFACE`, or `parent:*:IFACE` for the default parent: one parent serves one macvlan network. */
const claimOf = (node: string, parent: string) => `macvlan-parent:${node}:${parent}`;

export function register(registry: DriverRegistry): void {
  registry.register({
    type: 'macvlan',
    // Local, as Docker's default (host-local addresses); swarm for one address space across the nodes.
    scopes: ['local', 'swarm'],
    creatable: true,
    addressed: true,
    options: {
      parent: interfaceOption,
      macvlan_mode: (value) => ((macvlanModes as readonly string[]).includes(value) ? undefined : `must be one of ${macvlanModes.join(', ')}`),
      host_shim: booleanOption,
      mtu: mtuOption,
    },
    // `parent.NODE=IFACE`: that node's own parent (Docker's per-node config-only networks).
    optionPrefixes: { parent: interfaceOption },
    egress: 'own',
    validate(spec) {
      const parents = Object.keys(spec.options).filter((key) => key === 'parent' || key.startsWith('parent.'));
      if (parents.length === 0) return { message: 'a macvlan network needs its parent interface', hint: 'give -o parent=eth0 (and -o parent.NODE=IFACE for a node whose interface differs)' };
      if (spec.ipam.pools.length === 0) {
        return { message: 'a macvlan network needs the subnet of its parent\'s segment: its tasks sit on that LAN', hint: 'give --subnet (and --gateway, the segment\'s router, and --ip-range to keep part of it for others)' };
      }
      if (spec.ingress) return { message: 'a macvlan network cannot be the routing mesh\'s network' };
      return undefined;
    },
    allocator: {
      network(spec, claimed) {
        const claims = Object.entries(spec.options)
          .filter(([key]) => key === 'parent' || key.startsWith('parent.'))
          .map(([key, parent]) => claimOf(key === 'parent' ? '*' : key.slice('parent.'.length), parent));
        for (const claim of claims) {
          const [, node, parent] = claim.split(':') as [string, string, string];
          // A default parent clashes with the same interface named for any node, and back.
          const clash = [...claimed].find(([taken]) => {
            const [kind, takenNode, takenParent] = taken.split(':');
            return kind === 'macvlan-parent' && takenParent === parent && (takenNode === node || takenNode === '*' || node === '*');
          });
          if (clash) {
            throw errors.conflict(`parent interface ${parent}${node === '*' ? '' : ` of node ${node}`} already serves macvlan network "${clash[1]}": one parent (or parent and VLAN) serves one macvlan network`, 'use another parent, or a VLAN sub-interface such as -o parent=eth0.20');
          }
        }
        return { data: {}, claims };
      },
    },
    agent: (context) => new MacvlanDriver(context.host, context.nodeName),
  });
}
