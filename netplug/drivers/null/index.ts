import type { DriverRegistry } from '../../registry.ts';

/** Docker's none network: loopback only. */
export function register(registry: DriverRegistry): void {
  registry.register({ type: 'null', scopes: ['local'], creatable: false, addressed: false, options: {}, builtin: { name: 'none' } });
}
