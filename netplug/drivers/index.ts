/**
 * The drivers this build of Shoal has: each folder here registers itself. Managers and agents
 * import this list once; everything else asks the registry.
 */
import { driverRegistry } from '../registry.ts';
import { register as bridge } from './bridge/index.ts';
import { register as calico } from './calico/index.ts';
import { register as host } from './host/index.ts';
import { register as hostgw } from './hostgw/index.ts';
import { register as macvlan } from './macvlan/index.ts';
import { register as none } from './null/index.ts';
import { register as overlay } from './overlay/index.ts';

for (const register of [bridge, overlay, macvlan, hostgw, calico, host, none]) register(driverRegistry);

export { driverRegistry };
