/**
 * The terminal UI's views and keys against API answers recorded on a real lab
 * (test/fixtures/ui/), rendered with ink-testing-library at the size of a small terminal.
 */
import test, { type ExecutionContext } from 'ava';
import type { UiNetworkDetail } from '../../cli/ui/source.ts';
import { recorded, RecordedSource } from '../helpers/recorded-source.ts';

// Colours are asserted too: chalk decides at import whether to emit them, so ink comes after this.
process.env.FORCE_COLOR = '1';
const { render } = await import('ink-testing-library');
const { App } = await import('../../cli/ui/app.tsx');
const { ClusterModel } = await import('../../cli/ui/model.ts');
const { Navigator } = await import('../../cli/ui/navigator.ts');
const { colourTheme, plainTheme, ThemeContext } = await import('../../cli/ui/theme.ts');
const { NetworkDetailView } = await import('../../cli/ui/views/network-detail.tsx');

const ansi = /\u001b\[[0-9;]*m/g;
const plain = (frame: string | undefined) => (frame ?? '').replace(ansi, '');
const red = '\u001b[31m';
const tick = (ms = 30) => new Promise((resolve) => setTimeout(resolve, ms));

/** Renders the whole UI over recorded data; cleaned up with the test. */
async function ui(t: ExecutionContext, options: { source?: RecordedSource; size?: { columns: number; rows: number }; colour?: boolean; view?: 'nodes' | 'services' | 'networks' | 'events' } = {}) {
  const source = options.source ?? new RecordedSource();
  const model = new ClusterModel(source);
  let quit = false;
  const navigator = new Navigator(model, () => (quit = true), { kind: options.view ?? 'services' });
  model.start();
  const size = options.size ?? { columns: 80, rows: 24 };
  const app = render(
    <ThemeContext value={options.colour === false ? plainTheme : colourTheme}>
      <App model={model} navigator={navigator} size={size} />
    </ThemeContext>,
  );
  t.teardown(async () => {
    app.unmount();
    await model.stop();
  });
  /** Types keys and waits for the screen to settle. */
  const press = async (...keys: string[]) => {
    for (const key of keys) {
      app.stdin.write(key);
      await tick(20);
    }
    await tick(120);
  };
  const frame = () => app.lastFrame() ?? '';
  const until = async (text: string | RegExp, timeoutMs = 3_000) => {
    const start = Date.now();
    while (!(typeof text === 'string' ? plain(frame()).includes(text) : text.test(plain(frame())))) {
      if (Date.now() - start > timeoutMs) throw new Error(`screen never showed ${String(text)}:\n${plain(frame())}`);
      await tick(20);
    }
  };
  await until('● live');
  return { source, model, navigator, press, frame, until, quit: () => quit };
}

const fitsIn = (t: ExecutionContext, frame: string, columns: number, rows: number) => {
  const lines = plain(frame).split('\n');
  t.true(lines.length <= rows, `${lines.length} lines for ${rows} rows`);
  for (const line of lines) t.true(line.length <= columns, `line longer than ${columns}: "${line}"`);
};

test('the Services view lists each service with its replicas, a bar, its image, its ports; it fits 80x24', async (t) => {
  const { frame } = await ui(t);
  const screen = plain(frame());
  t.regex(screen, /shoal · unix:\/\/\/recorded\/shoal\.sock · Services +● live/);
  t.regex(screen, /NAME +MODE +REPLICAS +IMAGE +PORTS +UPDATE/);
  t.regex(screen, /web +replicated +4\/4 +█{10} +busybox:1\.35\.0/);
  fitsIn(t, frame(), 80, 24);
});

test('the Nodes view shows role and leader, status, availability, tasks, and CPU and memory reserved and used', async (t) => {
  const { frame, press } = await ui(t);
  await press('1');
  const screen = plain(frame());
  t.regex(screen, /HOSTNAME +ROLE +STATUS +AVAIL +TASKS +CPU +MEMORY +LABELS/);
  t.regex(screen, /h1 +leader★ +ready +active +1\/1 +0\/2 \d+% +0B\/24GiB \d+% +-/);
  t.regex(screen, /h3 +worker +ready +active +2\/2 /);
  t.is(screen.match(/^h\d /gm)?.length, 3);
  fitsIn(t, frame(), 80, 24);
});

test('the Tasks view of a service lists every task with its node and states; Enter opens it', async (t) => {
  const { frame, press, until } = await ui(t);
  await press('\r');
  await until('Tasks of web');
  const screen = plain(frame());
  t.regex(screen, /NAME +NODE +DESIRED +CURRENT +AGE +HEALTH +ERROR/);
  t.is(screen.match(/web\.\d\.[0-9a-f]{12} +h\d +Running +Running/g)?.length, 4);
  await press('\u001b');
  await until(/· Services/);
});

test('a refresh redraws the task that changed and keeps the others as they were, even a reason rewritten without a new update time', async (t) => {
  const { source, model, press, frame, until } = await ui(t, { size: { columns: 120, rows: 24 } });
  await press('\r');
  await until('Tasks of web');
  const before = model.snapshot().tasks.list;
  t.is(before.length, 4);
  // The same update time, a new state and error: the row must still change.
  const changed = source.tasksAnswer[1]!;
  source.tasksAnswer[1] = { ...changed, status: { ...changed.status, state: 'failed', error: 'exit status 3' } };
  model.mark('tasks');
  await until('exit status 3');
  const after = model.snapshot().tasks.list;
  t.not(after, before, 'a new list');
  t.deepEqual(after.map((task, i) => task === before[i]), [true, false, true, true], 'only the changed task is a new object');
  t.regex(plain(frame()), new RegExp(`${changed.name} +h\\d +Running +Failed .*exit status 3`));
});

test('the Networks view lists driver, scope, subnet, endpoints and hosts spanned', async (t) => {
  const { frame, press } = await ui(t);
  await press('3');
  t.regex(plain(frame()), /web-net +overlay +swarm +198\.19\.0\.0\/24 +4 +3/, 'four endpoints on three hosts');
  t.regex(plain(frame()), /bridge +bridge +local +198\.19\.128\.0\/24/);
});

/** The network detail view alone, in colour, over a recorded `network inspect --verbose`; its frame. */
function detailFrame(t: ExecutionContext, fixture: string): string {
  const { lastFrame, unmount } = render(
    <ThemeContext value={colourTheme}>
      <NetworkDetailView network={recorded<UiNetworkDetail>(fixture)} width={100} height={18} />
    </ThemeContext>,
  );
  t.teardown(unmount);
  return lastFrame() ?? '';
}

test('a network\'s detail draws a box per host with its VTEP and endpoints, and each VXLAN link healthy', (t) => {
  const coloured = detailFrame(t, 'network-healthy');
  const screen = plain(coloured);
  for (const host of ['h1 198.18.0.1', 'h2 198.18.0.2', 'h3 198.18.0.3']) t.true(screen.includes(`● ${host}`), screen);
  t.is(screen.match(/VTEP svx-4097 mtu 1450/g)?.length, 3);
  t.regex(screen, /198\.19\.0\.\d web\.\d\./);
  t.is(screen.match(/● h\d ══ VXLAN 4097 ══ h\d +ok/g)?.length, 3);
  t.false(coloured.includes(red), 'nothing is red');
});

test('a missing FDB entry turns that link red, with the host and the entry it lacks', (t) => {
  const coloured = detailFrame(t, 'network-missing-fdb');
  const lines = coloured.split('\n');
  const broken = lines.find((line) => plain(line).startsWith('✗ h1 ══ VXLAN 4097 ══ h2'));
  t.truthy(broken, plain(coloured));
  t.true(broken!.includes(red), 'the broken link is red');
  t.regex(plain(broken), /h2: missing FDB entry 02:42:c6:13:00:04 -> 198\.18\.0\.1 \(198\.19\.0\.4\)/);
  t.truthy(lines.find((line) => plain(line).startsWith('● h1 ══ VXLAN 4097 ══ h3') && !line.includes(red)), 'the other links stay healthy');
});

test('without colour (NO_COLOR), the broken link still reads as broken', async (t) => {
  const source = new RecordedSource();
  source.networkAnswer = recorded('network-missing-fdb');
  const { frame, press, until } = await ui(t, { source, colour: false, view: 'networks' });
  await press('G', 'k', '\r');
  await until('✗ h1 ══ VXLAN 4097 ══ h2');
  t.false(/\u001b\[3\dm/.test(frame()), 'no colour codes at all');
});

test('in a network\'s view, t on one endpoint and t on another runs a trace and shows its hops, the first ✗ with its host, object and fix', async (t) => {
  const { press, frame, until, source } = await ui(t, { view: 'networks' });
  await press('G', '\r');
  await until('Network web-net');
  await press('t');
  await until(/trace from web\.3\.f3515e7b2d5b: select the other end/);
  t.regex(plain(frame()), /▶ 198\.19\.0\.4 web\.3/, 'the endpoint traced from is marked');
  await press('t');
  t.regex(plain(frame()), /select the other end first/, 'a trace needs two ends');
  await press('j', 't');
  await until('the path is broken');
  // The endpoints are drawn host by host: web.3 on h1, then web.2 on h2.
  t.deepEqual(source.actions.map((a) => a.split(' ').map((w) => w.slice(0, 12)).join(' ')), ['trace f3515e7b2d5b c9a699d3db5c']);
  // The failing hop is wrapped to read whole: compare with the line breaks taken out.
  const screen = plain(frame()).replace(/\s*\n\s*/g, ' ');
  t.regex(screen, /✓ source host +api\.1\.\w+ 198\.19\.0\.5 on h1/);
  t.regex(screen, /✗ VXLAN probe +frame 106 bytes, nonce \w+: the frame arrived on h2's underlay but its VTEP never decapsulated it: a firewall on h2 drops UDP 4789/);
  t.regex(screen, /host: +h2 object: UDP 4789 input on h2 \(VTEP of VNI 4097\) fix: +let UDP 4789 in on h2/);
  fitsIn(t, frame(), 80, 24);
  await press('x');
  t.notRegex(plain(frame()), /the path is broken/, 'any key closes the trace');
  t.regex(plain(frame()), /▶ 198\.19\.0\.4 web\.3/, 'the start stays marked for the next trace');
  await press('\u001b');
  t.notRegex(plain(frame()), /▶/, 'esc forgets it');
  t.regex(plain(frame()), /· Network web-net/, 'and stays in the network');
});

test('the Events view follows the stream, newest last', async (t) => {
  const { frame, press, source, until } = await ui(t);
  await press('4');
  t.regex(plain(frame()), /TIME +TYPE +ACTION +NAME +STATE/);
  source.emit({ time: '2026-12-01T18:30:00.000Z', type: 'task', action: 'update', id: 'x', name: 'web.9', state: 'failed' });
  await until(/18:30:00 +task +update +web\.9 +failed/);
  const lines = plain(frame()).split('\n').filter((line) => /^\d\d:\d\d:\d\d/.test(line));
  t.regex(lines.at(-1)!, /web\.9/);
});

test('scaling from the UI asks first, then calls the API; n cancels', async (t) => {
  const { press, frame, source, until } = await ui(t);
  const id = source.servicesAnswer[0]!.id;
  await press('+');
  t.regex(plain(frame()), /Scale web from 4 to 5\? \(y\/n\)/);
  await press('n');
  t.deepEqual(source.actions, []);
  await press('s', '7', '\r');
  t.regex(plain(frame()), /Scale web from 4 to 7\?/);
  await press('y');
  await until('scale web to 7: done');
  t.deepEqual(source.actions, [`scale ${id} 7`]);
  await press('-', 'y', 'r', 'y');
  t.deepEqual(source.actions, [`scale ${id} 7`, `scale ${id} 3`, `rollback ${id}`]);
});

test('nodes are drained, activated and paused from the Nodes view', async (t) => {
  const { press, frame, source } = await ui(t);
  await press('1', 'd');
  t.regex(plain(frame()), /Drain node h\d\? \(y\/n\)/);
  await press('y', 'j', 'p', 'y', 'a', 'y');
  t.deepEqual(source.actions.map((a) => a.split(' ').at(-1)), ['drain', 'pause', 'active']);
});

test('`:` goes to a view by name, an unknown name says which exist, ? lists the keys, q quits', async (t) => {
  const { press, frame, until, quit } = await ui(t);
  await press(':', 'n', 'e', 't', '\r');
  await until(/· Networks/);
  await press(':', 'bogus', '\r');
  t.regex(plain(frame()), /no view "bogus"; try nodes, services, tasks, networks, events or logs/);
  await press('?');
  t.regex(plain(frame()), /\+ - +scale by one/);
  t.regex(plain(frame()), /q ctrl\+c +quit/);
  fitsIn(t, frame(), 80, 24);
  await press('x');
  t.notRegex(plain(frame()), /scale by one/, 'any key closes the help');
  await press('q');
  t.true(quit());
});

test('a service\'s logs follow from the Services view', async (t) => {
  const { press, until, frame } = await ui(t);
  await press('l');
  await until('Logs of web');
  await until('web.1.0d1093764983@h3 | listening on :80');
  t.regex(plain(frame()), /following · 1 line\(s\)/);
});

test('when the manager goes, the UI says so and comes back by itself', async (t) => {
  const { source, until } = await ui(t);
  source.goDown();
  await until(/✗ manager unreachable, retrying in \ds: cannot reach a manager/);
  source.back();
  await until('● live', 5_000);
  t.pass();
});

test('a list longer than the screen shows only what fits and keeps the cursor in view', async (t) => {
  const source = new RecordedSource();
  const template = source.tasksAnswer[0]!;
  source.tasksAnswer = Array.from({ length: 10_000 }, (_, i) => ({ ...template, id: `${i}`.padStart(24, '0'), slot: i + 1, name: `web.${i + 1}.${`${i}`.padStart(12, '0')}` }));
  const { press, frame, until } = await ui(t, { source });
  await press('\r');
  await until('web.1.000000000000');
  fitsIn(t, frame(), 80, 24);
  t.is(plain(frame()).match(/web\.\d+\./g)?.length, 19, '19 rows fit under the chrome');
  await press('G');
  await until('web.10000.');
  fitsIn(t, frame(), 80, 24);
});

test('a wide terminal gets wider columns; a tiny one still fits', async (t) => {
  const wide = await ui(t, { size: { columns: 160, rows: 40 } });
  fitsIn(t, wide.frame(), 160, 40);
  const tiny = await ui(t, { size: { columns: 60, rows: 12 } });
  fitsIn(t, tiny.frame(), 60, 12);
});

// Keep the recorded data honest: a fixture that lost its fields would make the tests above pass on nothing.
test('the recorded data is a real lab\'s: three nodes, one service of four tasks, one overlay over three hosts', (t) => {
  const source = new RecordedSource();
  t.is(source.nodesAnswer.length, 3);
  t.is(source.tasksAnswer.length, 4);
  t.is(source.networksAnswer.find((n) => n.spec.name === 'web-net')?.hosts, 3);
  t.is((recorded<UiNetworkDetail>('network-healthy').hosts ?? []).length, 3);
});


test('the Services view shows published ports, and a network\'s detail its VIPs', async (t) => {
  const source = new RecordedSource();
  const web = source.servicesAnswer.find((s) => s.spec.name === 'web')!;
  web.spec.endpoint = { mode: 'vip', ports: [{ protocol: 'tcp', targetPort: 80, publishedPort: 8080, mode: 'ingress' }, { protocol: 'udp', targetPort: 53, publishedPort: 5353, mode: 'host' }] };
  const { frame } = await ui(t, { source, size: { columns: 120, rows: 24 } });
  t.regex(plain(frame()), /PORTS/);
  t.regex(plain(frame()), /\*:8080->80\/tcp, \*:5353->53\/udp \(host\)/);
  const detail = { ...recorded<UiNetworkDetail>('network-healthy'), vips: [{ serviceId: web.id, service: 'web', address: '198.19.0.9' }] };
  const { lastFrame, unmount } = render(
    <ThemeContext value={colourTheme}>
      <NetworkDetailView network={detail} width={100} height={18} />
    </ThemeContext>,
  );
  t.teardown(unmount);
  t.regex(plain(lastFrame()), /VIPs web 198\.19\.0\.9/);
  fitsIn(t, lastFrame() ?? '', 100, 19);
});
