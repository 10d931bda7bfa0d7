/**
 * A container's (or an exec's) pseudo-terminal, from its master end: output is read always
 * (a terminal nobody reads stops its container once its buffer fills) and goes to the log and
 * to whoever is attached; input and window sizes come from the attached.
 */
import { write } from 'node:fs';
import { ReadStream } from 'node:tty';
import type { LogLine } from '../../../shared/containers.ts';
import { setWindowSize } from '../../../native/console.ts';

export class Terminal {
  private readonly reader: ReadStream;
  private readonly listeners = new Set<(chunk: Buffer) => void>();
  private partial = '';
  private closed = false;
  /** Output before anyone subscribed (the first prompt of `run -it`), replayed to the first subscriber. */
  private backlog: Buffer[] | undefined = [];
  private backlogBytes = 0;
  /** Resolves when the terminal has no more output (its processes are gone, or it was closed). */
  readonly ended: Promise<void>;

  constructor(
    private readonly fd: number,
    private readonly log?: (line: LogLine) => void,
  ) {
    // A tty handle: epoll, not a thread of the pool blocked on each read.
    this.reader = new ReadStream(fd);
    this.ended = new Promise((resolve) => {
      this.reader.on('close', resolve);
      this.reader.on('end', resolve);
    });
    // EIO once the last process on the terminal is gone: the end, not a failure.
    this.reader.on('error', () => this.reader.destroy());
    this.reader.on('data', (chunk: Buffer) => {
      if (this.backlog && this.backlogBytes < 64 * 1024) {
        this.backlog.push(chunk);
        this.backlogBytes += chunk.length;
      }
      for (const listener of this.listeners) listener(chunk);
      if (this.log) this.logLines(chunk.toString('utf8'));
    });
  }

  private logLines(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    const time = new Date().toISOString();
    for (const line of lines) this.log!({ time, stream: 'stdout', text: line.replace(/\r$/, '') });
  }

  /** Output from now on, until the returned function is called. */
  subscribe(listener: (chunk: Buffer) => void): () => void {
    for (const chunk of this.backlog ?? []) listener(chunk);
    this.backlog = undefined;
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Keyboard bytes; a full input buffer (EAGAIN) is waited out, as a slow reader would be. */
  async write(data: Buffer): Promise<void> {
    let offset = 0;
    while (offset < data.length && !this.closed) {
      offset += await new Promise<number>((resolve, reject) =>
        write(this.fd, data, offset, data.length - offset, null, (error, written) => {
          if (!error) return resolve(written);
          if (error.code === 'EAGAIN') return setTimeout(() => resolve(0), 10);
          reject(error);
        }),
      );
    }
  }

  resize(rows: number, cols: number): void {
    if (!this.closed) setWindowSize(this.fd, rows, cols);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.partial && this.log) this.log({ time: new Date().toISOString(), stream: 'stdout', text: this.partial });
    this.listeners.clear();
    // The stream owns the descriptor: destroying it closes it (closing it here too could close a reused number).
    this.reader.destroy();
  }
}
