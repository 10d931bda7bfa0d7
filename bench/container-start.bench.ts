/**
 * Container start latency through Shoal (API -> manager -> agent engine: image present,
 * overlay rootfs, namespace, runtime spec, runc, until the container runs) against bare
 * `runc run -d` of the same runtime spec over a prepared rootfs on the same lab host,
 * alternating in one run.
 * Also: pulling the busybox image through the engine against a plain HTTP fetch of its blobs.
 * Needs root: it builds a one-host lab named "bench".
 */
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown, labUp } from '../lab/lab.ts';
import { histogramBetween, scrapeMetrics } from '../lab/metrics.ts';
import { run } from '../shared/exec.ts';
import { ratio, summarise, timeMs } from './stats.ts';

// Forty each way: at twenty, the ratio of two runs a minute apart on this machine differed by up
// to 0.16 (1.16 and 1.32); at forty, by 0.04.
const rounds = 40;

export default async function containerStart(): Promise<Record<string, unknown>> {
  const lab = await labUp({ name: 'bench', hosts: 1, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 5000 });
  const work = await mkdtemp(join(tmpdir(), 'shoal-bench-'));
  try {
    const client = await lab.client();
    const host = lab.record.topology.hosts[0]!;
    await client.stream('POST', '/v1/images/pull', { ref: 'busybox:1.35.0', node: host.name }, () => undefined);

    // The bare bundle: the config.json Shoal wrote for a container of the same image and
    // command (same mounts, limits, init), over a plain copy of the image layer, in a network
    // namespace made once: runc does the same work, Shoal's engine does none of its own.
    const reference = await client.call<{ id: string }>('POST', '/v1/containers', { node: host.name, image: 'busybox:1.35.0', cmd: ['sleep', '300'], networks: ['none'] });
    const engineRoot = join(lab.record.dir, host.name, 'agent', 'engine');
    const index = JSON.parse(await readFile(join(engineRoot, 'images', 'images.json'), 'utf8')) as Array<{ layers: Array<{ digest: string }> }>;
    const layer = join(engineRoot, 'images', 'layers', index[0]!.layers[0]!.digest.slice(7));
    const bundle = join(work, 'bundle');
    await cp(layer, join(bundle, 'rootfs'), { recursive: true, verbatimSymlinks: true });
    const spec = JSON.parse(await readFile(join(engineRoot, 'containers', reference.id, 'config.json'), 'utf8')) as {
      root: { path: string };
      linux: { namespaces: Array<{ type: string; path?: string }>; cgroupsPath: string };
    };
    const netns = 'shoal-bench-bare';
    await run('ip', ['netns', 'add', netns]);
    spec.root.path = join(bundle, 'rootfs');
    spec.linux.namespaces = spec.linux.namespaces.map((n) => (n.type === 'network' ? { type: 'network', path: `/run/netns/${netns}` } : n));
    spec.linux.cgroupsPath = '/shoal-bench/bare';
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
    const runcRoot = join(work, 'runc');

    const shoalMs: number[] = [];
    const runcMs: number[] = [];
    const shoalIds: string[] = [];
    const shoalAll: number[] = [];
    const scrape = (role: 'manager' | 'agent') => scrapeMetrics(lab.record.topology, role, host.name);
    const metricsBefore = { manager: await scrape('manager'), agent: await scrape('agent') };
    for (let i = 0; i < rounds + 2; i++) {
      const measureShoal = timeMs(async () => {
        const created = await client.call<{ id: string }>('POST', '/v1/containers', { node: host.name, image: 'busybox:1.35.0', cmd: ['sleep', '300'], networks: ['none'] });
        shoalIds.push(created.id);
      });
      const shoal = await measureShoal;
      shoalAll.push(shoal);
      const id = `bare-${i}`;
      // runc run -d returns once the container process runs, as the engine's start does.
      const bare = await timeMs(async () => {
        const result = spawnSync('runc', ['--root', runcRoot, 'run', '-d', '--bundle', bundle, id], { stdio: 'ignore' });
        if (result.status !== 0) throw new Error('runc run -d failed');
      });
      await run('runc', ['--root', runcRoot, 'delete', '--force', id]);
      if (i >= 2) {
        shoalMs.push(shoal);
        runcMs.push(bare);
      }
    }
    // The daemons' own histograms of the same starts (all rounds, warm-up included): the API's
    // time in the manager and the engine's on the agent, beside what the client measured.
    const metricsAfter = { manager: await scrape('manager'), agent: await scrape('agent') };
    const histograms = {
      apiInManager: histogramBetween(metricsBefore.manager, metricsAfter.manager, 'shoal_api_request_duration_seconds', { method: 'POST', route: '/v1/containers' }),
      engineCallOnAgent: histogramBetween(metricsBefore.agent, metricsAfter.agent, 'shoal_engine_call_duration_seconds', { method: 'container.run', outcome: 'ok' }),
    };
    for (const id of [...shoalIds, reference.id]) await client.call('DELETE', `/v1/containers/${id}?force=true`);
    await run('ip', ['netns', 'del', netns]);
    for (const controller of await readdir('/sys/fs/cgroup')) await rmdir(join('/sys/fs/cgroup', controller, 'shoal-bench')).catch(() => undefined);

    // Pull: the engine (manifest, config, layer with digest checks, unpack) against fetching
    // the same manifest and blobs over HTTP from the same host namespace, nothing else.
    const pullMs: number[] = [];
    const fetchMs: number[] = [];
    const fetchScript = `
      const registry = 'http://${lab.record.topology.infraAddress}:5000/v2/busybox';
      const started = process.hrtime.bigint();
      const manifest = await (await fetch(registry + '/manifests/1.35.0', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json();
      for (const d of [manifest.config, ...manifest.layers]) await (await fetch(registry + '/blobs/' + d.digest)).arrayBuffer();
      console.log(Number(process.hrtime.bigint() - started) / 1e6);`;
    for (let i = 0; i < 6; i++) {
      await client.call('DELETE', `/v1/images/busybox:1.35.0?node=${host.name}`).catch(() => undefined);
      pullMs.push(await timeMs(() => client.stream('POST', '/v1/images/pull', { ref: 'busybox:1.35.0', node: host.name }, () => undefined)));
      const fetched = await run('nsenter', [`--net=/run/netns/${host.netns}`, process.execPath, '--input-type=module', '-e', fetchScript]);
      fetchMs.push(Number(fetched.trim()));
    }
    // The agent logs its own share (prepare and start) per container: the engine without the API path.
    const agentLog = await readFile(join(lab.record.dir, host.name, 'agent.log'), 'utf8');
    const engineMs = shoalIds.slice(2).map((id) => {
      const short = id.slice(0, 12);
      const phase = (message: string) =>
        Number(/"ms":(\d+)/.exec(agentLog.split('\n').find((line) => line.includes(`"${message}"`) && line.includes(short)) ?? '')?.[1] ?? Number.NaN);
      return phase('container created') + phase('container started');
    });
    const start = { shoal: summarise(shoalMs), shoalEngineOnly: summarise(engineMs), bareRunc: summarise(runcMs) };
    const clientMeanAll = shoalAll.reduce((a, b) => a + b, 0) / shoalAll.length;
    // Where the client's milliseconds went, by the daemons' histograms (means over the same calls).
    const stages = {
      clientMeanMs: Math.round(clientMeanAll * 100) / 100,
      managerApiMeanMs: histograms.apiInManager.meanMs,
      agentEngineMeanMs: histograms.engineCallOnAgent.meanMs,
      calls: { client: shoalAll.length, managerHistogram: histograms.apiInManager.count, agentHistogram: histograms.engineCallOnAgent.count },
      managerOwnMs: Math.round((histograms.apiInManager.meanMs - histograms.engineCallOnAgent.meanMs) * 100) / 100,
      clientAndSocketMs: Math.round((clientMeanAll - histograms.apiInManager.meanMs) * 100) / 100,
    };
    process.stderr.write(`  start stages (means): client ${stages.clientMeanMs} ms = client+socket ${stages.clientAndSocketMs} + manager ${stages.managerOwnMs} + engine call ${stages.agentEngineMeanMs}\n`);
    const pull = { shoal: summarise(pullMs), plainFetch: summarise(fetchMs) };
    return {
      description: 'container start (create to running) through Shoal vs bare runc run -d of an equivalent bundle, and busybox image pull vs plain HTTP fetch of its blobs; one lab host, same run, alternating',
      start: {
        ...start,
        ratioP50: ratio(start.shoal.p50Ms, start.bareRunc.p50Ms),
        ratioP95: ratio(start.shoal.p95Ms, start.bareRunc.p95Ms),
        engineOnlyRatioP50: ratio(start.shoalEngineOnly.p50Ms, start.bareRunc.p50Ms),
        goalRatio: 1.25,
        stages,
      },
      pull: { ...pull, ratioP50: ratio(pull.shoal.p50Ms, pull.plainFetch.p50Ms) },
    };
  } finally {
    await labDown('bench');
    await rm(work, { recursive: true, force: true });
  }
}
