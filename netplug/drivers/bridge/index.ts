import { booleanOption, type DriverRegistry, mtuOption } from '../../registry.ts';
import { BridgeDriver } from './bridge.ts';

export function register(registry: DriverRegistry): void {
  registry.register({
    type: 'bridge',
    scopes: ['local'],
    creatable: true,
    addressed: true,
    options: { icc: booleanOption, mtu: mtuOption },
    egress: 'own',
    builtin: { name: 'bridge' },
    agent: (context) => new BridgeDriver(context.host),
  });
}
