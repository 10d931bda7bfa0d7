import { execFile } from 'node:child_process';
import { availableParallelism, arch, hostname, networkInterfaces, release, totalmem, type } from 'node:os';
import { promisify } from 'node:util';
import type { Labels, NodeDescription } from '../shared/schemas.ts';
import { shoalVersion } from '../shared/version.ts';

const run = promisify(execFile);

async function runcVersion(): Promise<string> {
  try {
    const { stdout } = await run('runc', ['--version']);
    return /runc version (\S+)/.exec(stdout)?.[1] ?? 'unknown';
  } catch {
    return 'not installed';
  }
}

/** The first non-internal IPv4 address: in a lab host, its underlay address. */
export function defaultAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) return address.address;
  }
  return '127.0.0.1';
}

/** What this host is, as the agent reports it when it joins and at each session start. */
export async function describeHost(options: { address?: string; engineLabels: Labels; p2pAddrs: string[] }): Promise<NodeDescription> {
  return {
    hostname: hostname(),
    address: options.address ?? defaultAddress(),
    cpus: availableParallelism(),
    memoryBytes: totalmem(),
    kernel: release(),
    os: type().toLowerCase(),
    arch: arch(),
    runtime: { name: 'runc', version: await runcVersion() },
    engineLabels: options.engineLabels,
    agentVersion: shoalVersion,
    p2pAddrs: options.p2pAddrs,
  };
}
