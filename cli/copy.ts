/**
 * `container cp`'s local side, as `docker cp`: which argument is the container's, how a local
 * source becomes a tar, and how a tar from the container lands at a local path.
 */
import { lstat, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { create, extract } from 'tar';

export interface CopyEnd {
  container?: string;
  path: string;
}

/** CONTAINER:PATH or a local path; a local path with a colon is written ./a:b, as with Docker. */
export function parseCopyEnd(text: string): CopyEnd {
  if (text === '-' || text.startsWith('/') || text.startsWith('.')) return { path: text };
  const colon = text.indexOf(':');
  if (colon <= 0) return { path: text };
  return { container: text.slice(0, colon), path: text.slice(colon + 1) || '/' };
}

/** SOURCE/. copies a directory's contents rather than the directory. */
export function copiesContents(path: string): boolean {
  return path.endsWith('/.') || path === '.';
}

/** A local file or directory as a tar: named by its last component, or its contents for DIR/. (owners and modes kept). */
export function localArchive(path: string, followLink: boolean): Readable {
  const contents = copiesContents(path);
  const cwd = contents ? resolve(path) : dirname(resolve(path));
  return create({ cwd, portable: false, follow: followLink, preservePaths: false }, [contents ? '.' : basename(resolve(path))]) as unknown as Readable;
}

/**
 * Where a tar from the container goes: into DEST when it is a directory, else it becomes DEST
 * (its parent must exist). Unpacked into a directory of its own beside DEST first, so a
 * half-copied tree never takes DEST's name. Without `keepOwner` the files are the caller's.
 */
export async function landArchive(destination: string, sourceIsContents: boolean, keepOwner: boolean, receive: (into: Writable) => Promise<unknown>): Promise<void> {
  const target = resolve(destination);
  const existing = await lstat(target).catch(() => undefined);
  const unpack = (cwd: string) => extract({ cwd, preserveOwner: keepOwner }) as unknown as Writable;
  if (existing?.isDirectory()) {
    await receive(unpack(target));
    return;
  }
  if (destination.endsWith('/')) throw new Error(`${destination} is not a directory here; create it first, or leave out the trailing /`);
  if (!(await lstat(dirname(target)).catch(() => undefined))?.isDirectory()) throw new Error(`${dirname(target)} is not a directory here; copy into a directory that exists`);
  const staging = await mkdtemp(join(dirname(target), '.shoal-cp-'));
  try {
    await receive(unpack(staging));
    if (sourceIsContents) {
      if (existing) throw new Error(`cannot copy a directory's contents to ${destination}, which is not a directory`);
      await rename(staging, target);
      return;
    }
    const entries = await readdir(staging);
    if (entries.length !== 1) throw new Error(`the container sent ${entries.length} top entries, where one was expected`);
    const staged = await lstat(join(staging, entries[0]!));
    if (existing && staged.isDirectory()) throw new Error(`cannot overwrite non-directory ${destination} with a directory`);
    await rename(join(staging, entries[0]!), target);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
