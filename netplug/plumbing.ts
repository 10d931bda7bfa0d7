/**
 * An agent's network data plane: the drivers, which container interface each attachment
 * gets (eth0, eth1, ...), and the peer tables the leader sends.
 */
import type { NetworkAttachment } from '../shared/containers.ts';
import { errors } from '../shared/errors.ts';
import type { NetworkDriver, Peer } from './driver.ts';
import { join } from 'node:path';
import { gatewayBridge } from './model.ts';
import { BridgeDriver } from './bridge/bridge.ts';
import { HostLocalIpam } from './bridge/host-local.ts';
import { OverlayDriver } from './overlay/overlay.ts';
import type { Underlay } from './underlay.ts';

export interface PeerTable {
  networkId: string;
  peers: Peer[];
}

export class NetworkPlumbing {
  private readonly overlay: OverlayDriver;
  private readonly drivers: Record<string, NetworkDriver>;
  /** The leader's last tables: a network joined after they came gets its peers from them. */
  private tables = new Map<string, Peer[]>();

  private readonly bridge: BridgeDriver;

  constructor(underlay: Underlay, stateDir: string) {
    this.overlay = new OverlayDriver(underlay);
    this.bridge = new BridgeDriver(new HostLocalIpam(join(stateDir, 'ipam')));
    this.drivers = { overlay: this.overlay, bridge: this.bridge };
  }

  private driver(name: string): NetworkDriver {
    const driver = this.drivers[name];
    if (!driver) throw errors.invalid(`this agent has no data plane for driver "${name}" yet`);
    return driver;
  }

  /**
   * Joins the container's namespace to each network in order: eth0, eth1, ... Returns the
   * attachments as plumbed: local networks get their address here, from host-local IPAM.
   */
  async attach(requestedAttachments: readonly NetworkAttachment[], netns: string, options: { firstIndex?: number; gateway?: boolean } = {}): Promise<NetworkAttachment[]> {
    const done: NetworkAttachment[] = [];
    const attachments = [...requestedAttachments];
    // Egress for overlays, as Docker's docker_gwbridge: unless a bridge network already gives
    // a way out, or every overlay is internal.
    const needsGateway =
      options.gateway !== false && attachments.some((a) => a.driver === 'overlay' && !a.internal) && !attachments.some((a) => a.driver === 'bridge' && !a.internal);
    if (needsGateway && attachments[0]) {
      attachments.push({
        networkId: gatewayBridge.networkId, networkName: gatewayBridge.name, driver: 'bridge', subnet: gatewayBridge.subnet, gateway: gatewayBridge.gateway,
        address: '', mac: '', internal: false, icc: false, owner: attachments[0].owner,
      });
    }
    try {
      for (const [index, requested] of attachments.entries()) {
        const driver = this.driver(requested.driver);
        const attachment = requested.address ? requested : await this.bridge.address(requested);
        await driver.join(attachment, netns, `eth${(options.firstIndex ?? 0) + index}`);
        done.push(attachment);
        await driver.setPeers?.(attachment.networkId, this.tables.get(attachment.networkId) ?? []);
      }
    } catch (error) {
      await this.detach(done);
      throw error;
    }
    return done;
  }

  async detach(attachments: readonly NetworkAttachment[]): Promise<void> {
    for (const attachment of attachments) await this.drivers[attachment.driver]?.leave(attachment).catch(() => undefined);
  }

  /** After a restart: the attachments of containers still there, so peer tables apply to them. */
  adopt(attachments: readonly NetworkAttachment[]): void {
    for (const attachment of attachments) if (attachment.driver === 'overlay') this.overlay.adopt(attachment);
  }

  private applying: Promise<void> | undefined;
  private dirtyTables = false;

  /**
   * Takes the leader's full peer tables (a joined network absent from them has no peers) and
   * applies them. Tables apply one after another; when several arrive meanwhile, only the
   * latest is applied.
   */
  setPeers(tables: readonly PeerTable[]): Promise<void> {
    this.tables = new Map(tables.map((t) => [t.networkId, t.peers]));
    this.dirtyTables = true;
    this.applying ??= (async () => {
      while (this.dirtyTables) {
        this.dirtyTables = false;
        for (const networkId of this.overlay.joined().keys()) await this.overlay.setPeers(networkId, this.tables.get(networkId) ?? []);
      }
    })().finally(() => (this.applying = undefined));
    return this.applying;
  }

  async diagnose(networkId: string): Promise<unknown> {
    return (await this.overlay.diagnose(networkId)) ?? (await this.bridge.diagnose(networkId));
  }
}
