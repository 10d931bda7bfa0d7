import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../../shared/errors.ts';
import { formatIpv4, hostRange, parseIpv4, parsePrefix } from './ipv4.ts';

/**
 * Host-local IPAM for local-scope networks, as CNI's host-local plugin: the addresses one host
 * hands out on a network, kept in a file per network so a restarted agent does not give one
 * twice. One agent process owns the directory; calls are serialised.
 */
export class HostLocalIpam {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly dir: string) {}

  private file(networkId: string): string {
    return join(this.dir, `${networkId}.json`);
  }

  private async read(networkId: string): Promise<Record<string, string>> {
    return JSON.parse(await readFile(this.file(networkId), 'utf8').catch(() => '{}')) as Record<string, string>;
  }

  private async write(networkId: string, taken: Record<string, string>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await writeFile(`${this.file(networkId)}.tmp`, JSON.stringify(taken));
    await rename(`${this.file(networkId)}.tmp`, this.file(networkId));
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** The lowest free address of the subnet for `owner` (the gateway is never handed out). */
  allocate(networkId: string, subnet: string, gateway: string, owner: string): Promise<string> {
    return this.serial(async () => {
      const taken = await this.read(networkId);
      const held = Object.entries(taken).find(([, who]) => who === owner);
      if (held) return held[0];
      const range = hostRange(parsePrefix(subnet));
      const skip = parseIpv4(gateway);
      for (let n = range.first; n <= range.last; n++) {
        const address = formatIpv4(n);
        if (n === skip || taken[address]) continue;
        taken[address] = owner;
        await this.write(networkId, taken);
        return address;
      }
      throw errors.conflict(`local network ${networkId.slice(0, 12)} has no free address left in ${subnet} on this host`);
    });
  }

  release(networkId: string, owner: string): Promise<void> {
    return this.serial(async () => {
      const taken = await this.read(networkId);
      const next = Object.fromEntries(Object.entries(taken).filter(([, who]) => who !== owner));
      if (Object.keys(next).length !== Object.keys(taken).length) await this.write(networkId, next);
    });
  }
}
