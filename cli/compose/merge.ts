/**
 * Merges compose files in order, by the Compose Specification's rules: mappings merge key by
 * key; sequences append; `command`, `entrypoint` and `healthcheck.test` are replaced; ports,
 * volumes, secrets and configs merge by their unique key (a later entry with the same key
 * replaces the earlier); `environment`, `labels` and the like merge by name whether written as
 * a list or a map; `!reset` removes a value and `!override` replaces it whole.
 */

/** Marks set by the loader on values tagged `!reset` / `!override`. */
export const resetMark = '__compose_reset__';
export const overrideMark = '__compose_override__';

type Model = Record<string, unknown>;

const isObject = (value: unknown): value is Model => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Service keys replaced whole by a later file. */
const replaced = new Set(['command', 'entrypoint']);

/** Service keys written as a list of NAME=value or a map, merged by name. */
const byName = new Set(['environment', 'labels', 'extra_hosts', 'sysctls', 'annotations']);

/** The unique key of an entry of a service's ports, volumes, secrets or configs. */
const uniqueKeys: Record<string, (entry: unknown) => string> = {
  ports: (entry) => (isObject(entry) ? [entry.host_ip ?? '', entry.target, entry.published ?? '', entry.protocol ?? 'tcp'].join('/') : portKey(String(entry))),
  volumes: (entry) => (isObject(entry) ? String(entry.target) : volumeTarget(String(entry))),
  secrets: (entry) => (isObject(entry) ? String(entry.target ?? `/run/secrets/${String(entry.source)}`) : `/run/secrets/${String(entry)}`),
  configs: (entry) => (isObject(entry) ? String(entry.target ?? `/${String(entry.source)}`) : `/${String(entry)}`),
};

/** "ip:published:target/proto" in its short forms, as the unique key's parts. */
function portKey(text: string): string {
  const [spec, protocol = 'tcp'] = text.split('/');
  const parts = spec!.split(':');
  const target = parts.at(-1)!;
  const published = parts.length >= 2 ? parts.at(-2)! : '';
  const ip = parts.length >= 3 ? parts.slice(0, -2).join(':') : '';
  return [ip, target, published, protocol].join('/');
}

/** The container path of a short volume ("src:/target:ro", "/target"). */
function volumeTarget(text: string): string {
  const parts = text.split(':');
  if (parts.length === 1) return parts[0]!;
  return parts[1]!;
}

/** A list of NAME=value (or NAME alone) as a map; a map as it is. */
export function namedMap(value: unknown, separator = '='): Model {
  if (isObject(value)) return { ...value };
  const map: Model = {};
  for (const item of Array.isArray(value) ? value : []) {
    const text = String(item);
    const at = text.indexOf(separator);
    if (at < 0) map[text] = null;
    else map[text.slice(0, at)] = text.slice(at + 1);
  }
  return map;
}

function isReset(value: unknown): boolean {
  return isObject(value) && value[resetMark] === true;
}

function overridden(value: unknown): { value: unknown } | undefined {
  return isObject(value) && overrideMark in value ? { value: value[overrideMark] } : undefined;
}

/** Removes the loader's marks from a model that was never merged with another. */
function settle(value: unknown): unknown {
  const whole = overridden(value);
  if (whole) return settle(whole.value);
  if (Array.isArray(value)) return value.map(settle);
  if (!isObject(value)) return value;
  const out: Model = {};
  for (const [key, item] of Object.entries(value)) if (!isReset(item)) out[key] = settle(item);
  return out;
}

function mergeValues(base: unknown, next: unknown, path: readonly string[]): unknown {
  const whole = overridden(next);
  if (whole) return settle(whole.value);
  if (base === undefined) return settle(next);
  const key = path.at(-1) ?? '';
  const inService = path.length === 3 && path[0] === 'services';
  if (inService && replaced.has(key)) return settle(next);
  if (inService && byName.has(key)) return mergeMaps(namedMap(base, key === 'extra_hosts' ? ':' : '='), namedMap(next, key === 'extra_hosts' ? ':' : '='), path);
  if (inService && (key === 'networks' || key === 'depends_on') && (Array.isArray(base) || Array.isArray(next))) {
    return mergeMaps(listToMap(base), listToMap(next), path);
  }
  if (path.length === 4 && path[0] === 'services' && path[2] === 'healthcheck' && key === 'test') return settle(next);
  if (inService && uniqueKeys[key] && Array.isArray(base) && Array.isArray(next)) {
    const keyOf = uniqueKeys[key];
    const merged = new Map<string, unknown>();
    for (const entry of [...base, ...next.map(settle)]) merged.set(keyOf(entry), entry);
    return [...merged.values()];
  }
  if (Array.isArray(base) && Array.isArray(next)) return [...base, ...next.map(settle)];
  if (isObject(base) && isObject(next)) return mergeMaps(base, next, path);
  return settle(next);
}

/** A list of names (networks, depends_on) as a map of name to null; a map as it is. */
function listToMap(value: unknown): Model {
  if (isObject(value)) return value;
  return Object.fromEntries((Array.isArray(value) ? value : []).map((name) => [String(name), null]));
}

function mergeMaps(base: Model, next: Model, path: readonly string[]): Model {
  const out: Model = { ...base };
  for (const [key, value] of Object.entries(next)) {
    if (isReset(value)) delete out[key];
    else out[key] = mergeValues(out[key], value, [...path, key]);
  }
  return out;
}

/** The files' models merged in order; the first file's model with its marks settled if alone. */
export function mergeProjects(models: readonly Model[]): Model {
  let merged: Model = {};
  for (const model of models) merged = mergeMaps(merged, model, []);
  return settle(merged) as Model;
}
