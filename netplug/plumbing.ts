/**
 * An agent's network data plane: the drivers, which container interface each attachment
 * gets (eth0, eth1, ...), and the overlays' peers: from the leader's tables and from what the
 * other agents announce.
 */
import type { NetworkAttachment } from '../shared/containers.ts';
import { errors } from '../shared/errors.ts';
import type { NetworkDriver } from './driver.ts';
import { join } from 'node:path';
import { gatewayBridge } from './model.ts';
import type { EndpointAnnouncement, NetworkMember } from '../shared/p2p/protocol.ts';
import { type BridgeDiagnosis, BridgeDriver } from './bridge/bridge.ts';
import { HostLocalIpam } from './bridge/host-local.ts';
import { type OverlayDiagnosis, OverlayDriver } from './overlay/overlay.ts';
import { type HeardFrom, type IgnoredFrom, type LeaderTable, PeerView } from './peer-view.ts';
import type { Underlay } from './underlay.ts';
import { EgressGuard } from './egress-guard.ts';

/** An overlay's kernel state on this host, with what its other members last announced. */
export type OverlayHostState = OverlayDiagnosis & { heard: HeardFrom[]; ignored?: IgnoredFrom[] };

/** Where the plumbing tells the network's other hosts about this host's endpoints (gossip). */
export interface EndpointAnnouncer {
  /** This host's endpoints on the network now, the whole list (empty when it has left). */
  announce(networkId: string, endpoints: EndpointAnnouncement['endpoints']): void;
  /** The network's other member hosts, to stay connected to. */
  meet(members: readonly NetworkMember[]): void;
}

export class NetworkPlumbing {
  private readonly overlay: OverlayDriver;
  private readonly drivers: Record<string, NetworkDriver>;
  private readonly view = new PeerView();
  /** This host's own overlay endpoints, per network: what it announces. */
  private readonly local = new Map<string, Map<string, string>>();
  private announcer: EndpointAnnouncer | undefined;

  private readonly bridge: BridgeDriver;

  private readonly guard: EgressGuard;

  /** `guardedPorts`: control-plane ports of this deployment beyond the defaults (the agent's own, its managers'). */
  constructor(underlay: Underlay, stateDir: string, netnsPrefix: string, guardedPorts: readonly number[] = []) {
    this.guard = new EgressGuard(guardedPorts);
    this.overlay = new OverlayDriver(underlay, netnsPrefix);
    this.bridge = new BridgeDriver(new HostLocalIpam(join(stateDir, 'ipam')));
    this.drivers = { overlay: this.overlay, bridge: this.bridge };
  }

  /** Starts announcing this host's endpoints (those already there first). */
  announceThrough(announcer: EndpointAnnouncer): void {
    this.announcer = announcer;
    for (const networkId of this.local.keys()) this.announceLocal(networkId);
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
    // No task gets a way out before the control plane is shut to it.
    if (attachments.length > 0) await this.guard.ensure();
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
        if (attachment.driver === 'overlay') {
          this.addLocal(attachment);
          await this.reconcile([attachment.networkId], true);
        }
      }
    } catch (error) {
      await this.detach(done);
      throw error;
    }
    return done;
  }

  async detach(attachments: readonly NetworkAttachment[]): Promise<void> {
    for (const attachment of attachments) {
      await this.drivers[attachment.driver]?.leave(attachment).catch(() => undefined);
      if (attachment.driver === 'overlay') this.removeLocal(attachment);
    }
  }

  /** After a restart: the attachments of containers still there, so peer tables apply to them. */
  adopt(attachments: readonly NetworkAttachment[]): void {
    for (const attachment of attachments) {
      if (attachment.driver !== 'overlay') continue;
      this.overlay.adopt(attachment);
      this.addLocal(attachment);
    }
  }

  private addLocal(attachment: NetworkAttachment): void {
    let endpoints = this.local.get(attachment.networkId);
    if (!endpoints) this.local.set(attachment.networkId, (endpoints = new Map()));
    endpoints.set(attachment.address, attachment.mac);
    this.announceLocal(attachment.networkId);
  }

  private removeLocal(attachment: NetworkAttachment): void {
    const endpoints = this.local.get(attachment.networkId);
    if (!endpoints?.delete(attachment.address)) return;
    this.announceLocal(attachment.networkId);
    if (endpoints.size > 0) return;
    this.local.delete(attachment.networkId);
    this.view.forget(attachment.networkId);
    this.applied.delete(attachment.networkId);
  }

  private announceLocal(networkId: string): void {
    const endpoints = [...(this.local.get(networkId) ?? new Map<string, string>())].map(([address, mac]) => ({ address, mac }));
    this.announcer?.announce(networkId, endpoints);
  }

  /** Per network: a change to apply, and whether to read the kernel even if the peers look unchanged. */
  private readonly dirty = new Map<string, boolean>();
  /** Per network: the peers last applied, so a repeated announcement costs nothing. */
  private readonly applied = new Map<string, string>();
  private applying: Promise<void> | undefined;

  /**
   * Brings the networks' VTEPs to what the view holds. Every change goes through this one
   * queue: two appliers reading the kernel at once could each delete what the other just
   * added. Resolves once the networks asked for are applied.
   */
  private reconcile(networkIds: Iterable<string>, force: boolean): Promise<void> {
    for (const networkId of networkIds) this.dirty.set(networkId, force || (this.dirty.get(networkId) ?? false));
    this.applying ??= (async () => {
      while (this.dirty.size > 0) {
        const batch = [...this.dirty];
        this.dirty.clear();
        for (const [networkId, forced] of batch) {
          if (!this.overlay.joined().has(networkId)) continue;
          const peers = this.view.peers(networkId, Date.now());
          const key = JSON.stringify(peers);
          if (!forced && this.applied.get(networkId) === key) continue;
          await this.overlay.setPeers(networkId, peers);
          this.applied.set(networkId, key);
        }
      }
    })().finally(() => (this.applying = undefined));
    return this.applying;
  }

  /**
   * Takes the leader's full peer tables and applies them, reading each VTEP's entries
   * afresh (the anti-entropy: whatever was lost or deleted by hand comes back).
   */
  setPeers(tables: readonly LeaderTable[]): Promise<void> {
    this.view.setLeaderTables(tables);
    this.announcer?.meet(tables.flatMap((t) => t.members));
    return this.reconcile(this.overlay.joined().keys(), true);
  }

  /** Takes another agent's announcement (already known to come from that node). */
  hear(nodeId: string, announcement: EndpointAnnouncement): Promise<void> {
    if (!this.view.hear(nodeId, announcement, Date.now())) return Promise.resolve();
    return this.reconcile([announcement.networkId], false);
  }

  async diagnose(networkId: string): Promise<OverlayHostState | BridgeDiagnosis | undefined> {
    const overlay = await this.overlay.diagnose(networkId);
    if (overlay) return { ...overlay, heard: this.view.heardFrom(networkId, Date.now()), ignored: this.view.ignoredFrom(networkId, Date.now()) };
    return this.bridge.diagnose(networkId);
  }
}
