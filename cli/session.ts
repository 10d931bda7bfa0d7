/**
 * The CLI's end of an interactive session (`run -it`, `exec -it`, `attach`): the terminal in
 * raw mode, keystrokes and window sizes up, output down, the detach keys watched for.
 */
import type { ApiClient } from './client.ts';
import { ShoalError } from '../shared/errors.ts';
import { decodeFrames, DetachWatcher, encodeFrame, type Frame, frameTypes, sessionContentType, type SessionOpen } from '../shared/session-frames.ts';

export interface SessionEnd {
  /** The command's (or container's) exit code; undefined when the user detached. */
  exitCode?: number;
  detached: boolean;
}

/** The answer's frames until its exit or error frame. */
async function readAnswer(frames: AsyncIterable<Frame>, onOutput: (chunk: Buffer) => void): Promise<SessionEnd> {
  for await (const frame of frames) {
    if (frame.type === frameTypes.data) onOutput(frame.payload);
    else if (frame.type === frameTypes.exit) {
      const end = JSON.parse(frame.payload.toString('utf8')) as { exitCode?: number; detached?: boolean };
      return { ...(end.exitCode !== undefined ? { exitCode: end.exitCode } : {}), detached: end.detached ?? false };
    } else if (frame.type === frameTypes.error) {
      const error = JSON.parse(frame.payload.toString('utf8')) as { code: string; message: string; hint?: string };
      throw new ShoalError('invalid', error.code, error.message, { hint: error.hint });
    }
  }
  throw new ShoalError('temporary', 'session_cut', 'the session ended without an exit code: the manager or the node went away');
}

/**
 * Runs a session on `path` until the command exits or the detach keys are typed. With a
 * terminal on both ends it is raw (every key goes to the container, ctrl-c included); without,
 * stdin is sent as it comes.
 */
export async function runSession(client: ApiClient, path: string, open: SessionOpen, options: { detachKeys: Buffer; stdin: boolean }): Promise<SessionEnd> {
  const { request, response } = await client.duplex('POST', path, sessionContentType);
  const write = (type: Parameters<typeof encodeFrame>[0], payload: Buffer | object) => {
    if (!request.destroyed && !request.writableEnded) request.write(encodeFrame(type, payload));
  };
  write(frameTypes.open, open);
  const stdin = process.stdin;
  const stdout = process.stdout;
  const sendSize = () => {
    if (stdout.isTTY) write(frameTypes.resize, { rows: stdout.rows, cols: stdout.columns });
  };
  sendSize();
  const raw = options.stdin && stdin.isTTY;
  const watcher = new DetachWatcher(options.detachKeys);
  let detach: () => void = () => undefined;
  const detached = new Promise<SessionEnd>((resolve) => {
    detach = () => resolve({ detached: true });
  });
  const onKeys = (chunk: Buffer) => {
    const { send, detach: done } = raw ? watcher.feed(chunk) : { send: chunk, detach: false };
    if (send.length > 0) write(frameTypes.data, send);
    if (done) detach();
  };
  if (options.stdin) {
    if (raw) stdin.setRawMode(true);
    stdin.on('data', onKeys);
    stdin.resume();
  }
  stdout.on('resize', sendSize);
  response.on('error', () => undefined);
  try {
    return await Promise.race([readAnswer(decodeFrames(response), (chunk) => stdout.write(chunk)), detached]);
  } finally {
    stdout.off('resize', sendSize);
    if (options.stdin) {
      stdin.off('data', onKeys);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
    }
    request.destroy();
    response.destroy();
  }
}
