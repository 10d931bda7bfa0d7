/**
 * The embedded DNS's answers, as libnetwork's resolver gives them, from one sandbox's view:
 * only the networks it is on. A known name answers its addresses (A) or nothing (AAAA and the
 * other types: NOERROR, so clients do not give up on the name); a name the cluster knows only
 * on other networks, or a single label, is NXDOMAIN here; everything else goes upstream.
 */
import type { Answer, Packet, Question } from 'dns-packet';
import type { ServiceDirectory } from './directory.ts';

export interface SandboxView {
  networkIds: readonly string[];
  directory: ServiceDirectory;
  /** Seconds clients may cache an answer. */
  ttl: number;
}

export type Resolution = { kind: 'answer'; packet: Packet } | { kind: 'forward' };

/** Response codes (RFC 1035 4.1.1). dns-packet encodes the code from the flags' low bits only; its `rcode` field is read on decode. */
const rcodes = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

/** A reply to `query` with these answers and response code. */
export function reply(query: Packet, rcode: keyof typeof rcodes, answers: Answer[] = []): Packet {
  return {
    id: query.id ?? 0,
    type: 'response',
    // Recursion desired is echoed, recursion available set: the resolver forwards for the client.
    flags: ((query.flags ?? 0) & 0x0100) | 0x0080 | rcodes[rcode],
    rcode,
    questions: query.questions ?? [],
    answers,
  } as Packet;
}

function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

/** "5.0.19.198.in-addr.arpa" -> "198.19.0.5". */
function reverseAddress(name: string): string | undefined {
  const match = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\.in-addr\.arpa$/.exec(name);
  return match ? [match[4], match[3], match[2], match[1]].join('.') : undefined;
}

export function resolve(query: Packet, view: SandboxView): Resolution {
  const question: Question | undefined = query.questions?.[0];
  if (!question || query.type === 'response') return { kind: 'answer', packet: reply(query, 'FORMERR') };
  const name = question.name.replace(/\.$/, '').toLowerCase();
  if (question.type === 'PTR') {
    const address = reverseAddress(name);
    const names = address ? view.directory.namesOf(view.networkIds, address) : [];
    if (names.length > 0) return { kind: 'answer', packet: reply(query, 'NOERROR', names.map((data) => ({ name: question.name, type: 'PTR', class: 'IN', ttl: view.ttl, data }))) };
    return { kind: 'forward' };
  }
  const found = view.directory.lookup(view.networkIds, name);
  if (found) {
    if (question.type !== 'A' && String(question.type) !== 'ANY') return { kind: 'answer', packet: reply(query, 'NOERROR') };
    const addresses = found.shuffle ? shuffled(found.addresses) : found.addresses;
    return { kind: 'answer', packet: reply(query, 'NOERROR', addresses.map((data) => ({ name: question.name, type: 'A', class: 'IN', ttl: view.ttl, data }))) };
  }
  if (!name.includes('.') || view.directory.knownAnywhere(name)) return { kind: 'answer', packet: reply(query, 'NXDOMAIN') };
  return { kind: 'forward' };
}
