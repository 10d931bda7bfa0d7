/**
 * Peer ids of removed nodes. `node rm` writes one with the removal, so a removed node can never
 * come back under the same identity, even with a current join token: managers hang up on it
 * when it is revoked and refuse its joins and sessions from then on. A node that
 * is to return is joined afresh, with a new identity (an emptied state directory), as in Swarm.
 */
import { keys } from '../shared/keys.ts';
import type { Logger } from '../shared/log.ts';
import type { Store, StoreWatch } from '../shared/store/store.ts';

export interface RevokedPeer {
  peerId: string;
  hostname: string;
  revokedAt: string;
}

export class RevokedPeers {
  private readonly revoked = new Set<string>();
  private readonly listeners = new Set<(peerId: string) => void>();
  private watch: StoreWatch | undefined;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** Watches first, then reads, so no revocation falls between the two. */
  async start(): Promise<void> {
    this.watch = await this.store.watch(keys.revokedPeers, (event) => {
      const peerId = event.key.slice(keys.revokedPeers.length);
      if (event.type === 'delete') return void this.revoked.delete(peerId);
      this.revoked.add(peerId);
      for (const listener of this.listeners) listener(peerId);
    });
    for (const { value } of await this.store.list<RevokedPeer>(keys.revokedPeers)) this.revoked.add(value.peerId);
    this.log.debug('revoked peers loaded', { count: this.revoked.size });
  }

  has(peerId: string): boolean {
    return this.revoked.has(peerId);
  }

  /** Calls `listener` with each peer id revoked from now on. */
  onRevoke(listener: (peerId: string) => void): void {
    this.listeners.add(listener);
  }

  async stop(): Promise<void> {
    await this.watch?.close();
  }
}
