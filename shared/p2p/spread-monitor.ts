import type { Connection, Libp2p } from '@libp2p/interface';
import { inBackground } from '../concurrency.ts';

/** What libp2p's own monitor asks for; no Shoal peer serves it, and an unsupported answer proves the peer alive. */
const pingProtocol = '/ipfs/ping/1.0.0';
/** A check that has not been answered in this long finds the connection dead (libp2p's least timeout). */
const answerMs = 5_000;

/**
 * A dead-connection check, in place of libp2p's own monitor, which checks every connection in
 * one tick each 10 s from the peer's start:
 * - on a hub (a manager holding every agent's connection) that is 1,000 streams opened at once,
 *   a 60-100 ms stall of its event loop every 10 s, under which API calls and placements wait
 *   (measured, the p99 of a steady run of creates). This one checks each connection as often,
 *   a fortieth of them every 250 ms. Checking matters on the hub: an agent whose link was cut
 *   reconnects, and the manager's end of its old connection, dead but open, would otherwise
 *   take the manager's next call to that node.
 * - agents that start together (a rack powered on, the scale simulation) each check their
 *   connection to the manager at the same moment of every period: 1,000 of them opened their
 *   streams on the manager within a second and a half every 10 s, and the slowest creates of
 *   a steady run fell in those seconds (measured). Each peer starts at a random tick, so
 *   their checks spread over the period whenever they started.
 */
export class SpreadConnectionMonitor {
  private timer: NodeJS.Timeout | undefined;
  private tick: number;

  constructor(
    private readonly node: Pick<Libp2p, 'getConnections'>,
    /** Each connection is checked this often, as libp2p's own monitor does. */
    private readonly periodMs = 10_000,
    /** The period's ticks, each checking its share of the connections. */
    private readonly slices = 40,
  ) {
    this.tick = Math.floor(Math.random() * slices);
  }

  start(): void {
    this.timer ??= setInterval(() => this.checkSlice(), this.periodMs / this.slices);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private checkSlice(): void {
    const tick = this.tick;
    this.tick = (tick + 1) % this.slices;
    // A connection's place in the list moves as others come and go, so one may be checked a
    // tick early or late: each is still checked about once a period.
    const connections = this.node.getConnections();
    // check() answers every outcome itself; nothing is left to report.
    for (let i = tick; i < connections.length; i += this.slices) inBackground(check(connections[i]!), () => undefined);
  }
}

/** Opens a check stream; a peer that answers (even "unsupported") is alive, one that does not in time is aborted. */
export async function check(connection: Connection, timeoutMs = answerMs): Promise<'alive' | 'aborted' | 'closed'> {
  if (connection.status !== 'open') return 'closed';
  try {
    const stream = await connection.newStream(pingProtocol, { signal: AbortSignal.timeout(timeoutMs), runOnLimitedConnection: true });
    stream.abort(new Error('connection check done'));
    return 'alive';
  } catch (error) {
    if ((error as Error).name === 'UnsupportedProtocolError') return 'alive';
    if (connection.status !== 'open') return 'closed';
    connection.abort(error as Error);
    return 'aborted';
  }
}
