/**
 * `shoal ui` end to end on a real lab, driven as a person would through tmux (send-keys to
 * type, capture-pane to read the screen). The tmux server has a socket of its own, removed
 * with the test.
 */
import test from 'ava';
import { netnsPrefix } from '../../lab/topology.ts';
import { overlayNamespace } from '../../netplug/drivers/overlay/overlay.ts';
import { run } from '../../shared/exec.ts';
import { eventually, shoalMain } from '../helpers/cli.ts';
import { useLab } from '../helpers/lab-fixture.ts';
import { inBackground } from '../../shared/concurrency.ts';

const fixture = useLab(test, { name: 'it-ui', hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 1000 });
const { ok } = fixture;
const socket = `shoal-it-ui-${process.pid}`;
const tmux = (...args: string[]) => run('tmux', ['-L', socket, ...args]);

/** The screen as text; with `escapes`, colours included. */
const screen = (escapes = false) => tmux('capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', 'ui');
const press = (...keys: string[]) => tmux('send-keys', '-t', 'ui', ...keys);
async function showing(pattern: RegExp, timeoutMs = 10_000): Promise<{ value: string; ms: number }> {
  return eventually(timeoutMs, async () => {
    const text = await screen();
    return pattern.test(text) ? text : undefined;
  }).catch(async (error: unknown) => {
    throw new Error(`${(error as Error).message}: the screen never showed ${pattern}:\n${await screen().catch(() => '')}`);
  });
}

test.serial('the UI shows the nodes, scales a service, draws the overlay across hosts, and turns a link red when an FDB entry goes', async (t) => {
  t.teardown(async () => {
    await tmux('kill-server').catch(() => undefined);
  });
  await ok('network', 'create', '-d', 'overlay', 'uinet');
  await ok('service', 'create', '--name', 'web', '--replicas', '2', '--network', 'uinet', 'busybox:1.35.0', 'httpd', '-f', '-p', '80', '-h', '/var/www');

  // A terminal of 100x30; colour forced, since CI=true would turn it off.
  const command = `env -u CI FORCE_COLOR=1 SHOAL_CONTEXT=${fixture.lab().record.contextFile} ${process.execPath} ${shoalMain} ui --view nodes`;
  await tmux('new-session', '-d', '-s', 'ui', '-x', '100', '-y', '30', command);
  const nodes = await showing(/● live/);
  t.is(nodes.value.match(/^h\d +(leader★|worker) +ready +active/gm)?.length, 3, nodes.value);

  await press('2');
  await showing(/web +replicated +2\/2 /);
  await press('+');
  await showing(/Scale web from 2 to 3\? \(y\/n\)/);
  await press('y');
  const scaled = await showing(/web +replicated +3\/3 /, 30_000);
  t.log(`3/3 running ${scaled.ms} ms after confirming the scale`);
  t.is((JSON.parse(await ok('service', 'inspect', 'web')) as Array<{ spec: { replicas: number } }>)[0]!.spec.replicas, 3);
  await press('-', 'y');
  await showing(/web +replicated +2\/2 /, 30_000);

  await press(':', 'networks', 'Enter');
  const networks = await showing(/uinet +overlay +swarm/);
  const rows = networks.value.split('\n').filter((line) => /^\S+ +(bridge|host|null|overlay) /.test(line));
  const index = rows.findIndex((line) => line.startsWith('uinet'));
  await press(...Array.from({ length: index }, () => 'j'), 'Enter');
  // The scale down to 2 has settled once the third task's endpoint is gone and its host has
  // left the overlay: no host box without endpoints, no red link (CI caught the view a moment
  // before each: the stopping task still listed; its host's VTEP still up, with h2's entries to it).
  const detail = await showing(/^(?![\s\S]*no endpoints)(?![\s\S]*✗)[\s\S]*2 endpoint\(s\)[\s\S]*● h\d ══ VXLAN \d+ ══ h\d +ok/, 20_000);
  const boxed = [...detail.value.matchAll(/● (h\d) 198\.18\.0\.\d/g)].map((m) => m[1]);
  t.is(boxed.length, 2, `two hosts hold the two endpoints:\n${detail.value}`);
  t.is(detail.value.match(/· 198\.19\.\d+\.\d+ web\.\d\./g)?.length, 2, detail.value);

  // t on one endpoint, t on the other: a trace through the real API, the VXLAN probe included.
  await press('t', 'j', 't');
  const traced = await showing(/the path works/, 15_000);
  t.regex(traced.value, /✓ VXLAN probe +frame \d+ bytes/, traced.value);
  await press('x', 'Escape');
  await showing(/^(?![\s\S]*▶)[\s\S]*● h\d ══ VXLAN \d+ ══ h\d +ok/);

  // Delete, by hand, host A's forwarding entry for the endpoint on host B.
  const hosts = fixture.lab().record.topology.hosts;
  const [a, b] = boxed.map((name) => hosts.find((h) => h.name === name)!);
  const vni = /VXLAN (\d+)/.exec(detail.value)![1]!;
  const ns = overlayNamespace(netnsPrefix('it-ui'), Number(vni), a!.address);
  const entries = await run('bridge', ['-n', ns, 'fdb', 'show', 'dev', `svx-${vni}`]);
  const mac = new RegExp(`^(\\S+) dst ${b!.address.replace(/\./g, '\\.')} (link-netnsid \\d+ )?self permanent`, 'm').exec(entries)?.[1];
  t.truthy(mac, entries);
  // The agent puts it back with the next full table (within 10 s), so it is deleted again
  // while the test waits: the screen must show what the kernel holds, whenever it looks.
  const remove = () => run('bridge', ['-n', ns, 'fdb', 'del', mac!, 'dev', `svx-${vni}`, 'dst', b!.address]).catch(() => '');
  await remove();
  const keepRemoving = setInterval(() => inBackground(remove(), () => undefined), 500);
  const brokenLink = new RegExp(`✗ h\\d ══ VXLAN ${vni} ══ h\\d +${a!.name}: missing FDB entry ${mac}`);
  let broken: { value: string; ms: number };
  try {
    // Captured with its colours: the screen up to the ✗ of the line that says it is broken. The
    // capture writes a colour only where it changes, so the line's colour is the last one set
    // before its ✗ (the red border of the host box above it may have set it already).
    broken = await eventually(8_000, async () => {
      const lines = (await screen(true)).split('\n');
      const at = lines.findIndex((line) => brokenLink.test(line.replace(/\u001b\[[0-9;]*m/g, '')));
      return at < 0 ? undefined : [...lines.slice(0, at), lines[at]!.slice(0, lines[at]!.indexOf('✗'))].join('\n');
    });
  } finally {
    clearInterval(keepRemoving);
  }
  t.log(`the link turned red ${broken.ms} ms after the entry was deleted`);
  t.is([...broken.value.matchAll(/\u001b\[([0-9;]*)m/g)].at(-1)?.[1]?.split(';').at(-1), '31', 'the broken link is drawn red');

  await press('q');
  await eventually(5_000, async () => ((await tmux('list-panes', '-t', 'ui', '-F', '#{pane_dead}').catch(() => 'gone')) !== '0' ? true : undefined)).catch(() => undefined);
});
