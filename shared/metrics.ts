/**
 * Prometheus metrics: each daemon keeps one registry (prom-client's, with its process metrics)
 * and serves it on GET /metrics at the address of `--metrics-listen` (off unless given, as
 * Docker's `metrics-addr`). docs/metrics.md lists every metric.
 */
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from './log.ts';
import { parseListenAddress } from './listen-address.ts';

/** Buckets in seconds, from a millisecond to a minute: scheduling, dispatch, start stages and API calls all fall inside. */
export const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function newRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

export function latencyHistogram<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[] = []): Histogram<L> {
  return new Histogram({ name, help, labelNames, buckets: latencyBuckets, registers: [registry] });
}

/**
 * A gauge with one label, counted when scraped: `read` gives each label value's count, or
 * nothing (a follower manager, an agent not yet started), and then the gauge has no series.
 */
export function countedGauge(registry: Registry, name: string, help: string, label: string, read: () => ReadonlyMap<string, number> | undefined): void {
  new Gauge({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset();
      for (const [value, count] of read() ?? []) this.set({ [label]: value }, count);
    },
  });
}

/** Serves the registry on GET /metrics; resolves once listening, with the server to close. */
export async function serveMetrics(registry: Registry, listen: string, log: Logger): Promise<Server> {
  const { host, port } = parseListenAddress(listen);
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: unknown) => {
        log.warn('metrics not collected', { error: String(error) });
        response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics not collected: ${String(error)}\n`);
      },
    );
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.warn('metrics server error', { error: String(error) }));
  log.info('metrics served', { url: `http://${listen}/metrics` });
  return server;
}
