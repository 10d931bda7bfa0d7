import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../../shared/errors.ts';

export interface VolumeRecord {
  name: string;
  driver: 'local';
  mountpoint: string;
  createdAt: string;
}

/** Named volumes of one node: a directory each, created on first use, kept until removed. */
export class VolumeStore {
  constructor(private readonly root: string) {}

  private dir(name: string): string {
    return join(this.root, name);
  }

  async ensure(name: string): Promise<string> {
    const data = join(this.dir(name), '_data');
    await mkdir(data, { recursive: true });
    return data;
  }

  async list(): Promise<VolumeRecord[]> {
    const names = await readdir(this.root).catch(() => []);
    return Promise.all(names.sort().map((name) => this.inspect(name)));
  }

  async inspect(name: string): Promise<VolumeRecord> {
    const dir = this.dir(name);
    if (!existsSync(dir)) throw errors.notFound('volume', name, 'list volumes with `shoal volume ls`');
    const info = await stat(dir);
    return { name, driver: 'local', mountpoint: join(dir, '_data'), createdAt: info.birthtime.toISOString() };
  }

  async remove(name: string, usedBy: string[]): Promise<void> {
    await this.inspect(name);
    if (usedBy.length > 0) throw errors.conflict(`volume "${name}" is in use by container(s) ${usedBy.join(', ')}`, 'remove those containers first');
    await rm(this.dir(name), { recursive: true, force: true });
  }
}
