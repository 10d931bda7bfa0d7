import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ShoalError } from '../../../shared/errors.ts';
import { watching } from '../../../shared/streams.ts';
import { describeIssues } from '../../../shared/schemas.ts';
import { type Descriptor, ImageIndex, ImageManifest, mediaTypes, ociArchitecture } from '../images/oci.ts';
import { formatReference, type ImageReference } from './reference.ts';

const manifestAccept = [mediaTypes.ociManifest, mediaTypes.ociIndex, mediaTypes.dockerManifest, mediaTypes.dockerList].join(', ');

export interface ResolvedManifest {
  digest: string;
  manifest: ImageManifest;
  mediaType: string;
  raw: Buffer;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * Aborts when nothing moved for `idleMs`: a layer that takes ten minutes but keeps arriving is
 * fine, a connection that stalls for a minute is not (a fixed deadline failed every pull
 * slower than it, body included).
 */
class IdleTimeout {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout;

  constructor(private readonly idleMs: number) {
    this.timer = this.arm();
  }

  private arm(): NodeJS.Timeout {
    const timer = setTimeout(() => this.controller.abort(new Error(`no data moved for ${Math.round(this.idleMs / 1000)} s`)), this.idleMs);
    timer.unref();
    return timer;
  }

  /** Something moved: the idle period starts again. */
  touch(): void {
    clearTimeout(this.timer);
    this.timer = this.arm();
  }

  /** The caller's signal and this timeout together: either ends the transfer. */
  signal(caller?: AbortSignal): AbortSignal {
    return caller ? AbortSignal.any([caller, this.controller.signal]) : this.controller.signal;
  }

  done(): void {
    clearTimeout(this.timer);
  }
}

/**
 * A client for the Distribution API v2 over plain HTTP (the lab registry has no TLS). Every
 * manifest and blob is checked against its digest; a blob is written to a temporary file and
 * renamed into place only once verified, so a failure leaves nothing half-written.
 */
export class RegistryClient {
  /** `idleMs`: how long a request may go without a byte moving before it is given up. */
  constructor(private readonly idleMs = 60_000) {}

  private url(registry: string, path: string): string {
    return `http://${registry}/v2/${path}`;
  }

  /** A request whose idle timer the caller keeps touching while the body moves, and ends with done(). */
  private async request(reference: ImageReference, path: string, init: RequestInit = {}, idle = new IdleTimeout(this.idleMs), signal?: AbortSignal): Promise<Response> {
    const url = this.url(reference.registry, path);
    try {
      const response = await fetch(url, { ...init, signal: idle.signal(signal) });
      idle.touch();
      return response;
    } catch (error) {
      idle.done();
      throw new ShoalError('temporary', 'registry_unreachable', `registry ${reference.registry} is unreachable (${(error as Error).cause ?? (error as Error).message})`, {
        hint: 'check the registry address in the image reference, and that the registry runs',
        cause: error,
      });
    }
  }

  private async failure(reference: ImageReference, response: Response, what: string): Promise<ShoalError> {
    const body = await response.text().catch(() => '');
    if (response.status === 404) {
      return new ShoalError('not_found', 'image_not_found', `${what} not found in ${reference.registry}: ${formatReference(reference)}`, {
        hint: 'check the name and tag; `shoal image build-base` pushes the demo images',
      });
    }
    return new ShoalError('temporary', 'registry_error', `registry ${reference.registry} answered ${response.status} for ${what}: ${body.slice(0, 200)}`);
  }

  /** Fetches the manifest for a tag or digest; a manifest list or index is resolved for this platform. */
  async resolveManifest(reference: ImageReference, platform = { os: 'linux', architecture: ociArchitecture() }): Promise<ResolvedManifest> {
    const target = reference.digest ?? reference.tag ?? 'latest';
    const response = await this.request(reference, `${reference.repository}/manifests/${target}`, { headers: { accept: manifestAccept } });
    if (!response.ok) throw await this.failure(reference, response, 'manifest');
    const raw = Buffer.from(await response.arrayBuffer());
    const digest = sha256(raw);
    if (reference.digest && digest !== reference.digest) {
      throw new ShoalError('invalid', 'digest_mismatch', `manifest of ${formatReference(reference)} has digest ${digest}, not ${reference.digest}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new ShoalError('invalid', 'malformed_manifest', `the manifest of ${formatReference(reference)} is not JSON`);
    }
    const mediaType = (parsed as { mediaType?: string }).mediaType ?? response.headers.get('content-type') ?? '';
    if (mediaType === mediaTypes.ociIndex || mediaType === mediaTypes.dockerList || Array.isArray((parsed as { manifests?: unknown }).manifests)) {
      const index = ImageIndex.safeParse(parsed);
      if (!index.success) throw new ShoalError('invalid', 'malformed_manifest', `the image index of ${formatReference(reference)} is malformed: ${describeIssues(index.error)}`);
      const match = index.data.manifests.find((m) => m.platform?.os === platform.os && m.platform.architecture === platform.architecture);
      if (!match) {
        const offered = index.data.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`).join(', ');
        throw new ShoalError('not_found', 'no_matching_platform', `${formatReference(reference)} has no image for ${platform.os}/${platform.architecture} (it has ${offered})`);
      }
      return this.resolveManifest({ ...reference, tag: undefined, digest: match.digest }, platform);
    }
    const manifest = ImageManifest.safeParse(parsed);
    if (!manifest.success) throw new ShoalError('invalid', 'malformed_manifest', `the manifest of ${formatReference(reference)} is malformed: ${describeIssues(manifest.error)}`);
    return { digest, manifest: manifest.data, mediaType, raw };
  }

  /** Downloads a blob to `destination`, verifying its digest (and size) before it appears there. */
  async fetchBlob(reference: ImageReference, descriptor: Pick<Descriptor, 'digest' | 'size'>, destination: string, signal?: AbortSignal): Promise<void> {
    const idle = new IdleTimeout(this.idleMs);
    const response = await this.request(reference, `${reference.repository}/blobs/${descriptor.digest}`, {}, idle, signal);
    if (!response.ok || !response.body) {
      idle.done();
      throw await this.failure(reference, response, `blob ${descriptor.digest}`);
    }
    const temporary = `${destination}.partial-${process.pid}-${Date.now()}`;
    const hash = createHash('sha256');
    let size = 0;
    const hashing = watching((chunk) => {
      idle.touch();
      hash.update(chunk);
      size += chunk.length;
    });
    try {
      await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), hashing, createWriteStream(temporary, { mode: 0o644 }));
      const digest = `sha256:${hash.digest('hex')}`;
      if (digest !== descriptor.digest || size !== descriptor.size) {
        throw new ShoalError('invalid', 'digest_mismatch', `blob ${descriptor.digest} from ${reference.registry} arrived as ${digest} (${size} bytes, expected ${descriptor.size})`);
      }
      await rename(temporary, destination);
    } catch (error) {
      await rm(temporary, { force: true });
      if (error instanceof ShoalError) throw error;
      throw new ShoalError('temporary', 'registry_unreachable', `download of ${descriptor.digest} from ${reference.registry} failed: ${(error as Error).message}`, { cause: error });
    } finally {
      idle.done();
    }
  }

  async fetchBlobBytes(reference: ImageReference, descriptor: Pick<Descriptor, 'digest'>): Promise<Buffer> {
    const idle = new IdleTimeout(this.idleMs);
    let data: Buffer;
    try {
      const response = await this.request(reference, `${reference.repository}/blobs/${descriptor.digest}`, {}, idle);
      if (!response.ok) throw await this.failure(reference, response, `blob ${descriptor.digest}`);
      data = Buffer.from(await response.arrayBuffer());
    } finally {
      idle.done();
    }
    if (sha256(data) !== descriptor.digest) {
      throw new ShoalError('invalid', 'digest_mismatch', `blob ${descriptor.digest} from ${reference.registry} arrived as ${sha256(data)}`);
    }
    return data;
  }

  /** Uploads a blob (monolithic POST then PUT ?digest=) unless the registry has it already. */
  async pushBlob(reference: ImageReference, digest: string, file: string, signal?: AbortSignal): Promise<void> {
    const head = await this.request(reference, `${reference.repository}/blobs/${digest}`, { method: 'HEAD' });
    if (head.ok) return;
    const start = await this.request(reference, `${reference.repository}/blobs/uploads/`, { method: 'POST' });
    if (start.status !== 202) throw await this.failure(reference, start, 'blob upload');
    const location = new URL(start.headers.get('location') ?? '', this.url(reference.registry, ''));
    location.searchParams.set('digest', digest);
    const { size } = await stat(file);
    const idle = new IdleTimeout(this.idleMs);
    // The registry reading the body is what moves: each chunk it takes restarts the idle timer.
    const source = createReadStream(file);
    const body = watching(() => idle.touch());
    // pipe() does not pass errors on: a read error ends the body, and with it the upload.
    source.on('error', (error) => body.destroy(error));
    source.pipe(body);
    let put: Response;
    try {
      put = await fetch(location, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body: Readable.toWeb(body) as ReadableStream,
        duplex: 'half',
        signal: idle.signal(signal),
      } as RequestInit);
    } catch (error) {
      throw new ShoalError('temporary', 'registry_unreachable', `upload of ${digest} to ${reference.registry} failed: ${(error as Error).cause ?? (error as Error).message}`, { cause: error });
    } finally {
      idle.done();
    }
    if (put.status !== 201) throw await this.failure(reference, put, `blob ${digest} upload`);
  }

  async pushManifest(reference: ImageReference, mediaType: string, body: Buffer): Promise<string> {
    const response = await this.request(reference, `${reference.repository}/manifests/${reference.tag ?? reference.digest}`, {
      method: 'PUT',
      headers: { 'content-type': mediaType },
      body: new Uint8Array(body),
    });
    if (response.status !== 201) throw await this.failure(reference, response, 'manifest upload');
    return sha256(body);
  }
}
