import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { unpackLayer } from '../../agent/engine/images/unpack.ts';
import { mountOverlay, unmount } from '../../native/mounts.ts';
import { run } from '../../shared/exec.ts';

// Two real layers, the upper one deleting a file and making a directory opaque with OCI
// whiteouts; unpacked by the engine and stacked by the kernel's overlayfs.
test('OCI whiteouts hide lower files and directories once layers are stacked', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'shoal-layers-'));
  const rootfs = join(work, 'rootfs');
  t.teardown(async () => {
    await unmount(rootfs).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });
  const make = async (name: string, files: Record<string, string>) => {
    const dir = join(work, `${name}-src`);
    for (const [path, content] of Object.entries(files)) {
      await mkdir(join(dir, path, '..'), { recursive: true });
      await writeFile(join(dir, path), content);
    }
    const tar = join(work, `${name}.tar.gz`);
    await run('tar', ['-czf', tar, '-C', dir, '.']);
    await unpackLayer(tar, join(work, name));
    return join(work, name);
  };
  const lower = await make('lower', { 'a/gone': 'old', 'a/kept': 'kept', 'b/hidden': 'old' });
  const upper = await make('upper', { 'a/.wh.gone': '', 'b/.wh..wh..opq': '', 'b/new': 'new' });
  t.false(readdirSync(join(upper, 'a')).some((n) => n.startsWith('.wh.')), 'whiteout markers are converted, not kept');
  for (const dir of ['rootfs', 'upperdir', 'workdir']) await mkdir(join(work, dir));
  await mountOverlay([upper, lower], join(work, 'upperdir'), join(work, 'workdir'), rootfs);
  t.false(existsSync(join(rootfs, 'a', 'gone')));
  t.true(existsSync(join(rootfs, 'a', 'kept')));
  t.deepEqual(readdirSync(join(rootfs, 'b')), ['new']);
});

test('a layer that fails to unpack leaves nothing behind', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'shoal-layers-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  await writeFile(join(work, 'broken.tar.gz'), 'not a tar');
  await t.throwsAsync(unpackLayer(join(work, 'broken.tar.gz'), join(work, 'layer')));
  t.deepEqual(readdirSync(work), ['broken.tar.gz']);
});

test('file capabilities and other extended attributes survive unpacking; the diff_id is checked', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'shoal-layers-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const src = join(work, 'src');
  await mkdir(join(src, 'bin'), { recursive: true });
  await writeFile(join(src, 'bin', 'ping'), '#!/bin/sh\n');
  await run('setcap', ['cap_net_raw+ep', join(src, 'bin', 'ping')]);
  await run('setfattr', ['-n', 'trusted.shoal', '-v', 'kept', join(src, 'bin', 'ping')]);
  const plain = join(work, 'layer.tar');
  await run('tar', ['--xattrs', '--xattrs-include=*', '-cf', plain, '-C', src, '.']);
  const diffId = `sha256:${(await run('sha256sum', [plain])).split(' ')[0]}`;
  await run('gzip', ['-k', plain]);
  await unpackLayer(`${plain}.gz`, join(work, 'layer'), diffId);
  t.regex(await run('getcap', [join(work, 'layer', 'bin', 'ping')]), /cap_net_raw[=+]ep/);
  t.regex(await run('getfattr', ['-n', 'trusted.shoal', '--only-values', join(work, 'layer', 'bin', 'ping')]), /^kept/);

  const wrong = `sha256:${'0'.repeat(64)}`;
  await t.throwsAsync(unpackLayer(`${plain}.gz`, join(work, 'refused'), wrong), { code: 'diff_id_mismatch' } as never);
  t.false(existsSync(join(work, 'refused')));
  t.false(readdirSync(work).some((name) => name.startsWith('refused')), 'no staging directory is left');
});

test('a corrupt gzip layer rejects with the decompressor\'s error and leaves nothing behind', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'shoal-layers-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  await writeFile(join(work, 'corrupt.tar.gz'), Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.alloc(64, 0x55)]));
  await t.throwsAsync(unpackLayer(join(work, 'corrupt.tar.gz'), join(work, 'layer')));
  t.deepEqual(readdirSync(work), ['corrupt.tar.gz']);
});
