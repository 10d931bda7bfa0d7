import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { archiveIn, archiveOut, changes, type ContainerFs, hostPathOf, resolveInContainer } from '../../agent/engine/containers/files.ts';
import { applyChanges } from '../../agent/engine/images/dockerfile.ts';
import { stageLayer } from '../../agent/engine/images/layer-intake.ts';
import { copiesContents, parseCopyEnd } from '../../cli/copy.ts';

async function scratch(t: { teardown: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-files-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A container root with a symlink that points out of it (absolute) and one that climbs (relative), and a volume. */
async function containerFs(dir: string): Promise<ContainerFs> {
  const rootfs = join(dir, 'rootfs');
  const volume = join(dir, 'volume');
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await mkdir(join(rootfs, 'tmp'), { recursive: true });
  await mkdir(volume, { recursive: true });
  await writeFile(join(rootfs, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  await symlink('/etc', join(rootfs, 'tmp', 'abs'));
  await symlink('../../../../../etc', join(rootfs, 'tmp', 'climb'));
  await writeFile(join(volume, 'in-volume'), 'v\n');
  return { rootfs, readOnlyRoot: false, mounts: [{ destination: '/data', source: volume, type: 'bind', readOnly: false }, { destination: '/proc', type: 'proc', readOnly: false }] };
}

const tarOf = (dir: string, ...names: string[]) => execFileSync('tar', ['-c', '-f', '-', '-C', dir, ...names]);
async function* bytes(buffer: Buffer): AsyncGenerator<Buffer> {
  yield buffer;
}

test('container paths resolve their symlinks inside the container, mounts included', async (t) => {
  const fs = await containerFs(await scratch(t));
  t.is(await resolveInContainer(fs, '/tmp/abs/passwd', true), '/etc/passwd');
  t.is(await resolveInContainer(fs, '/tmp/climb/passwd', true), '/etc/passwd', '.. stops at the container\'s root');
  t.is(await resolveInContainer(fs, '/tmp/abs', false), '/tmp/abs', 'the last link is kept when asked');
  t.is(hostPathOf(fs, '/data/in-volume').path, join(fs.mounts[0]!.source!, 'in-volume'));
  t.throws(() => hostPathOf(fs, '/proc/1/environ'), { message: /proc mount at \/proc, which the host cannot reach/ });
});

test('an archive copied through a symlink to the host\'s /etc lands in the container\'s /etc', async (t) => {
  const dir = await scratch(t);
  const fs = await containerFs(dir);
  const source = join(dir, 'source');
  await mkdir(source);
  await writeFile(join(source, 'shoal-probe'), 'inside\n');
  await archiveIn(fs, '/tmp/abs/', bytes(tarOf(source, 'shoal-probe')), { keepOwner: false, contents: false });
  await archiveIn(fs, '/tmp/climb/renamed', bytes(tarOf(source, 'shoal-probe')), { keepOwner: false, contents: false });
  t.is(readFileSync(join(fs.rootfs, 'etc', 'shoal-probe'), 'utf8'), 'inside\n');
  t.is(readFileSync(join(fs.rootfs, 'etc', 'renamed'), 'utf8'), 'inside\n');
  t.false(existsSync('/etc/shoal-probe'));
  t.false(existsSync('/etc/renamed'));
});

test('an archive whose own symlink points out cannot write through it', async (t) => {
  const dir = await scratch(t);
  const fs = await containerFs(dir);
  const evil = join(dir, 'evil');
  await mkdir(evil);
  await symlink('/etc', join(evil, 'link'));
  // A second archive member goes through the first one's link.
  const member = join(dir, 'member');
  await mkdir(join(member, 'link'), { recursive: true });
  await writeFile(join(member, 'link', 'shoal-escaped'), 'x');
  const archive = join(dir, 'both.tar');
  execFileSync('tar', ['-c', '-f', archive, '-C', evil, 'link']);
  execFileSync('tar', ['-r', '-f', archive, '-C', member, 'link/shoal-escaped']);
  t.deepEqual(execFileSync('tar', ['-t', '-f', archive]).toString().trim().split('\n'), ['link', 'link/shoal-escaped']);
  await archiveIn(fs, '/tmp', bytes(readFileSync(archive)), { keepOwner: false, contents: false }).catch(() => undefined);
  t.false(existsSync('/etc/shoal-escaped'));
  // The container's own /tmp/abs symlink is replaced by the archive's, never followed.
  await archiveIn(fs, '/tmp', bytes(tarOf(evil, 'link')), { keepOwner: false, contents: false });
  t.is(await readlink(join(fs.rootfs, 'tmp', 'link')), '/etc');
});

test('copies into a volume reach the volume; a directory is not overwritten by a file', async (t) => {
  const dir = await scratch(t);
  const fs = await containerFs(dir);
  const source = join(dir, 'source');
  await mkdir(join(source, 'etc'), { recursive: true });
  await writeFile(join(dir, 'tmp-file'), 'f');
  await archiveIn(fs, '/data', bytes(tarOf(dir, 'tmp-file')), { keepOwner: false, contents: false });
  t.is(readFileSync(join(fs.mounts[0]!.source!, 'tmp-file'), 'utf8'), 'f');
  await writeFile(join(dir, 'etc'), 'not a dir');
  const error = await t.throwsAsync(archiveIn(fs, '/', bytes(tarOf(dir, 'etc')), { keepOwner: false, contents: false }));
  t.regex(error!.message, /cannot overwrite directory \/etc with a non-directory/);
  t.true((await stat(join(fs.rootfs, 'etc'))).isDirectory());
});

test('an archive out of the container names the path, or a directory\'s contents for DIR/.', async (t) => {
  const fs = await containerFs(await scratch(t));
  const collect = async (path: string) => {
    const chunks: Buffer[] = [];
    await archiveOut(fs, path, async (chunk) => void chunks.push(chunk));
    return execFileSync('tar', ['-t'], { input: Buffer.concat(chunks) }).toString().trim().split('\n').sort();
  };
  t.deepEqual(await collect('/etc'), ['etc/', 'etc/passwd']);
  t.deepEqual(await collect('/etc/.'), ['./', './passwd']);
  t.deepEqual(await collect('/tmp/abs'), ['abs'], 'a symlink is archived as the link');
  await t.throwsAsync(collect('/nope'), { message: /path "\/nope" not found/ });
});

test('diff reads the upper directory: whiteouts deleted, paths the image has changed, the rest added', async (t) => {
  const dir = await scratch(t);
  const lower = join(dir, 'lower');
  const upper = join(dir, 'upper');
  await mkdir(join(lower, 'etc'), { recursive: true });
  await writeFile(join(lower, 'etc', 'group'), '');
  await writeFile(join(lower, 'etc', 'passwd'), '');
  await mkdir(join(upper, 'etc'), { recursive: true });
  await mkdir(join(upper, 'sbin'), { recursive: true });
  execFileSync('mknod', [join(upper, 'etc', 'group'), 'c', '0', '0']);
  await writeFile(join(upper, 'etc', 'passwd'), 'changed');
  await writeFile(join(upper, 'new'), 'added');
  await writeFile(join(upper, 'sbin', 'init'), '');
  const found = await changes(upper, [lower], new Set(['/sbin/init']));
  t.deepEqual(found.map((c) => `${c.kind} ${c.path}`), ['C /etc', 'D /etc/group', 'C /etc/passwd', 'A /new'], 'a mount point and the directory made for it are left out');
});

test('--change lines set the config as Docker\'s do', (t) => {
  const config = applyChanges({ Env: ['PATH=/bin'], Cmd: ['sh'] }, [
    'ENV A=1 B="two words"',
    'ENV PATH=/usr/bin:/bin',
    'ENTRYPOINT ["/bin/app"]',
    'CMD --serve',
    'EXPOSE 80 53/udp',
    'LABEL org.example=yes',
    'WORKDIR /srv',
    'WORKDIR data',
    'USER nobody',
    'VOLUME ["/data"]',
    'STOPSIGNAL SIGINT',
    'HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost',
  ]);
  t.deepEqual(config.Env, ['PATH=/usr/bin:/bin', 'A=1', 'B=two words']);
  t.deepEqual(config.Entrypoint, ['/bin/app']);
  t.deepEqual(config.Cmd, ['/bin/sh', '-c', '--serve']);
  t.deepEqual(Object.keys(config.ExposedPorts ?? {}), ['80/tcp', '53/udp']);
  t.is(config.WorkingDir, '/srv/data');
  t.is(config.User, 'nobody');
  t.deepEqual(config.Volumes, { '/data': {} });
  t.is(config.StopSignal, 'SIGINT');
  t.deepEqual(config.Healthcheck, { Test: ['CMD-SHELL', 'wget -q localhost'], Interval: 5e9, Retries: 2 });
  t.throws(() => applyChanges({}, ['RUN rm -rf /']), { message: /RUN cannot be applied here/ });
  t.throws(() => applyChanges({}, ['EXPOSE eighty']), { message: /"eighty" is not a port/ });
});

test('a layer taken plain is gzipped, one taken gzipped is kept, and both have the tar\'s diff_id', async (t) => {
  const dir = await scratch(t);
  await writeFile(join(dir, 'file'), 'content\n');
  const tar = tarOf(dir, 'file');
  const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
  const plain = await stageLayer(bytes(tar), join(dir, 'plain'));
  t.is(plain.diffId, diffId);
  t.is(plain.digest, `sha256:${createHash('sha256').update(await readFile(plain.path)).digest('hex')}`);
  const gz = gzipSync(tar);
  const zipped = await stageLayer(bytes(gz), join(dir, 'zipped'));
  t.is(zipped.diffId, diffId);
  t.is(zipped.digest, `sha256:${createHash('sha256').update(gz).digest('hex')}`);
  await t.throwsAsync(stageLayer(bytes(Buffer.from('BZh91AY&SY')), join(dir, 'bz')), { message: /bzip2-compressed/ });
  await t.throwsAsync(stageLayer(bytes(Buffer.alloc(0)), join(dir, 'empty')), { message: /empty/ });
});

test('cp reads CONTAINER:PATH as Docker does', (t) => {
  t.deepEqual(parseCopyEnd('web:/etc/hosts'), { container: 'web', path: '/etc/hosts' });
  t.deepEqual(parseCopyEnd('./a:b'), { path: './a:b' });
  t.deepEqual(parseCopyEnd('/abs/path'), { path: '/abs/path' });
  t.deepEqual(parseCopyEnd('-'), { path: '-' });
  t.deepEqual(parseCopyEnd('web:'), { container: 'web', path: '/' });
  t.true(copiesContents('dir/.'));
  t.false(copiesContents('dir'));
});
