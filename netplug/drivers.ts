/**
 * What managers know of each network driver: its scope, the options it takes, and whether a
 * user may create networks with it. The data plane of each driver lives in its own folder.
 */
import type { NetworkScope } from './model.ts';

export interface DriverInfo {
  scope: NetworkScope;
  /** Users may create networks with it (host and null exist once, made by the cluster). */
  creatable: boolean;
  /** Takes addresses: host and null networks have none. */
  addressed: boolean;
  /** Each option's check: undefined when the value is fine, else what is wrong. */
  options: Record<string, (value: string) => string | undefined>;
}

const boolean = (value: string) => (['true', 'false'].includes(value) ? undefined : 'must be true or false');
const mtu = (value: string) => (/^\d+$/.test(value) && Number(value) >= 576 && Number(value) <= 9000 ? undefined : 'must be a number from 576 to 9000');

export const drivers: Record<string, DriverInfo> = {
  bridge: { scope: 'local', creatable: true, addressed: true, options: { icc: boolean, mtu } },
  overlay: { scope: 'swarm', creatable: true, addressed: true, options: { mtu } },
  host: { scope: 'local', creatable: false, addressed: false, options: {} },
  null: { scope: 'local', creatable: false, addressed: false, options: {} },
};

/** The driver by name, or a message saying which drivers exist. */
export function driverInfo(name: string): DriverInfo | undefined {
  return Object.hasOwn(drivers, name) ? drivers[name] : undefined;
}

export const creatableDrivers = Object.entries(drivers)
  .filter(([, info]) => info.creatable)
  .map(([name]) => name);
