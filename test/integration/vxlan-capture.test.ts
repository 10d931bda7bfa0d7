/**
 * Golden packets from the kernel itself: a VXLAN device in one namespace sends to a plain UDP
 * socket on port 4789 in another, so what arrives is exactly what the kernel's VXLAN puts on
 * the wire. The codec decodes it (VNI, inner Ethernet, IPv4, ICMP echo and UDP) with every
 * checksum right, and a frame the codec builds, sent into that VXLAN device's port, is taken
 * in by the kernel and answered.
 */
import { createSocket, type Socket } from 'node:dgram';
import test from 'ava';
import { run } from '../../shared/exec.ts';
import { createNetns, deleteNetns, netnsPath, setNetnsSysctl, socketInNetns } from '../../native/netns.ts';
import { decodeInner, decodeVxlan, encodeInner, encodeVxlan, vxlanPort } from '../../netplug/vxlan/codec.ts';

const a = 'shoal-itvx-a';
const b = 'shoal-itvx-b';
const ip = (netns: string, lines: string[]) => run('ip', ['-n', netns, '-batch', '-'], `${lines.join('\n')}\n`);
const vni = 4242;
const macA = '02:42:c6:13:f0:01';
const macB = '02:42:c6:13:f0:02';

async function sweep(): Promise<void> {
  for (const ns of [a, b]) await deleteNetns(ns).catch(() => undefined);
}

/** A UDP socket opened inside a namespace, for dgram. */
async function socketIn(netns: string, address: string, port: number): Promise<Socket> {
  const fd = await socketInNetns(netnsPath(netns), 'udp', address, port);
  const socket = createSocket('udp4');
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.bind({ fd }, resolve));
  return socket;
}

test.before(async () => {
  await sweep();
  await createNetns(a);
  await createNetns(b);
  // No IPv6 chatter (router solicitations) through the tunnel: the frames looked at are the test's.
  for (const ns of [a, b]) await setNetnsSysctl(ns, 'net/ipv6/conf/default/disable_ipv6', '1');
  await ip(a, [`link add eth0 type veth peer name eth0 netns ${b}`, 'addr add 198.18.210.1/24 dev eth0', 'link set eth0 up', 'link set lo up',
    `link add vx0 address ${macA} type vxlan id ${vni} remote 198.18.210.2 local 198.18.210.1 dstport ${vxlanPort} dev eth0 nolearning`,
    'addr add 198.19.241.1/24 dev vx0', 'link set vx0 up', `neigh replace 198.19.241.2 lladdr ${macB} dev vx0 nud permanent`]);
  await ip(b, ['addr add 198.18.210.2/24 dev eth0', 'link set eth0 up', 'link set lo up']);
});
test.after.always(sweep);

/** The next datagram on `socket` that carries IPv4 inside, or undefined after 3 s. */
const next = (socket: Socket) => new Promise<Buffer | undefined>((resolve) => {
  const timer = setTimeout(() => {
    socket.off('message', take);
    resolve(undefined);
  }, 3000);
  function take(message: Buffer) {
    if (message.length < 22 || message.readUInt16BE(20) !== 0x0800) return;
    clearTimeout(timer);
    socket.off('message', take);
    resolve(message);
  }
  socket.on('message', take);
});

test.serial('frames the kernel\'s VXLAN device sends decode to their VNI, inner addresses and payload, with every checksum right', async (t) => {
  const tunnel = await socketIn(b, '198.18.210.2', vxlanPort);
  t.teardown(() => tunnel.close());

  // An ICMP echo from busybox ping.
  const echo = next(tunnel);
  await run('ip', ['netns', 'exec', a, 'busybox', 'ping', '-c', '1', '-W', '1', '-s', '16', '198.19.241.2']).catch(() => undefined);
  const icmp = await echo;
  t.truthy(icmp, 'the echo arrived at port 4789');
  const outer = decodeVxlan(icmp!);
  t.is(outer.header.vni, vni);
  const inner = decodeInner(outer.inner);
  t.like(inner, { sourceMac: macA, destinationMac: macB, source: '198.19.241.1', destination: '198.19.241.2', checksumsOk: true });
  t.like(inner.transport, { protocol: 'icmp', type: 'request' });

  // A UDP datagram from a socket in A.
  const sender = await socketIn(a, '198.19.241.1', 0);
  t.teardown(() => sender.close());
  const datagram = next(tunnel);
  sender.send(Buffer.from('golden'), 5353, '198.19.241.2');
  const udp = decodeInner(decodeVxlan((await datagram)!).inner);
  // Over veth the inner UDP checksum is left to a card that never fills it in: told, not wrong.
  t.like(udp, { source: '198.19.241.1', destination: '198.19.241.2', checksumsOk: true });
  t.log(`the kernel's inner UDP checksum: ${udp.offloaded ? 'left to the card (offloaded)' : 'filled in'}`);
  t.like(udp.transport, { protocol: 'udp', destinationPort: 5353 });
  t.is(udp.transport.protocol === 'udp' ? udp.transport.data.toString() : '', 'golden');
});

test.serial('a frame the codec builds is taken in by the kernel\'s VXLAN device and answered', async (t) => {
  const tunnel = await socketIn(b, '198.18.210.2', vxlanPort);
  t.teardown(() => tunnel.close());
  const probe = encodeVxlan({ vni }, encodeInner({
    sourceMac: macB, destinationMac: macA, source: '198.19.241.2', destination: '198.19.241.1', identification: 1,
    transport: { protocol: 'icmp', type: 'request', identifier: 0x5348, sequence: 1, data: Buffer.from('shoal-probe-nonce') },
  }));
  const reply = next(tunnel);
  tunnel.send(probe, vxlanPort, '198.18.210.1');
  const answered = await reply;
  t.truthy(answered, 'A\'s kernel answered through the tunnel');
  const inner = decodeInner(decodeVxlan(answered!).inner);
  t.like(inner, { source: '198.19.241.1', destination: '198.19.241.2', checksumsOk: true });
  t.like(inner.transport, { protocol: 'icmp', type: 'reply', identifier: 0x5348, sequence: 1 });
  t.is(inner.transport.protocol === 'icmp' ? inner.transport.data.toString() : '', 'shoal-probe-nonce', 'the nonce came back');
});
