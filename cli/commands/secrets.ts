import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { ShoalError } from '../../shared/errors.ts';
import { type FileObjectKind, type FileObjectView, maxFileObjectBytes } from '../../shared/secrets.ts';
import { formatAge } from '../duration.ts';
import { checkInspectFormat, parseFormat, printList, printObject } from '../output.ts';
import { collect, connect, type GlobalOptions, parseLabels, getEach } from './common.ts';
import { readAll } from '../../shared/streams.ts';
import { keep, labelMatches, parseFilters } from '../filters.ts';
import { refuseFlags } from '../unsupported.ts';

/** The bytes of FILE, or of stdin for "-", bounded by the kind's limit. */
async function readData(kind: FileObjectKind, file: string): Promise<Buffer> {
  const data = file === '-'
    ? await readAll(process.stdin, maxFileObjectBytes[kind])
    : await readFile(file).catch((error: NodeJS.ErrnoException) => {
      throw new ShoalError('invalid', 'unreadable_file', `${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
    });
  if (data.length > maxFileObjectBytes[kind]) throw new ShoalError('invalid', 'too_large', `a ${kind} holds at most ${maxFileObjectBytes[kind] / 1024} KiB`);
  return data;
}

/** `shoal secret` and `shoal config`: the same verbs as Docker's, for each kind. */
export function registerFileObjectCommands(program: Command, globals: () => GlobalOptions): void {
  for (const kind of ['secret', 'config'] as const) {
    const what = kind === 'secret' ? 'Secrets: sealed in the store, given to tasks on a tmpfs at /run/secrets' : 'Configs: files given to tasks, read-only';
    const command = program.command(kind).description(what);

    const create = command
      .command('create')
      .description(`Create a ${kind} from a file, or from stdin with -`)
      .argument('<name>')
      .argument('<file>', 'the file, or - for stdin')
      .option('-l, --label <key=value>', `${kind} label (repeatable)`, collect, []);
    refuseFlags(create, [
      ...(kind === 'secret' ? [{ flag: '-d, --driver <driver>', reason: 'secrets are kept by the cluster (sealed in its store); there are no secret store plugins' }] : []),
      { flag: '--template-driver <driver>', reason: `${kind}s are given to tasks as they are, not as templates` },
    ])
      .action(async (name: string, file: string, options: { label: string[] }) => {
        const data = await readData(kind, file);
        const created = await (await connect(globals())).call<FileObjectView>('POST', `/v1/${kind}s`, { name, labels: parseLabels(options.label), data: data.toString('base64') });
        process.stdout.write(`${created.id}\n`);
      });

    command
      .command('ls')
      .alias('list')
      .description(`List ${kind}s`)
      .option('-f, --filter <key=value>', 'id=, label=, name= (repeatable)', collect, [])
      .option('-q, --quiet', 'only ids')
      .option('--format <format>', 'table or json', 'table')
      .action(async (options: { filter: string[]; quiet?: boolean; format: string }) => {
        const format = parseFormat(options.format);
        const filters = parseFilters(options.filter, ['id', 'label', 'name']);
        const objects = keep(await (await connect(globals())).call<FileObjectView[]>('GET', `/v1/${kind}s`), filters, {
          id: (o, v) => o.id.startsWith(v),
          label: (o, v) => labelMatches(o.spec.labels, v),
          name: (o, v) => o.spec.name.startsWith(v),
        });
        if (options.quiet) return void process.stdout.write(objects.map((o) => `${o.id}\n`).join(''));
        printList(objects, [
          { header: 'ID', value: (o) => o.id.slice(0, 12) },
          { header: 'NAME', value: (o) => o.spec.name, shrinkable: true },
          { header: 'SIZE', value: (o) => `${o.size}B` },
          { header: 'CREATED', value: (o) => formatAge(o.createdAt) },
          { header: 'LABELS', value: (o) => Object.entries(o.spec.labels).map(([k, v]) => `${k}=${v}`).join(','), shrinkable: true },
        ], format);
      });

    command
      .command('inspect')
      .description(kind === 'secret' ? 'Show secrets as JSON (never their data)' : 'Show configs as JSON, data in base64')
      .argument('<name...>')
      .option('--pretty', 'a readable summary instead of JSON')
      .option('-f, --format <format>', 'json (the default)')
      .action(async (names: string[], options: { pretty?: boolean; format?: string }) => {
        checkInspectFormat(options.format, true);
        const client = await connect(globals());
        const found = await getEach<FileObjectView>(client, `/v1/${kind}s`, names);
        if (!options.pretty) return printObject(found);
        process.stdout.write(found.map((o) => [
          `ID:              ${o.id}`,
          `Name:            ${o.spec.name}`,
          ...(Object.keys(o.spec.labels).length ? ['Labels:', ...Object.entries(o.spec.labels).map(([k, v]) => ` - ${k}=${v}`)] : []),
          `Size:            ${o.size} bytes`,
          `Created at:      ${o.createdAt}`,
          ...(o.data !== undefined ? ['Data:', Buffer.from(o.data, 'base64').toString('utf8').replace(/\n$/, '')] : []),
        ].join('\n')).join('\n\n') + '\n');
      });

    command
      .command('rm')
      .alias('remove')
      .description(`Remove ${kind}s that no service uses`)
      .argument('<name...>')
      .action(async (names: string[]) => {
        const client = await connect(globals());
        for (const name of names) {
          const removed = await client.call<FileObjectView>('DELETE', `/v1/${kind}s/${encodeURIComponent(name)}`);
          process.stdout.write(`${removed.spec.name}\n`);
        }
      });
  }
}
