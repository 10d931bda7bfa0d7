import type { Command } from 'commander';
import { formatAge, formatBytes } from '../duration.ts';
import { parseFormat, printList, printObject } from '../output.ts';
import { connect, type GlobalOptions, query } from './common.ts';

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
      const results = await (await connect(globals())).stream<Array<{ node: string; image: { id: string } }>>('POST', '/v1/images/pull', { ref, ...(options.node ? { node: options.node } : {}) }, progressLine);
      for (const r of results) process.stdout.write(`${r.node}: ${r.image.id}\n`);
    });

  image
    .command('push')
    .description('Push an image from a node\'s store to its registry (or to TARGET)')
    .argument('<image>', 'reference or id in the store')
    .argument('[target]', 'push under this reference instead')
    .option('--node <node>', 'the node whose store holds it')
    .action(async (ref: string, target: string | undefined, options: { node?: string }) => {
      const result = await (await connect(globals())).call<{ reference: string; digest: string }>('POST', '/v1/images/push', { ref, ...(target ? { target } : {}), ...(options.node ? { node: options.node } : {}) });
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
