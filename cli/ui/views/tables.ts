/** The columns of each list view, and the tone of a row (what is wrong shows red). */
import { capital, type Column } from '../../table.ts';
import { formatAge, formatBytes } from '../../duration.ts';
import { formatPorts } from '../../pretty.ts';
import type { UiEvent, UiNetwork, UiNode, UiService, UiTask } from '../source.ts';

export type Tone = 'bad' | 'warn' | 'ok' | undefined;

/** "██████░░░░": running against desired, for the Services view. */
export function bar(running: number, desired: number, width = 10): string {
  if (desired === 0) return '░'.repeat(width);
  const filled = Math.round((Math.min(running, desired) / desired) * width);
  return '█'.repeat(filled) + '░'.repeat(width - filled);
}

const cpus = (nanoCpus: number) => `${Math.round((nanoCpus / 1e9) * 100) / 100}`;
const percent = (fraction: number) => `${Math.round(fraction * 100)}%`;

export const nodeColumns: Column<UiNode>[] = [
  { header: 'HOSTNAME', value: (n) => n.description.hostname, shrinkable: true },
  /** A manager's role says whether it leads (★) or cannot be reached. */
  { header: 'ROLE', value: (n) => (n.managerStatus === 'leader' ? 'leader★' : n.managerStatus === 'unreachable' ? 'manager?' : n.spec.role) },
  { header: 'STATUS', value: (n) => n.status.state },
  { header: 'AVAIL', value: (n) => n.spec.availability },
  { header: 'TASKS', value: (n) => (n.summary ? `${n.summary.tasks.running}/${n.summary.tasks.total}` : '-') },
  /** Reserved of the node's total, then used now. */
  { header: 'CPU', value: (n) => `${cpus(n.summary?.reserved.nanoCpus ?? 0)}/${n.description.cpus} ${n.summary?.usage ? percent(n.summary.usage.cpuFraction) : '-'}` },
  {
    header: 'MEMORY',
    value: (n) =>
      `${formatBytes(n.summary?.reserved.memoryBytes ?? 0)}/${formatBytes(n.description.memoryBytes)} ${n.summary?.usage ? percent(n.summary.usage.memoryUsedBytes / n.description.memoryBytes) : '-'}`,
  },
  { header: 'LABELS', value: (n) => Object.entries(n.spec.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-', shrinkable: true },
];
export const nodeTone = (n: UiNode): Tone => (n.status.state !== 'ready' ? 'bad' : n.spec.availability !== 'active' ? 'warn' : undefined);

export const serviceColumns: Column<UiService>[] = [
  { header: 'NAME', value: (s) => s.spec.name, shrinkable: true },
  { header: 'MODE', value: (s) => s.spec.mode },
  { header: 'REPLICAS', value: (s) => `${`${s.running}/${s.spec.mode === 'global' ? s.desired : s.spec.replicas}`.padEnd(9)} ${bar(s.running, s.spec.mode === 'global' ? s.desired : s.spec.replicas)}` },
  { header: 'IMAGE', value: (s) => s.spec.container.image, shrinkable: true },
  { header: 'PORTS', value: (s) => formatPorts(s) || '-', shrinkable: true },
  { header: 'UPDATE', value: (s) => s.updateStatus?.state ?? '-' },
];
export const serviceTone = (s: UiService): Tone => {
  const desired = s.spec.mode === 'global' ? s.desired : s.spec.replicas;
  if (s.updateStatus?.state === 'paused' || s.updateStatus?.state === 'rollback_paused') return 'bad';
  return s.running < desired ? 'warn' : undefined;
};


export const taskColumns = (now: number): Column<UiTask>[] => [
  { header: 'NAME', value: (t) => t.name, shrinkable: true },
  { header: 'NODE', value: (t) => t.node ?? '-' },
  { header: 'DESIRED', value: (t) => capital(t.desiredState) },
  { header: 'CURRENT', value: (t) => capital(t.status.state) },
  { header: 'AGE', value: (t) => formatAge(t.status.timestamp, now), live: true },
  { header: 'HEALTH', value: (t) => t.status.health ?? '-' },
  { header: 'ERROR', value: (t) => t.status.error ?? '', shrinkable: true },
];
export const taskTone = (t: UiTask): Tone =>
  ['failed', 'rejected', 'orphaned'].includes(t.status.state) || t.status.health === 'unhealthy' ? 'bad' : t.desiredState !== 'running' ? 'warn' : undefined;

export const networkColumns: Column<UiNetwork>[] = [
  { header: 'NAME', value: (n) => n.spec.name, shrinkable: true },
  { header: 'DRIVER', value: (n) => n.spec.driver },
  { header: 'SCOPE', value: (n) => n.scope },
  { header: 'SUBNET', value: (n) => n.pools.map((p) => p.subnet).join(',') || '-' },
  { header: 'ENDPOINTS', value: (n) => String(n.endpoints) },
  { header: 'HOSTS', value: (n) => String(n.hosts) },
];

export const eventColumns: Column<UiEvent>[] = [
  { header: 'TIME', value: (e) => e.time.slice(11, 19) },
  { header: 'TYPE', value: (e) => e.type },
  { header: 'ACTION', value: (e) => e.action },
  { header: 'NAME', value: (e) => e.name ?? e.id.slice(0, 12), shrinkable: true },
  { header: 'STATE', value: (e) => e.state ?? '' },
];
export const eventTone = (e: UiEvent): Tone => (e.state && ['failed', 'rejected', 'down'].includes(e.state) ? 'bad' : undefined);
