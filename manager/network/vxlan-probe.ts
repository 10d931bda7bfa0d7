/**
 * `network trace`'s VXLAN probe, run from the leader: both hosts watch for a fresh nonce, the
 * source's agent sends the probe frame to the destination's VTEP, then both say what they saw
 * (the destination: the request's way in and the reply's way out; the source: the reply's way
 * in). Its failures are the trace's to report, never thrown.
 */
import { randomInt } from 'node:crypto';
import type { NodeObject } from '../../shared/schemas.ts';
import type { ProbeSighting } from '../../netplug/vxlan/prober.ts';
import type { EngineClient } from '../engine/client.ts';

export interface VxlanProbeEnd {
  node: NodeObject;
  address: string;
  mac: string;
}

export interface VxlanProbeResult {
  nonce: number;
  vni: number;
  /** Bytes of the VXLAN payload sent. */
  bytes?: number;
  destination?: ProbeSighting;
  source?: ProbeSighting;
  error?: string;
}

/** How long each host waits for the last stage of its side to count. */
const waitMs = 800;

export async function runVxlanProbe(engines: EngineClient, networkId: string, vni: number, from: VxlanProbeEnd, to: VxlanProbeEnd, size?: number): Promise<VxlanProbeResult> {
  const nonce = randomInt(1, 0xffffffff);
  const result: VxlanProbeResult = { nonce, vni };
  const watch = (end: VxlanProbeEnd) => engines.call(end.node, 'network.probe.watch', { networkId, address: end.address, nonce });
  const read = (end: VxlanProbeEnd, last: string) => engines.call<ProbeSighting>(end.node, 'network.probe.read', { nonce, last, waitMs });
  try {
    await Promise.all([watch(to), watch(from)]);
    const sent = await engines.call<{ bytes: number }>(from.node, 'network.probe.send', {
      networkId, from: { address: from.address, mac: from.mac }, to: { address: to.address, mac: to.mac }, vtep: to.node.description.address, nonce, ...(size !== undefined ? { size: Math.max(4, size) } : {}),
    });
    result.bytes = sent.bytes;
  } catch (error) {
    result.error = (error as Error).message;
  }
  // Read (and so remove) both watches even after a failure; an agent that never made one says so.
  const [destination, source] = await Promise.allSettled([read(to, 'from-endpoint'), read(from, 'in-sandbox')]);
  if (result.error) return result;
  if (destination.status === 'fulfilled') result.destination = destination.value;
  else result.error = destination.reason instanceof Error ? destination.reason.message : String(destination.reason);
  if (source.status === 'fulfilled') result.source = source.value;
  else result.error ??= source.reason instanceof Error ? source.reason.message : String(source.reason);
  return result;
}
