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
import { fetch } from 'undici';
import { describeFetchError, loginNeeded, parseChallenge, RegistryAccess, type RegistryAuth, scopeFor, wrongCredentials } from './auth.ts';

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

/** Who asks, and for what: a login for the registry (none: anonymous), and whether the call writes. */
export interface CallAuth {
  auth?: RegistryAuth;
  push?: boolean;
}

type RegistryResponse = Awaited<ReturnType<typeof fetch>>;

/**
 * A client for the Distribution API v2, over HTTPS (plain HTTP for registries listed insecure),
 * logged in where a registry asks (see auth.ts). Every manifest and blob is checked against its
 * digest; a blob is written to a temporary file and renamed into place only once verified, so a
 * failure leaves nothing half-written.
 */
export class RegistryClient {
  /** `idleMs`: how long a request may go without a byte moving before it is given up. */
  constructor(
    private readonly idleMs = 60_000,
    readonly access = new RegistryAccess(),
  ) {}

  private url(registry: string, path: string): string {
    return `${this.access.scheme(registry)}://${registry}/v2/${path}`;
  }

  private unreachable(registry: string, error: unknown): ShoalError {
    const untrusted = /certificate is not signed/.test(describeFetchError(error));
    return new ShoalError(untrusted ? 'invalid' : 'temporary', untrusted ? 'registry_untrusted' : 'registry_unreachable', `registry ${registry} is unreachable: ${describeFetchError(error)}`, {
      hint: untrusted
        ? `put the registry's CA in certs.d/${registry}/ca.crt of each node's agent, or list it with --insecure-registry if it serves plain HTTP`
        : 'check the registry address in the image reference, and that the registry runs',
      cause: error,
    });
  }

  /**
   * A request, logged in as the registry asks: a 401's challenge is answered once (a token from
   * its realm, or Basic) and the request sent again. The idle timer is the caller's to keep
   * touching while a body moves, and to end with done().
   */
  private async request(reference: ImageReference, path: string, init: RequestInit = {}, idle = new IdleTimeout(this.idleMs), signal?: AbortSignal, call: CallAuth = {}): Promise<RegistryResponse> {
    const url = this.url(reference.registry, path);
    const dispatcher = this.access.dispatcher(reference.registry);
    const scope = scopeFor(reference.repository, call.push ?? false);
    const send = async (authorization: string | undefined) => {
      try {
        const headers = { ...(init.headers as Record<string, string> | undefined), ...(authorization ? { authorization } : {}) };
        const response = await fetch(url, { ...(init as object), headers, signal: idle.signal(signal), ...(dispatcher ? { dispatcher } : {}) } as Parameters<typeof fetch>[1]);
        idle.touch();
        return response;
      } catch (error) {
        idle.done();
        throw this.unreachable(reference.registry, error);
      }
    };
    const first = this.access.authorization(reference.registry, scope, call.auth);
    const response = await send(first);
    if (response.status !== 401) return response;
    const challenge = parseChallenge(response.headers.get('www-authenticate'));
    if (!challenge) return response;
    await response.body?.cancel().catch(() => undefined);
    this.access.forget(reference.registry, scope, call.auth);
    const header = await this.access.answer(reference.registry, challenge, scope, call.auth, (tokenUrl, tokenInit) => fetch(tokenUrl, { ...tokenInit, ...(dispatcher ? { dispatcher } : {}) }) as unknown as Promise<Response>);
    const again = await send(header);
    if (again.status === 401) {
      await again.body?.cancel().catch(() => undefined);
      if (challenge.scheme === 'basic') throw call.auth ? wrongCredentials(reference.registry, call.auth) : loginNeeded(reference.registry);
      throw new ShoalError('unauthorized', 'registry_token_refused', `registry ${reference.registry} refused the token its token server gave for ${scope} (expired, or the login may not ${call.push ? 'push' : 'pull'} there)`, {
        hint: `check the account's rights, and log in again with \`shoal login ${reference.registry}\``,
      });
    }
    if (again.status === 403) throw new ShoalError('forbidden', 'registry_denied', `registry ${reference.registry} denied ${scope} to ${call.auth ? `"${call.auth.username}"` : 'an anonymous user'}`);
    return again;
  }

  /** Checks a login: `shoal login` asks a node to reach the registry with it (GET /v2/). */
  async login(registry: string, auth: RegistryAuth): Promise<void> {
    const response = await this.request({ registry, repository: '' } as ImageReference, '', { method: 'GET' }, new IdleTimeout(this.idleMs), undefined, { auth });
    await response.body?.cancel().catch(() => undefined);
    if (response.status === 401) throw wrongCredentials(registry, auth);
    if (!response.ok) throw new ShoalError('temporary', 'registry_error', `registry ${registry} answered ${response.status} to a login check`);
  }

  private async failure(reference: ImageReference, response: RegistryResponse, what: string): Promise<ShoalError> {
    const body = await response.text().catch(() => '');
    if (response.status === 404) {
      return new ShoalError('not_found', 'image_not_found', `${what} not found in ${reference.registry}: ${formatReference(reference)}`, {
        hint: 'check the name and tag; `shoal image build-base` pushes the demo images',
      });
    }
    return new ShoalError('temporary', 'registry_error', `registry ${reference.registry} answered ${response.status} for ${what}: ${body.slice(0, 200)}`);
  }

  /** Fetches the manifest for a tag or digest; a manifest list or index is resolved for this platform. */
  async resolveManifest(reference: ImageReference, platform = { os: 'linux', architecture: ociArchitecture() }, auth?: RegistryAuth): Promise<ResolvedManifest> {
    const target = reference.digest ?? reference.tag ?? 'latest';
    const idle = new IdleTimeout(this.idleMs);
    const response = await this.request(reference, `${reference.repository}/manifests/${target}`, { headers: { accept: manifestAccept } }, idle, undefined, { ...(auth ? { auth } : {}) });
    idle.done();
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
      return this.resolveManifest({ ...reference, tag: undefined, digest: match.digest }, platform, auth);
    }
    const manifest = ImageManifest.safeParse(parsed);
    if (!manifest.success) throw new ShoalError('invalid', 'malformed_manifest', `the manifest of ${formatReference(reference)} is malformed: ${describeIssues(manifest.error)}`);
    return { digest, manifest: manifest.data, mediaType, raw };
  }

  /** Downloads a blob to `destination`, verifying its digest (and size) before it appears there. */
  async fetchBlob(reference: ImageReference, descriptor: Pick<Descriptor, 'digest' | 'size'>, destination: string, signal?: AbortSignal, auth?: RegistryAuth): Promise<void> {
    const idle = new IdleTimeout(this.idleMs);
    const response = await this.request(reference, `${reference.repository}/blobs/${descriptor.digest}`, {}, idle, signal, { ...(auth ? { auth } : {}) });
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

  async fetchBlobBytes(reference: ImageReference, descriptor: Pick<Descriptor, 'digest'>, auth?: RegistryAuth): Promise<Buffer> {
    const idle = new IdleTimeout(this.idleMs);
    let data: Buffer;
    try {
      const response = await this.request(reference, `${reference.repository}/blobs/${descriptor.digest}`, {}, idle, undefined, { ...(auth ? { auth } : {}) });
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
  async pushBlob(reference: ImageReference, digest: string, file: string, signal?: AbortSignal, auth?: RegistryAuth): Promise<void> {
    const call = { ...(auth ? { auth } : {}), push: true };
    const probe = new IdleTimeout(this.idleMs);
    const head = await this.request(reference, `${reference.repository}/blobs/${digest}`, { method: 'HEAD' }, probe, signal, call);
    if (head.ok) return probe.done();
    const start = await this.request(reference, `${reference.repository}/blobs/uploads/`, { method: 'POST' }, probe, signal, call);
    probe.done();
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
    let put: RegistryResponse;
    // A body that streams is not sent twice: the POST above logged in, its token (or Basic) goes along.
    const authorization = this.access.authorization(reference.registry, scopeFor(reference.repository, true), auth);
    const dispatcher = this.access.dispatcher(reference.registry);
    try {
      put = await fetch(location, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size), ...(authorization ? { authorization } : {}) },
        body: Readable.toWeb(body) as ReadableStream,
        duplex: 'half',
        signal: idle.signal(signal),
        ...(dispatcher ? { dispatcher } : {}),
      } as Parameters<typeof fetch>[1]);
    } catch (error) {
      throw new ShoalError('temporary', 'registry_unreachable', `upload of ${digest} to ${reference.registry} failed: ${describeFetchError(error)}`, { cause: error });
    } finally {
      idle.done();
    }
    if (put.status !== 201) throw await this.failure(reference, put, `blob ${digest} upload`);
  }

  async pushManifest(reference: ImageReference, mediaType: string, body: Buffer, auth?: RegistryAuth): Promise<string> {
    const idle = new IdleTimeout(this.idleMs);
    const response = await this.request(reference, `${reference.repository}/manifests/${reference.tag ?? reference.digest}`, {
      method: 'PUT',
      headers: { 'content-type': mediaType },
      body: new Uint8Array(body),
    }, idle, undefined, { ...(auth ? { auth } : {}), push: true });
    idle.done();
    if (response.status !== 201) throw await this.failure(reference, response, 'manifest upload');
    return sha256(body);
  }
}
