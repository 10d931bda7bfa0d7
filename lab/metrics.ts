/**
 * Reading the lab daemons' Prometheus metrics from inside their hosts' namespaces (where the
 * lab's addresses are): for tests and benchmarks that compare their own timings with them.
 */
import { run } from '../shared/exec.ts';
import { type LabTopology, metricsEndpoints } from './topology.ts';

/** One daemon's /metrics text. */
export async function scrapeMetrics(topology: LabTopology, role: 'manager' | 'agent', host: string): Promise<string> {
  const endpoint = metricsEndpoints(topology).find((e) => e.role === role && e.host === host);
  if (!endpoint) throw new Error(`the lab has no ${role} metrics on ${host}`);
  return run('nsenter', [`--net=/run/netns/${endpoint.netns}`, 'curl', '-sf', '--max-time', '10', endpoint.url]);
}

/** The sum of every sample of `name` whose labels include all of `labels` (text exposition format). */
export function metricSample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_:]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) sum += Number(match[3]);
  }
  return sum;
}

/** A histogram's count and mean (ms) between two scrapes of the same daemon. */
export function histogramBetween(before: string, after: string, name: string, labels: Record<string, string> = {}): { count: number; meanMs: number } {
  const count = metricSample(after, `${name}_count`, labels) - metricSample(before, `${name}_count`, labels);
  const sum = metricSample(after, `${name}_sum`, labels) - metricSample(before, `${name}_sum`, labels);
  return { count, meanMs: count > 0 ? Math.round((sum / count) * 1e5) / 100 : Number.NaN };
}
