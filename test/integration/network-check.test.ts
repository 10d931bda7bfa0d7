/**
 * `shoal network check [--repair]` on a real lab: each path is broken on purpose in the kernel
 * (an overlay's FDB entry, its neighbour entry, a calico block route, a workload's policy
 * table), and check names the host and the object, exits 1, and `--repair` puts it back
 * through the drivers so the next check is clean.
 */
import test from 'ava';
import { netnsPrefix } from '../../lab/topology.ts';
import { overlayNamespace } from '../../netplug/drivers/overlay/overlay.ts';
import { run, systemBinary } from '../../shared/exec.ts';
import type { ContainerRecord } from '../../shared/containers.ts';
import { eventually } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';

const labName = 'it-chk';
const fixture = useLab(test, { name: labName, hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { shoal, ok } = fixture;
const hostOf = (name: string) => fixture.lab().record.topology.hosts.find((h) => h.name === name)!;

async function runOn(host: string, name: string, network: string, extra: string[] = []): Promise<ContainerRecord> {
  await ok('container', 'run', '-d', '--node', host, '--name', name, '--network', network, ...extra, 'busybox:1.35.0', 'sleep', '600');
  return (JSON.parse(await ok('container', 'inspect', name)) as ContainerRecord[])[0]!;
}

/** Breaks something, then: check names it (exit 1), --repair heals it, check is clean again. */
async function breakAndRepair(t: import('ava').ExecutionContext, network: string, breakIt: () => Promise<unknown>, named: RegExp): Promise<void> {
  // The network is healthy to begin with (the leader's tables may still be landing).
  await eventually(30_000, async () => ((await shoal('network', 'check', network)).code === 0 ? true : undefined));
  // The leader's tables come again every 10 s and heal the kernel on their own: a break they
  // healed before the check or the repair saw it is made again, so the repair is what heals it.
  for (let attempt = 0; attempt < 4; attempt++) {
    await breakIt().catch(() => undefined);
    const found = await shoal('network', 'check', network);
    if (found.code !== 1 || !named.test(found.stdout)) continue;
    const repaired = await shoal('network', 'check', '--repair', network);
    t.is(repaired.code, 0, repaired.stdout + repaired.stderr);
    if (!new RegExp(`repaired on h\\d: .*${named.source}`).test(repaired.stdout)) continue;
    t.log(`check named it: ${found.stdout.split('\n').find((l) => named.test(l))?.trim()}`);
    t.is((await shoal('network', 'check', network)).code, 0, 'clean after the repair');
    return;
  }
  t.fail(`check did not name ${named} and repair it: ${(await shoal('network', 'check', network)).stdout}`);
}

test.serial('an overlay\'s deleted FDB and neighbour entries are named with their host, and --repair puts them back', async (t) => {
  await ok('network', 'create', '-d', 'overlay', '--attachable', '--subnet', '198.19.90.0/24', 'ov');
  t.teardown(async () => {
    await shoal('container', 'rm', '--force', 'ov1', 'ov2');
    await eventually(30_000, async () => ((await shoal('network', 'rm', 'ov')).code === 0 ? true : undefined)).catch(() => undefined);
  });
  const one = await runOn('h1', 'ov1', 'ov');
  await runOn('h2', 'ov2', 'ov');
  const vni = Number(one.spec.attachments[0]!.data.vni);
  const ns = overlayNamespace(netnsPrefix(labName), vni, hostOf('h2').address);
  const mac = one.spec.attachments[0]!.mac;
  await breakAndRepair(t, 'ov', () => run('bridge', ['-n', ns, 'fdb', 'del', mac, 'dev', `svx-${vni}`, 'dst', hostOf('h1').address]), new RegExp(`missing FDB entry ${mac}`, 'i'));
  await breakAndRepair(t, 'ov', () => run('ip', ['-n', ns, 'neigh', 'del', one.spec.attachments[0]!.address, 'dev', `svx-${vni}`]), new RegExp(`missing neighbour entry ${one.spec.attachments[0]!.address.replace(/\./g, '\\.')}`));
});

test.serial('a deleted calico block route and a deleted policy table are named, and --repair puts them back', async (t) => {
  await ok('network', 'create', '-d', 'calico', '--attachable', '--subnet', '198.19.96.0/20', 'cal');
  const file = `${fixture.scratch()}/guard.yaml`;
  await import('node:fs/promises').then((fs) => fs.writeFile(file, "name: guard\nselector: role == 'guarded'\ningress:\n  - action: allow\n    source:\n      selector: role == 'friend'\n"));
  await ok('policy', 'create', '-f', file);
  t.teardown(async () => {
    await shoal('policy', 'rm', 'guard');
    await shoal('container', 'rm', '--force', 'cal1', 'cal2');
    await eventually(30_000, async () => ((await shoal('network', 'rm', 'cal')).code === 0 ? true : undefined)).catch(() => undefined);
  });
  const guarded = await runOn('h1', 'cal1', 'cal', ['--label', 'role=guarded']);
  const other = await runOn('h2', 'cal2', 'cal');
  const block = other.spec.attachments[0]!.subnet;
  await breakAndRepair(t, 'cal', () => run('ip', ['-n', hostOf('h1').netns, 'route', 'del', block, 'via', hostOf('h2').address]), new RegExp(`missing route ${block.replace(/\./g, '\\.')} via ${hostOf('h2').address.replace(/\./g, '\\.')}`));
  const sandbox = `${netnsPrefix(labName)}c-${guarded.id.slice(0, 12)}`;
  await breakAndRepair(t, 'cal', () => run('ip', ['netns', 'exec', sandbox, systemBinary('nft'), 'delete', 'table', 'inet', 'shoal-policy']), /missing policy rules of cal1/);
});
