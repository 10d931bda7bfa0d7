import type { DriverRegistry } from '../../registry.ts';

/** Docker's host network: the task runs in its host's own namespace; no data plane of its own. */
export function register(registry: DriverRegistry): void {
  registry.register({ type: 'host', scopes: ['local'], creatable: false, addressed: false, options: {}, hostNamespace: true, builtin: { name: 'host' } });
}
