/**
 * The agents' gossip of overlay endpoints, as libnetwork's NetworkDB: one gossipsub topic per
 * network; each agent announces its own endpoints there (the whole list, when it changes and
 * every 10 s) and hears the others'. The leader names each network's member hosts; the agent
 * keeps a connection to each, over which gossipsub forms its mesh.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import type { Message, SubscriptionChangeData } from '@libp2p/gossipsub';
import { multiaddr } from '@multiformats/multiaddr';
import type { EndpointAnnouncer } from '../netplug/plumbing.ts';
import type { Logger } from '../shared/log.ts';
import type { GossipingP2p } from '../shared/p2p/node.ts';
import { EndpointAnnouncement, type NetworkMember, networkTopic } from '../shared/p2p/protocol.ts';
import { inBackground } from '../shared/concurrency.ts';

/** Each agent repeats its announcements this often: a lost message is healed by the next. */
const repeatPeriodMs = 10_000;
const dialTimeoutMs = 5_000;

export class EndpointGossip implements EndpointAnnouncer {
  private readonly own = new Map<string, EndpointAnnouncement['endpoints']>();
  private readonly topics = new Map<string, string>();
  private readonly dialling = new Set<string>();
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly p2p: GossipingP2p,
    private readonly onHeard: (nodeId: string, announcement: EndpointAnnouncement) => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.p2p.services.pubsub.addEventListener('message', this.onMessage);
    this.p2p.services.pubsub.addEventListener('subscription-change', this.onSubscriptionChange);
    this.timer = setInterval(() => {
      for (const [networkId, endpoints] of this.own) inBackground(this.publish(networkId, endpoints), this.failed);
    }, repeatPeriodMs);
  }

  announce(networkId: string, endpoints: EndpointAnnouncement['endpoints']): void {
    const topic = networkTopic(networkId);
    if (endpoints.length > 0) {
      this.own.set(networkId, endpoints);
      if (!this.topics.has(topic)) {
        this.topics.set(topic, networkId);
        this.p2p.services.pubsub.subscribe(topic);
      }
      inBackground(this.publish(networkId, endpoints), this.failed);
      return;
    }
    // The last endpoint left: say so, then stop following the network.
    inBackground(this.publish(networkId, []), this.failed);
    this.own.delete(networkId);
    this.topics.delete(topic);
    this.p2p.services.pubsub.unsubscribe(topic);
  }

  /** Keeps a connection to every member host: gossipsub only talks over open connections. */
  meet(members: readonly NetworkMember[]): void {
    for (const member of members) {
      if (member.nodeId === this.p2p.peerId.toString() || this.dialling.has(member.nodeId) || member.p2pAddrs.length === 0) continue;
      if (this.p2p.getConnections(peerIdFromString(member.nodeId)).length > 0) continue;
      this.dialling.add(member.nodeId);
      void this.p2p
        .dial(member.p2pAddrs.map((a) => multiaddr(a)), { signal: AbortSignal.timeout(dialTimeoutMs) })
        .catch((error: unknown) => this.log.warn('could not reach a member host of a network', { node: member.nodeId, host: member.host, error: String(error) }))
        .finally(() => this.dialling.delete(member.nodeId));
    }
  }

  /** Publishes this host's endpoints on the network; resolves to the peers it reached. */
  private async publish(networkId: string, endpoints: EndpointAnnouncement['endpoints']): Promise<string[]> {
    // Milliseconds, so an agent that restarts goes on after its last announcement.
    this.seq = Math.max(Date.now(), this.seq + 1);
    const announcement: EndpointAnnouncement = { networkId, seq: this.seq, endpoints };
    try {
      const { recipients } = await this.p2p.services.pubsub.publish(networkTopic(networkId), new TextEncoder().encode(JSON.stringify(announcement)));
      return recipients.map((peer) => peer.toString());
    } catch (error) {
      this.log.warn('endpoint announcement not sent', { networkId, error: String(error) });
      return [];
    }
  }

  private readonly onMessage = (event: CustomEvent<Message>): void => {
    const message = event.detail;
    const networkId = this.topics.get(message.topic);
    // Signed messages only: the signer is the node the endpoints belong to.
    if (message.type !== 'signed' || networkId === undefined) return;
    let parsed: ReturnType<typeof EndpointAnnouncement.safeParse>;
    try {
      parsed = EndpointAnnouncement.safeParse(JSON.parse(new TextDecoder().decode(message.data)));
    } catch {
      return;
    }
    if (!parsed.success || parsed.data.networkId !== networkId) return;
    this.onHeard(message.from.toString(), parsed.data);
  };

  /**
   * A host that just subscribed to one of our networks hears our endpoints now, not at the
   * next repeat. Its subscription can arrive before our own stream to it is open, so the
   * announcement is tried again until it reaches that host (for a second at most).
   */
  private readonly onSubscriptionChange = (event: CustomEvent<SubscriptionChangeData>): void => {
    const peer = event.detail.peerId.toString();
    for (const { topic, subscribe } of event.detail.subscriptions) {
      const networkId = this.topics.get(topic);
      if (!subscribe || networkId === undefined) continue;
      inBackground((async () => {
        for (let attempt = 0; attempt < 20; attempt++) {
          const endpoints = this.own.get(networkId);
          if (!endpoints || (await this.publish(networkId, endpoints)).includes(peer)) return;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })(), this.failed);
    }
  };

  private readonly failed = (error: unknown): void => this.log.warn('endpoint announcement failed', { error: String(error) });

  stop(): void {
    clearInterval(this.timer);
    this.p2p.services.pubsub.removeEventListener('message', this.onMessage);
    this.p2p.services.pubsub.removeEventListener('subscription-change', this.onSubscriptionChange);
  }
}
