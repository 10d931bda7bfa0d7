import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { HostLocalIpam } from '../../netplug/ipam/host-local.ts';

test('host-local IPAM hands out each address once, skips the gateway, survives a restart and reuses released ones', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-ipam-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ipam = new HostLocalIpam(dir);
  const addresses = await Promise.all(Array.from({ length: 5 }, (_, i) => ipam.allocate('net', '198.19.128.0/29', '198.19.128.1', `c${i}`)));
  t.deepEqual(addresses.sort(), ['198.19.128.2', '198.19.128.3', '198.19.128.4', '198.19.128.5', '198.19.128.6']);
  await t.throwsAsync(ipam.allocate('net', '198.19.128.0/29', '198.19.128.1', 'late'), { message: /no free address left in 198.19.128.0\/29/ });
  const again = new HostLocalIpam(dir);
  // Allocations run one at a time in call order, so c3 got the fourth address.
  t.is(await again.allocate('net', '198.19.128.0/29', '198.19.128.1', 'c3'), '198.19.128.5', 'the same owner gets its address back');
  await again.release('net', 'c0');
  t.is(await again.allocate('net', '198.19.128.0/29', '198.19.128.1', 'new'), '198.19.128.2');
});
