import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { caDigest, createCa, identityProblem, issueCertificate, peerUri } from '../../shared/pki/certificates.ts';
import { ensureCa, ensureIssued } from '../../shared/pki/pki-dir.ts';
import { guardRules } from '../../netplug/egress-guard.ts';

test('a leaf names what it was issued for and chains to its CA only', async (t) => {
  const ca = await createCa('test CA');
  const other = await createCa('other CA');
  const leaf = await issueCertificate(ca, { commonName: 'etcd0', ips: ['198.18.1.250'], dns: ['etcd0'], usage: 'peer' });
  const cert = new X509Certificate(leaf.certificate);
  t.true(cert.checkIssued(new X509Certificate(ca.certificate)));
  t.false(cert.checkIssued(new X509Certificate(other.certificate)));
  t.regex(cert.subjectAltName ?? '', /IP Address:198\.18\.1\.250/);
  t.is(cert.ca, false);
  t.is(new X509Certificate(ca.certificate).ca, true);
  t.regex(caDigest(ca.certificate), /^[0-9a-z]{50}$/);
  t.not(caDigest(ca.certificate), caDigest(other.certificate));
});

test('a manager identity holds for its own peer id, from its own CA, and for nothing else', async (t) => {
  const ca = await createCa('test CA');
  const other = await createCa('other CA');
  const identity = await issueCertificate(ca, { commonName: 'm', uris: [peerUri('12D3KooWpeer')], usage: 'client' });
  const forged = await issueCertificate(other, { commonName: 'm', uris: [peerUri('12D3KooWpeer')], usage: 'client' });
  t.is(identityProblem(identity.certificate, ca.certificate, '12D3KooWpeer'), undefined);
  t.regex(identityProblem(identity.certificate, ca.certificate, '12D3KooWother') ?? '', /names another peer/);
  t.regex(identityProblem(forged.certificate, ca.certificate, '12D3KooWpeer') ?? '', /not signed by the cluster CA/);
  t.regex(identityProblem(identity.certificate, ca.certificate, '12D3KooWpeer', new Date(Date.now() + 400 * 86_400_000)) ?? '', /not valid now/);
  t.regex(identityProblem('not a certificate', ca.certificate, 'x') ?? '', /unreadable/);
});

test('a PKI directory keeps its CA and keys private, and issues again only when a certificate no longer fits', async (t) => {
  const dir = join(await mkdtemp(join(tmpdir(), 'shoal-pki-')), 'pki');
  t.teardown(() => rm(join(dir, '..'), { recursive: true, force: true }));
  t.true((await ensureCa(dir)).created);
  t.false((await ensureCa(dir)).created, 'made once');
  t.is((await stat(dir)).mode & 0o777, 0o700);
  for (const key of ['ca.key', 'seal.key']) t.is((await stat(join(dir, key))).mode & 0o777, 0o600, key);
  const first = await ensureIssued(dir, 'api', { commonName: 'api', ips: ['198.18.0.1'], usage: 'server' });
  t.is((await ensureIssued(dir, 'api', { commonName: 'api', ips: ['198.18.0.1'], usage: 'server' })).certificate, first.certificate, 'kept while it fits');
  t.not((await ensureIssued(dir, 'api', { commonName: 'api', ips: ['198.18.0.2'], usage: 'server' })).certificate, first.certificate, 'issued again for a new address');
  t.is((await stat(first.keyFile)).mode & 0o777, 0o600);
});

test('the egress guard drops the control plane\'s ports and VXLAN from task bridges, in and through the host', (t) => {
  const rules = guardRules([4241, 2377, 7000]);
  t.regex(rules, /chain input \{ type filter hook input priority -10; policy accept;\n {4}iifname "slb-\*" tcp dport \{ 2377, 4241, 7000 \} drop/);
  t.regex(rules, /chain forward \{[^}]*iifname "slb-\*" oifname != "slb-\*" tcp dport \{ 2377, 4241, 7000 \} drop/);
  t.regex(rules, /udp dport 4789 drop/);
});
