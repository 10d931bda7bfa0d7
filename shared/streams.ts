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
