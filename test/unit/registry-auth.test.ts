import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { parseChallenge } from '../../agent/engine/registry/auth.ts';
import { RegistryClient } from '../../agent/engine/registry/client.ts';
import { parseReference } from '../../agent/engine/registry/reference.ts';
import { decodeRegistryAuth, encodeRegistryAuth, registryOfReference } from '../../shared/registry-auth.ts';

// The Distribution token flow on loopback: a registry that wants a bearer token for each
// repository scope, and its token server, which checks a user's password and issues tokens
// that live `lifetime` seconds (the registry checks that too).
const manifest = JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 2 }, layers: [] });
const state = { issued: 0, lifetime: 60, refuseAll: false, tokens: new Map<string, { scope: string; expires: number }>() };
let server: Server;
let registry = '';

test.before(async () => {
  server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://x');
    if (url.pathname === '/token') {
      const [user, password] = Buffer.from((request.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString().split(':');
      if (user !== 'ann' || password !== 'right') {
        response.writeHead(401).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      const token = `t${++state.issued}`;
      state.tokens.set(token, { scope: url.searchParams.get('scope') ?? '', expires: Date.now() + state.lifetime * 1000 });
      response.end(JSON.stringify({ token, expires_in: state.lifetime, issued_at: new Date().toISOString() }));
      return;
    }
    const scope = `repository:${url.pathname.split('/')[2]}:pull`;
    const presented = state.tokens.get((request.headers.authorization ?? '').replace(/^Bearer /, ''));
    if (state.refuseAll || !presented || presented.scope !== scope || presented.expires < Date.now()) {
      response.writeHead(401, { 'www-authenticate': `Bearer realm="http://${registry}/token",service="${registry}",scope="${scope}"` }).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(manifest);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  registry = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test.after.always(() => server.close());

test.serial('a 401 challenge is answered with a token from its realm, which is kept for the next calls', async (t) => {
  const client = new RegistryClient();
  const issuedBefore = state.issued;
  const resolved = await client.resolveManifest(parseReference(`${registry}/app:1`, ''), undefined, { username: 'ann', password: 'right' });
  t.is(resolved.digest, `sha256:${createHash('sha256').update(manifest).digest('hex')}`);
  await client.resolveManifest(parseReference(`${registry}/app:1`, ''), undefined, { username: 'ann', password: 'right' });
  t.is(state.issued - issuedBefore, 1, 'one token for both calls');
  await client.resolveManifest(parseReference(`${registry}/other:1`, ''), undefined, { username: 'ann', password: 'right' });
  t.is(state.issued - issuedBefore, 2, 'another repository, another scope, another token');
});

test.serial('a wrong password and a missing login are told apart, each with the way out', async (t) => {
  const client = new RegistryClient();
  const wrong = await t.throwsAsync(client.resolveManifest(parseReference(`${registry}/app:1`, ''), undefined, { username: 'ann', password: 'wrong' }));
  t.is((wrong as { code?: string }).code, 'registry_unauthorized');
  t.regex(wrong!.message, /refused the login of "ann"/);
  const anonymous = await t.throwsAsync(client.resolveManifest(parseReference(`${registry}/app:1`, '')));
  t.is((anonymous as { code?: string }).code, 'registry_login_needed');
  t.regex((anonymous as { hint?: string }).hint ?? '', /shoal login 127\.0\.0\.1:\d+/);
});

test.serial('an expired token is replaced; a token the registry keeps refusing is a clear error', async (t) => {
  const client = new RegistryClient();
  state.lifetime = 1;
  const auth = { username: 'ann', password: 'right' };
  await client.resolveManifest(parseReference(`${registry}/app:1`, ''), undefined, auth);
  const before = state.issued;
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await client.resolveManifest(parseReference(`${registry}/app:1`, ''), undefined, auth);
  t.is(state.issued, before + 1, 'the expired token was not sent; a new one was fetched');
  state.refuseAll = true;
  const refused = await t.throwsAsync(client.resolveManifest(parseReference(`${registry}/app:1`, ''), undefined, auth));
  t.is((refused as { code?: string }).code, 'registry_token_refused');
  t.regex(refused!.message, /refused the token .* \(expired, or the login may not pull there\)/);
  state.refuseAll = false;
  state.lifetime = 60;
});

test('challenges, the login header and registry names parse as Docker\'s do', (t) => {
  t.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' },
  });
  t.is(parseChallenge('Basic realm="lab"')?.scheme, 'basic');
  t.is(parseChallenge(null), undefined);
  const auth = { username: 'ann', password: 'p:ss' };
  t.deepEqual(decodeRegistryAuth(encodeRegistryAuth(auth)), auth);
  t.throws(() => decodeRegistryAuth('not-json'), { message: /not base64 JSON/ });
  t.is(registryOfReference('198.18.0.250:5443/app:1'), '198.18.0.250:5443');
  t.is(registryOfReference('registry.example/app'), 'registry.example');
  t.is(registryOfReference('busybox:1.35.0'), undefined);
  t.is(registryOfReference('library/busybox'), undefined);
});
