/**
 * A layer made on this node (an imported tar, a committed container, a build step): its bytes
 * land in a file of the store's staging directory, gzipped when they came plain, with the
 * digest of the blob and the diff_id of its tar, as the image config and manifest want them.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { errors } from '../../../shared/errors.ts';
import { watching } from '../../../shared/streams.ts';

export interface StagedLayer {
  /** The gzipped tar, to be moved into the store's blobs. */
  path: string;
  digest: string;
  size: number;
  diffId: string;
}

const sha256 = () => createHash('sha256');

/** A file's sha256 digest and size: a blob as a manifest names it. */
export async function fileDigest(path: string): Promise<{ digest: string; size: number }> {
  const hash = sha256();
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

async function magicOf(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const magic = Buffer.alloc(6);
    await handle.read(magic, 0, 6, 0);
    return magic;
  } finally {
    await handle.close();
  }
}

/** Refuses what is not a tar, or is compressed in a way the store does not keep. */
function checkFormat(magic: Buffer): 'gzip' | 'tar' {
  if (magic[0] === 0x1f && magic[1] === 0x8b) return 'gzip';
  if (magic.subarray(0, 3).toString('latin1') === 'BZh') throw errors.invalid('the archive is bzip2-compressed', 'give a tar or a tar.gz (gunzip/bunzip2 it first)');
  if (magic.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) throw errors.invalid('the archive is xz-compressed', 'give a tar or a tar.gz (unxz it first)');
  if (magic.readUInt32LE(0) === 0xfd2fb528) throw errors.invalid('the archive is zstd-compressed', 'give a tar or a tar.gz');
  return 'tar';
}

/** Takes a tar or tar.gz stream into `staging` (a path prefix in the store's filesystem). */
export async function stageLayer(input: AsyncIterable<Buffer>, staging: string): Promise<StagedLayer> {
  const raw = `${staging}.raw`;
  const packed = `${staging}.tar.gz`;
  try {
    const rawHash = sha256();
    let rawSize = 0;
    await pipeline(Readable.from(input), watching((chunk) => {
      rawHash.update(chunk);
      rawSize += chunk.length;
    }), createWriteStream(raw));
    if (rawSize === 0) throw errors.invalid('the archive is empty', 'give a tar or a tar.gz of a filesystem');
    if (checkFormat(await magicOf(raw)) === 'gzip') {
      const diffHash = sha256();
      await pipeline(createReadStream(raw), createGunzip(), watching((chunk) => diffHash.update(chunk)), async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) void chunk;
      }).catch((error: Error) => {
        throw errors.invalid(`the gzip stream is broken: ${error.message}`);
      });
      await rename(raw, packed);
      return { path: packed, digest: `sha256:${rawHash.digest('hex')}`, size: rawSize, diffId: `sha256:${diffHash.digest('hex')}` };
    }
    const blobHash = sha256();
    let size = 0;
    await pipeline(createReadStream(raw), createGzip(), watching((chunk) => {
      blobHash.update(chunk);
      size += chunk.length;
    }), createWriteStream(packed));
    return { path: packed, digest: `sha256:${blobHash.digest('hex')}`, size, diffId: `sha256:${rawHash.digest('hex')}` };
  } catch (error) {
    await rm(packed, { force: true });
    throw error;
  } finally {
    await rm(raw, { force: true });
  }
}
