import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { ShoalError } from '../../../shared/errors.ts';
import { run } from '../../../shared/exec.ts';
import { watching } from '../../../shared/streams.ts';

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

/** The layer's tar stream, uncompressed by what its first bytes say it is (gzip, zstd or plain tar). */
async function uncompressed(blob: string): Promise<Readable> {
  const handle = await open(blob, 'r');
  const magic = Buffer.alloc(4);
  try {
    await handle.read(magic, 0, 4, 0);
  } finally {
    await handle.close();
  }
  const file = createReadStream(blob);
  const decompress = magic[0] === 0x1f && magic[1] === 0x8b ? createGunzip() : magic.readUInt32LE(0) === 0xfd2fb528 ? createZstdDecompress() : undefined;
  if (!decompress) return file;
  // pipe() does not pass errors on: a read error ends the decompressor, whose consumer reports it.
  file.on('error', (error) => decompress.destroy(error));
  return file.pipe(decompress);
}

/**
 * Unpacks a layer blob (tar: gzipped, zstd or plain) into `destination`, once: it is extracted
 * beside it and renamed into place only when complete, so a crash leaves no half-unpacked
 * layer. Extended attributes come along (file capabilities such as ping's cap_net_raw live in
 * security.capability). With `diffId`, the uncompressed stream must hash to it, as the image
 * config promises, or the layer is refused.
 */
export async function unpackLayer(blob: string, destination: string, diffId?: string): Promise<void> {
  const staging = `${destination}.unpacking-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    const hash = createHash('sha256');
    const source = await uncompressed(blob);
    // Errors of the decompressor reach the hashing stream's consumer: forward them so the
    // tar child is killed and the unpack rejects with the real cause.
    const hashing = watching((chunk) => hash.update(chunk));
    source.on('error', (error) => hashing.destroy(error));
    source.pipe(hashing);
    // GNU tar refuses ".." members and keeps owners, modes and (asked to) every xattr.
    await run('tar', ['-x', '-f', '-', '-C', staging, '--numeric-owner', '--same-permissions', '--same-owner', '--xattrs', '--xattrs-include=*'], { inputStream: hashing });
    const digest = `sha256:${hash.digest('hex')}`;
    if (diffId && digest !== diffId) {
      throw new ShoalError('invalid', 'diff_id_mismatch', `layer ${blob.split('/').pop()} unpacks to ${digest}, but the image config says ${diffId}`, {
        hint: 'the image in the registry is corrupt or was tampered with; push it again',
      });
    }
    await convertWhiteouts(staging);
    await rename(staging, destination);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}
