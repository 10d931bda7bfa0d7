import { request as httpRequest } from 'node:http';
import { kindForHttpStatus, ShoalError } from '../shared/errors.ts';

/** Where a manager's API is: a Unix socket path or an http://host:port URL. */
export interface ApiEndpoint {
  socketPath?: string;
  url?: URL;
  label: string;
}

export function parseEndpoint(host: string): ApiEndpoint {
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length), label: host };
  if (host.startsWith('/')) return { socketPath: host, label: `unix://${host}` };
  const url = new URL(/^[a-z]+:\/\//.test(host) ? host : `http://${host}`);
  if (url.protocol !== 'http:') throw new ShoalError('invalid', 'bad_host', `unsupported host "${host}"`, { hint: 'use unix:///path/to/shoal.sock or http://host:port' });
  return { url, label: url.origin };
}

const connectErrors = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EHOSTUNREACH', 'ETIMEDOUT', 'ENETUNREACH', 'EPIPE']);

/** The manager API over HTTP, trying each known manager until one answers. */
export class ApiClient {
  constructor(
    private readonly endpoints: ApiEndpoint[],
    private readonly token: string | undefined,
    private readonly timeoutMs = 15_000,
  ) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let lastError: Error | undefined;
    for (const endpoint of this.endpoints) {
      try {
        return await this.callOne<T>(endpoint, method, path, body);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        if (!(connectErrors.has(code) || code === 'timeout')) throw error;
        lastError = new Error(`${endpoint.label}: ${(error as Error).message}`);
      }
    }
    throw new ShoalError('temporary', 'manager_unreachable', `cannot reach a manager (${lastError?.message ?? 'no host given'})`, {
      hint: 'is the cluster up? `shoal lab status` shows the lab; --host or SHOAL_HOST picks another manager',
    });
  }

  /**
   * Calls a streaming path (newline-delimited JSON): `onEvent` sees each event line; the
   * result line is returned, an error line thrown.
   */
  async stream<T>(method: string, path: string, body: unknown, onEvent: (event: unknown) => void): Promise<T> {
    let lastError: Error | undefined;
    for (const endpoint of this.endpoints) {
      try {
        return await this.streamOne<T>(endpoint, method, path, body, onEvent);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        if (!connectErrors.has(code)) throw error;
        lastError = new Error(`${endpoint.label}: ${(error as Error).message}`);
      }
    }
    throw new ShoalError('temporary', 'manager_unreachable', `cannot reach a manager (${lastError?.message ?? 'no host given'})`);
  }

  private streamOne<T>(endpoint: ApiEndpoint, method: string, path: string, body: unknown, onEvent: (event: unknown) => void): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const request = httpRequest(
        {
          method,
          path,
          socketPath: endpoint.socketPath,
          host: endpoint.url?.hostname,
          port: endpoint.url?.port,
          headers: {
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (response) => {
          if ((response.statusCode ?? 500) >= 400) {
            const chunks: Buffer[] = [];
            response.on('data', (c: Buffer) => chunks.push(c));
            response.on('end', () => {
              const error = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { code?: string; message?: string; hint?: string };
              reject(new ShoalError(kindForHttpStatus(response.statusCode ?? 500), error.code ?? 'error', error.message ?? `HTTP ${response.statusCode}`, { hint: error.hint }));
            });
            return;
          }
          let buffer = '';
          let settled = false;
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => {
            buffer += chunk;
            let newline: number;
            while ((newline = buffer.indexOf('\n')) >= 0) {
              const line = buffer.slice(0, newline);
              buffer = buffer.slice(newline + 1);
              if (!line) continue;
              const message = JSON.parse(line) as { event?: unknown; result?: unknown; error?: { code: string; message: string; hint?: string } };
              if ('event' in message) onEvent(message.event);
              else if (message.error) {
                settled = true;
                reject(new ShoalError('internal', message.error.code, message.error.message, { hint: message.error.hint }));
              } else if ('result' in message) {
                settled = true;
                resolve(message.result as T);
              }
            }
          });
          response.on('end', () => {
            if (!settled) reject(new ShoalError('temporary', 'stream_ended', 'the manager ended the answer early'));
          });
        },
      );
      request.on('error', reject);
      request.end(payload);
    });
  }

  private callOne<T>(endpoint: ApiEndpoint, method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const request = httpRequest(
        {
          method,
          path,
          socketPath: endpoint.socketPath,
          host: endpoint.url?.hostname,
          port: endpoint.url?.port,
          headers: {
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
          timeout: this.timeoutMs,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = { code: 'bad_response', message: text.slice(0, 200) };
            }
            const status = response.statusCode ?? 500;
            if (status < 400) return resolve(parsed as T);
            const error = (parsed ?? {}) as { code?: string; message?: string; hint?: string };
            reject(new ShoalError(kindForHttpStatus(status), error.code ?? 'error', error.message ?? `HTTP ${status}`, { hint: error.hint }));
          });
        },
      );
      request.on('timeout', () => request.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: 'timeout' })));
      request.on('error', reject);
      request.end(payload);
    });
  }
}
