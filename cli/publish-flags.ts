/**
 * The flags of names and ports, as Docker spells them, for `service create|update` and
 * `container run`: `-p/--publish` in short and long form, `--network name=N,alias=A`.
 */
import type { PublishedPortInput } from '../shared/containers.ts';
import { ShoalError } from '../shared/errors.ts';

function invalid(flag: string, message: string): ShoalError {
  return new ShoalError('invalid', 'invalid_flags', `${flag}: ${message}`);
}

function port(text: string, flag: string, what: string): number {
  const number = Number(text);
  if (!/^\d+$/.test(text) || number < 1 || number > 65_535) throw invalid(flag, `${what} "${text}" is not a port from 1 to 65535`);
  return number;
}

/** Ranges (`8080-8081:80-81`) expand to one port each, as Docker's do. */
function range(text: string, flag: string, what: string): number[] {
  const [from, to] = text.split('-');
  const first = port(from!, flag, what);
  const last = to === undefined ? first : port(to, flag, what);
  if (last < first || last - first > 1000) throw invalid(flag, `${what} range "${text}" must go up, by at most 1000 ports`);
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/**
 * One --publish value: `published=8080,target=80[,protocol=udp][,mode=host]` or the short
 * `[ip:]8080:80[/udp]` (`hostIp` only where the command takes it: `container run`).
 */
export function parsePublish(text: string, flag = '--publish', options: { hostIp?: boolean; mode?: 'ingress' | 'host'; assignable?: boolean } = {}): PublishedPortInput[] {
  if (text.includes('=')) {
    const fields = new Map(text.split(',').map((part) => {
      const at = part.indexOf('=');
      return [part.slice(0, at).trim(), part.slice(at + 1).trim()] as const;
    }));
    for (const key of fields.keys()) if (!['published', 'target', 'protocol', 'mode'].includes(key)) throw invalid(flag, `"${key}" is not published, target, protocol or mode`);
    const target = fields.get('target');
    const published = fields.get('published');
    if (!target) throw invalid(flag, `"${text}" has no target; write it like published=8080,target=80`);
    const mode = fields.get('mode') ?? options.mode ?? 'ingress';
    if (!published && !(options.assignable && mode === 'ingress')) throw invalid(flag, `"${text}" has no published port; ${options.assignable ? 'the cluster picks one only in ingress mode' : 'a container\'s is not picked for it'} (write published=8080,target=80)`);
    const protocol = fields.get('protocol') ?? 'tcp';
    if (protocol !== 'tcp' && protocol !== 'udp') throw invalid(flag, `protocol "${protocol}" is not tcp or udp (sctp is not supported)`);
    if (mode !== 'ingress' && mode !== 'host') throw invalid(flag, `mode "${mode}" is not ingress or host`);
    // 0: the cluster picks a free port from 30000-32767, as Swarm does.
    return [{ publishedPort: published ? port(published, flag, 'published port') : 0, targetPort: port(target, flag, 'target port'), protocol, mode }];
  }
  const match = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?([\d-]+):([\d-]+)(?:\/(\w+))?$/.exec(text);
  if (!match) {
    const only = /^([\d-]+)(?:\/(\w+))?$/.exec(text);
    if (only && options.assignable && (options.mode ?? 'ingress') === 'ingress') {
      const protocol = only[2] ?? 'tcp';
      if (protocol !== 'tcp' && protocol !== 'udp') throw invalid(flag, `protocol "${protocol}" is not tcp or udp (sctp is not supported)`);
      return range(only[1]!, flag, 'target port').map((targetPort) => ({ publishedPort: 0, targetPort, protocol: protocol as 'tcp' | 'udp', mode: 'ingress' as const }));
    }
    if (only) throw invalid(flag, `"${text}" names only the container's port; give the published port too (8080:${text})`);
    throw invalid(flag, `"${text}" is not PUBLISHED:TARGET[/udp] (such as 8080:80) or published=8080,target=80`);
  }
  const [, hostIp, published, target, protocol = 'tcp'] = match;
  if (hostIp && !options.hostIp) throw invalid(flag, `"${text}": a service publishes on every address of its nodes; leave out ${hostIp}`);
  if (protocol !== 'tcp' && protocol !== 'udp') throw invalid(flag, `protocol "${protocol}" is not tcp or udp (sctp is not supported)`);
  const publishedPorts = range(published!, flag, 'published port');
  const targetPorts = range(target!, flag, 'target port');
  if (publishedPorts.length !== targetPorts.length) throw invalid(flag, `"${text}": the published and target ranges differ in length`);
  return publishedPorts.map((p, i) => ({
    publishedPort: p, targetPort: targetPorts[i]!, protocol: protocol as 'tcp' | 'udp', mode: options.mode ?? 'ingress', ...(hostIp ? { hostIp } : {}),
  }));
}

/** The key a --publish-rm names: `8080`, `8080/udp`, or a whole publish value. */
export function publishKey(text: string, flag = '--publish-rm'): string {
  if (/^\d+(\/\w+)?$/.test(text)) return text.includes('/') ? text : `${text}/tcp`;
  const [first] = parsePublish(text, flag);
  return `${first!.publishedPort}/${first!.protocol ?? 'tcp'}`;
}

/** One --network value: a name, or the long form `name=N[,alias=A]...` (aliases are the DNS names it adds there). */
export function parseNetworkFlag(text: string, flag = '--network'): { name: string; aliases: string[] } {
  if (!text.includes('=')) return { name: text, aliases: [] };
  let name: string | undefined;
  const aliases: string[] = [];
  for (const part of text.split(',')) {
    const at = part.indexOf('=');
    const key = part.slice(0, at).trim();
    const value = part.slice(at + 1).trim();
    if (key === 'name' || key === 'target') name = value;
    else if (key === 'alias') aliases.push(value);
    else throw invalid(flag, `"${key}" is not name or alias (driver options are not supported)`);
  }
  if (!name) throw invalid(flag, `"${text}" has no name; write it like name=backend,alias=db`);
  return { name, aliases };
}

/** --network values into the networks and the aliases per network. */
export function networksAndAliases(values: readonly string[], flag = '--network'): { networks: string[]; aliases: Record<string, string[]> } {
  const networks: string[] = [];
  const aliases: Record<string, string[]> = {};
  for (const value of values) {
    const parsed = parseNetworkFlag(value, flag);
    networks.push(parsed.name);
    if (parsed.aliases.length) aliases[parsed.name] = [...(aliases[parsed.name] ?? []), ...parsed.aliases];
  }
  return { networks, aliases };
}

/** --host/--add-host `name:address` (Docker also takes `name=address`). */
export function parseExtraHost(text: string, flag: string): string {
  const match = /^([A-Za-z0-9_.-]+)[:=](\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (!match) throw invalid(flag, `"${text}" is not NAME:ADDRESS (such as db:198.19.0.9)`);
  return `${match[1]}:${match[2]}`;
}
