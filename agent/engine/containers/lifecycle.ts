/** Pure pieces of the lifecycle verbs (states, `top`'s table, `update`'s limits), tested without runc. */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type ContainerState, Resources, type ResourceUpdate } from '../../../shared/containers.ts';
import { errors } from '../../../shared/errors.ts';
import { describeIssues } from '../../../shared/schemas.ts';
import { linuxResources } from './runtime-spec.ts';

/** A container whose processes exist: running, or frozen by `pause`. */
export function isLive(state: ContainerState | undefined): boolean {
  return state === 'running' || state === 'paused';
}

export interface ProcessTable {
  titles: string[];
  processes: string[][];
}

/**
 * `ps` output cut to the given pids, as Docker's top does: the PID column is found by its
 * title, and the last column (the command) keeps its spaces.
 */
export function processTable(output: string, pids: ReadonlySet<number>): ProcessTable {
  const [header = '', ...lines] = output.split('\n');
  const titles = header.trim().split(/\s+/);
  const pidColumn = titles.indexOf('PID');
  if (pidColumn < 0) throw errors.invalid('the ps options give no PID column, so the container\'s processes cannot be picked out', 'leave -o out, or include pid in it');
  const processes = lines
    .filter((line) => line.trim())
    .map((line) => {
      const fields = line.trim().split(/\s+/);
      return [...fields.slice(0, titles.length - 1), fields.slice(titles.length - 1).join(' ')];
    })
    .filter((fields) => pids.has(Number(fields[pidColumn])));
  return { titles, processes };
}

/**
 * The container's limits after `update`. As `docker update`: a new --memory keeps the swap
 * limit given at run, and a swap limit below the new memory is refused.
 */
export function updatedResources(current: Resources, change: ResourceUpdate): Resources {
  const merged = { ...current, ...Object.fromEntries(Object.entries(change).filter(([, value]) => value !== undefined)) };
  const checked = Resources.safeParse(merged);
  if (!checked.success) throw errors.invalid(describeIssues(checked.error), 'change --memory-swap together with --memory');
  return checked.data;
}

/** linux.resources for `runc update` and the bundle: memory, CPU, pids and the block IO weight (device throttles are fixed at create). */
export function runcResources(resources: Resources): Record<string, unknown> {
  const { memory, cpu, pids, blockIO } = linuxResources({ ...resources, deviceReadBps: [], deviceWriteBps: [], deviceReadIops: [], deviceWriteIops: [] }, {}) as Record<string, unknown>;
  return { ...(memory ? { memory } : {}), ...(cpu ? { cpu } : {}), ...(pids ? { pids } : {}), ...(blockIO ? { blockIO } : {}) };
}

/** Bytes under a directory (its files' sizes, links not followed): what removing it reclaims. */
export async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(path);
    else total += (await lstat(path).catch(() => undefined))?.size ?? 0;
  }
  return total;
}
