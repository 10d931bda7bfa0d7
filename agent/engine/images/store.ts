import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errors, ShoalError } from '../../../shared/errors.ts';
import { firstComplaint } from '../../../shared/exec.ts';
import type { RegistryClient } from '../registry/client.ts';
import { formatReference, parseReference } from '../registry/reference.ts';
import { ImageConfig, mediaTypes } from './oci.ts';
import { unpackLayer } from './unpack.ts';
import type { StagedLayer } from './layer-intake.ts';
import type { RegistryAuth } from '../registry/auth.ts';

export interface ImageLayer {
  digest: string;
  diffId: string;
  size: number;
}

/** A loaded image's own manifest and config, kept byte for byte so that its digests stay the same. */
export interface KeptImageBytes {
  manifest: Buffer;
  manifestMediaType: string;
  config: Buffer;
}

/** An image in a node's store, known by its manifest digest. */
export interface ImageRecord {
  id: string;
  references: string[];
  configDigest: string;
  config: ImageConfig;
  manifestMediaType: string;
  layers: ImageLayer[];
  size: number;
  pulledAt: string;
}

export type PullProgress = (event: { phase: 'manifest' | 'layer' | 'unpack' | 'done'; detail: string }) => void;

function hex(digest: string): string {
  return digest.slice('sha256:'.length);
}

/**
 * A node's content-addressed image store: blobs by digest, each layer unpacked once, and an
 * index of images by manifest digest with the references that name them. Concurrent pulls of
 * the same blob share one download.
 */
export class ImageStore {
  private images = new Map<string, ImageRecord>();
  private readonly inflightBlobs = new Map<string, Promise<void>>();
  private readonly inflightLayers = new Map<string, Promise<void>>();
  private readonly inflightPulls = new Map<string, Promise<ImageRecord>>();

  constructor(
    readonly root: string,
    private readonly registry: RegistryClient,
    readonly defaultRegistry: string,
  ) {}

  private get indexPath(): string {
    return join(this.root, 'images.json');
  }

  blobPath(digest: string): string {
    return join(this.root, 'blobs', 'sha256', hex(digest));
  }

  layerPath(digest: string): string {
    return join(this.root, 'layers', hex(digest));
  }

  async init(): Promise<void> {
    await mkdir(join(this.root, 'blobs', 'sha256'), { recursive: true });
    // Layers half-made when the agent stopped are of no use.
    await rm(join(this.root, 'staging'), { recursive: true, force: true });
    await mkdir(join(this.root, 'staging'), { recursive: true });
    await mkdir(join(this.root, 'layers'), { recursive: true });
    const text = await readFile(this.indexPath, 'utf8').catch(() => undefined);
    const records = text ? (JSON.parse(text) as ImageRecord[]) : [];
    this.images = new Map(records.map((r) => [r.id, r]));
  }

  private saving: Promise<void> = Promise.resolve();

  /** Writes the index atomically; saves run one after another so none overwrites a newer one. */
  private saveIndex(): Promise<void> {
    const save = async () => {
      const temporary = `${this.indexPath}.tmp`;
      await writeFile(temporary, JSON.stringify([...this.images.values()], null, 1));
      await rename(temporary, this.indexPath);
    };
    this.saving = this.saving.then(save, save);
    return this.saving;
  }

  list(): ImageRecord[] {
    return [...this.images.values()].sort((a, b) => (a.references[0] ?? a.id).localeCompare(b.references[0] ?? b.id));
  }

  /** Finds an image by reference, by full or short manifest digest. */
  find(text: string): ImageRecord | undefined {
    const byId = this.images.get(text) ?? this.list().find((image) => hex(image.id).startsWith(text.replace(/^sha256:/, '')) && text.length >= 12);
    if (byId) return byId;
    let wanted: string;
    try {
      wanted = formatReference(parseReference(text, this.defaultRegistry));
    } catch {
      return undefined;
    }
    return this.list().find((image) => image.references.includes(wanted));
  }

  /** Pulls an image (or finds it present, for a digest reference) and returns its record. */
  async pull(text: string, progress: PullProgress = () => undefined, auth?: RegistryAuth): Promise<ImageRecord> {
    const reference = parseReference(text, this.defaultRegistry);
    const key = formatReference(reference);
    const running = this.inflightPulls.get(key);
    if (running) return running;
    const pulling = this.pullOnce(key, reference, progress, auth).finally(() => this.inflightPulls.delete(key));
    this.inflightPulls.set(key, pulling);
    return pulling;
  }

  private async pullOnce(key: string, reference: ReturnType<typeof parseReference>, progress: PullProgress, auth?: RegistryAuth): Promise<ImageRecord> {
    progress({ phase: 'manifest', detail: key });
    const resolved = await this.registry.resolveManifest(reference, undefined, auth);
    const { manifest } = resolved;
    const configBytes = await this.registry.fetchBlobBytes(reference, manifest.config, auth);
    const config = ImageConfig.safeParse(JSON.parse(configBytes.toString('utf8')));
    if (!config.success) throw new ShoalError('invalid', 'malformed_manifest', `the image config of ${key} is malformed`);
    if (config.data.rootfs.diff_ids.length !== manifest.layers.length) {
      throw new ShoalError('invalid', 'malformed_manifest', `${key}: the config lists ${config.data.rootfs.diff_ids.length} layers, the manifest ${manifest.layers.length}`);
    }
    await writeFile(this.blobPath(manifest.config.digest), configBytes);
    await writeFile(this.blobPath(resolved.digest), resolved.raw);
    for (const [i, layer] of manifest.layers.entries()) {
      progress({ phase: 'layer', detail: `${layer.digest.slice(0, 19)} (${layer.size} bytes) ${i + 1}/${manifest.layers.length}` });
      await this.ensureBlob(reference, layer, auth);
      await this.ensureLayer(layer.digest, config.data.rootfs.diff_ids[i]);
    }
    const existing = this.images.get(resolved.digest);
    const record: ImageRecord = {
      id: resolved.digest,
      references: [...new Set([...(existing?.references ?? []), key])],
      configDigest: manifest.config.digest,
      config: config.data,
      manifestMediaType: resolved.mediaType || mediaTypes.ociManifest,
      layers: manifest.layers.map((layer, i) => ({ digest: layer.digest, diffId: config.data.rootfs.diff_ids[i]!, size: layer.size })),
      size: manifest.layers.reduce((sum, layer) => sum + layer.size, 0),
      pulledAt: existing?.pulledAt ?? new Date().toISOString(),
    };
    // A tag moves: the reference leaves whatever image it named before.
    this.takeReferences(record.id, [key]);
    this.images.set(record.id, record);
    await this.saveIndex();
    progress({ phase: 'done', detail: `${key} ${record.id}` });
    return record;
  }

  private async ensureBlob(reference: ReturnType<typeof parseReference>, layer: { digest: string; size: number }, auth?: RegistryAuth): Promise<void> {
    const path = this.blobPath(layer.digest);
    if (existsSync(path)) return;
    const running = this.inflightBlobs.get(layer.digest);
    if (running) return running;
    const download = this.registry.fetchBlob(reference, layer, path, undefined, auth).finally(() => this.inflightBlobs.delete(layer.digest));
    this.inflightBlobs.set(layer.digest, download);
    return download;
  }

  private async ensureLayer(digest: string, diffId?: string): Promise<void> {
    const path = this.layerPath(digest);
    if (existsSync(path)) return;
    const running = this.inflightLayers.get(digest);
    if (running) return running;
    const unpacking = unpackLayer(this.blobPath(digest), path, diffId).finally(() => this.inflightLayers.delete(digest));
    this.inflightLayers.set(digest, unpacking);
    return unpacking;
  }

  /** A fresh path prefix in the store's own filesystem for a layer being made (renamed into blobs/ when done). */
  stagingPath(): string {
    return join(this.root, 'staging', randomBytes(8).toString('hex'));
  }

  /**
   * Registers an image made on this node (imported, committed, loaded, built): staged layers
   * are moved into the blobs and unpacked, the config (as given, with its history) and an OCI
   * manifest are written, and the references move to it.
   */
  async addLocal(layers: ReadonlyArray<StagedLayer | ImageLayer>, config: Record<string, unknown>, references: readonly string[] = [], kept?: KeptImageBytes): Promise<ImageRecord> {
    const parsed = ImageConfig.safeParse(config);
    if (!parsed.success) throw errors.invalid(`the image config is malformed: ${parsed.error.issues[0]?.message ?? ''}`);
    for (const layer of layers) await this.addLayer(layer);
    const configBytes = kept?.config ?? Buffer.from(JSON.stringify(config));
    const configDigest = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
    await writeFile(this.blobPath(configDigest), configBytes);
    const manifest = {
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: mediaTypes.ociConfig, digest: configDigest, size: configBytes.length },
      layers: layers.map((layer) => ({ mediaType: mediaTypes.ociLayerGzip, digest: layer.digest, size: layer.size })),
    };
    const manifestBytes = kept?.manifest ?? Buffer.from(JSON.stringify(manifest));
    const id = `sha256:${createHash('sha256').update(manifestBytes).digest('hex')}`;
    await writeFile(this.blobPath(id), manifestBytes);
    const names = references.map((reference) => formatReference(parseReference(reference, this.defaultRegistry)));
    const existing = this.images.get(id);
    const record: ImageRecord = {
      id,
      references: [...new Set([...(existing?.references ?? []), ...names])],
      configDigest,
      config: parsed.data,
      manifestMediaType: kept?.manifestMediaType ?? mediaTypes.ociManifest,
      layers: layers.map((layer) => ({ digest: layer.digest, diffId: layer.diffId, size: layer.size })),
      size: layers.reduce((sum, layer) => sum + layer.size, 0),
      pulledAt: existing?.pulledAt ?? new Date().toISOString(),
    };
    this.takeReferences(record.id, names);
    this.images.set(record.id, record);
    await this.saveIndex();
    return record;
  }

  /** A layer made here into the store (its blob moved in, unpacked once), or one it has, checked. */
  async addLayer(layer: StagedLayer | ImageLayer): Promise<ImageLayer> {
    if ('path' in layer) await rename(layer.path, this.blobPath(layer.digest));
    else if (!existsSync(this.blobPath(layer.digest))) throw errors.notFound('layer', layer.digest, 'the base image is no longer in the store; pull it again');
    await this.ensureLayer(layer.digest, layer.diffId).catch((error: Error) => {
      throw errors.invalid(`a layer could not be unpacked: ${firstComplaint(error)}`, 'give a tar or tar.gz of a filesystem');
    });
    return { digest: layer.digest, diffId: layer.diffId, size: layer.size };
  }

  /** Drops an image from the index and leaves its blobs (a build's intermediate image, whose layers the next steps use). */
  async forget(id: string): Promise<void> {
    if (this.images.get(id)?.references.length) return;
    if (this.images.delete(id)) await this.saveIndex();
  }

  /** Whether a layer's blob and unpacked tree are still here (a build cache entry can be used). */
  hasLayer(layer: ImageLayer): boolean {
    return existsSync(this.blobPath(layer.digest)) && existsSync(this.layerPath(layer.digest));
  }

  /** A tag names one image: the references leave every other image. */
  private takeReferences(id: string, names: readonly string[]): void {
    for (const other of this.images.values()) {
      if (other.id !== id) other.references = other.references.filter((r) => !names.includes(r));
    }
  }

  /** `image tag SOURCE TARGET`: one more reference to an image of the store. */
  async tag(source: string, target: string): Promise<ImageRecord> {
    const image = this.find(source);
    if (!image) throw errors.notFound('image', source, 'list images with `shoal image ls`');
    let name: string;
    try {
      name = formatReference(parseReference(target, this.defaultRegistry));
    } catch (error) {
      throw errors.invalid(`"${target}" is not an image reference: ${(error as Error).message}`);
    }
    if (name.includes('@')) throw errors.invalid(`a tag cannot be a digest (${target})`, 'name the target like repository:tag');
    this.takeReferences(image.id, [name]);
    if (!image.references.includes(name)) image.references.push(name);
    await this.saveIndex();
    return image;
  }

  /** The image config as stored, with what the schema does not keep (history, created). */
  async rawConfig(image: ImageRecord): Promise<Record<string, unknown>> {
    return JSON.parse(await readFile(this.blobPath(image.configDigest), 'utf8')) as Record<string, unknown>;
  }

  /** Pushes an image from this store to its registry, or under another reference (`target`). */
  async push(text: string, target?: string, auth?: RegistryAuth): Promise<{ reference: string; digest: string }> {
    const image = this.find(text);
    if (!image) throw errors.notFound('image', text, 'pull or build it first');
    const reference = parseReference(target ?? image.references[0] ?? text, this.defaultRegistry);
    if (!reference.tag) throw errors.invalid('push needs a tag to push to', 'name the target like registry:5000/name:tag');
    for (const layer of image.layers) await this.registry.pushBlob(reference, layer.digest, this.blobPath(layer.digest), undefined, auth);
    await this.registry.pushBlob(reference, image.configDigest, this.blobPath(image.configDigest), undefined, auth);
    const digest = await this.registry.pushManifest(reference, image.manifestMediaType, await readFile(this.blobPath(image.id)), auth);
    const name = formatReference(reference);
    if (!image.references.includes(name)) {
      image.references.push(name);
      await this.saveIndex();
    }
    return { reference: name, digest };
  }

  /** The image's unpacked layers, top first, as overlayfs wants them in lowerdir. */
  layerDirs(image: ImageRecord): string[] {
    return image.layers.map((layer) => this.layerPath(layer.digest)).reverse();
  }

  /** Removes one reference, or the image when it was the last; refuses while a container uses it. */
  async remove(text: string, inUse: (imageId: string) => string[]): Promise<{ untagged: string[]; deleted: string[] }> {
    const image = this.find(text);
    if (!image) throw errors.notFound('image', text, 'list images with `shoal image ls`');
    const users = inUse(image.id);
    let named: string | undefined;
    try {
      named = formatReference(parseReference(text, this.defaultRegistry));
    } catch {
      // an image id, not a reference: the whole image goes
    }
    const reference = image.references.find((r) => r === named);
    if (reference && image.references.length > 1) {
      image.references = image.references.filter((r) => r !== reference);
      await this.saveIndex();
      return { untagged: [reference], deleted: [] };
    }
    if (users.length > 0) {
      throw errors.conflict(`image ${image.references[0] ?? image.id} is in use by container(s) ${users.join(', ')}`, 'remove those containers first');
    }
    this.images.delete(image.id);
    await this.saveIndex();
    const deleted = await this.collectGarbage();
    return { untagged: image.references, deleted: [image.id, ...deleted] };
  }

  /** Removes every image no container uses, then the blobs and layers nothing refers to. */
  async prune(inUse: (imageId: string) => string[]): Promise<string[]> {
    const removed: string[] = [];
    for (const image of this.list()) {
      if (inUse(image.id).length === 0) {
        this.images.delete(image.id);
        removed.push(image.id);
      }
    }
    await this.saveIndex();
    await this.collectGarbage();
    return removed;
  }

  private async collectGarbage(): Promise<string[]> {
    const wanted = new Set<string>();
    for (const image of this.images.values()) {
      wanted.add(hex(image.configDigest));
      wanted.add(hex(image.id));
      for (const layer of image.layers) wanted.add(hex(layer.digest));
    }
    const removed: string[] = [];
    for (const dir of ['blobs/sha256', 'layers']) {
      for (const name of await readdir(join(this.root, dir))) {
        if (!wanted.has(name)) {
          await rm(join(this.root, dir, name), { recursive: true, force: true });
          if (dir === 'layers') removed.push(`sha256:${name}`);
        }
      }
    }
    return removed;
  }
}
