import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../../shared/exec.ts';
import type { RegistryClient } from '../registry/client.ts';
import type { ImageReference } from '../registry/reference.ts';
import { type ImageConfig, type ImageManifest, mediaTypes, ociArchitecture } from './oci.ts';
import { fileDigest } from './layer-intake.ts';

/** The busybox version of the host's busybox-static, used as the image's tag. */
export async function busyboxVersion(busybox = '/bin/busybox'): Promise<string> {
  const banner = await run(busybox, ['--help']).catch((error: Error) => error.message);
  return /BusyBox v(\d+\.\d+\.\d+)/.exec(banner)?.[1] ?? 'latest';
}

/**
 * Builds a one-layer busybox image from the host's busybox-static (every applet a symlink in
 * /bin, a root and a nobody user, /tmp and /var/www) and pushes it under each of `tags`.
 * The layer is reproducible: sorted names, zero mtimes and owners, gzip without a timestamp.
 */
export async function buildBusyboxImage(registry: RegistryClient, target: Omit<ImageReference, 'tag' | 'digest'>, tags: string[]): Promise<{ digest: string; tags: string[] }> {
  const work = await mkdtemp(join(tmpdir(), 'shoal-build-'));
  try {
    const rootfs = join(work, 'rootfs');
    for (const dir of ['bin', 'etc', 'root', 'tmp', 'var/www', 'proc', 'sys', 'dev']) await mkdir(join(rootfs, dir), { recursive: true });
    await chmod(join(rootfs, 'tmp'), 0o1777);
    await copyFile('/bin/busybox', join(rootfs, 'bin', 'busybox'));
    await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
    const applets = (await run('/bin/busybox', ['--list'])).split('\n').filter((name) => name && name !== 'busybox');
    for (const applet of applets) await symlink('busybox', join(rootfs, 'bin', applet));
    await writeFile(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
    await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    await writeFile(join(rootfs, 'var', 'www', 'index.html'), 'hello from shoal\n');

    const tar = join(work, 'layer.tar');
    await run('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-cf', tar, '-C', rootfs, '.']);
    const diffId = (await fileDigest(tar)).digest;
    await run('gzip', ['-n', '-9', tar]);
    const layerFile = `${tar}.gz`;
    const layer = await fileDigest(layerFile);

    const config: ImageConfig = {
      architecture: ociArchitecture(),
      os: 'linux',
      config: { Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [diffId] },
    };
    const configFile = join(work, 'config.json');
    await writeFile(configFile, JSON.stringify(config));
    const configBlob = await fileDigest(configFile);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: mediaTypes.ociConfig, digest: configBlob.digest, size: configBlob.size },
      layers: [{ mediaType: mediaTypes.ociLayerGzip, digest: layer.digest, size: layer.size }],
    };
    const reference = { ...target, tag: tags[0] };
    await registry.pushBlob(reference, layer.digest, layerFile);
    await registry.pushBlob(reference, configBlob.digest, configFile);
    let digest = '';
    for (const tag of tags) digest = await registry.pushManifest({ ...target, tag }, mediaTypes.ociManifest, Buffer.from(JSON.stringify(manifest)));
    return { digest, tags };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
