/**
 * The engine's verbs through the API, on a one-host lab ("bench"), each beside what it is
 * measured against in the same run:
 * - `image build` of build-examples/web (two stages, a RUN, COPY --from): cold (--no-cache)
 *   against cached (an unchanged rebuild). Goal: cached <= 1 s.
 * - `image save` then `image load` of busybox against `tar -c` then `tar -x` of the same
 *   unpacked files.
 * - `container exec true` through the API against bare `runc exec` of the same container.
 *   Goal: p50 <= 50 ms.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RawBody } from '../cli/client.ts';
import { buildContext, contextArchive } from '../cli/build-context.ts';
import { labDown, labUp } from '../lab/lab.ts';
import { ratio, summarise, timeMs } from './stats.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));

export default async function engineVerbs(): Promise<Record<string, unknown>> {
  const lab = await labUp({ name: 'bench', hosts: 1, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 5000 });
  const work = await mkdtemp(join(tmpdir(), 'shoal-bench-'));
  try {
    const client = await lab.client();
    const host = lab.record.topology.hosts[0]!.name;
    await client.stream('POST', '/v1/images/pull', { ref: 'busybox:1.35.0', node: host }, () => undefined);

    // Build: cold, then cached, alternating so both see the same machine.
    const context = buildContext(join(repo, 'build-examples', 'web'));
    const build = (noCache: boolean) =>
      timeMs(() => client.stream('POST', `/v1/images/build?node=${host}&tag=bench/web:1&dockerfile=Dockerfile${noCache ? '&noCache=true' : ''}`, new RawBody(() => contextArchive(context)), () => undefined));
    const coldMs: number[] = [];
    const cachedMs: number[] = [];
    await build(false);
    for (let i = 0; i < 5; i++) {
      coldMs.push(await build(true));
      // The cold build wrote its steps to the cache: the next one takes them all.
      for (let j = 0; j < 3; j++) cachedMs.push(await build(false));
    }

    // Save and load through the API against tar of the same files on the same host.
    const engineRoot = join(lab.record.dir, host, 'agent', 'engine');
    const index = JSON.parse(await readFile(join(engineRoot, 'images', 'images.json'), 'utf8')) as Array<{ references: string[]; layers: Array<{ digest: string }> }>;
    const busybox = index.find((image) => image.references.some((r) => r.endsWith('/busybox:1.35.0')))!;
    const layerDir = join(engineRoot, 'images', 'layers', busybox.layers[0]!.digest.slice(7));
    const archive = join(work, 'busybox.tar');
    const plainTar = join(work, 'plain.tar');
    const saveMs: number[] = [];
    const loadMs: number[] = [];
    const tarMs: number[] = [];
    const untarMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      saveMs.push(await timeMs(() => client.download(`/v1/images/save?node=${host}&ref=busybox:1.35.0`, createWriteStream(archive))));
      loadMs.push(await timeMs(() => client.upload('POST', `/v1/images/load?node=${host}`, () => createReadStream(archive))));
      tarMs.push(await timeMs(async () => {
        if (spawnSync('tar', ['-c', '-f', plainTar, '--numeric-owner', '-C', layerDir, '.']).status !== 0) throw new Error('tar -c failed');
      }));
      const into = await mkdtemp(join(work, 'untar-'));
      untarMs.push(await timeMs(async () => {
        if (spawnSync('tar', ['-x', '-f', plainTar, '--numeric-owner', '-C', into]).status !== 0) throw new Error('tar -x failed');
      }));
      await rm(into, { recursive: true, force: true });
    }

    // exec: through the API (CLI's path: HTTP, manager, libp2p, agent, runc exec) against runc exec alone.
    const container = await client.call<{ id: string }>('POST', '/v1/containers', { node: host, image: 'busybox:1.35.0', cmd: ['sleep', '600'], networks: ['none'] });
    const execMs: number[] = [];
    const runcExecMs: number[] = [];
    const runcRoot = join(engineRoot, 'runc');
    for (let i = 0; i < 52; i++) {
      const api = await timeMs(() => client.call('POST', `/v1/containers/${container.id}/exec?node=${host}`, { cmd: ['true'] }));
      const bare = await timeMs(async () => {
        if (spawnSync('runc', ['--root', runcRoot, 'exec', container.id, 'true']).status !== 0) throw new Error('runc exec failed');
      });
      if (i >= 2) {
        execMs.push(api);
        runcExecMs.push(bare);
      }
    }
    await client.call('DELETE', `/v1/containers/${container.id}?force=true&node=${host}`);

    const cold = summarise(coldMs);
    const cached = summarise(cachedMs);
    const exec = summarise(execMs);
    const runcExec = summarise(runcExecMs);
    const saveLoad = summarise(saveMs.map((s, i) => s + loadMs[i]!));
    const tarUntar = summarise(tarMs.map((s, i) => s + untarMs[i]!));
    return {
      build: {
        dockerfile: 'build-examples/web/Dockerfile',
        coldMs: cold,
        cachedMs: cached,
        cachedOverCold: ratio(cached.p50Ms, cold.p50Ms),
        goalCachedMs: 1000,
        goalMet: cached.p99Ms <= 1000,
      },
      saveLoad: {
        archiveBytes: (await stat(archive)).size,
        saveMs: summarise(saveMs),
        loadMs: summarise(loadMs),
        saveThenLoadMs: saveLoad,
        tarThenUntarMs: tarUntar,
        shoalOverTar: ratio(saveLoad.p50Ms, tarUntar.p50Ms),
      },
      exec: {
        apiMs: exec,
        runcExecMs: runcExec,
        apiOverRunc: ratio(exec.p50Ms, runcExec.p50Ms),
        goalP50Ms: 50,
        goalMet: exec.p50Ms <= 50,
      },
    };
  } finally {
    await rm(work, { recursive: true, force: true });
    await labDown('bench');
  }
}
