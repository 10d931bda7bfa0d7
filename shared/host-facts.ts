/**
 * What this host's kernel and engine offer Shoal, found by trying rather than by reading
 * module lists: each link type is created in a throwaway network namespace (so modules that
 * load on demand count), and the namespace is removed at once.
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { release } from 'node:os';
import { run, systemBinary } from './exec.ts';

export interface KernelFeature {
  name: string;
  /** What Shoal uses it for, or does instead without it. */
  use: string;
  present: boolean | 'unknown';
}

export interface HostFacts {
  kernel: string;
  cgroupMode: 'v2' | 'hybrid' | 'v1' | 'unknown';
  runtime: string;
  features: KernelFeature[];
}

const linkProbes: Array<{ name: string; use: string; line: string }> = [
  { name: 'bridge', use: 'bridge networks and overlay sandboxes', line: 'link add probe-bridge type bridge' },
  { name: 'veth', use: 'container endpoints', line: 'link add probe-veth type veth peer name probe-veth1' },
  { name: 'vxlan', use: 'overlay networks', line: 'link add probe-vxlan type vxlan id 42 dstport 4789' },
  { name: 'macvlan', use: 'macvlan networks', line: 'link add probe-macvlan link probe-bridge type macvlan mode bridge' },
  { name: '8021q', use: 'macvlan on VLAN sub-interfaces (parent eth0.N)', line: 'link add probe-vlan link probe-bridge type vlan id 7' },
  { name: 'dummy', use: 'not needed by Shoal', line: 'link add probe-dummy type dummy' },
  { name: 'ipip', use: 'not needed by Shoal (calico routes without encapsulation)', line: 'link add probe-ipip type ipip remote 198.18.255.254' },
  { name: 'geneve', use: 'not needed by Shoal', line: 'link add probe-geneve type geneve id 5 remote 198.18.255.254' },
  { name: 'wireguard', use: 'not needed by Shoal (no encrypted overlay yet)', line: 'link add probe-wg type wireguard' },
];

async function cgroupMode(): Promise<HostFacts['cgroupMode']> {
  const mounts = await readFile('/proc/mounts', 'utf8').catch(() => '');
  const root = mounts.split('\n').find((line) => line.split(' ')[1] === '/sys/fs/cgroup')?.split(' ')[2];
  if (root === 'cgroup2') return 'v2';
  if (root === 'tmpfs') return existsSync('/sys/fs/cgroup/unified') ? 'hybrid' : 'v1';
  return 'unknown';
}

async function runtimeVersion(): Promise<string> {
  const version = /runc version (\S+)/.exec(await run('runc', ['--version']).catch(() => ''))?.[1];
  return version ? `runc ${version}` : 'runc not installed';
}

/** Link types, IPVS and nftables, tried in a namespace of their own; needs root, else "unknown". */
async function probeKernel(): Promise<KernelFeature[]> {
  const overlay = (await readFile('/proc/filesystems', 'utf8').catch(() => '')).includes('\toverlay');
  const unknown = (): KernelFeature[] => [
    ...linkProbes.map(({ name, use }) => ({ name, use, present: 'unknown' as const })),
    { name: 'ip_vs', use: 'not needed: service VIPs are balanced by nftables', present: 'unknown' },
    { name: 'nftables', use: 'NAT, isolation, VIPs and policy', present: 'unknown' },
    { name: 'overlayfs', use: 'container root filesystems', present: overlay },
  ];
  if (process.getuid?.() !== 0) return unknown();
  const netns = `shoal-probe-${process.pid}`;
  try {
    await run('ip', ['netns', 'add', netns]);
  } catch {
    return unknown();
  }
  try {
    const failed = new Set<number>();
    // -force goes on past a failed line; each failure names its line.
    await run('ip', ['-n', netns, '-force', '-batch', '-'], `${linkProbes.map((p) => p.line).join('\n')}\n`).catch((error: { stderr?: string }) => {
      for (const match of (error.stderr ?? '').matchAll(/Command failed -:(\d+)/g)) failed.add(Number(match[1]));
    });
    const ipvs = await run('modprobe', ['-q', 'ip_vs']).then(() => true, () => false) || (await stat('/proc/net/ip_vs').then(() => true, () => false));
    // nsenter changes only the network namespace (ip netns exec would remount /sys as well).
    const nft = await run('nsenter', [`--net=/run/netns/${netns}`, '--', systemBinary('nft'), 'list', 'tables']).then(() => true, () => false);
    return [
      ...linkProbes.map(({ name, use }, i) => ({ name, use, present: !failed.has(i + 1) })),
      { name: 'ip_vs', use: 'not needed: service VIPs are balanced by nftables', present: ipvs },
      { name: 'nftables', use: 'NAT, isolation, VIPs and policy', present: nft },
      { name: 'overlayfs', use: 'container root filesystems', present: overlay },
    ];
  } finally {
    await run('ip', ['netns', 'del', netns]).catch(() => undefined);
  }
}

export async function hostFacts(): Promise<HostFacts> {
  const [mode, runtime, features] = await Promise.all([cgroupMode(), runtimeVersion(), probeKernel()]);
  return { kernel: release(), cgroupMode: mode, runtime, features };
}
