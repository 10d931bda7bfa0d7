import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { connect, type GlobalOptions } from './common.ts';

export function registerClusterCommands(program: Command, globals: () => GlobalOptions): void {
  const cluster = program.command('cluster').description('Back up and restore the cluster\'s state (an etcd snapshot)');

  cluster
    .command('backup')
    .description('Write the cluster\'s whole state (services, networks, nodes, the cluster key and tokens) to FILE as an etcd snapshot')
    .argument('<file>', 'where to write the snapshot')
    .action(async (file: string) => {
      const client = await connect(globals());
      const partial = `${file}.partial`;
      let shown = 0;
      const bytes = await client
        .download('/v1/cluster/backup', createWriteStream(partial, { mode: 0o600 }), (count) => {
          if (process.stderr.isTTY && count - shown > 1 << 20) {
            shown = count;
            process.stderr.write(`\r  ${(count / (1 << 20)).toFixed(1)} MiB`);
          }
        })
        .catch(async (error: unknown) => {
          await rm(partial, { force: true });
          throw error;
        });
      if (shown > 0) process.stderr.write('\n');
      await rename(partial, file);
      // The file holds the join tokens: it is written for its owner only.
      const { snapshotStatus } = await import('../../shared/store/snapshot.ts');
      const status = await snapshotStatus(file).catch(() => undefined);
      process.stdout.write(`Backed up the cluster to ${file} (${bytes} bytes${status ? `, ${status.totalKey} keys at revision ${status.revision}` : ''}).\n`);
      process.stdout.write('It holds the join tokens: keep it as safe as the cluster itself.\n');
    });

  cluster
    .command('restore')
    .description('Make a new etcd data directory from a backup; start etcd on it, then the managers')
    .argument('<file>', 'a snapshot written by `shoal cluster backup`')
    .requiredOption('--data-dir <dir>', 'the new (empty) etcd data directory')
    .requiredOption('--name <name>', 'this etcd member\'s name, as in --initial-cluster')
    .requiredOption('--initial-cluster <members>', 'every member: name=https://address:2380,...')
    .requiredOption('--initial-advertise-peer-urls <url>', 'this member\'s peer URL')
    .option('--initial-cluster-token <token>', 'the new etcd cluster\'s token', 'shoal-restored')
    .action(async (file: string, options: { dataDir: string; name: string; initialCluster: string; initialAdvertisePeerUrls: string; initialClusterToken: string }) => {
      const { restoreSnapshot } = await import('../../shared/store/snapshot.ts');
      const status = await restoreSnapshot(file, options);
      process.stdout.write(`Restored ${status.totalKey} keys (revision ${status.revision}) into ${options.dataDir}.\n`);
      process.stdout.write('Next: restore every other member the same way, start etcd on the new data directories, then restart the managers; the agents rejoin by themselves.\n');
    });
}
