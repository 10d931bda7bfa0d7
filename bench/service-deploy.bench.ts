/**
 * Deploying a service on the real lab: time from `service create --replicas 30` to 30 tasks
 * running across 3 hosts, against 30 bare `runc run -d` of the same runtime spec, 10 on each
 * host, the hosts in parallel (as the agents run), in the same run. Each bare container has a
 * rootfs copy made before timing; Shoal's each get an overlay mount. Needs root.
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labDown, labUp } from '../lab/lab.ts';
import { run } from '../shared/exec.ts';
import type { TaskObject } from '../shared/services.ts';
import { ratio } from './stats.ts';

const replicas = 30;

function runc(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('runc', args, { stdio: 'ignore' });
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`runc ${args.join(' ')} exited ${code}`))));
  });
}

export default async function serviceDeploy(): Promise<Record<string, unknown>> {
  const lab = await labUp({ name: 'bench', hosts: 3, managers: 1, etcdMembers: 1, heartbeatPeriodMs: 5000 });
  const work = await mkdtemp(join(tmpdir(), 'shoal-bench-'));
  try {
    const client = await lab.client();
    await client.stream('POST', '/v1/images/pull', { ref: 'busybox:1.35.0' }, () => undefined);

    const started = process.hrtime.bigint();
    const service = await client.call<{ id: string }>('POST', '/v1/services', { name: 'bench', replicas, container: { image: 'busybox:1.35.0', cmd: ['sleep', '300'] } });
    for (;;) {
      const tasks = await client.call<TaskObject[]>('GET', `/v1/services/${service.id}/tasks`);
      if (tasks.filter((t) => t.desiredState === 'running' && t.status.state === 'running').length === replicas) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const shoalMs = Number(process.hrtime.bigint() - started) / 1e6;

    // The bare side: one of Shoal's own bundles per host (same spec), over a copied rootfs.
    const containers = await client.call<Array<{ id: string; node: string }>>('GET', '/v1/containers');
    const bundles = new Map<string, string>();
    for (const host of lab.record.topology.hosts) {
      const sample = containers.find((c) => c.node === host.name)!;
      const engineRoot = join(lab.record.dir, host.name, 'agent', 'engine');
      const index = JSON.parse(await readFile(join(engineRoot, 'images', 'images.json'), 'utf8')) as Array<{ layers: Array<{ digest: string }> }>;
      const bundle = join(work, host.name);
      await cp(join(engineRoot, 'images', 'layers', index[0]!.layers[0]!.digest.slice(7)), join(bundle, 'rootfs'), { recursive: true, verbatimSymlinks: true });
      const containerDir = join(engineRoot, 'containers', sample.id);
      const spec = JSON.parse(await readFile(join(containerDir, 'config.json'), 'utf8')) as {
        root: { path: string };
        mounts: Array<{ source: string }>;
        linux: { cgroupsPath: string; namespaces: Array<{ type: string; path?: string }> };
      };
      spec.root.path = join(bundle, 'rootfs');
      // /etc/hosts and /etc/hostname come from the Shoal container's directory, which goes with it.
      // Every file of the container's own that the spec mounts (hosts, hostname, resolv.conf, ...).
      for (const mount of spec.mounts) {
        if (mount.source.startsWith(`${containerDir}/`)) await cp(mount.source, mount.source.replace(containerDir, bundle), { recursive: true });
      }
      spec.mounts = spec.mounts.map((m) => (m.source.startsWith(containerDir) ? { ...m, source: m.source.replace(containerDir, bundle) } : m));
      spec.linux.namespaces = spec.linux.namespaces.map((n) => (n.type === 'network' ? { type: 'network' } : n));
      await writeFile(join(bundle, 'template.json'), JSON.stringify(spec));
      bundles.set(host.name, bundle);
    }
    await client.call('DELETE', `/v1/services/${service.id}`);
    // Every bare container gets its own bundle and rootfs copy, made before the clock starts.
    const runcRoot = join(work, 'runc');
    const perHost = new Map<string, string[]>();
    for (const [host, bundle] of bundles) {
      const template = JSON.parse(await readFile(join(bundle, 'template.json'), 'utf8')) as { root: { path: string }; linux: { cgroupsPath: string } };
      const ids: string[] = [];
      for (let i = 0; i < replicas / bundles.size; i++) {
        const id = `bare-${host}-${i}`;
        const dir = join(bundle, id);
        await mkdir(dir, { recursive: true });
        await cp(join(bundle, 'rootfs'), join(dir, 'rootfs'), { recursive: true, verbatimSymlinks: true });
        await writeFile(join(dir, 'config.json'), JSON.stringify({ ...template, root: { ...template.root, path: join(dir, 'rootfs') }, linux: { ...template.linux, cgroupsPath: `/shoal-bench/${id}` } }));
        ids.push(id);
      }
      perHost.set(bundle, ids);
    }
    let bareMs = 0;
    try {
      const bareStarted = process.hrtime.bigint();
      await Promise.all([...perHost].map(async ([bundle, ids]) => {
        for (const id of ids) await runc(['--root', runcRoot, 'run', '-d', '--bundle', join(bundle, id), id]);
      }));
      bareMs = Number(process.hrtime.bigint() - bareStarted) / 1e6;
    } finally {
      for (const id of (await run('runc', ['--root', runcRoot, 'list', '-q']).catch(() => '')).split('\n').filter(Boolean)) {
        await run('runc', ['--root', runcRoot, 'delete', '--force', id]).catch(() => undefined);
      }
      for (const controller of await readdir('/sys/fs/cgroup')) await rmdir(join('/sys/fs/cgroup', controller, 'shoal-bench')).catch(() => undefined);
    }
    return {
      description: `service create --replicas ${replicas} to all running on 3 lab hosts, against ${replicas} bare runc run -d (10 per host, hosts in parallel), same run`,
      replicas,
      shoalMs: Math.round(shoalMs),
      bareRuncMs: Math.round(bareMs),
      ratio: ratio(shoalMs, bareMs),
      goalRatio: 2,
    };
  } finally {
    await labDown('bench');
    await rm(work, { recursive: true, force: true });
  }
}
