import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { formatAge, formatBytes } from '../duration.ts';
import { parseFormat, printList, printObject } from '../output.ts';
import { collect, connect, type GlobalOptions, query } from './common.ts';
import { loginForImage } from '../registry-logins.ts';
import { RawBody } from '../client.ts';
import { buildContext, contextArchive } from '../build-context.ts';

interface HistoryRow {
  id: string;
  created?: string;
  createdBy: string;
  size: number;
  comment: string;
}

interface ImageRow {
  id: string;
  references: string[];
  size: number;
  pulledAt: string;
  containers: number;
  node: string;
}

interface VolumeRow {
  name: string;
  driver: string;
  mountpoint: string;
  containers: string[];
  node: string;
}

function progressLine(event: unknown): void {
  const e = event as { node?: string; phase?: string; detail?: string };
  process.stderr.write(`${e.node ? `${e.node}: ` : ''}${e.phase ?? ''} ${e.detail ?? ''}\n`);
}

export function registerImageCommands(program: Command, globals: () => GlobalOptions): void {
  const image = program.command('image').description('Images in the nodes\' stores and the registry');

  image
    .command('build-base')
    .description('Build the demo busybox image from the host\'s busybox-static and push it to the cluster registry')
    .option('--node <node>', 'node that builds and pushes (default: any Ready node)')
    .action(async (options: { node?: string }) => {
      const result = await (await connect(globals())).stream<{ references: string[]; digest: string }>('POST', '/v1/images/build-base', { ...(options.node ? { node: options.node } : {}) }, progressLine);
      for (const reference of result.references) process.stdout.write(`${reference}\n`);
      process.stdout.write(`digest: ${result.digest}\n`);
    });

  image
    .command('pull')
    .description('Pull an image into the store of a node, or of every Ready node')
    .argument('<image>', 'reference, e.g. busybox:1.35.0 or 198.18.0.250:5000/busybox@sha256:...')
    .option('--node <node>', 'one node only')
    .action(async (ref: string, options: { node?: string }) => {
      const results = await (await connect(globals())).useRegistryAuth(await loginForImage(ref)).stream<Array<{ node: string; image: { id: string } }>>('POST', '/v1/images/pull', { ref, ...(options.node ? { node: options.node } : {}) }, progressLine);
      for (const r of results) process.stdout.write(`${r.node}: ${r.image.id}\n`);
    });

  image
    .command('push')
    .description('Push an image from a node\'s store to its registry (or to TARGET)')
    .argument('<image>', 'reference or id in the store')
    .argument('[target]', 'push under this reference instead')
    .option('--node <node>', 'the node whose store holds it')
    .action(async (ref: string, target: string | undefined, options: { node?: string }) => {
      const result = await (await connect(globals())).useRegistryAuth(await loginForImage(target ?? ref)).call<{ reference: string; digest: string }>('POST', '/v1/images/push', { ref, ...(target ? { target } : {}), ...(options.node ? { node: options.node } : {}) });
      process.stdout.write(`${result.reference}: digest ${result.digest}\n`);
    });

  image
    .command('ls')
    .alias('list')
    .description('List images in the nodes\' stores')
    .option('--node <node>', 'one node only')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { node?: string; format: string }) => {
      const format = parseFormat(options.format);
      const images = await (await connect(globals())).call<ImageRow[]>('GET', `/v1/images${query({ node: options.node })}`);
      printList(images, [
        { header: 'REFERENCE', value: (i) => i.references.join(', ') || '<none>', shrinkable: true },
        { header: 'IMAGE ID', value: (i) => i.id.slice(7, 19) },
        { header: 'NODE', value: (i) => i.node },
        { header: 'SIZE', value: (i) => formatBytes(i.size) },
        { header: 'CONTAINERS', value: (i) => String(i.containers) },
        { header: 'PULLED', value: (i) => formatAge(i.pulledAt) },
      ], format);
    });

  image
    .command('import')
    .description('Make a one-layer image from a filesystem tar or tar.gz (a file, or - for stdin), on one node')
    .argument('<file>', 'the tar, or - to read stdin')
    .argument('[reference]', 'name it, e.g. myapp:1')
    .option('-c, --change <instruction>', 'a Dockerfile instruction for the config: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, ... (repeatable)', collect, [])
    .option('-m, --message <text>', 'a comment for the image\'s history')
    .option('--node <node>', 'the node whose store takes it (default: the first Ready node)')
    .action(async (file: string, reference: string | undefined, options: { change: string[]; message?: string; node?: string }) => {
      if (file !== '-') await stat(file).catch(() => {
        throw new Error(`${file}: no such file`);
      });
      const client = await connect(globals());
      const path = `/v1/images/import?${new URLSearchParams([
        ...options.change.map((change) => ['change', change]),
        ...(reference ? [['reference', reference]] : []),
        ...(options.message ? [['message', options.message]] : []),
        ...(options.node ? [['node', options.node]] : []),
      ]).toString()}`;
      const image = await client.upload<{ id: string; node: string; references: string[] }>('POST', path, () => (file === '-' ? process.stdin : createReadStream(file)), 'application/octet-stream');
      process.stdout.write(`${image.node}: ${image.id}${image.references.length ? ` ${image.references.join(', ')}` : ''}\n`);
    });

  image
    .command('build')
    .description('Build an image from a Dockerfile on one node, each step shown as it runs; unchanged steps come from the cache')
    .argument('<context>', 'the directory sent to the node (.dockerignore leaves files out)')
    .option('-t, --tag <reference>', 'name the image (repeatable), e.g. 198.18.0.250:5000/app:1', collect, [])
    .option('-f, --file <path>', 'the Dockerfile (default: CONTEXT/Dockerfile)')
    .option('--build-arg <NAME=value>', 'a value for an ARG (repeatable); NAME alone takes it from the environment', collect, [])
    .option('--target <stage>', 'build up to this stage')
    .option('--no-cache', 'run every step again')
    .option('--push', 'push each tag to its registry once built')
    .option('-q, --quiet', 'print the image id only')
    .option('--node <node>', 'the node that builds (default: the first Ready node)')
    .action(async (dir: string, options: { tag: string[]; file?: string; buildArg: string[]; target?: string; cache: boolean; push?: boolean; quiet?: boolean; node?: string }) => {
      const context = buildContext(dir, options.file);
      const buildArgs = options.buildArg.map((pair) => (pair.includes('=') ? pair : `${pair}=${process.env[pair] ?? ''}`));
      const search = new URLSearchParams([
        ...options.tag.map((tag) => ['tag', tag]),
        ...buildArgs.map((pair) => ['buildArg', pair]),
        ['dockerfile', context.dockerfile],
        ...(options.target ? [['target', options.target]] : []),
        ...(options.cache ? [] : [['noCache', 'true']]),
        ...(options.node ? [['node', options.node]] : []),
      ]).toString();
      const client = await connect(globals());
      const built = await client.stream<{ node: string; image: { id: string } }>('POST', `/v1/images/build?${search}`, new RawBody(() => contextArchive(context)), (event) => {
        if (options.quiet) return;
        const e = event as { phase?: string; detail?: string };
        process.stdout.write(`${e.detail ?? ''}\n`);
      });
      if (options.quiet) process.stdout.write(`${built.image.id}\n`);
      for (const tag of options.push ? options.tag : []) {
        const pushed = await client.useRegistryAuth(await loginForImage(tag)).call<{ reference: string; digest: string }>('POST', '/v1/images/push', { ref: tag, node: built.node });
        if (!options.quiet) process.stdout.write(`${pushed.reference}: digest ${pushed.digest}\n`);
      }
    });

  image
    .command('save')
    .description('Write images of one node as a tar: an OCI image layout that also carries Docker\'s manifest.json')
    .argument('<image...>', 'references or ids')
    .option('-o, --output <file>', 'write to this file, not stdout')
    .option('--node <node>', 'the node whose store holds them (default: the first that has the first)')
    .action(async (refs: string[], options: { output?: string; node?: string }) => {
      if (!options.output && process.stdout.isTTY) throw new Error('refusing to write a tar to a terminal; use -o FILE or a redirect');
      const search = new URLSearchParams([...refs.map((ref) => ['ref', ref]), ...(options.node ? [['node', options.node]] : [])]).toString();
      await (await connect(globals())).download(`/v1/images/save?${search}`, options.output ? createWriteStream(options.output) : process.stdout);
    });

  image
    .command('load')
    .description('Load images from a tar that `image save` or `docker save` wrote (OCI layout or docker-archive), on one node')
    .option('-i, --input <file>', 'read this file, not stdin')
    .option('-q, --quiet', 'print nothing')
    .option('--node <node>', 'the node whose store takes them (default: the first Ready node)')
    .action(async (options: { input?: string; quiet?: boolean; node?: string }) => {
      if (options.input) await stat(options.input).catch(() => {
        throw new Error(`${options.input}: no such file`);
      });
      if (!options.input && process.stdin.isTTY) throw new Error('give the archive with -i FILE, or on stdin');
      const loaded = await (await connect(globals())).upload<Array<{ node: string; image: { id: string }; references: string[] }>>(
        'POST', `/v1/images/load${query({ node: options.node })}`, () => (options.input ? createReadStream(options.input) : process.stdin),
      );
      if (options.quiet) return;
      for (const entry of loaded) {
        for (const reference of entry.references) process.stdout.write(`${entry.node}: Loaded image: ${reference}\n`);
        if (entry.references.length === 0) process.stdout.write(`${entry.node}: Loaded image ID: ${entry.image.id}\n`);
      }
    });

  image
    .command('tag')
    .description('Give an image another reference, on every node that has it')
    .argument('<source>', 'reference or id')
    .argument('<target>', 'new reference, e.g. 198.18.0.250:5000/myapp:2')
    .option('--node <node>', 'one node only')
    .action(async (source: string, target: string, options: { node?: string }) => {
      await (await connect(globals())).call('POST', '/v1/images/tag', { source, target, ...(options.node ? { node: options.node } : {}) });
    });

  image
    .command('history')
    .description('Show how an image was made, newest step first')
    .argument('<image>', 'reference or id')
    .option('--node <node>', 'the node whose store holds it (default: the first that has it)')
    .option('--no-trunc', 'show the steps in full')
    .option('-q, --quiet', 'ids only')
    .option('--format <format>', 'table or json', 'table')
    .action(async (ref: string, options: { node?: string; trunc: boolean; quiet?: boolean; format: string }) => {
      const format = parseFormat(options.format);
      const [first] = await (await connect(globals())).call<Array<{ node: string; result: HistoryRow[] }>>('GET', `/v1/images/${encodeURIComponent(ref)}/history${query({ node: options.node })}`);
      const rows = first?.result ?? [];
      if (options.quiet) return void process.stdout.write(rows.map((r) => `${r.id === '<missing>' ? r.id : r.id.slice(7, 19)}\n`).join(''));
      printList(rows, [
        { header: 'IMAGE', value: (r) => (r.id === '<missing>' || !options.trunc ? r.id : r.id.slice(7, 19)) },
        { header: 'CREATED', value: (r) => (r.created ? formatAge(r.created) : '') },
        { header: 'CREATED BY', value: (r) => (options.trunc && r.createdBy.length > 45 ? `${r.createdBy.slice(0, 44)}…` : r.createdBy), shrinkable: true },
        { header: 'SIZE', value: (r) => formatBytes(r.size) },
        { header: 'COMMENT', value: (r) => r.comment, shrinkable: true },
      ], format);
    });

  image
    .command('inspect')
    .description('Show an image in full, per node that has it, as JSON')
    .argument('<image>', 'reference or id')
    .option('--node <node>', 'one node only')
    .action(async (ref: string, options: { node?: string }) => {
      printObject(await (await connect(globals())).call('GET', `/v1/images/${encodeURIComponent(ref)}${query({ node: options.node })}`));
    });

  image
    .command('rm')
    .alias('remove')
    .description('Remove an image (or one of its references) from the nodes that have it; refused while a container uses it')
    .argument('<image>', 'reference or id')
    .option('--node <node>', 'one node only')
    .action(async (ref: string, options: { node?: string }) => {
      const results = await (await connect(globals())).call<Array<{ node: string; result: { untagged: string[]; deleted: string[] } }>>('DELETE', `/v1/images/${encodeURIComponent(ref)}${query({ node: options.node })}`);
      for (const r of results) {
        for (const u of r.result.untagged) process.stdout.write(`${r.node}: untagged ${u}\n`);
        for (const d of r.result.deleted) process.stdout.write(`${r.node}: deleted ${d}\n`);
      }
    });

  image
    .command('prune')
    .description('Remove every image no container uses')
    .option('--node <node>', 'one node only')
    .action(async (options: { node?: string }) => {
      const results = await (await connect(globals())).call<Array<{ node: string; result: string[] }>>('POST', `/v1/images/prune${query({ node: options.node })}`, {});
      for (const r of results) for (const id of r.result) process.stdout.write(`${r.node}: deleted ${id}\n`);
    });

  const volume = program.command('volume').description('Named volumes on the nodes');
  volume
    .command('ls')
    .alias('list')
    .description('List named volumes')
    .option('--node <node>', 'one node only')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { node?: string; format: string }) => {
      const format = parseFormat(options.format);
      const volumes = await (await connect(globals())).call<VolumeRow[]>('GET', `/v1/volumes${query({ node: options.node })}`);
      printList(volumes, [
        { header: 'DRIVER', value: (v) => v.driver },
        { header: 'VOLUME NAME', value: (v) => v.name, shrinkable: true },
        { header: 'NODE', value: (v) => v.node },
        { header: 'USED BY', value: (v) => v.containers.join(',') || '-', shrinkable: true },
      ], format);
    });
  volume
    .command('inspect')
    .description('Show a volume, per node that has it, as JSON')
    .argument('<name>')
    .option('--node <node>', 'one node only')
    .action(async (name: string, options: { node?: string }) => {
      printObject(await (await connect(globals())).call('GET', `/v1/volumes/${encodeURIComponent(name)}${query({ node: options.node })}`));
    });
  volume
    .command('rm')
    .alias('remove')
    .description('Remove a volume and its data; refused while a container uses it')
    .argument('<name>')
    .option('--node <node>', 'one node only')
    .action(async (name: string, options: { node?: string }) => {
      const results = await (await connect(globals())).call<Array<{ node: string }>>('DELETE', `/v1/volumes/${encodeURIComponent(name)}${query({ node: options.node })}`);
      for (const r of results) process.stdout.write(`${r.node}: ${name}\n`);
    });
}
