import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type ClientRequest, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { kindForHttpStatus, ShoalError, warningHeader } from '../shared/errors.ts';
import { encodeRegistryAuth, type RegistryAuth, registryAuthHeader } from '../shared/registry-auth.ts';

/** The cluster CA the manager's certificate must chain to, and a client certificate for mutual TLS. */
export interface ClientTls {
  ca: string;
  cert?: string;
  key?: string;
}

/** Where a manager's API is: a Unix socket path or an https://host:port URL. */
export interface ApiEndpoint {
  socketPath?: string;
  url?: URL;
  tls?: ClientTls;
  label: string;
}

/**
 * A Unix socket, or a TCP address, which is always TLS: the manager serves nothing else on TCP,
 * so a bare host:port means https, and http:// is refused before any token is sent.
 */
export function parseEndpoint(host: string, tls?: ClientTls): ApiEndpoint {
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length), label: host };
  if (host.startsWith('/')) return { socketPath: host, label: `unix://${host}` };
  const url = new URL(/^[a-z]+:\/\//.test(host) ? host : `https://${host}`);
  if (url.protocol === 'http:') {
    throw new ShoalError('invalid', 'plain_http', `"${host}" is plain HTTP, which would send the token in clear; managers serve TCP over TLS only`, { hint: `use https://${url.host}` });
  }
  if (url.protocol !== 'https:') throw new ShoalError('invalid', 'bad_host', `unsupported host "${host}"`, { hint: 'use unix:///path/to/shoal.sock or https://host:port' });
  if (!tls) throw new ShoalError('invalid', 'no_ca', `no cluster CA to check ${url.origin} against`, { hint: 'the context file carries it (`tls.ca`), or set SHOAL_CERT_PATH to a directory with ca.pem (and cert.pem, key.pem)' });
  return { url, tls, label: url.origin };
}

const connectErrors = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EHOSTUNREACH', 'ETIMEDOUT', 'ENETUNREACH', 'EPIPE']);

/** The error an API answer carries, from its status and JSON body {code, message, hint}. */
function errorFromAnswer(status: number, text: string): ShoalError {
  let body: { code?: string; message?: string; hint?: string } = {};
  try {
    body = text ? (JSON.parse(text) as typeof body) : {};
  } catch {
    body = { code: 'bad_response', message: text.slice(0, 200) };
  }
  return new ShoalError(kindForHttpStatus(status), body.code ?? 'error', body.message ?? `HTTP ${status}`, { hint: body.hint });
}

interface StreamLine {
  event?: unknown;
  result?: unknown;
  heartbeat?: string;
  error?: { code: string; message: string; hint?: string };
}

/** One line of a streaming answer, or undefined when it is not a JSON object. */
function parseStreamLine(line: string): StreamLine | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as StreamLine) : undefined;
  } catch {
    return undefined;
  }
}

/** A whole JSON answer: its value, or the error its status and body describe. */
function readJsonAnswer<T>(response: IncomingMessage, resolve: (value: T) => void, reject: (error: Error) => void, onWarning: (message: string) => void): void {
  for (const warning of response.headersDistinct[warningHeader] ?? []) onWarning(decodeURIComponent(warning));
  const chunks: Buffer[] = [];
  response.on('data', (chunk: Buffer) => chunks.push(chunk));
  response.on('error', reject);
  response.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    const status = response.statusCode ?? 500;
    if (status >= 400) return reject(errorFromAnswer(status, text));
    try {
      resolve((text ? JSON.parse(text) : undefined) as T);
    } catch {
      reject(errorFromAnswer(500, text));
    }
  });
}

/** Reads an error answer's body and rejects with the error it describes. */
function rejectWithAnswer(response: IncomingMessage, status: number, reject: (error: Error) => void): void {
  const chunks: Buffer[] = [];
  response.on('data', (chunk: Buffer) => chunks.push(chunk));
  response.on('end', () => reject(errorFromAnswer(status, Buffer.concat(chunks).toString('utf8'))));
}

/** A body of raw bytes for `stream` (a build context), opened anew for each manager tried. */
export class RawBody {
  constructor(
    readonly open: () => Readable,
    readonly contentType = 'application/x-tar',
  ) {}
}

/** The manager API over HTTP, trying each known manager until one answers. */
export class ApiClient {
  constructor(
    private readonly endpoints: ApiEndpoint[],
    private readonly token: string | undefined,
    private readonly timeoutMs = 15_000,
    /** A stream silent this long is dead: three of the manager's 5 s heartbeats. */
    private readonly streamIdleMs = 15_000,
  ) {}

  private tlsConnections: HttpsAgent | undefined;
  private readonly headers: Record<string, string> = {};

  /** What an answer that is whole but for a part (a node that did not answer a listing) says of it. */
  onWarning = (message: string): void => void process.stderr.write(`warning: ${message}\n`);

  /** A registry login for the requests that pull or push (X-Registry-Auth), as Docker's client sends it. */
  useRegistryAuth(auth: RegistryAuth | undefined): this {
    if (auth) this.headers[registryAuthHeader] = encodeRegistryAuth(auth);
    return this;
  }

  /**
   * One kept-alive TLS connection pool per client: a handshake with client certificates costs
   * about 4.5 ms (bench/tls.bench.ts), which a command making several calls pays once. Idle
   * sockets do not keep the process alive.
   */
  private tlsAgent(): HttpsAgent {
    return (this.tlsConnections ??= new HttpsAgent({ keepAlive: true }));
  }

  /** Where the client talks to: the managers it knows, first first. */
  get label(): string {
    return this.endpoints.map((e) => e.label).join(', ');
  }

  /** A JSON request and its JSON answer; `headers` for this request only (a service's registry login). */
  call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    return this.onAnyManager((endpoint) =>
      new Promise<T>((resolve, reject) => {
        const request = this.send(endpoint, method, path, body, (response) => readJsonAnswer(response, resolve, reject, this.onWarning), headers);
        request.setTimeout(this.timeoutMs, () => request.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'timeout' })));
        request.on('error', reject);
      }),
    );
  }

  /**
   * Streams a body of raw bytes (an archive to copy in, an image to import) and returns the
   * JSON answer. `open` is called per attempt, so a manager that cannot be reached costs nothing.
   */
  upload<T>(method: string, path: string, open: () => Readable, contentType = 'application/x-tar'): Promise<T> {
    return this.onAnyManager((endpoint) =>
      new Promise<T>((resolve, reject) => {
        const request = this.open(endpoint, method, path, { 'content-type': contentType, 'transfer-encoding': 'chunked' }, (response) => readJsonAnswer(response, resolve, reject, this.onWarning));
        request.on('error', reject);
        const body = open();
        body.on('error', (error) => request.destroy(error));
        body.pipe(request);
      }),
    );
  }

  /**
   * Calls a streaming path (newline-delimited JSON): `onEvent` sees each event line; the
   * result line is returned, an error line thrown.
   */
  stream<T>(method: string, path: string, body: unknown, onEvent: (event: unknown) => void, signal?: AbortSignal): Promise<T> {
    return this.onAnyManager((endpoint) =>
      new Promise<T>((resolve, reject) => {
        const onResponse = (response: IncomingMessage) => {
          const status = response.statusCode ?? 500;
          if (status >= 400) return rejectWithAnswer(response, status, reject);
          let buffer = '';
          let settled = false;
          const fail = (error: ShoalError) => {
            settled = true;
            reject(error);
            request.destroy();
          };
          // The manager sends a heartbeat line every few seconds: silence for three periods
          // means the connection died without a word (a cut link, a frozen host).
          let lastHeard = Date.now();
          const idleCheck = setInterval(() => {
            if (Date.now() - lastHeard > this.streamIdleMs) {
              fail(new ShoalError('temporary', 'stream_silent', `the manager sent nothing for ${Math.round(this.streamIdleMs / 1000)} s; the connection is gone`));
            }
          }, Math.min(1_000, this.streamIdleMs));
          response.on('close', () => clearInterval(idleCheck));
          response.on('error', () => undefined);
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => {
            lastHeard = Date.now();
            buffer += chunk;
            let newline: number;
            while (!settled && (newline = buffer.indexOf('\n')) >= 0) {
              const line = buffer.slice(0, newline);
              buffer = buffer.slice(newline + 1);
              if (!line) continue;
              const message = parseStreamLine(line);
              if (!message) {
                fail(new ShoalError('internal', 'bad_stream_line', `the manager sent a line that is not JSON: ${line.slice(0, 120)}`));
                return;
              }
              if ('event' in message) {
                try {
                  onEvent(message.event);
                } catch (error) {
                  fail(new ShoalError('internal', 'event_handler_failed', `an event could not be handled: ${(error as Error).message}`, { cause: error }));
                  return;
                }
              } else if (message.error) {
                settled = true;
                reject(new ShoalError('internal', message.error.code, message.error.message, { hint: message.error.hint }));
              } else if ('result' in message) {
                settled = true;
                resolve(message.result as T);
              }
            }
          });
          response.on('end', () => {
            clearInterval(idleCheck);
            if (!settled) reject(new ShoalError('temporary', 'stream_ended', 'the manager ended the answer early'));
          });
        };
        // A raw body (a build context) streams up while the answer streams down.
        const request = body instanceof RawBody
          ? this.open(endpoint, method, path, { 'content-type': body.contentType, 'transfer-encoding': 'chunked' }, onResponse)
          : this.send(endpoint, method, path, body, onResponse);
        if (body instanceof RawBody) {
          const source = body.open();
          source.on('error', (error) => request.destroy(error));
          source.pipe(request);
        }
        request.on('error', reject);
        // Following a stream that never ends (events): the caller stops it.
        signal?.addEventListener('abort', () => request.destroy(new ShoalError('temporary', 'aborted', 'stopped by the caller')), { once: true });
      }),
    );
  }

  /** A binary answer (a backup) written to `into`; resolves with the number of bytes. */
  download(path: string, into: Writable, onProgress?: (bytes: number) => void): Promise<number> {
    return this.onAnyManager((endpoint) =>
      new Promise<number>((resolve, reject) => {
        const request = this.send(endpoint, 'GET', path, undefined, (response) => {
          const status = response.statusCode ?? 500;
          if (status >= 400) return rejectWithAnswer(response, status, reject);
          let bytes = 0;
          response.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            onProgress?.(bytes);
          });
          pipeline(response, into).then(() => resolve(bytes), reject);
        });
        request.setTimeout(this.timeoutMs, () => request.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'timeout' })));
        request.on('error', reject);
      }),
    );
  }

  /**
   * A request that stays open both ways (an interactive session): resolves once the answer has
   * begun, with the request to write into and the answer to read from.
   */
  duplex(method: string, path: string, contentType: string): Promise<{ request: ClientRequest; response: IncomingMessage }> {
    return this.onAnyManager((endpoint) =>
      new Promise((resolve, reject) => {
        const request = this.open(endpoint, method, path, { 'content-type': contentType, 'transfer-encoding': 'chunked' }, (response) => {
          const status = response.statusCode ?? 500;
          if (status >= 400) return rejectWithAnswer(response, status, reject);
          resolve({ request, response });
        });
        request.on('error', reject);
        // Headers go now: the manager answers before the first keystroke.
        request.flushHeaders();
      }),
    );
  }

  /** Tries each manager in turn while they cannot be reached; any answer, even an error, ends it. */
  private async onAnyManager<T>(attempt: (endpoint: ApiEndpoint) => Promise<T>): Promise<T> {
    let lastError: Error | undefined;
    for (const endpoint of this.endpoints) {
      try {
        return await attempt(endpoint);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        // A manager cut off from etcd answers 503 store_unavailable: another may not be.
        if (!(connectErrors.has(code) || code === 'timeout' || code === 'store_unavailable')) throw error;
        lastError = new Error(`${endpoint.label}: ${(error as Error).message}`);
      }
    }
    throw new ShoalError('temporary', 'manager_unreachable', `cannot reach a manager (${lastError?.message ?? 'no host given'})`, {
      hint: 'is the cluster up? `shoal lab status` shows the lab; --host or SHOAL_HOST picks another manager',
    });
  }

  private send(endpoint: ApiEndpoint, method: string, path: string, body: unknown, onResponse: (response: IncomingMessage) => void, headers: Record<string, string> = {}): ClientRequest {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const request = this.open(endpoint, method, path, { ...headers, ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}) }, onResponse);
    request.end(payload);
    return request;
  }

  /** A request to one manager with the token, its body still to be written. */
  private open(endpoint: ApiEndpoint, method: string, path: string, headers: Record<string, string>, onResponse: (response: IncomingMessage) => void): ClientRequest {
    return (endpoint.tls ? httpsRequest : httpRequest)(
      {
        method,
        path,
        socketPath: endpoint.socketPath,
        host: endpoint.url?.hostname,
        port: endpoint.url?.port,
        ...(endpoint.tls ? { ca: endpoint.tls.ca, cert: endpoint.tls.cert, key: endpoint.tls.key, agent: this.tlsAgent() } : {}),
        headers: { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...this.headers, ...headers },
      },
      onResponse,
    );
  }
}
