import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiClient, type ClientTls, parseEndpoint } from '../client.ts';
import { readContext } from '../context.ts';
import { ShoalError } from '../../shared/errors.ts';

export interface GlobalOptions {
  host?: string;
  token?: string;
  context?: string;
}

/** The API client for this invocation: --host/SHOAL_HOST and --token/SHOAL_TOKEN override the context file. */
export async function connect(globals: GlobalOptions): Promise<ApiClient> {
  const context = await readContext(globals.context);
  const host = globals.host ?? process.env.SHOAL_HOST;
  const hosts = host ? host.split(',') : context?.hosts;
  const token = globals.token ?? process.env.SHOAL_TOKEN ?? context?.token;
  if (!hosts || hosts.length === 0) {
    throw new ShoalError('invalid', 'no_cluster', 'no cluster to talk to', {
      hint: 'bring one up with `shoal lab up`, or pass --host unix:///path/shoal.sock (or set SHOAL_HOST)',
    });
  }
  const tls = (await certPathTls()) ?? context?.tls;
  return new ApiClient(hosts.map((h) => parseEndpoint(h, tls)), token);
}

/** SHOAL_CERT_PATH, as Docker's DOCKER_CERT_PATH: a directory with ca.pem, and cert.pem and key.pem for mutual TLS. */
async function certPathTls(): Promise<ClientTls | undefined> {
  const dir = process.env.SHOAL_CERT_PATH;
  if (!dir) return undefined;
  const read = (name: string) => readFile(join(dir, name), 'utf8').catch(() => undefined);
  const [ca, cert, key] = await Promise.all([read('ca.pem'), read('cert.pem'), read('key.pem')]);
  if (!ca) throw new ShoalError('invalid', 'no_ca', `SHOAL_CERT_PATH=${dir} has no ca.pem`, { hint: 'copy the cluster CA (ca.crt of a manager\'s PKI directory) there as ca.pem' });
  return { ca, cert, key };
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** "k=v" pairs into a record; a bare "k" gets an empty value, as Docker's --label does. */
export function parseLabels(pairs: string[]): Record<string, string> {
  return Object.fromEntries(
    pairs.map((pair) => {
      const index = pair.indexOf('=');
      return index < 0 ? [pair, ''] : [pair.slice(0, index), pair.slice(index + 1)];
    }),
  );
}

/** A query string from the parameters that are set ("" when none is). */
export function query(params: Record<string, string | number | boolean | undefined>): string {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined) as Array<[string, string]>;
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString()}` : '';
}

/** `inspect NAME...`: each object in the order named, from `base/NAME` (an unknown one fails the command, as Docker's). */
export async function getEach<T>(client: ApiClient, base: string, references: readonly string[], search = ''): Promise<T[]> {
  const found: T[] = [];
  for (const reference of references) found.push(await client.call<T>('GET', `${base}/${encodeURIComponent(reference)}${search}`));
  return found;
}
