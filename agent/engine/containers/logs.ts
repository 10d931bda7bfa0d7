import { closeSync, constants, openSync } from 'node:fs';
import { appendFile, readFile, rename, rm, stat } from 'node:fs/promises';
import { Socket } from 'node:net';
import type { LogLine, LogOptions } from '../../../shared/containers.ts';
import { inBackground } from '../../../shared/concurrency.ts';

/**
 * A container's log: JSON lines {time, stream, text} in container.log, rotated to
 * container.log.1 .. .N-1 when it passes the size limit (Docker's json-file driver).
 */
export class LogFile {
  private size = -1;
  private writing: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<(line: LogLine) => void>();

  constructor(
    readonly path: string,
    private readonly options: LogOptions,
  ) {}

  append(line: LogLine): Promise<void> {
    for (const listener of this.listeners) listener(line);
    const text = `${JSON.stringify(line)}\n`;
    const write = async () => {
      if (this.size < 0) this.size = await stat(this.path).then((s) => s.size, () => 0);
      if (this.size + text.length > this.options.maxSizeBytes && this.size > 0) await this.rotate();
      await appendFile(this.path, text);
      this.size += Buffer.byteLength(text);
    };
    this.writing = this.writing.then(write, write);
    return this.writing;
  }

  /** Resolves once every line appended so far is on disk. */
  flushed(): Promise<void> {
    return this.writing;
  }

  private async rotate(): Promise<void> {
    const keep = this.options.maxFiles;
    await rm(`${this.path}.${keep - 1}`, { force: true });
    for (let i = keep - 2; i >= 1; i--) await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch(() => undefined);
    if (keep > 1) await rename(this.path, `${this.path}.1`).catch(() => undefined);
    else await rm(this.path, { force: true });
    this.size = 0;
  }

  /** Every stored line, oldest first (rotated files included). */
  async readAll(): Promise<LogLine[]> {
    await this.writing;
    const files = [...Array.from({ length: this.options.maxFiles - 1 }, (_, i) => `${this.path}.${this.options.maxFiles - 1 - i}`), this.path];
    const lines: LogLine[] = [];
    for (const file of files) {
      const text = await readFile(file, 'utf8').catch(() => '');
      for (const row of text.split('\n')) if (row) lines.push(JSON.parse(row) as LogLine);
    }
    return lines;
  }

  subscribe(listener: (line: LogLine) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** A line the disk refused (full, removed under us) is dropped: the container must not stop for its log. */
const logLost = (): void => undefined;

/**
 * Reads one of a container's output FIFOs into its log. The container holds the FIFO open
 * read-write, so it never sees a broken pipe while the agent restarts; a new agent opens the
 * read side again and carries on from what the pipe buffered.
 */
export class FifoPump {
  private socket: Socket | undefined;
  private partial = '';

  constructor(
    private readonly fifo: string,
    private readonly stream: LogLine['stream'],
    private readonly log: LogFile,
  ) {}

  start(): void {
    // Read-write, so the pipe always has a writer: opened read-only, a read before the
    // container holds its end would see end-of-file and stop the pump for good.
    const fd = openSync(this.fifo, constants.O_RDWR | constants.O_NONBLOCK);
    const socket = new Socket({ fd, readable: true, writable: false });
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      const text = this.partial + chunk;
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      const time = new Date().toISOString();
      for (const line of lines) inBackground(this.log.append({ time, stream: this.stream, text: line }), logLost);
    });
    socket.on('error', () => undefined);
  }

  /** Stops reading; what is still buffered in the pipe stays there. */
  stop(): void {
    if (this.partial) inBackground(this.log.append({ time: new Date().toISOString(), stream: this.stream, text: this.partial }), logLost);
    this.partial = '';
    this.socket?.destroy();
    this.socket = undefined;
  }
}

/** Opens a FIFO read-write without blocking: the descriptor the container writes its output to. */
export function openFifoForContainer(fifo: string): number {
  return openSync(fifo, constants.O_RDWR);
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
