/** HOST:PORT, with a bracketed IPv6 host allowed. */
export function parseListenAddress(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65_535) throw new Error(`"${value}" is not HOST:PORT (for example 127.0.0.1:9323)`);
  return { host: match[1] ?? match[2]!, port };
}
