/**
 * A task's secrets and configs as files: on a tmpfs mounted for the container alone (so a
 * secret never reaches the host's disk), each file with its owner and mode, then bound
 * read-only at its target inside the container.
 */
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../../shared/exec.ts';
import { unmount } from '../../../native/mounts.ts';
import type { TaskFile } from '../../../shared/secrets.ts';

export interface FileMount {
  target: string;
  source: string;
}

export async function writeTaskFiles(dir: string, files: readonly TaskFile[]): Promise<FileMount[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const bytes = files.reduce((sum, f) => sum + Buffer.byteLength(f.data, 'base64'), 0);
  await run('mount', ['-t', 'tmpfs', '-o', `size=${bytes + 1024 * 1024},mode=0700,nosuid,nodev,noexec`, 'tmpfs', dir]);
  try {
    const mounts: FileMount[] = [];
    for (const [index, file] of files.entries()) {
      const source = join(dir, String(index));
      await writeFile(source, Buffer.from(file.data, 'base64'), { mode: 0o600 });
      await chown(source, file.uid, file.gid);
      await chmod(source, file.mode);
      mounts.push({ target: file.target, source });
    }
    return mounts;
  } catch (error) {
    await unmount(dir).catch(() => undefined);
    throw error;
  }
}
