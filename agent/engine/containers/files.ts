/**
 * A container's files from the host: `cp` both ways, `diff` and `export`. Every path is
 * resolved as the container would resolve it (its symlinks, its mounts), and never leaves its
 * root: an absolute symlink starts again at the container's root, `..` stops there. An archive
 * copied in is unpacked into an empty directory of its own first, then moved into place entry
 * by entry without following any symlink of the container's, so neither the archive nor the
 * container's own links can write outside it.
 */
import { readFileSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { errors } from '../../../shared/errors.ts';
import { firstComplaint, run, runInto } from '../../../shared/exec.ts';
import { type ResolvedUser, resolveUser } from './runtime-spec.ts';

/** A mount of the container's bundle, by where the container sees it. */
export interface FsMount {
  destination: string;
  /** The host directory or file behind a bind mount; none for proc, sysfs, tmpfs and the like. */
  source?: string;
  type: string;
  readOnly: boolean;
}

export interface ContainerFs {
  rootfs: string;
  readOnlyRoot: boolean;
  mounts: FsMount[];
}

export type ChangeKind = 'A' | 'C' | 'D';
export interface Change {
  kind: ChangeKind;
  path: string;
}

const maxLinks = 255;
const tarCreate = ['-c', '-f', '-', '--numeric-owner', '--xattrs', '--xattrs-include=*'];

/**
 * A small file on a container start's path, or '' when there is none. Read synchronously: each
 * asynchronous read is a round trip through the thread pool (see `Engine.prepare`).
 */
export function readSmallFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Resolves a user against a root filesystem's own /etc/passwd and /etc/group (absent files: numbers only). */
export function resolveUserIn(rootfs: string, user: string | undefined): ResolvedUser {
  return resolveUser(user, readSmallFile(join(rootfs, 'etc', 'passwd')), readSmallFile(join(rootfs, 'etc', 'group')));
}

/** The mounts runc makes, from the bundle's config.json: binds keep their host source. */
export async function bundleMounts(configPath: string): Promise<FsMount[]> {
  const config = JSON.parse(await readFile(configPath, 'utf8')) as { mounts?: Array<{ destination: string; type?: string; source?: string; options?: string[] }> };
  return (config.mounts ?? []).map((mount) => {
    const bind = mount.type === 'bind' || (mount.options ?? []).includes('bind') || (mount.options ?? []).includes('rbind');
    return { destination: posix.normalize(mount.destination), type: bind ? 'bind' : (mount.type ?? 'none'), ...(bind && mount.source ? { source: mount.source } : {}), readOnly: (mount.options ?? []).includes('ro') };
  });
}

/** The mount a container path lies in (the deepest), if any. */
function mountOf(fs: ContainerFs, path: string): FsMount | undefined {
  let found: FsMount | undefined;
  for (const mount of fs.mounts) {
    const inside = path === mount.destination || path.startsWith(mount.destination === '/' ? '/' : `${mount.destination}/`);
    if (inside && (!found || mount.destination.length > found.destination.length)) found = mount;
  }
  return found;
}

/** Where a resolved container path is on the host, and whether it may be written. */
export function hostPathOf(fs: ContainerFs, path: string): { path: string; readOnly: boolean } {
  const mount = mountOf(fs, path);
  if (!mount) return { path: join(fs.rootfs, path), readOnly: fs.readOnlyRoot };
  if (!mount.source) throw errors.invalid(`${path} is on the container's ${mount.type} mount at ${mount.destination}, which the host cannot reach`, 'copy with `shoal container exec` and a shell inside instead');
  return { path: join(mount.source, path.slice(mount.destination.length)), readOnly: mount.readOnly };
}

/**
 * A container path with its symlinks resolved inside the container (the last one too when
 * `followLast`), as a clean absolute path of the container's.
 */
export async function resolveInContainer(fs: ContainerFs, path: string, followLast: boolean): Promise<string> {
  let resolved: string[] = [];
  let pending = path.split('/').filter((part) => part && part !== '.');
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = [...resolved, part];
    if (pending.length === 0 && !followLast) {
      resolved = candidate;
      break;
    }
    const host = hostPathOf(fs, `/${candidate.join('/')}`).path;
    const info = await lstat(host).catch(() => undefined);
    if (!info?.isSymbolicLink()) {
      resolved = candidate;
      continue;
    }
    if (++links > maxLinks) throw errors.invalid(`${path}: too many levels of symbolic links`);
    const target = await readlink(host);
    if (target.startsWith('/')) resolved = [];
    pending = [...target.split('/').filter((p) => p && p !== '.'), ...pending];
  }
  return `/${resolved.join('/')}`;
}

/**
 * `cp CONTAINER:PATH -`: a tar of PATH as it is named (a symlink is archived as the link), or
 * of a directory's contents for PATH/. (entries start with "./").
 */
export async function archiveOut(fs: ContainerFs, path: string, sink: (chunk: Buffer) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const contents = path.endsWith('/.') || path === '/' || path === '.';
  const resolved = await resolveInContainer(fs, path, contents || path.endsWith('/'));
  const host = hostPathOf(fs, resolved).path;
  const info = await lstat(host).catch(() => undefined);
  if (!info) throw errors.notFound('path', path, 'the path is looked up inside the container; list it with `shoal container exec C ls`');
  if ((contents || path.endsWith('/')) && !info.isDirectory()) throw errors.invalid(`${path} is not a directory in the container`);
  const args = contents || resolved === '/' ? ['-C', host, '.'] : ['-C', dirname(host), basename(host)];
  await runInto('tar', [...tarCreate, ...args], sink, signal);
}

/**
 * `cp - CONTAINER:PATH`: an archive unpacked at PATH. An existing directory takes the
 * archive's entries; otherwise its one top entry becomes PATH (whose parent must exist), as
 * `docker cp` does. Without `keepOwner` the files are root's, as Docker's are.
 */
export async function archiveIn(fs: ContainerFs, path: string, input: AsyncIterable<Buffer>, options: { keepOwner: boolean; contents: boolean }): Promise<void> {
  const { keepOwner } = options;
  const resolved = await resolveInContainer(fs, path, true);
  const { path: host, readOnly } = hostPathOf(fs, resolved);
  if (readOnly) throw errors.conflict(`${path} is on a read-only filesystem in the container`, 'copy to a writable path (a volume, or a container without --read-only)');
  let info = await lstat(host).catch(() => undefined);
  if (!info && path.endsWith('/')) throw errors.notFound('directory', path, 'create it first, or leave out the trailing /');
  if (!info && !(await lstat(dirname(host)).catch(() => undefined))?.isDirectory()) {
    throw errors.notFound('directory', posix.dirname(resolved), 'copy into a directory that exists in the container');
  }
  // SOURCE/. : the directory's contents, into PATH made for them.
  if (!info && options.contents) {
    await mkdir(host);
    info = await lstat(host);
  }
  if (options.contents && !info?.isDirectory()) throw errors.conflict(`cannot copy a directory's contents to ${path}, which is not a directory`);
  const into = info?.isDirectory() ?? false;
  const parent = into ? host : dirname(host);
  const staging = await mkdtemp(join(parent, '.shoal-cp-'));
  try {
    await run('tar', ['-x', '-f', '-', '-C', staging, '--numeric-owner', keepOwner ? '--same-owner' : '--no-same-owner', '--same-permissions', '--xattrs', '--xattrs-include=*'], {
      inputStream: Readable.from(input),
    }).catch((error: Error) => {
      throw errors.invalid(`the archive could not be unpacked: ${firstComplaint(error)}`);
    });
    if (into) return await moveEntries(staging, host, resolved);
    const entries = await readdir(staging);
    if (entries.length !== 1) throw errors.invalid(`the archive has ${entries.length} top entries; to copy them as ${path}, copy into a directory`);
    await moveEntry(join(staging, entries[0]!), host, resolved);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Moves each staged entry to `to`, merging directories and replacing the rest; a symlink at `to` is replaced, never followed. */
async function moveEntries(from: string, to: string, shown: string): Promise<void> {
  for (const name of await readdir(from)) await moveEntry(join(from, name), join(to, name), posix.join(shown, name));
}

async function moveEntry(source: string, target: string, shown: string): Promise<void> {
  const [staged, existing] = await Promise.all([lstat(source), lstat(target).catch(() => undefined)]);
  if (existing?.isDirectory()) {
    if (!staged.isDirectory()) throw errors.conflict(`cannot overwrite directory ${shown} with a non-directory`);
    return moveEntries(source, target, shown);
  }
  if (existing && staged.isDirectory()) throw errors.conflict(`cannot overwrite non-directory ${shown} with a directory`);
  if (existing) await rm(target, { force: true });
  await rename(source, target);
}

/** `export`: the container's merged root as a tar (mounts are not in it, as in Docker's). */
export async function exportRoot(fs: ContainerFs, sink: (chunk: Buffer) => Promise<void>, signal?: AbortSignal): Promise<void> {
  await runInto('tar', [...tarCreate, '-C', fs.rootfs, '.'], sink, signal);
}

/**
 * `diff`: what the container changed against its image, from its overlay's upper directory: a
 * 0:0 character device is a deleted path (D), a path the image has is changed (C), any other
 * added (A). Paths runc made only to mount onto (/etc/hosts, /dev, ...) are left out, and so is
 * a directory listed only for them, as in Docker's.
 */
export async function changes(upper: string, lowers: readonly string[], mountPoints: ReadonlySet<string>): Promise<Change[]> {
  const found: Change[] = [];
  const inImage = async (path: string) => (await Promise.all(lowers.map((lower) => lstat(join(lower, path)).then(() => true, () => false)))).some(Boolean);
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await readdir(join(upper, relative), { withFileTypes: true })) {
      const path = posix.join('/', relative, entry.name);
      const info = await lstat(join(upper, path));
      if (info.isCharacterDevice() && info.rdev === 0) {
        found.push({ kind: 'D', path });
        continue;
      }
      found.push({ kind: (await inImage(path)) ? 'C' : 'A', path });
      if (info.isDirectory()) await walk(path);
    }
  };
  await walk('/');
  const kept = found.filter((change) => !mountPoints.has(change.path));
  return kept
    .filter((change) => change.kind === 'D' || !found.some((other) => mountPoints.has(other.path) && other.path.startsWith(`${change.path}/`)) || kept.some((other) => other.path.startsWith(`${change.path}/`)))
    .sort((a, b) => a.path.localeCompare(b.path));
}

/** Directories the container emptied and refilled: overlayfs marks them opaque (trusted.overlay.opaque=y). */
export async function opaqueDirectories(upper: string): Promise<string[]> {
  const output = await run('getfattr', ['-R', '--absolute-names', '-m', '^trusted\\.overlay\\.opaque$', '-d', upper]).catch(() => '');
  const found: string[] = [];
  let file: string | undefined;
  for (const line of output.split('\n')) {
    if (line.startsWith('# file: ')) file = line.slice('# file: '.length);
    else if (file && /^trusted\.overlay\.opaque="y"/.test(line)) found.push(posix.join('/', file.slice(upper.length)));
  }
  return found;
}

/**
 * `commit`'s layer: the container's changes as an OCI layer tar, into `sink`. Added and changed
 * paths come from the upper directory as they are (owners, modes, xattrs but overlayfs' own);
 * a deleted path becomes a ".wh.NAME" file and an opaque directory a ".wh..wh..opq" one, written
 * into `markers` (an empty directory) first.
 */
export async function changesLayer(upper: string, found: readonly Change[], opaque: readonly string[], markers: string, sink: (chunk: Buffer) => Promise<void>): Promise<void> {
  const markerPaths: string[] = [];
  const mark = async (path: string) => {
    await mkdir(join(markers, posix.dirname(path)), { recursive: true });
    await writeFile(join(markers, path), '');
    markerPaths.push(`.${path}`);
  };
  for (const change of found) if (change.kind === 'D') await mark(posix.join(posix.dirname(change.path), `.wh.${posix.basename(change.path)}`));
  for (const dir of opaque) await mark(posix.join(dir, '.wh..wh..opq'));
  const kept = found.filter((c) => c.kind !== 'D').map((c) => `.${c.path}`);
  const lists = { upper: join(markers, '..', `${basename(markers)}.upper`), markers: join(markers, '..', `${basename(markers)}.markers`) };
  await writeFile(lists.upper, kept.map((p) => `${p}\0`).join(''));
  await writeFile(lists.markers, markerPaths.map((p) => `${p}\0`).join(''));
  try {
    await runInto('tar', [
      '-c', '-f', '-', '--numeric-owner', '--xattrs', '--xattrs-include=*', '--xattrs-exclude=trusted.overlay.*', '--null', '--no-recursion',
      '-C', upper, '-T', lists.upper, '-C', markers, '-T', lists.markers,
    ], sink);
  } finally {
    await rm(lists.upper, { force: true });
    await rm(lists.markers, { force: true });
  }
}
