/**
 * The framing of an interactive session (`run -it`, `exec -it`, `attach`) between the CLI and a
 * manager: one HTTP request whose body carries the keyboard and window sizes while its answer
 * carries the terminal's output, both as frames of [type: 1 byte][length: 4 bytes][payload].
 */
import { z } from 'zod';
import { ExecRequest } from './containers.ts';

export const sessionContentType = 'application/vnd.shoal.session';

export const frameTypes = { data: 1, resize: 2, open: 3, exit: 4, error: 5 } as const;
export type FrameType = (typeof frameTypes)[keyof typeof frameTypes];

export interface Frame {
  type: FrameType;
  payload: Buffer;
}

/** What a session is: attaching to a container's terminal, or a command run in one of its own. */
export const SessionOpen = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('attach') }),
  z.object({ kind: z.literal('exec'), exec: ExecRequest }),
]);
export type SessionOpen = z.infer<typeof SessionOpen>;

export const WindowSize = z.object({ rows: z.number().int().min(1).max(10_000), cols: z.number().int().min(1).max(10_000) });
export type WindowSize = z.infer<typeof WindowSize>;

/** A frame's size limit: a paste of 1 MiB is plenty; more is a broken peer. */
const maxPayload = 1024 * 1024;

export function encodeFrame(type: FrameType, payload: Buffer | string | object): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const header = Buffer.alloc(5);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

/** Frames out of a byte stream, however the bytes were cut. */
export async function* decodeFrames(source: AsyncIterable<Buffer | string>): AsyncGenerator<Frame> {
  let pending = Buffer.alloc(0);
  for await (const chunk of source) {
    pending = Buffer.concat([pending, typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
    while (pending.length >= 5) {
      const type = pending.readUInt8(0);
      const length = pending.readUInt32BE(1);
      if (!Object.values(frameTypes).includes(type as FrameType) || length > maxPayload) throw new Error(`a session frame of type ${type} and ${length} bytes is not one of Shoal's`);
      if (pending.length < 5 + length) break;
      yield { type: type as FrameType, payload: pending.subarray(5, 5 + length) };
      pending = pending.subarray(5 + length);
    }
  }
}

/** A frame's JSON payload, checked. */
export function framePayload<S extends z.ZodType>(frame: Frame, schema: S): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(frame.payload.toString('utf8'));
  } catch {
    throw new Error('a session frame\'s payload is not JSON');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new Error(`a session frame is malformed: ${parsed.error.issues[0]?.message ?? ''}`);
  return parsed.data;
}

/**
 * Docker's --detach-keys: "ctrl-p,ctrl-q" (the default), letters, "ctrl-@" to "ctrl-_", and
 * the like, as the bytes a terminal sends.
 */
export function parseDetachKeys(text: string): Buffer {
  const bytes = text.split(',').map((key) => {
    const ctrl = /^ctrl-(.)$/i.exec(key);
    if (ctrl) {
      const code = ctrl[1]!.toUpperCase().charCodeAt(0);
      if (code < 0x40 || code > 0x5f) throw new Error(`--detach-keys: "${key}" is not a control key; use ctrl-a to ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^ or ctrl-_`);
      return code & 0x1f;
    }
    if (key.length === 1) return key.charCodeAt(0);
    throw new Error(`--detach-keys: "${key}" is not a key; write them like ctrl-p,ctrl-q`);
  });
  return Buffer.from(bytes);
}

/**
 * Watches keyboard bytes for the detach sequence. Bytes that might begin it are held back
 * until the next key tells; `feed` returns what to send on, and whether the sequence is complete.
 */
export class DetachWatcher {
  private matched = 0;

  constructor(private readonly keys: Buffer) {}

  feed(chunk: Buffer): { send: Buffer; detach: boolean } {
    const out: number[] = [];
    for (const byte of chunk) {
      if (this.keys.length > 0 && byte === this.keys[this.matched]) {
        this.matched++;
        if (this.matched === this.keys.length) return { send: Buffer.from(out), detach: true };
        continue;
      }
      // A broken sequence: what was held back goes out, and this byte may start a new one.
      out.push(...this.keys.subarray(0, this.matched));
      this.matched = 0;
      if (this.keys.length > 0 && byte === this.keys[0]) {
        this.matched = 1;
        if (this.keys.length === 1) return { send: Buffer.from(out), detach: true };
      } else out.push(byte);
    }
    return { send: Buffer.from(out), detach: false };
  }
}
