/** `inspect --pretty`: what Docker's pretty printers show, as indented text. */
import type { NodeView } from '../shared/schemas.ts';
import type { ServiceObject } from '../shared/services.ts';
import { formatBytes } from './duration.ts';

const seconds = (ms: number) => `${ms / 1000}s`;

/** As Docker's PORTS column: *:8080->80/tcp through the routing mesh; host mode is marked, since only nodes with a task answer. */
export function formatPorts(service: Pick<ServiceObject, 'spec'>): string {
  return (service.spec.endpoint?.ports ?? []).map((p) => `*:${p.publishedPort}->${p.targetPort}/${p.protocol}${p.mode === 'host' ? ' (host)' : ''}`).join(', ');
}

function section(lines: Array<[string, string | number | undefined] | string>): string {
  return lines
    .filter((line) => typeof line === 'string' || (line[1] !== undefined && line[1] !== ''))
    .map((line) => (typeof line === 'string' ? line : `${line[0]}:${' '.repeat(Math.max(1, 22 - line[0].length))}${line[1]}`))
    .join('\n');
}

export function prettyService(service: ServiceObject): string {
  const { spec } = service;
  const c = spec.container;
  const labels = Object.entries(spec.labels);
  return `${section([
    ['ID', service.id],
    ['Name', spec.name],
    ...(labels.length ? ['Labels:', ...labels.map(([k, v]) => ` ${k}=${v}`)] : []),
    ['Service Mode', spec.mode === 'global' ? 'Global' : 'Replicated'],
    ...(spec.mode === 'replicated' ? ([[' Replicas', spec.replicas]] as Array<[string, number]>) : []),
    ...(service.updateStatus ? ['UpdateStatus:', ` State:             ${service.updateStatus.state}`, ` Started:           ${service.updateStatus.startedAt}`, ` Message:           ${service.updateStatus.message}`] : []),
    'Placement:',
    ...(spec.placement.constraints.length ? [` Constraints:        [${spec.placement.constraints.join(' ')}]`] : []),
    ...(spec.placement.preferences.length ? [` Preferences:        [${spec.placement.preferences.join(' ')}]`] : []),
    'UpdateConfig:',
    ` Parallelism:        ${spec.update.parallelism}`,
    ...(spec.update.delayMs ? [` Delay:              ${seconds(spec.update.delayMs)}`] : []),
    ` On failure:         ${spec.update.failureAction}`,
    ` Monitoring Period:  ${seconds(spec.update.monitorMs)}`,
    ` Max failure ratio:  ${spec.update.maxFailureRatio}`,
    ` Update order:       ${spec.update.order}`,
    'RollbackConfig:',
    ` Parallelism:        ${spec.rollback.parallelism}`,
    ` On failure:         ${spec.rollback.failureAction}`,
    ` Monitoring Period:  ${seconds(spec.rollback.monitorMs)}`,
    ` Rollback order:     ${spec.rollback.order}`,
    'ContainerSpec:',
    ` Image:              ${c.image}`,
    ...(c.entrypoint ? [` Entrypoint:         ${c.entrypoint.join(' ')}`] : []),
    ...(c.cmd ? [` Args:               ${c.cmd.join(' ')}`] : []),
    ...(c.env.length ? [' Env:', ...c.env.map((e) => `  ${e}`)] : []),
    ...(c.user ? [` User:               ${c.user}`] : []),
    ...(c.workdir ? [` Dir:                ${c.workdir}`] : []),
    ` Init:               ${c.init}`,
    ...(c.mounts.length ? ['Mounts:', ...c.mounts.map((m) => ` Target: ${m.target}  Source: ${'source' in m ? m.source : '-'}  Type: ${m.type}${'readOnly' in m && m.readOnly ? '  ReadOnly: true' : ''}`)] : []),
    'Resources:',
    ...(c.resources.nanoCpus || c.resources.memoryBytes || c.resources.pidsLimit
      ? [' Limits:', ...(c.resources.nanoCpus ? [`  CPU:                ${c.resources.nanoCpus / 1e9}`] : []), ...(c.resources.memoryBytes ? [`  Memory:             ${formatBytes(c.resources.memoryBytes)}`] : []), ...(c.resources.pidsLimit ? [`  Pids:               ${c.resources.pidsLimit}`] : [])]
      : []),
    ...(spec.reservations.nanoCpus || spec.reservations.memoryBytes
      ? [' Reservations:', ...(spec.reservations.nanoCpus ? [`  CPU:                ${spec.reservations.nanoCpus / 1e9}`] : []), ...(spec.reservations.memoryBytes ? [`  Memory:             ${formatBytes(spec.reservations.memoryBytes)}`] : [])]
      : []),
    ...(c.networks.length ? [['Networks', c.networks.join(' ')] as [string, string]] : []),
    ['Endpoint Mode', spec.endpoint.mode],
    ...(spec.endpoint.ports.length
      ? ['Ports:', ...spec.endpoint.ports.map((p) => ` PublishedPort = ${p.publishedPort}\n  Protocol = ${p.protocol}\n  TargetPort = ${p.targetPort}\n  PublishMode = ${p.mode}`)]
      : []),
    ...((service.endpoint?.networks ?? []).some((n) => n.vip) ? ['Virtual IPs:', ...service.endpoint!.networks.filter((n) => n.vip).map((n) => ` ${n.networkName}: ${n.vip}`)] : []),
    ['Restart Policy', `${spec.restartPolicy.condition}, delay ${seconds(spec.restartPolicy.delayMs)}${spec.restartPolicy.maxAttempts ? `, max ${spec.restartPolicy.maxAttempts} attempts` : ''}`],
  ])}\n`;
}

export function prettyNode(node: NodeView): string {
  const labels = Object.entries(node.spec.labels);
  const engineLabels = Object.entries(node.description.engineLabels);
  return `${section([
    ['ID', node.id],
    ...(labels.length ? ['Labels:', ...labels.map(([k, v]) => ` - ${k}=${v}`)] : []),
    ['Hostname', node.description.hostname],
    'Status:',
    ` State:              ${node.status.state[0]!.toUpperCase()}${node.status.state.slice(1)}`,
    ` Availability:       ${node.spec.availability[0]!.toUpperCase()}${node.spec.availability.slice(1)}`,
    ` Address:            ${node.description.address}`,
    ...(node.managerStatus ? ['Manager Status:', ` Leader:             ${node.managerStatus === 'leader' ? 'Yes' : 'No'}`, ` Reachability:       ${node.managerStatus === 'unreachable' ? 'Unreachable' : 'Reachable'}`] : []),
    'Platform:',
    ` Operating System:   ${node.description.os}`,
    ` Architecture:       ${node.description.arch}`,
    'Resources:',
    ` CPUs:               ${node.description.cpus}`,
    ` Memory:             ${formatBytes(node.description.memoryBytes)}`,
    'Engine:',
    ` Agent Version:      ${node.description.agentVersion}`,
    ` Runtime:            ${node.description.runtime.name} ${node.description.runtime.version}`,
    ` Kernel Version:     ${node.description.kernel}`,
    ...(engineLabels.length ? [' Labels:', ...engineLabels.map(([k, v]) => `  - ${k}=${v}`)] : []),
  ])}\n`;
}
