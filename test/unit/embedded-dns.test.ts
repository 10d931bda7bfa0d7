/**
 * The embedded DNS's answers from one sandbox's view, through the real codec: what a client on
 * the wire decodes (response code, answers, TTL), not the resolver's internal values.
 */
import test from 'ava';
import dnsPacket, { type Packet } from 'dns-packet';
import { ServiceDirectory } from '../../netplug/discovery/directory.ts';
import { resolve } from '../../netplug/discovery/resolver.ts';
import { nameserversOf, searchOf } from '../../netplug/discovery/upstreams.ts';

function directory(): ServiceDirectory {
  const d = new ServiceDirectory();
  d.setLeaderTables(
    [
      {
        networkId: 'app',
        records: [
          { name: 'web', addresses: ['198.19.0.2'] },
          { name: 'tasks.web', addresses: ['198.19.0.3', '198.19.0.4', '198.19.0.5'], shuffle: true },
          { name: 'web.1.abc', addresses: ['198.19.0.3'] },
          { name: 'idle', addresses: [] },
        ],
        vips: [{ address: '198.19.0.2', service: 'web', backends: ['198.19.0.3', '198.19.0.4', '198.19.0.5'] }],
      },
      { networkId: 'other', records: [{ name: 'lonely', addresses: ['198.19.1.2'] }, { name: 'lonely.example.test', addresses: ['198.19.1.2'] }], vips: [] },
    ],
    undefined,
  );
  return d;
}

/** A decoded answer: dns-packet's types leave out what decode gives (rcode; data and ttl on every record). */
type Decoded = Omit<Packet, 'answers'> & { rcode?: string; answers?: Array<{ data: unknown; ttl?: number }> };

/** Asks as a client would, and decodes the bytes a client would get. */
function ask(name: string, type: 'A' | 'AAAA' | 'MX' | 'PTR' = 'A'): Decoded | 'forward' {
  const query = dnsPacket.decode(dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] }));
  const resolution = resolve(query, { networkIds: ['app'], directory: directory(), ttl: 5 });
  return resolution.kind === 'forward' ? 'forward' : (dnsPacket.decode(dnsPacket.encode(resolution.packet)) as Decoded);
}

const addresses = (packet: Decoded | 'forward') => (packet === 'forward' ? [] : (packet.answers ?? []).map((a) => String(a.data)).sort());

test('a service name answers its VIP with the short TTL, the id echoed and recursion available', (t) => {
  const answer = ask('web');
  if (answer === 'forward') return t.fail('forwarded');
  t.is(answer.id, 4242);
  t.is(answer.rcode, 'NOERROR');
  t.deepEqual(addresses(answer), ['198.19.0.2']);
  t.is(answer.answers![0]!.ttl, 5);
  t.true(((answer.flags ?? 0) & dnsPacket.RECURSION_AVAILABLE) !== 0);
  t.true(((answer.flags ?? 0) & dnsPacket.RECURSION_DESIRED) !== 0);
  t.deepEqual(addresses(ask('WEB.')), ['198.19.0.2'], 'case and the root dot do not matter');
});

test('tasks.NAME answers every task address; a task name its own; a name with no task answers empty, not NXDOMAIN', (t) => {
  t.deepEqual(addresses(ask('tasks.web')), ['198.19.0.3', '198.19.0.4', '198.19.0.5']);
  t.deepEqual(addresses(ask('web.1.abc')), ['198.19.0.3']);
  const idle = ask('idle');
  t.not(idle, 'forward');
  t.is((idle as Decoded).rcode, 'NOERROR');
  t.deepEqual(addresses(idle), []);
});

test('AAAA and other types of a known name answer NOERROR with no records', (t) => {
  for (const type of ['AAAA', 'MX'] as const) {
    const answer = ask('web', type);
    t.not(answer, 'forward');
    t.is((answer as Decoded).rcode, 'NOERROR', type);
    t.deepEqual(addresses(answer), []);
  }
});

test('a name only on another network, and an unknown single label, are NXDOMAIN on the wire; other names go upstream', (t) => {
  for (const name of ['lonely', 'lonely.example.test', 'nosuchthing']) {
    const answer = ask(name);
    t.not(answer, 'forward', name);
    t.is((answer as Decoded).rcode, 'NXDOMAIN', name);
  }
  t.is(ask('example.org'), 'forward');
  t.is(ask('example.org', 'AAAA'), 'forward');
});

test('a reverse lookup of a task address names it; an unknown address goes upstream', (t) => {
  const answer = ask('3.0.19.198.in-addr.arpa', 'PTR');
  t.not(answer, 'forward');
  t.true(addresses(answer).includes('web.1.abc'));
  t.is(ask('9.9.19.198.in-addr.arpa', 'PTR'), 'forward');
});

test('the host\'s resolv.conf gives at most three IPv4 nameservers, its search domains and options', (t) => {
  const text = 'nameserver 198.18.0.249\n# comment\nnameserver ::1\nnameserver 198.18.0.250\nnameserver 198.18.0.251\nnameserver 198.18.0.252\nsearch a.test b.test\noptions ndots:2 timeout:1\n';
  t.deepEqual(nameserversOf(text), ['198.18.0.249', '198.18.0.250', '198.18.0.251']);
  t.deepEqual(searchOf(text), { search: ['a.test', 'b.test'], options: ['ndots:2', 'timeout:1'] });
});
