import type { Stream } from '@libp2p/interface';
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils';
import type { z } from 'zod';
import { describeIssues } from '../schemas.ts';

const maxMessageBytes = 4 * 1024 * 1024;

/** JSON messages, one per length-prefixed frame, each validated against a schema on receipt. */
export class FramedChannel<In extends z.ZodType, Out> {
  private readonly lp: LengthPrefixedStream<Stream>;

  constructor(
    readonly stream: Stream,
    private readonly incoming: In,
  ) {
    this.lp = lpStream(stream, { maxDataLength: maxMessageBytes });
  }

  async send(message: Out, signal?: AbortSignal): Promise<void> {
    await this.lp.write(new TextEncoder().encode(JSON.stringify(message)), { signal });
  }

  async receive(signal?: AbortSignal): Promise<z.infer<In>> {
    const frame = await this.lp.read({ signal });
    const parsed = this.incoming.safeParse(JSON.parse(new TextDecoder().decode(frame.subarray())));
    if (!parsed.success) throw new Error(`malformed message from ${this.stream.protocol ?? 'peer'}: ${describeIssues(parsed.error)}`);
    return parsed.data;
  }

  async close(): Promise<void> {
    await this.stream.close().catch(() => this.stream.abort(new Error('close failed')));
  }
}
