/**
 * `image save` and `image load`. A saved archive is an OCI image layout (oci-layout,
 * index.json, blobs/sha256/) that also carries Docker's manifest.json, as `docker save` has
 * written since Docker 25: OCI tools and every Docker read it. Load takes that, a plain OCI
 * layout, and the older docker-archive (manifest.json with <id>/layer.tar), and keeps an OCI
 * image's manifest and config byte for byte, so a saved and loaded image has the same digests.
 */
import { createReadStream, existsSync } from 'node:fs';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { errors } from '../../../shared/errors.ts';
import { firstComplaint, run, runInto } from '../../../shared/exec.ts';
import { formatReference, parseReference } from '../registry/reference.ts';
import { fileDigest, stageLayer, type StagedLayer } from './layer-intake.ts';
import { ImageConfig, ImageIndex, ImageManifest, mediaTypes, ociArchitecture } from './oci.ts';
import type { ImageLayer, ImageRecord, ImageStore } from './store.ts';

const hex = (digest: string) => digest.slice('sha256:'.length);

/** Docker's manifest.json entry. */
interface DockerArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** The images named, each found in the store, for `save`. */
function imagesNamed(images: ImageStore, references: readonly string[]): Array<{ image: ImageRecord; tag?: string }> {
  return references.map((reference) => {
    const image = images.find(reference);
    if (!image) throw errors.notFound('image', reference, 'pull it on this node first (`shoal image pull --node`)');
    let tag: string | undefined;
    try {
      const parsed = parseReference(reference, images.defaultRegistry);
      if (parsed.tag && !parsed.digest) tag = formatReference(parsed);
    } catch {
      // an image id: saved without a name
    }
    return { image, ...(tag ? { tag } : {}) };
  });
}

/** Writes the archive of `references` to `sink` as a tar (the blobs are hard links, not copies). */
export async function saveImages(images: ImageStore, references: readonly string[], sink: (chunk: Buffer) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const named = imagesNamed(images, references);
  const staging = images.stagingPath();
  try {
    await mkdir(join(staging, 'blobs', 'sha256'), { recursive: true });
    const put = async (digest: string) => {
      const target = join(staging, 'blobs', 'sha256', hex(digest));
      if (!existsSync(target)) await link(images.blobPath(digest), target);
    };
    const index: ImageIndex & { manifests: Array<Record<string, unknown>> } = { schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [] };
    const dockerManifest: DockerArchiveEntry[] = [];
    for (const { image, tag } of named) {
      for (const digest of [image.id, image.configDigest, ...image.layers.map((l) => l.digest)]) await put(digest);
      const manifestSize = (await readFile(images.blobPath(image.id))).length;
      index.manifests.push({
        mediaType: image.manifestMediaType,
        digest: image.id,
        size: manifestSize,
        platform: { os: image.config.os, architecture: image.config.architecture },
        ...(tag ? { annotations: { 'io.containerd.image.name': tag, 'org.opencontainers.image.ref.name': tag.slice(tag.lastIndexOf(':') + 1) } } : {}),
      });
      const existing = dockerManifest.find((entry) => entry.Config === `blobs/sha256/${hex(image.configDigest)}`);
      if (existing) {
        if (tag) existing.RepoTags = [...(existing.RepoTags ?? []), tag];
      } else {
        dockerManifest.push({ Config: `blobs/sha256/${hex(image.configDigest)}`, RepoTags: tag ? [tag] : null, Layers: image.layers.map((l) => `blobs/sha256/${hex(l.digest)}`) });
      }
    }
    await writeFile(join(staging, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(join(staging, 'index.json'), JSON.stringify(index));
    await writeFile(join(staging, 'manifest.json'), JSON.stringify(dockerManifest));
    await runInto('tar', ['-c', '-f', '-', '--numeric-owner', '--owner=0', '--group=0', '-C', staging, 'oci-layout', 'index.json', 'manifest.json', 'blobs'], sink, signal);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** A path inside the unpacked archive, refused if it climbs out. */
function inside(root: string, path: string): string {
  if (path.startsWith('/') || path.split('/').includes('..')) throw errors.invalid(`the archive names ${path}, outside itself`);
  return join(root, path);
}

/** A blob of the layout, checked against its digest. */
async function layoutBlob(root: string, digest: string): Promise<string> {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw errors.invalid(`the archive names a blob "${digest}" that is not a sha256 digest`);
  const path = join(root, 'blobs', 'sha256', hex(digest));
  if (!existsSync(path)) throw errors.invalid(`the archive lacks blob ${digest}`);
  if ((await fileDigest(path)).digest !== digest) throw errors.invalid(`blob ${digest} of the archive does not match its digest`, 'the archive is corrupt');
  return path;
}

function parseJson<T>(text: string, what: string, schema?: { safeParse: (value: unknown) => { success: boolean; data?: unknown } }): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw errors.invalid(`${what} of the archive is not JSON`);
  }
  if (schema && !schema.safeParse(value).success) throw errors.invalid(`${what} of the archive is malformed`);
  return value as T;
}

/** One manifest of an OCI layout (an index in it resolved for this platform), stored with its own bytes. */
async function loadOciManifest(images: ImageStore, root: string, digest: string, references: string[]): Promise<ImageRecord> {
  const bytes = await readFile(await layoutBlob(root, digest));
  const value = parseJson<{ mediaType?: string; manifests?: unknown }>(bytes.toString('utf8'), `manifest ${digest}`);
  if (value.manifests) {
    const index = parseJson<ImageIndex>(bytes.toString('utf8'), `index ${digest}`, ImageIndex);
    const match = index.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === ociArchitecture());
    if (!match) throw errors.notFound('platform', `linux/${ociArchitecture()}`, `the archive's image ${digest} is for other platforms`);
    return loadOciManifest(images, root, match.digest, references);
  }
  const manifest = parseJson<ImageManifest>(bytes.toString('utf8'), `manifest ${digest}`, ImageManifest);
  const configBytes = await readFile(await layoutBlob(root, manifest.config.digest));
  const config = parseJson<Record<string, unknown>>(configBytes.toString('utf8'), 'an image config', ImageConfig);
  const diffIds = (config as unknown as ImageConfig).rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length) throw errors.invalid(`image ${digest} lists ${manifest.layers.length} layers and ${diffIds.length} diff_ids`);
  const layers: Array<StagedLayer | ImageLayer> = [];
  for (const [i, layer] of manifest.layers.entries()) {
    const known = { digest: layer.digest, size: layer.size, diffId: diffIds[i]! };
    // A blob the store has (a shared base layer) is not moved again: another image of the archive may use it too.
    layers.push(existsSync(images.blobPath(layer.digest)) ? known : { ...known, path: await layoutBlob(root, layer.digest) });
  }
  return images.addLocal(layers, config, references, { manifest: bytes, manifestMediaType: manifest.mediaType ?? value.mediaType ?? mediaTypes.ociManifest, config: configBytes });
}

/** The older docker-archive: uncompressed layer tars, gzipped into the store; the config kept as is. */
async function loadDockerEntry(images: ImageStore, root: string, entry: DockerArchiveEntry): Promise<ImageRecord> {
  const configBytes = await readFile(inside(root, entry.Config));
  const config = parseJson<Record<string, unknown>>(configBytes.toString('utf8'), entry.Config, ImageConfig);
  const diffIds = (config as unknown as ImageConfig).rootfs.diff_ids;
  const layers: StagedLayer[] = [];
  for (const [i, path] of entry.Layers.entries()) {
    const layer = await stageLayer(Readable.from(createReadStream(inside(root, path))), images.stagingPath());
    if (layer.diffId !== diffIds[i]) throw errors.invalid(`layer ${path} of the archive hashes to ${layer.diffId}, but its config says ${diffIds[i]}`, 'the archive is corrupt');
    layers.push(layer);
  }
  return images.addLocal(layers, config, entry.RepoTags ?? [], undefined);
}

/**
 * `image load`: every image of the archive into the store, with its names. Returns each image
 * and the names it was loaded under.
 */
export async function loadImages(images: ImageStore, input: AsyncIterable<Buffer>): Promise<Array<{ image: ImageRecord; references: string[] }>> {
  const root = images.stagingPath();
  await mkdir(root, { recursive: true });
  try {
    await run('tar', ['-x', '-f', '-', '-C', root, '--no-same-owner', '--no-same-permissions'], { inputStream: Readable.from(input) }).catch((error: Error) => {
      throw errors.invalid(`the archive could not be unpacked: ${firstComplaint(error)}`, 'give the tar `image save` (or `docker save`) wrote');
    });
    const dockerEntries = existsSync(join(root, 'manifest.json')) ? parseJson<DockerArchiveEntry[]>(await readFile(join(root, 'manifest.json'), 'utf8'), 'manifest.json') : [];
    const loaded: Array<{ image: ImageRecord; references: string[] }> = [];
    if (existsSync(join(root, 'index.json'))) {
      const index = parseJson<ImageIndex & { manifests: Array<{ digest: string; annotations?: Record<string, string> }> }>(await readFile(join(root, 'index.json'), 'utf8'), 'index.json', ImageIndex);
      for (const descriptor of index.manifests) {
        const configOf = async () => {
          const manifest = parseJson<{ config?: { digest?: string } }>(await readFile(await layoutBlob(root, descriptor.digest), 'utf8'), 'a manifest');
          return manifest.config?.digest ? `blobs/sha256/${hex(manifest.config.digest)}` : undefined;
        };
        const named = descriptor.annotations?.['io.containerd.image.name'];
        const config = await configOf();
        const tags = named ? [named] : (dockerEntries.find((entry) => entry.Config === config)?.RepoTags ?? []);
        loaded.push({ image: await loadOciManifest(images, root, descriptor.digest, tags), references: tags });
      }
      return loaded;
    }
    if (dockerEntries.length === 0) throw errors.invalid('the archive has neither index.json (an OCI layout) nor manifest.json (a docker-archive)', 'give the tar `image save` (or `docker save`) wrote');
    for (const entry of dockerEntries) loaded.push({ image: await loadDockerEntry(images, root, entry), references: entry.RepoTags ?? [] });
    return loaded;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
