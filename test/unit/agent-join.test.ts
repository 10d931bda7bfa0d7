/**
 * An agent's first join (AgentSession) against a stand-in manager on loopback, a real libp2p
 * peer with a real cluster CA: a manager that drops the first joins (busy, as under a thousand
 * nodes starting together) is tried again until it registers the node; a refusal is final.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import test from 'ava';
import { z } from 'zod';
import { AgentSession } from '../../agent/session.ts';
import { silentLogger } from '../../shared/log.ts';
import { FramedChannel } from '../../shared/p2p/framed.ts';
import { createP2pNode } from '../../shared/p2p/node.ts';
import { JoinRequest, joinProtocol, type JoinServerMessage } from '../../shared/p2p/protocol.ts';
import { caDigest, createCa, issueCertificate, peerUri } from '../../shared/pki/certificates.ts';
import { newClusterId, newJoinToken } from '../../shared/tokens.ts';
import { hostDescription } from '../helpers/node-description.ts';

const description = hostDescription;

/** A manager that drops the first `drops` joins, then answers each with `answer`. */
async function standInManager(t: import('ava').ExecutionContext, drops: number, answer: (nodeId: string) => JoinServerMessage) {
  const manager = await createP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] });
  const ca = await createCa('test cluster');
  const identity = { caCertificate: ca.certificate, certificate: (await issueCertificate(ca, { commonName: 'shoal-manager', uris: [peerUri(manager.peerId.toString())], usage: 'client' })).certificate };
  let joins = 0;
  await manager.handle(joinProtocol, async (stream, connection) => {
    if (++joins <= drops) return stream.abort(new Error('busy'));
    const channel = new FramedChannel<typeof JoinRequest, JoinServerMessage>(stream, JoinRequest);
    await channel.send({ type: 'identity', identity });
    await channel.receive();
    await channel.send(answer(connection.remotePeer.toString()));
    await channel.close();
  });
  const agentP2p = await createP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: [] });
  const stateDir = await mkdtemp(join(tmpdir(), 'shoal-join-test-'));
  const session = new AgentSession({
    p2p: agentP2p,
    stateDir,
    join: [manager.getMultiaddrs()[0]!.toString()],
    token: newJoinToken(caDigest(ca.certificate), newClusterId(), 'worker'),
    labels: {},
    describe: async () => description,
    log: silentLogger,
  });
  t.teardown(async () => {
    await session.stop();
    await agentP2p.stop();
    await manager.stop();
    await rm(stateDir, { recursive: true, force: true });
  });
  return { session, stateDir, joins: () => joins, agentId: agentP2p.peerId.toString() };
}

test('a manager that drops the first joins is tried again until it registers the node', async (t) => {
  const { session, stateDir, joins, agentId } = await standInManager(t, 2, (nodeId) => ({ ok: true, nodeId, role: 'worker', managers: [] }));
  await session.start();
  t.is(joins(), 3, 'two dropped, the third answered');
  const state = z.object({ nodeId: z.string() }).parse(JSON.parse(await readFile(join(stateDir, 'node.json'), 'utf8')));
  t.is(state.nodeId, agentId, 'the membership is remembered');
});

test('a refusal is final: a bad token is not sent again', async (t) => {
  const { session, joins } = await standInManager(t, 0, () => ({ ok: false, code: 'bad_join_token', message: 'the join token is not valid for this cluster' }));
  await t.throwsAsync(session.start(), { message: /not valid/ });
  t.is(joins(), 1);
});
