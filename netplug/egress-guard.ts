/**
 * Keeps workloads away from the control plane. Every task's way out of its namespace (a
 * bridge network, or the gateway bridge of an overlay) is a `slb-*` bridge in the host's
 * namespace, so one nftables table there (`inet shoal-guard`) drops, from those bridges:
 * - TCP to the control plane's ports, whether on this host (input) or routed on through the
 *   egress NAT to another host or to etcd (forward): the API, etcd's client and peer ports,
 *   and the managers' and agents' libp2p ports;
 * - UDP to the VXLAN port, so a task cannot hand another host's kernel a forged overlay frame.
 * The rules match the interface name by wildcard, so they hold for bridges made later; the
 * table is checked again before each attach, so a flushed ruleset comes back.
 */
import { run, systemBinary } from '../shared/exec.ts';

const nft = systemBinary('nft');
export const guardTable = 'shoal-guard';

/** API, etcd client and peer, manager libp2p, agent libp2p: what deploy.md's table of ports lists. */
export const controlPlanePorts = [2377, 2379, 2380, 4240, 4241] as const;
const vxlanPort = 4789;

export function guardRules(ports: readonly number[]): string {
  const set = [...new Set(ports)].sort((a, b) => a - b).join(', ');
  const rules = (match: string) => [`${match} tcp dport { ${set} } drop`, `${match} udp dport ${vxlanPort} drop`].join('\n    ');
  return [
    `table inet ${guardTable} {`,
    // Before the NAT and before anything that might accept: priority -10 on both hooks. Traffic
    // between two task bridges is the bridges' own rules' business, so forward leaves it alone.
    `  chain input { type filter hook input priority -10; policy accept;\n    ${rules('iifname "slb-*"')}\n  }`,
    `  chain forward { type filter hook forward priority -10; policy accept;\n    ${rules('iifname "slb-*" oifname != "slb-*"')}\n  }`,
    '}',
    '',
  ].join('\n');
}

export class EgressGuard {
  private readonly ports: number[];

  constructor(extraPorts: readonly number[] = []) {
    this.ports = [...new Set([...controlPlanePorts, ...extraPorts])];
  }

  /** Puts the table in place unless it is there already. */
  async ensure(): Promise<void> {
    if (await run(nft, ['list', 'table', 'inet', guardTable]).then(() => true, () => false)) return;
    await run(nft, ['-f', '-'], guardRules(this.ports));
  }

  /** The ports it guards, for `network inspect --verbose` and the docs. */
  get guarded(): readonly number[] {
    return this.ports;
  }
}
