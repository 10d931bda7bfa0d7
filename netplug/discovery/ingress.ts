/**
 * The routing mesh on one host (Docker's ingress-sbox): a namespace of its own with an
 * endpoint on the ingress overlay (the address the leader leased for this host) and one on the
 * gateway bridge. The host sends each ingress-mode port to the sandbox's gateway-bridge
 * address; the sandbox spreads it over the service's tasks on the ingress network, whatever
 * host they run on, keeping the client's address; the task routes its replies back through the
 * sandbox that brought the connection. Every host answers, also one with no task of the service.
 */
import { createNetns, deleteNetns, setNetnsSysctl } from '../../native/netns.ts';
import type { NetworkAttachment } from '../../shared/containers.ts';
import type { Logger } from '../../shared/log.ts';
import { SerialPasses } from '../../shared/concurrency.ts';
import type { IngressTable } from '../../shared/p2p/protocol.ts';
import type { NetworkPlumbing } from '../plumbing.ts';
import { gatewayBridge } from '../model.ts';
import type { ServiceDiscovery } from './discovery.ts';
import { applyTable, ingressRules } from './rules.ts';

export class IngressMesh {
  private plumbed: NetworkAttachment[] = [];
  private wanted: IngressTable | undefined;
  private readonly passes: SerialPasses;

  constructor(
    private readonly plumbing: NetworkPlumbing,
    private readonly discovery: ServiceDiscovery,
    /** The sandbox's namespace name (under the agent's prefix, so the lab sweeps it). */
    readonly netns: string,
    private readonly log: Logger,
  ) {
    this.passes = new SerialPasses(() => this.reconcile(), (error) => this.log.warn('routing mesh not updated', { error: String(error) }));
  }

  /** Brings the mesh to the table (none: the sandbox goes); changes queue behind each other. */
  update(table: IngressTable | undefined): void {
    this.wanted = table;
    this.passes.request();
  }

  /** Resolves once the mesh matches what was asked last. */
  settled(): Promise<void> {
    return this.passes.settled();
  }

  private async reconcile(): Promise<void> {
    const table = this.wanted;
    const current = this.plumbed[0];
    if (current && (!table || current.address !== table.attachment.address || current.networkId !== table.attachment.networkId)) await this.tearDown();
    if (!table) return;
    if (this.plumbed.length === 0) {
      await deleteNetns(this.netns).catch(() => undefined);
      await createNetns(this.netns);
      try {
        this.plumbed = await this.plumbing.attach([table.attachment], this.netns);
        await setNetnsSysctl(this.netns, 'net/ipv4/ip_forward', '1');
      } catch (error) {
        await this.tearDown();
        throw error;
      }
    }
    const gateway = this.plumbed.find((a) => a.networkId === gatewayBridge.networkId);
    if (!gateway) throw new Error('the ingress sandbox has no gateway-bridge endpoint');
    await applyTable(ingressRules(table.ports), this.netns);
    await this.discovery.publishMesh(table.ports.map((p) => ({ protocol: p.protocol, publishedPort: p.publishedPort, to: gateway.address, toPort: p.publishedPort })));
  }

  private async tearDown(): Promise<void> {
    await this.discovery.publishMesh([]);
    await this.plumbing.detach(this.plumbed, this.netns);
    this.plumbed = [];
    await deleteNetns(this.netns).catch(() => undefined);
  }

  /** The sandbox's endpoints now (for diagnosis). */
  endpoints(): readonly NetworkAttachment[] {
    return this.plumbed;
  }
}
