import { mkdir, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../../shared/exec.ts';

const whiteoutPrefix = '.wh.';
const opaqueMarker = '.wh..wh..opq';

/**
 * Turns OCI whiteouts into overlayfs ones: ".wh.NAME" becomes a 0:0 character device NAME,
 * and ".wh..wh..opq" marks its directory opaque (trusted.overlay.opaque=y).
 */
async function convertWhiteouts(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.name === opaqueMarker) {
      await unlink(path);
      await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', dir]);
    } else if (entry.name.startsWith(whiteoutPrefix)) {
      await unlink(path);
      await run('mknod', [join(dir, entry.name.slice(whiteoutPrefix.length)), 'c', '0', '0']);
    } else if (entry.isDirectory()) {
      await convertWhiteouts(path);
    }
  }
}

/**
 * Unpacks a layer blob (tar, gzipped or not) into `destination`, once: it is extracted beside
 * it and renamed into place only when complete, so a crash leaves no half-unpacked layer.
 */
export async function unpackLayer(blob: string, destination: string): Promise<void> {
  const staging = `${destination}.unpacking-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    // GNU tar detects the compression, refuses ".." members and keeps owners and modes.
    await run('tar', ['-xf', blob, '-C', staging, '--numeric-owner', '--same-permissions', '--same-owner']);
    await convertWhiteouts(staging);
    await rename(staging, destination);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}
