import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../../lab/lab.ts';
import { type LabHost, type LabTopology, linkUpCommands } from '../../lab/topology.ts';
import { ipBatch, run } from '../../shared/exec.ts';
import type { Random } from './random.ts';

/** Undoes a fault; safe to call twice. */
export type Heal = () => Promise<void>;

export const faultNames = ['agent-kill', 'leader-kill', 'follower-kill', 'etcd-kill', 'link-down', 'state-read-only', 'runc-fails'] as const;
export type FaultName = (typeof faultNames)[number];

export interface InjectedFault {
  name: FaultName;
  /** What was done, for the round's line: "h2/agent killed". */
  what: string;
  /** How long the fault is held before it is healed. */
  holdMs: number;
  heal: Heal;
}

export interface FaultBounds {
  /** How long a killed process stays down. */
  killMs: [number, number];
  /** How long a host's underlay link stays down (the issue asks 5-30 s). */
  linkMs: [number, number];
  /** How long a read-only state directory or a failing runc lasts. */
  brokenMs: [number, number];
}

function once(heal: Heal): Heal {
  let done: Promise<void> | undefined;
  return () => (done ??= heal());
}

const chaosTable = 'shoal-chaos';

/**
 * Cuts a host from etcd, nothing else: every packet to etcd's client port dropped, and the
 * etcd addresses routed nowhere (in the full test suite the drop alone was seen not to stop a
 * manager's established connections; the route does, for new and old ones alike).
 */
export async function cutFromEtcd(topology: LabTopology, host: LabHost): Promise<Heal> {
  const first = topology.etcdAddresses[0]!;
  const last = topology.etcdAddresses.at(-1)!;
  const rules = `table inet ${chaosTable} {\n  chain out { type filter hook output priority 0; policy accept; ip daddr ${first}-${last} tcp dport 2379 drop; }\n}\n`;
  await run('ip', ['netns', 'exec', host.netns, 'nft', '-f', '-'], { input: rules });
  await ipBatch(topology.etcdAddresses.map((address) => `route add blackhole ${address}/32`), host.netns);
  return once(async () => {
    await ipBatch(topology.etcdAddresses.map((address) => `route del blackhole ${address}/32`), host.netns).catch(() => undefined);
    await run('ip', ['netns', 'exec', host.netns, 'nft', 'delete', 'table', 'inet', chaosTable]).then(() => undefined, () => undefined);
  });
}

export async function linkDown(topology: LabTopology, host: LabHost): Promise<Heal> {
  await run('ip', ['-n', host.netns, 'link', 'set', 'eth0', 'down']);
  return once(() => ipBatch(linkUpCommands(topology, host), host.netns).then(() => undefined));
}

/** The agent's state directory made read-only under it: a bind mount of itself, remounted ro. */
export async function readOnlyState(lab: Lab, host: LabHost): Promise<Heal> {
  const dir = join(lab.record.dir, host.name, 'agent');
  await run('mount', ['--bind', dir, dir]);
  await run('mount', ['-o', 'remount,bind,ro', dir]);
  return once(() => run('umount', ['-l', dir]).then(() => undefined));
}

/**
 * runc made to fail on one host: a wrapper bind-mounted over the runc binary fails every call
 * made from that host's network namespace and passes the others through to the real one. The
 * mount is machine-wide; `lab down` removes it too, as a mount of a file from the lab's directory.
 */
export async function runcFails(lab: Lab, host: LabHost): Promise<Heal> {
  const runc = (await run('sh', ['-c', 'command -v runc'])).trim();
  const dir = join(lab.record.dir, 'chaos');
  await mkdir(dir, { recursive: true });
  const real = join(dir, 'runc.real');
  await writeFile(real, await readFile(runc));
  await chmod(real, 0o755);
  const wrapper = join(dir, 'runc-fails');
  await writeFile(
    wrapper,
    `#!/bin/sh\nif [ "$(ip netns identify $$ 2>/dev/null)" = "${host.netns}" ]; then echo "runc: failure injected by the chaos suite" >&2; exit 1; fi\nexec ${real} "$@"\n`,
  );
  await chmod(wrapper, 0o755);
  await run('mount', ['--bind', wrapper, runc]);
  return once(() => run('umount', [runc]).then(() => undefined));
}

const between = (random: Random, [low, high]: [number, number]) => random.int(low, high);

/** Injects one fault of the given kind on a host the random source picks. */
export async function inject(lab: Lab, name: FaultName, random: Random, bounds: FaultBounds): Promise<InjectedFault> {
  const hosts = lab.record.topology.hosts;
  const anyHost = () => random.pick(hosts);
  const killed = async (key: string): Promise<InjectedFault> => {
    await lab.kill(key);
    return { name, what: `${key} killed`, holdMs: between(random, bounds.killMs), heal: once(() => lab.start(key)) };
  };
  switch (name) {
    case 'agent-kill':
      return killed(`${anyHost().name}/agent`);
    case 'leader-kill':
    case 'follower-kill': {
      const list = await lab.managers();
      const leader = list.find((m) => m.leader)?.hostname;
      const candidates = hosts.filter((h) => h.manager && (name === 'leader-kill' ? h.name === leader : h.name !== leader));
      return killed(`${random.pick(candidates.length > 0 ? candidates : hosts.filter((h) => h.manager)).name}/manager`);
    }
    case 'etcd-kill':
      return killed(`etcd${random.int(0, lab.record.topology.etcdAddresses.length - 1)}`);
    case 'link-down': {
      const host = anyHost();
      return { name, what: `${host.name} link down`, holdMs: between(random, bounds.linkMs), heal: await linkDown(lab.record.topology, host) };
    }
    case 'state-read-only': {
      const host = anyHost();
      return { name, what: `${host.name} agent state read-only`, holdMs: between(random, bounds.brokenMs), heal: await readOnlyState(lab, host) };
    }
    case 'runc-fails': {
      const host = anyHost();
      return { name, what: `runc fails on ${host.name}`, holdMs: between(random, bounds.brokenMs), heal: await runcFails(lab, host) };
    }
  }
}
