/**
 * The terminal UI at scale, against SIMULATED nodes (bench/sim): a real etcd and manager,
 * 1,000 simulated nodes, a service of 10,000 replicas beside one of 100. In one run:
 * - the cost of one update of a view (from the model's change to the frame written, React
 *   and ink together), median and p99, for Services, Tasks of the 10,000-task service, Tasks
 *   of the 100-task service (the ratio shows what the list's length costs: the list draws only
 *   the rows that fit) and Nodes (1,000);
 * - how long fetching each list from the API takes (the UI fetches a list no more often than
 *   twice that, so a slow list slows its own refresh, not the screen);
 * - the memory of a real `shoal ui` process (in tmux) showing the 10,000 tasks.
 * SHOAL_SIM_NODES and SHOAL_UI_TASKS change the scale.
 */
// As `shoal ui` runs: React's production build. This module has no JSX, so this import is the first.
import '../cli/ui/react-production.ts';
import { PassThrough, Writable } from 'node:stream';
import { render } from 'ink';
import { createElement } from 'react';
import { App } from '../cli/ui/app.tsx';
import { ClusterModel } from '../cli/ui/model.ts';
import { Navigator } from '../cli/ui/navigator.ts';
import { ApiSource, type UiService } from '../cli/ui/source.ts';
import { run } from '../shared/exec.ts';
import { waitFor } from '../lab/lab.ts';
import { startSimulatedCluster } from './sim/cluster.ts';
import { memoryOf, ratio, summarise } from './stats.ts';

const nodes = Number(process.env.SHOAL_SIM_NODES ?? 1_000);
const bigTasks = Number(process.env.SHOAL_UI_TASKS ?? 10_000);
const smallTasks = 100;
const updatesPerView = 30;
const size = { columns: 120, rows: 40 };
const tmuxSocket = `shoal-bench-ui-${process.pid}`;

/** A terminal that only counts what is written to it. */
class CountingTerminal extends Writable {
  columns = size.columns;
  rows = size.rows;
  isTTY = true;
  bytes = 0;
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.bytes += chunk.length;
    done();
  }
}

function fakeStdin(): NodeJS.ReadStream {
  return Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => undefined, ref: () => undefined, unref: () => undefined }) as unknown as NodeJS.ReadStream;
}

export default async function uiBench(): Promise<Record<string, unknown>> {
  const progress = (line: string) => process.stderr.write(`  ${line}\n`);
  const cluster = await startSimulatedCluster({ nodes, progress });
  try {
    const client = cluster.client;
    const big = await client.call<{ id: string }>('POST', '/v1/services', { name: 'big', replicas: bigTasks, container: { image: 'busybox:1.35.0', cmd: ['sleep', 'infinity'] } });
    const small = await client.call<{ id: string }>('POST', '/v1/services', { name: 'small', replicas: smallTasks, container: { image: 'busybox:1.35.0', cmd: ['sleep', 'infinity'] } });
    await waitFor(`${bigTasks + smallTasks} tasks running`, 180_000, async () => {
      const services = await client.call<UiService[]>('GET', '/v1/services');
      const running = services.reduce((sum, s) => sum + s.running, 0);
      return running === bigTasks + smallTasks ? true : undefined;
    });
    progress(`${bigTasks + smallTasks} tasks running on ${nodes} simulated nodes`);

    // In this process: the real views over the real API, drawn to a terminal that counts bytes.
    const fetchMs: Record<'services' | 'tasks' | 'nodes', number[]> = { services: [], tasks: [], nodes: [] };
    const api = new ApiSource(client, 'bench');
    // Each list fetch timed, as the model makes it.
    const timed = <K extends keyof typeof fetchMs>(part: K) => async (...args: Parameters<ApiSource[K]>) => {
      const started = performance.now();
      try {
        return await (api[part] as (...a: typeof args) => ReturnType<ApiSource[K]>)(...args);
      } finally {
        fetchMs[part].push(performance.now() - started);
      }
    };
    const source = Object.assign(Object.create(api) as ApiSource, { services: timed('services'), tasks: timed('tasks'), nodes: timed('nodes') });
    const model = new ClusterModel(source);
    const navigator = new Navigator(model, () => undefined, { kind: 'services' });
    let changedAt: number | undefined;
    let samples: number[] = [];
    model.subscribe(() => (changedAt ??= performance.now()));
    const terminal = new CountingTerminal();
    const app = render(createElement(App, { model, navigator, size }), {
      stdout: terminal as unknown as NodeJS.WriteStream,
      stdin: fakeStdin(),
      interactive: true,
      patchConsole: false,
      exitOnCtrlC: false,
      // Unthrottled, to measure the work of one update rather than the frame rate's wait.
      maxFps: 1_000,
      onRender: () => {
        if (changedAt === undefined) return;
        samples.push(performance.now() - changedAt);
        changedAt = undefined;
      },
    });
    model.start();
    const services = await waitFor('the services to load', 30_000, async () => (model.snapshot().services.length === 2 ? model.snapshot().services : undefined));
    const results: Record<string, unknown> = {};

    /** Asks for fresh data `updatesPerView` times, each answer drawn once; returns the update costs. */
    const measure = async (part: 'services' | 'tasks' | 'nodes', ready: () => boolean) => {
      await waitFor(`the ${part} view to load`, 60_000, async () => (ready() ? true : undefined));
      await new Promise((resolve) => setTimeout(resolve, 300));
      samples = [];
      fetchMs[part] = [];
      for (let i = 0; i < updatesPerView; i++) {
        const before = samples.length;
        model.mark(part);
        await waitFor(`update ${i} of ${part}`, 30_000, async () => (samples.length > before ? true : undefined));
        // Past the model's pacing: a list is fetched no sooner than twice its last fetch took.
        await new Promise((resolve) => setTimeout(resolve, Math.max(300, 2.5 * (fetchMs[part].at(-1) ?? 0))));
      }
      return { update: summarise(samples), fetch: summarise(fetchMs[part]) };
    };

    results.servicesView = await measure('services', () => model.snapshot().services.length === 2);
    const open = async (service: { id: string }) => {
      navigator.key('2', {} as never);
      const index = model.snapshot().services.findIndex((s) => s.id === service.id);
      for (let i = 0; i < services.length; i++) navigator.key('k', {} as never);
      for (let i = 0; i < index; i++) navigator.key('j', {} as never);
      navigator.key('', { return: true } as never);
    };
    await open(big);
    results.tasksView10k = await measure('tasks', () => model.snapshot().tasks.serviceId === big.id && model.snapshot().tasks.list.length >= bigTasks);
    await open(small);
    results.tasksView100 = await measure('tasks', () => model.snapshot().tasks.serviceId === small.id && model.snapshot().tasks.list.length >= smallTasks);
    navigator.key('1', {} as never);
    results.nodesView = await measure('nodes', () => model.snapshot().nodes.length === nodes);
    app.unmount();
    await model.stop();
    const tasks10k = (results.tasksView10k as { update: ReturnType<typeof summarise> }).update;
    const tasks100 = (results.tasksView100 as { update: ReturnType<typeof summarise> }).update;

    // A real `shoal ui` process, in tmux, showing the 10,000 tasks for a while.
    const env = `SHOAL_HOST=unix://${cluster.apiSocket} SHOAL_TOKEN=${cluster.apiToken}`;
    await run('tmux', ['-L', tmuxSocket, 'new-session', '-d', '-s', 'ui', '-x', String(size.columns), '-y', String(size.rows), `exec env ${env} ${process.execPath} ${new URL('../cli/main.js', import.meta.url).pathname} ui`]);
    let memory: { peakMiB: number; currentMiB: number };
    try {
      const pid = Number((await run('tmux', ['-L', tmuxSocket, 'display', '-p', '-t', 'ui', '#{pane_pid}'])).trim());
      const capture = () => run('tmux', ['-L', tmuxSocket, 'capture-pane', '-p', '-t', 'ui']);
      await waitFor('the UI to show the services', 30_000, async () => ((await capture()).includes('big') ? true : undefined));
      const index = model.snapshot().services.findIndex((s) => s.id === big.id);
      await run('tmux', ['-L', tmuxSocket, 'send-keys', '-t', 'ui', ...Array.from({ length: index }, () => 'j'), 'Enter']);
      await waitFor('the UI to show the tasks', 60_000, async () => ((await capture()).includes('Tasks of big') && /big\.\d+\./.test(await capture()) ? true : undefined));
      // Scale the big service a little, so the view lives through changes while it is measured.
      await client.call('PATCH', `/v1/services/${big.id}`, { replicas: bigTasks - 10 });
      await new Promise((resolve) => setTimeout(resolve, 15_000));
      memory = await memoryOf(pid);
    } finally {
      await run('tmux', ['-L', tmuxSocket, 'kill-server']).catch(() => undefined);
    }

    process.stderr.write(
      `  update of Tasks (${bigTasks}) p50 ${tasks10k.p50Ms.toFixed(1)} ms p99 ${tasks10k.p99Ms.toFixed(1)} ms, of Tasks (${smallTasks}) p50 ${tasks100.p50Ms.toFixed(1)} ms; ui process ${memory.peakMiB} MiB peak\n`,
    );
    return {
      description: `terminal UI against ${nodes} simulated nodes and ${bigTasks + smallTasks} tasks: the cost of one view update (model change to frame written), list fetch times, and a real shoal ui process's memory`,
      simulation: true,
      terminal: size,
      views: results,
      tasksUpdateRatio10kTo100: ratio(tasks10k.p50Ms, tasks100.p50Ms),
      uiProcessMemory: memory,
      bytesWritten: terminal.bytes,
    };
  } finally {
    await cluster.stop();
  }
}
