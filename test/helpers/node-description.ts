import type { NodeDescription } from '../../shared/schemas.ts';

/** A host as an agent describes it, for unit tests that register a node. */
export const hostDescription: NodeDescription = {
  hostname: 'h1', address: '198.18.0.1', cpus: 2, memoryBytes: 1 << 30, kernel: '6', os: 'linux', arch: 'x64',
  runtime: { name: 'runc', version: '1' }, engineLabels: {}, agentVersion: '0.1.0', p2pAddrs: [],
};
