import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { RegistryClient } from '../../agent/engine/registry/client.ts';
import { parseReference } from '../../agent/engine/registry/reference.ts';

// A registry that misbehaves on purpose, on loopback: each path answers one kind of bad data.
const good = Buffer.from('layer bytes');
const goodDigest = `sha256:${createHash('sha256').update(good).digest('hex')}`;
const amd64Manifest = JSON.stringify({
  schemaVersion: 2,
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 2 },
  layers: [],
});
const amd64Digest = `sha256:${createHash('sha256').update(amd64Manifest).digest('hex')}`;
const index = JSON.stringify({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'b'.repeat(64)}`, size: 10, platform: { os: 'linux', architecture: 'arm64' } },
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd64Digest, size: amd64Manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
  ],
});
const slow = Buffer.alloc(12 * 1024, 7);
const slowDigest = `sha256:${createHash('sha256').update(slow).digest('hex')}`;
let server: Server;
let registry = '';

test.before(async () => {
  server = createServer((request, response) => {
    const routes: Record<string, () => void> = {
      '/v2/notjson/manifests/1': () => response.end('{not json'),
      '/v2/shapeless/manifests/1': () => response.end(JSON.stringify({ schemaVersion: 2, layers: [] })),
      [`/v2/moved/manifests/sha256:${'a'.repeat(64)}`]: () => response.end(JSON.stringify({ schemaVersion: 2 })),
      [`/v2/blob/blobs/${goodDigest}`]: () => response.end(Buffer.from('other bytes!')),
      '/v2/multi/manifests/1': () => response.end(index),
      // A layer that keeps arriving for longer than the idle timeout, a chunk every 100 ms.
      [`/v2/slow/blobs/${slowDigest}`]: () => {
        let sent = 0;
        const timer = setInterval(() => {
          response.write(slow.subarray(sent, sent + 1024));
          sent += 1024;
          if (sent >= slow.length) {
            clearInterval(timer);
            response.end();
          }
        }, 100);
      },
      // Half a layer, then nothing: a stalled connection.
      [`/v2/stalled/blobs/${slowDigest}`]: () => {
        response.writeHead(200, { 'content-length': String(slow.length) });
        response.write(slow.subarray(0, 1024));
      },
      [`/v2/multi/manifests/${amd64Digest}`]: () => response.end(amd64Manifest),
    };
    const route = routes[request.url ?? ''];
    if (route) route();
    else response.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  registry = `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

test.after.always(() => new Promise<void>((resolve) => {
  server.closeAllConnections();
  server.close(() => resolve());
}));

test('a manifest that is not JSON is a malformed_manifest error', async (t) => {
  await t.throwsAsync(new RegistryClient().resolveManifest(parseReference(`${registry}/notjson:1`, '')), { code: 'malformed_manifest', message: /not JSON/ } as never);
});

test('a manifest without the fields of one is a malformed_manifest error naming the field', async (t) => {
  await t.throwsAsync(new RegistryClient().resolveManifest(parseReference(`${registry}/shapeless:1`, '')), { code: 'malformed_manifest', message: /config/ } as never);
});

test('a manifest whose bytes do not hash to the asked digest is a digest_mismatch', async (t) => {
  await t.throwsAsync(new RegistryClient().resolveManifest(parseReference(`${registry}/moved@sha256:${'a'.repeat(64)}`, '')), { code: 'digest_mismatch' } as never);
});

test('an unknown tag is image_not_found', async (t) => {
  await t.throwsAsync(new RegistryClient().resolveManifest(parseReference(`${registry}/nothing:1`, '')), { code: 'image_not_found' } as never);
});

test('a blob that does not match its digest is refused and nothing is left on disk', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-blob-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const destination = join(dir, goodDigest.slice(7));
  await t.throwsAsync(new RegistryClient().fetchBlob(parseReference(`${registry}/blob:1`, ''), { digest: goodDigest, size: good.length }, destination), { code: 'digest_mismatch' } as never);
  t.false(existsSync(destination));
  t.deepEqual(readdirSync(dir), []);
});

test('an unreachable registry is registry_unreachable', async (t) => {
  await t.throwsAsync(new RegistryClient(2000).resolveManifest(parseReference('127.0.0.1:9/x:1', '')), { code: 'registry_unreachable' } as never);
});

test('an image index resolves to the manifest for this platform; a missing platform is named', async (t) => {
  const resolved = await new RegistryClient().resolveManifest(parseReference(`${registry}/multi:1`, ''), { os: 'linux', architecture: 'amd64' });
  t.is(resolved.digest, amd64Digest);
  await t.throwsAsync(new RegistryClient().resolveManifest(parseReference(`${registry}/multi:1`, ''), { os: 'linux', architecture: 'riscv64' }), {
    code: 'no_matching_platform',
    message: /has no image for linux\/riscv64 \(it has linux\/arm64, linux\/amd64\)/,
  } as never);
});

test('a layer that takes longer than the idle timeout but keeps moving arrives whole', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-blob-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const destination = join(dir, 'layer');
  const started = Date.now();
  await new RegistryClient(400).fetchBlob(parseReference(`${registry}/slow:1`, ''), { digest: slowDigest, size: slow.length }, destination);
  t.true(Date.now() - started > 1_000, 'the transfer outlasted the 400 ms idle timeout');
  t.true(existsSync(destination));
});

test('a transfer that stalls is given up after the idle timeout, and nothing is left on disk', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-blob-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const started = Date.now();
  await t.throwsAsync(new RegistryClient(400).fetchBlob(parseReference(`${registry}/stalled:1`, ''), { digest: slowDigest, size: slow.length }, join(dir, 'layer')), {
    code: 'registry_unreachable',
    message: /no data moved for 0 s|aborted/,
  } as never);
  t.true(Date.now() - started < 3_000);
  t.deepEqual(readdirSync(dir), []);
});

test('a caller\'s signal stops a download at once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-blob-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error('stopped by the caller')), 200);
  await t.throwsAsync(new RegistryClient(60_000).fetchBlob(parseReference(`${registry}/stalled:1`, ''), { digest: slowDigest, size: slow.length }, join(dir, 'layer'), controller.signal), { code: 'registry_unreachable' } as never);
});
