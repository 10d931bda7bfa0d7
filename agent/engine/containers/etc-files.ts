/** The /etc files the engine writes for a container: hosts and resolv.conf, as Docker writes them. */
import type { ContainerSpec } from '../../../shared/containers.ts';
import { dnsAddress } from '../../../netplug/discovery/sandbox-dns.ts';
import { nameserversOf, searchOf } from '../../../netplug/discovery/upstreams.ts';

/** localhost, the container's own names on each of its addresses, then its --add-host lines. */
export function hostsFile(hostname: string, name: string, spec: ContainerSpec): string {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  const own = spec.attachments.filter((a) => a.address && a.networkName !== 'gwbridge');
  if (own.length === 0) lines.push(`127.0.1.1\t${hostname}`);
  for (const attachment of own) {
    const names = new Set([hostname, name, ...(spec.aliases[attachment.networkName] ?? spec.aliases[attachment.networkId] ?? [])]);
    lines.push(`${attachment.address}\t${[...names].join(' ')}`);
  }
  for (const entry of spec.extraHosts) {
    const at = entry.lastIndexOf(':');
    lines.push(`${entry.slice(at + 1)}\t${entry.slice(0, at)}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * With the embedded DNS: 127.0.0.11 and `ndots:0` (a service name is tried as it is first),
 * the container's own search domains and options (or the host's). Without it (host network,
 * none): the host's file, with the container's --dns servers instead if it has any.
 */
export function resolvConfFile(embedded: boolean, spec: ContainerSpec, hostResolvConf: string): string {
  const host = searchOf(hostResolvConf);
  const search = spec.dnsSearch.length > 0 ? spec.dnsSearch : host.search;
  const servers = embedded ? [dnsAddress] : spec.dns.length > 0 ? spec.dns : nameserversOf(hostResolvConf);
  const options = embedded ? [...(spec.dnsOptions.some((o) => o.startsWith('ndots:')) ? [] : ['ndots:0']), ...spec.dnsOptions] : spec.dnsOptions.length > 0 ? spec.dnsOptions : host.options;
  const lines = [
    ...(search.length ? [`search ${search.join(' ')}`] : []),
    ...servers.map((s) => `nameserver ${s}`),
    ...(options.length ? [`options ${options.join(' ')}`] : []),
  ];
  return `${lines.join('\n')}\n`;
}
