import { Transform } from 'node:stream';

/** A pass-through stream that calls `onChunk` for every chunk: for hashes, progress and idle timers. */
export function watching(onChunk: (chunk: Buffer) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onChunk(chunk);
      callback(null, chunk);
    },
  });
}

/** A stream read whole (stdin for `-`), stopping once more than `limitBytes` have come: the caller says that is too much. */
export async function readAll(stream: AsyncIterable<Buffer | string>, limitBytes = Number.POSITIVE_INFINITY): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    chunks.push(bytes);
    size += bytes.length;
    if (size > limitBytes) break;
  }
  return Buffer.concat(chunks);
}
