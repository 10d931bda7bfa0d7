/**
 * How a node reaches registries as users have them: HTTPS unless a registry is listed insecure
 * (Docker's --insecure-registry), a registry's own CA from certs.d/<host:port>/ca.crt as Docker's
 * /etc/docker/certs.d, and the Distribution API's authentication: a 401 with
 * `WWW-Authenticate: Bearer realm=...,service=...,scope=...` is answered with a token from the
 * realm (asked with the user's credentials, cached until it expires), `Basic` with the
 * credentials themselves.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import { ShoalError } from '../../../shared/errors.ts';
import type { RegistryAuth } from '../../../shared/registry-auth.ts';

export { RegistryAuth } from '../../../shared/registry-auth.ts';

export interface RegistryAccessOptions {
  /** host:port of registries spoken to over plain HTTP (the lab's open one). */
  insecure?: readonly string[];
  /** Directory of <host:port>/ca.crt: a registry's CA beside the system's. */
  certsDir?: string;
}

export interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

/** `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` (or Basic realm="..."). */
export function parseChallenge(header: string | null): Challenge | undefined {
  const match = /^\s*(Bearer|Basic)\s*(.*)$/i.exec(header ?? '');
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const pair of match[2]!.matchAll(/([A-Za-z]+)="([^"]*)"/g)) params[pair[1]!.toLowerCase()] = pair[2]!;
  return { scheme: match[1]!.toLowerCase() as Challenge['scheme'], params };
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

export class RegistryAccess {
  private readonly dispatchers = new Map<string, Dispatcher>();
  private readonly tokens = new Map<string, CachedToken>();
  /** Registries that answered with a Basic challenge: credentials go with every request to them. */
  private readonly basic = new Set<string>();

  constructor(private readonly options: RegistryAccessOptions = {}) {}

  /** Plain HTTP for listed registries and loopback ones (as Docker), HTTPS for the rest. */
  scheme(registry: string): 'http' | 'https' {
    const host = registry.replace(/:\d+$/, '');
    return this.options.insecure?.includes(registry) || this.options.insecure?.includes(host) || host === 'localhost' || host.startsWith('127.') ? 'http' : 'https';
  }

  /** The connection pool for a registry: its own CA (certs.d) added to the system's. */
  dispatcher(registry: string): Dispatcher | undefined {
    const known = this.dispatchers.get(registry);
    if (known) return known;
    // Looked for anew while absent: a CA put in place later is taken without a restart.
    const caFile = this.options.certsDir ? join(this.options.certsDir, registry, 'ca.crt') : undefined;
    if (!caFile || !existsSync(caFile)) return undefined;
    const dispatcher = new Agent({ connect: { ca: [...rootCertificates, readFileSync(caFile, 'utf8')] } });
    this.dispatchers.set(registry, dispatcher);
    return dispatcher;
  }

  /** The Authorization header to send before any challenge: a cached token, or Basic where the registry asked for it. */
  authorization(registry: string, scope: string, auth?: RegistryAuth): string | undefined {
    const cached = this.tokens.get(this.tokenKey(registry, scope, auth));
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    if (this.basic.has(registry) && auth) return basicHeader(auth);
    return undefined;
  }

  private tokenKey(registry: string, scope: string, auth?: RegistryAuth): string {
    return `${registry}|${scope}|${auth?.username ?? ''}`;
  }

  /** Forgets a token the registry refused (expired early, revoked). */
  forget(registry: string, scope: string, auth?: RegistryAuth): void {
    this.tokens.delete(this.tokenKey(registry, scope, auth));
  }

  /**
   * Answers a 401's challenge: the header to retry with. A token is fetched from the realm with
   * the credentials (anonymous without), for the scope the registry named or the one asked.
   */
  async answer(registry: string, challenge: Challenge, scope: string, auth: RegistryAuth | undefined, fetcher: (url: string, init: { headers: Record<string, string> }) => Promise<Response>): Promise<string> {
    if (challenge.scheme === 'basic') {
      if (!auth) throw loginNeeded(registry);
      this.basic.add(registry);
      return basicHeader(auth);
    }
    const realm = challenge.params.realm;
    if (!realm) throw new ShoalError('invalid', 'registry_error', `registry ${registry} asked for a token without saying where to get one (no realm)`);
    const url = new URL(realm);
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    url.searchParams.set('scope', challenge.params.scope ?? scope);
    let response: Response;
    try {
      response = await fetcher(url.toString(), { headers: auth ? { authorization: basicHeader(auth) } : {} });
    } catch (error) {
      throw new ShoalError('temporary', 'registry_unreachable', `the token server of ${registry} (${url.origin}) is unreachable: ${describeFetchError(error)}`, { cause: error });
    }
    if (response.status === 401 || response.status === 403) throw auth ? wrongCredentials(registry, auth) : loginNeeded(registry);
    if (!response.ok) throw new ShoalError('temporary', 'registry_error', `the token server of ${registry} answered ${response.status}`);
    const body = (await response.json().catch(() => ({}))) as { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new ShoalError('invalid', 'registry_error', `the token server of ${registry} sent no token`);
    // The spec's default lifetime is 60 s; a few seconds' margin so a token is not used as it dies.
    const issuedAt = body.issued_at ? Date.parse(body.issued_at) : Date.now();
    const expiresAt = (Number.isFinite(issuedAt) ? issuedAt : Date.now()) + Math.max(1, (body.expires_in ?? 60) - 5) * 1000;
    this.tokens.set(this.tokenKey(registry, scope, auth), { token, expiresAt });
    return `Bearer ${token}`;
  }
}

function basicHeader(auth: RegistryAuth): string {
  return `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
}

export function loginNeeded(registry: string): ShoalError {
  return new ShoalError('unauthorized', 'registry_login_needed', `registry ${registry} needs a login`, { hint: `log in with \`shoal login ${registry}\`, and pass --with-registry-auth to service create and update` });
}

export function wrongCredentials(registry: string, auth: RegistryAuth): ShoalError {
  return new ShoalError('unauthorized', 'registry_unauthorized', `registry ${registry} refused the login of "${auth.username}" (wrong user name or password)`, { hint: `log in again with \`shoal login ${registry}\`` });
}

/** What a failed connection means to a user: an unknown CA above all. */
export function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) return `its certificate is not signed by a CA this node trusts (${code})`;
  return cause?.message ?? (error as Error).message;
}

/** The scope a request needs: pull for reading a repository, pull and push for writing it. */
export function scopeFor(repository: string, push: boolean): string {
  return `repository:${repository}:${push ? 'pull,push' : 'pull'}`;
}
