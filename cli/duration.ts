/**
 * Parses Docker-style durations: "500ms", "5s", "2m", "1h", Go's compound form as compose
 * files write it ("1m30s", "1h5m"), or a plain number of seconds.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const part = /(\d+(?:\.\d+)?)(ms|us|µs|ns|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let match = part.exec(trimmed); match; match = part.exec(trimmed)) {
    total += Number(match[1]) * { ms: 1, us: 1e-3, µs: 1e-3, ns: 1e-6, s: 1000, m: 60_000, h: 3_600_000 }[match[2]!]!;
    matched = part.lastIndex;
  }
  if (trimmed === '' || matched !== trimmed.length) throw new Error(`"${text}" is not a duration; write it like 500ms, 5s, 2m or 1m30s`);
  return Math.round(total);
}

/** "3 seconds ago" style ages, as Docker prints them. */
export function formatAge(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86_400)}d ago`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value >= 10 || unit === 0 ? 0 : 1)}${units[unit]}`;
}

/** --since/--until as Docker reads them: an ISO time, a Unix timestamp, or a duration ago (10m). */
export function parseTimeFlag(text: string, flag: string): string {
  if (/^\d+(\.\d+)?(ms|s|m|h)$/.test(text)) return new Date(Date.now() - parseDuration(text)).toISOString();
  if (/^\d{9,}(\.\d+)?$/.test(text)) return new Date(Number(text) * 1000).toISOString();
  if (Number.isNaN(Date.parse(text))) throw new Error(`${flag} "${text}" is not a time (2026-01-01T10:00:00Z), a Unix timestamp or a duration (10m)`);
  return new Date(text).toISOString();
}
