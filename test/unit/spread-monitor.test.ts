/**
 * The hub's connection check (shared/p2p/spread-monitor.ts): a live peer passes, a peer behind
 * a cut link is hung up on, and the checks of a period are spread over its ticks. Real libp2p
 * peers on loopback, the cut made by a TCP relay between them that stops forwarding.
 */
import { createServer, type Socket, connect } from 'node:net';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Connection } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import test from 'ava';
import { createP2pNode } from '../../shared/p2p/node.ts';
import { check, SpreadConnectionMonitor } from '../../shared/p2p/spread-monitor.ts';

/** A relay to `port` whose forwarding can be cut (packets held, nothing closed: a pulled cable). */
async function relay(port: number) {
  const sockets: Socket[] = [];
  let cut = false;
  const server = createServer((inbound) => {
    const outbound = connect(port, '127.0.0.1');
    sockets.push(inbound, outbound);
    for (const [from, to] of [[inbound, outbound], [outbound, inbound]] as const) {
      from.on('data', (data) => cut || to.write(data));
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut: () => (cut = true),
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

test('a live peer passes the check; one behind a cut link is hung up on', async (t) => {
  const agent = await createP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] });
  const hub = await createP2pNode({ privateKey: await generateKeyPair('Ed25519'), listen: [], hub: true });
  const link = await relay(Number(agent.getMultiaddrs()[0]!.toString().split('/tcp/')[1]!.split('/')[0]));
  t.teardown(async () => {
    link.close();
    await hub.stop();
    await agent.stop();
  });
  const connection = await hub.dial(multiaddr(`/ip4/127.0.0.1/tcp/${link.port}/p2p/${agent.peerId.toString()}`));
  t.is(await check(connection, 1_000), 'alive', 'the agent serves no ping protocol, and says so: alive');
  link.cut();
  t.is(await check(connection, 300), 'aborted');
  t.not(connection.status, 'open', 'the dead connection is ended, so no call will take it');
  t.is(hub.getConnections(agent.peerId).length, 0);
});

test('each connection is checked once a period, a share of them at each tick', async (t) => {
  const streamsAt: number[][] = [];
  let tick = -1;
  const connections = Array.from({ length: 10 }, (_, i) => ({
    status: 'open',
    newStream: async () => {
      streamsAt[tick]?.push(i);
      throw Object.assign(new Error('unsupported'), { name: 'UnsupportedProtocolError' });
    },
  })) as unknown as Connection[];
  const monitor = new SpreadConnectionMonitor({ getConnections: () => { tick++; streamsAt.push([]); return connections; } }, 400, 4);
  monitor.start();
  t.teardown(() => monitor.stop());
  await new Promise((resolve) => setTimeout(resolve, 450));
  monitor.stop();
  const firstPeriod = streamsAt.slice(0, 4);
  t.deepEqual(firstPeriod.flat().sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'every connection once in the period');
  t.true(firstPeriod.every((checked) => checked.length <= 3), `no tick checked more than its share (${JSON.stringify(firstPeriod)})`);
});
