/** IPv4 addresses and prefixes as numbers: what the allocators compute with. */

export interface Prefix {
  /** The network address, as an unsigned 32-bit number. */
  base: number;
  length: number;
}

const octet = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const addressPattern = new RegExp(`^${octet}\\.${octet}\\.${octet}\\.${octet}$`);

export function isIpv4(text: string): boolean {
  return addressPattern.test(text);
}

export function parseIpv4(text: string): number {
  if (!isIpv4(text)) throw new Error(`"${text}" is not an IPv4 address`);
  return text.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

/** Parses "198.19.1.0/24"; with `strict`, host bits must be zero (as a subnet must be). */
export function parsePrefix(text: string, strict = true): Prefix {
  const match = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  if (!match || !isIpv4(match[1]!) || Number(match[2]) > 32) throw new Error(`"${text}" is not an IPv4 prefix such as 198.19.1.0/24`);
  const address = parseIpv4(match[1]!);
  const length = Number(match[2]);
  const base = (address & mask(length)) >>> 0;
  if (strict && base !== address) throw new Error(`"${text}" has host bits set; the subnet is ${formatPrefix({ base, length })}`);
  return { base, length };
}

export function formatPrefix(prefix: Prefix): string {
  return `${formatIpv4(prefix.base)}/${prefix.length}`;
}

export function size(prefix: Prefix): number {
  return 2 ** (32 - prefix.length);
}

export function contains(prefix: Prefix, address: number): boolean {
  return ((address & mask(prefix.length)) >>> 0) === prefix.base;
}

/** Whether `inner` lies wholly within `outer`. */
export function within(inner: Prefix, outer: Prefix): boolean {
  return inner.length >= outer.length && contains(outer, inner.base);
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  return within(a, b) || within(b, a);
}

/** The addresses a host may hold: not the network address, and not broadcast (below /31). */
export function hostRange(prefix: Prefix): { first: number; last: number } {
  if (prefix.length >= 31) return { first: prefix.base, last: prefix.base + size(prefix) - 1 };
  return { first: prefix.base + 1, last: prefix.base + size(prefix) - 2 };
}
