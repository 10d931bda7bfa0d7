import { readdir, rm } from 'node:fs/promises';
import { run } from '../exec.ts';

/** What `etcdctl snapshot status` says of a snapshot file. */
export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

const etcdctl = (args: string[]) => run('etcdctl', args, { timeoutMs: 120_000 }).catch((error: Error) => {
  throw new Error(`etcdctl ${args[0]} ${args[1]} failed: ${error.message.trim()}`);
});

/** Reads a snapshot's revision and key count; throws when the file is not an etcd snapshot. */
export async function snapshotStatus(file: string): Promise<SnapshotStatus> {
  const text = await etcdctl(['snapshot', 'status', file, '-w', 'json']);
  return JSON.parse(text) as SnapshotStatus;
}

export interface RestoreOptions {
  dataDir: string;
  name: string;
  initialCluster: string;
  initialAdvertisePeerUrls: string;
  initialClusterToken: string;
}

/**
 * Writes a new etcd data directory from a snapshot (etcdctl checks its checksum): start that
 * member's etcd on it, then the managers. Refuses a data directory that holds anything.
 */
export async function restoreSnapshot(file: string, options: RestoreOptions, checked?: SnapshotStatus): Promise<SnapshotStatus> {
  // A caller restoring one file into several members checks it once and passes what it read.
  const status = checked ?? (await snapshotStatus(file));
  const present = await readdir(options.dataDir).catch(() => [] as string[]);
  if (present.length > 0) throw new Error(`${options.dataDir} is not empty; restore into a new directory (or move this one aside first)`);
  await rm(options.dataDir, { recursive: true, force: true });
  await etcdctl([
    'snapshot', 'restore', file,
    '--data-dir', options.dataDir,
    '--name', options.name,
    '--initial-cluster', options.initialCluster,
    '--initial-advertise-peer-urls', options.initialAdvertisePeerUrls,
    '--initial-cluster-token', options.initialClusterToken,
  ]);
  return status;
}
