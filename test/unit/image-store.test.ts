import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { mediaTypes } from '../../agent/engine/images/oci.ts';
import { ImageStore } from '../../agent/engine/images/store.ts';
import { RegistryClient } from '../../agent/engine/registry/client.ts';
import { run } from '../../shared/exec.ts';

// A tiny registry on loopback serving one real image under two tags, counting blob downloads.
let server: Server;
let registry = '';
let work = '';
const blobGets = new Map<string, number>();
const digest = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'shoal-store-'));
  await mkdir(join(work, 'src', 'etc'), { recursive: true });
  await writeFile(join(work, 'src', 'etc', 'motd'), 'hi\n');
  await run('tar', ['-cf', join(work, 'layer.tar'), '-C', join(work, 'src'), '.']);
  const tar = await readFile(join(work, 'layer.tar'));
  await run('gzip', ['-n', join(work, 'layer.tar')]);
  const layer = await readFile(join(work, 'layer.tar.gz'));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [digest(tar)] } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: mediaTypes.ociManifest,
    config: { mediaType: mediaTypes.ociConfig, digest: digest(config), size: config.length },
    layers: [{ mediaType: mediaTypes.ociLayerGzip, digest: digest(layer), size: layer.length }],
  }));
  const blobs = new Map([[digest(config), config], [digest(layer), layer]]);
  server = createServer((request, response) => {
    const url = request.url ?? '';
    if (/^\/v2\/demo\/manifests\/(one|two)$/.test(url)) return void response.writeHead(200, { 'content-type': mediaTypes.ociManifest }).end(manifest);
    const blob = /^\/v2\/demo\/blobs\/(sha256:[0-9a-f]+)$/.exec(url)?.[1];
    if (blob && blobs.has(blob)) {
      blobGets.set(blob, (blobGets.get(blob) ?? 0) + 1);
      // Slow enough that both pulls are in flight together.
      return void setTimeout(() => response.end(blobs.get(blob)), 100);
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  registry = `127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

test.after.always(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(work, { recursive: true, force: true });
});

test('concurrent pulls of one image share one download of each layer, and tags name one image', async (t) => {
  const store = new ImageStore(join(work, 'store'), new RegistryClient(), registry);
  await store.init();
  const [one, two] = await Promise.all([store.pull('demo:one'), store.pull('demo:two')]);
  t.is(one.id, two.id);
  const layerDigest = one.layers[0]!.digest;
  t.is(blobGets.get(layerDigest), 1);
  t.deepEqual(store.list().map((i) => i.references.sort()), [[`${registry}/demo:one`, `${registry}/demo:two`]]);
  t.is(await readFile(join(store.layerDirs(one)[0]!, 'etc', 'motd'), 'utf8'), 'hi\n');
  const reopened = new ImageStore(join(work, 'store'), new RegistryClient(), registry);
  await reopened.init();
  t.is(reopened.find('demo:two')?.id, one.id, 'the index survives a restart');
});
