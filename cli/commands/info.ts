import type { Command } from 'commander';
import type { ManagerView, NodeView } from '../../shared/schemas.ts';
import type { ServiceObject } from '../../shared/services.ts';
import { shoalVersion } from '../../shared/version.ts';
import { parseFormat } from '../output.ts';
import { connect, type GlobalOptions } from './common.ts';

type ServiceRow = ServiceObject & { running: number; desired: number };

/** What `shoal info` gathers: the cluster as the managers see it, and this host's engine. */
async function gatherInfo(globals: GlobalOptions) {
  const client = await connect(globals).catch(() => undefined);
  const cluster = client
    ? await Promise.all([
        client.call<{ clusterId: string; managerId: string; leaderId: string | null; heartbeatPeriodMs: number; version: string }>('GET', '/v1/info'),
        client.call<ManagerView[]>('GET', '/v1/managers'),
        client.call<NodeView[]>('GET', '/v1/nodes'),
        client.call<ServiceRow[]>('GET', '/v1/services'),
      ]).then(
        ([info, managers, nodes, services]) => {
          const nodeStates: Record<string, number> = {};
          for (const node of nodes) nodeStates[node.status.state] = (nodeStates[node.status.state] ?? 0) + 1;
          return {
            id: info.clusterId,
            version: info.version,
            heartbeatPeriodMs: info.heartbeatPeriodMs,
            managers: managers.map((m) => ({ hostname: m.hostname, leader: m.leader, reachable: m.reachable })),
            leader: managers.find((m) => m.leader)?.hostname ?? null,
            nodes: { total: nodes.length, ...nodeStates },
            services: services.length,
            tasks: { running: services.reduce((n, s) => n + s.running, 0), desired: services.reduce((n, s) => n + (s.spec.mode === 'global' ? s.desired : s.spec.replicas), 0) },
          };
        },
        (error: Error) => ({ error: error.message }),
      )
    : { error: 'no cluster configured (shoal lab up, or --host)' };
  return { client: { version: shoalVersion, node: process.version }, cluster, host: await (await import('../../shared/host-facts.ts')).hostFacts() };
}

export function registerInfoCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('info')
    .description('The cluster (managers, nodes, services, tasks) and this host\'s engine and kernel features')
    .option('-f, --format <format>', 'table or json', 'table')
    .action(async (options: { format: string }) => {
      const format = parseFormat(options.format);
      const info = await gatherInfo(globals());
      if (format === 'json') return void process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      const lines = ['Client:', ` Version:          ${info.client.version}`, ` Node.js:          ${info.client.node}`, 'Cluster:'];
      if ('error' in info.cluster) lines.push(` unreachable: ${info.cluster.error}`);
      else {
        const c = info.cluster;
        const states = Object.entries(c.nodes).filter(([k]) => k !== 'total').map(([k, v]) => `${v} ${k}`).join(', ');
        lines.push(
          ` ID:               ${c.id}`,
          ` Managers:         ${c.managers.length} (leader: ${c.leader ?? 'none elected'}${c.managers.some((m) => !m.reachable) ? `; unreachable: ${c.managers.filter((m) => !m.reachable).map((m) => m.hostname).join(', ')}` : ''})`,
          ` Nodes:            ${c.nodes.total}${states ? ` (${states})` : ''}`,
          ` Services:         ${c.services}`,
          ` Tasks:            ${c.tasks.running} running of ${c.tasks.desired} desired`,
          ` Heartbeat period: ${c.heartbeatPeriodMs / 1000}s`,
          ` Server version:   ${c.version}`,
        );
      }
      const h = info.host;
      const found = h.features.filter((f) => f.present === true);
      const missing = h.features.filter((f) => f.present === false);
      const unknown = h.features.filter((f) => f.present === 'unknown');
      lines.push(
        'Engine (this host):',
        ` Runtime:          ${h.runtime}`,
        ` Cgroup mode:      ${h.cgroupMode}${h.cgroupMode === 'hybrid' ? ' (v1 controllers, v2 unified beside them)' : ''}`,
        ` Kernel:           ${h.kernel}`,
        ` Kernel features:  ${found.map((f) => f.name).join(' ') || 'none found'}`,
        ...missing.map((f) => ` Missing:          ${f.name}: ${f.use}`),
        ...(unknown.length ? [` Not probed:       ${unknown.map((f) => f.name).join(' ')} (probing needs root)`] : []),
      );
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
