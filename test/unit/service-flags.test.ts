import test from 'ava';
import { keep, labelMatches, parseFilters } from '../../cli/filters.ts';
import { applyServiceUpdate, parseFileReference, parseMountFlag, parseUlimit, serviceCreateSpec, type UpdateServiceFlags, type CreateServiceFlags } from '../../cli/service-flags.ts';
import { isShoalError } from '../../shared/errors.ts';
import { ServiceSpec } from '../../shared/services.ts';

const createFlags = (more: Partial<CreateServiceFlags> = {}): CreateServiceFlags => ({
  mode: 'replicated', env: [], envFile: [], label: [], containerLabel: [], constraint: [], placementPref: [], mount: [], network: [], logOpt: [],
  publish: [], dns: [], dnsSearch: [], dnsOption: [], host: [], secret: [], config: [], sysctl: [], ulimit: [], capAdd: [], capDrop: [], ...more,
});
const updateFlags = (more: Partial<UpdateServiceFlags> = {}): UpdateServiceFlags => ({
  envAdd: [], envRm: [], labelAdd: [], labelRm: [], containerLabelAdd: [], containerLabelRm: [], constraintAdd: [], constraintRm: [],
  placementPrefAdd: [], placementPrefRm: [], mountAdd: [], mountRm: [], networkAdd: [], networkRm: [], logOpt: [],
  publishAdd: [], publishRm: [], dnsAdd: [], dnsRm: [], dnsSearchAdd: [], dnsSearchRm: [], dnsOptionAdd: [], dnsOptionRm: [], hostAdd: [], hostRm: [], secretAdd: [], secretRm: [], configAdd: [], configRm: [], sysctlAdd: [], sysctlRm: [], ulimitAdd: [], ulimitRm: [], capAdd: [], capDrop: [], ...more,
});

const base = ServiceSpec.parse(serviceCreateSpec('busybox:1.35.0', ['sleep', '60'], createFlags({
  name: 'web', replicas: '3', env: ['A=1', 'B=2'], label: ['team=ops'], constraint: ['node.role==worker'], network: ['front'],
  mount: ['type=volume,source=data,target=/data'], limitMemory: '64m', healthCmd: 'true',
})));

test('create flags make the spec: name, replicas, env, labels, constraints, mounts, limits, health', (t) => {
  t.is(base.name, 'web');
  t.is(base.replicas, 3);
  t.deepEqual(base.container.env, ['A=1', 'B=2']);
  t.deepEqual(base.container.mounts, [{ type: 'volume', source: 'data', target: '/data', readOnly: false }]);
  t.is(base.container.resources.memoryBytes, 64 * 1024 * 1024);
  t.deepEqual(base.container.healthcheck?.cmd, ['sh', '-c', 'true']);
  t.deepEqual(base.placement.constraints, ['node.role==worker']);
});

test('update pairs remove first, then add; an added key replaces the old value', (t) => {
  const next = ServiceSpec.parse(applyServiceUpdate(base, updateFlags({ envAdd: ['B=3', 'C=4'], envRm: ['A'], labelAdd: ['tier=web'], labelRm: ['team'] })));
  t.deepEqual(next.container.env, ['B=3', 'C=4']);
  t.deepEqual(next.labels, { tier: 'web' });
  t.deepEqual(next.container.networks, ['front']);
});

test('constraints are matched without their spaces; mounts by target; networks by name', (t) => {
  const next = ServiceSpec.parse(applyServiceUpdate(base, updateFlags({
    constraintRm: ['node.role == worker'], constraintAdd: ['node.hostname==h1'], mountRm: ['/data'], mountAdd: ['type=tmpfs,target=/tmp/x,tmpfs-size=1m'], networkAdd: ['back'], networkRm: ['front'],
  })));
  t.deepEqual(next.placement.constraints, ['node.hostname==h1']);
  t.deepEqual(next.container.mounts, [{ type: 'tmpfs', target: '/tmp/x', sizeBytes: 1024 * 1024 }]);
  t.deepEqual(next.container.networks, ['back']);
});

test('flags that are absent leave the spec alone; --limit-memory 0 removes the limit; --no-healthcheck disables', (t) => {
  t.deepEqual(ServiceSpec.parse(applyServiceUpdate(base, updateFlags())), base);
  const next = ServiceSpec.parse(applyServiceUpdate(base, updateFlags({ limitMemory: '0', healthcheck: false, args: "sh -c 'echo hi'" })));
  t.is(next.container.resources.memoryBytes, undefined);
  t.deepEqual(next.container.healthcheck?.cmd, []);
  t.deepEqual(next.container.cmd, ['sh', '-c', 'echo hi']);
});

test('bad values are refused naming the flag', (t) => {
  const refused = (fn: () => unknown, pattern: RegExp) => {
    const error = t.throws(fn);
    t.true(isShoalError(error) || error instanceof Error);
    t.regex(error!.message, pattern);
  };
  refused(() => applyServiceUpdate(base, updateFlags({ restartCondition: 'sometimes' })), /--restart-condition: "sometimes" is not none, on-failure or any/);
  refused(() => applyServiceUpdate(base, updateFlags({ networkRm: ['nowhere'] })), /--network-rm: the service is not on nowhere/);
  refused(() => applyServiceUpdate(base, updateFlags({ updateOrder: 'sideways' })), /--update-order: "sideways"/);
  refused(() => parseMountFlag('type=bind,target=/x'), /has no source/);
  refused(() => serviceCreateSpec('busybox', [], createFlags({ mode: 'replicated-job' })), /--mode: "replicated-job" is not replicated or global/);
  refused(() => serviceCreateSpec('busybox', [], createFlags({ mode: 'global', replicas: '2' })), /a global service runs one task per node/);
});

test('filters: one key\'s values are alternatives, different keys must all match; unknown keys are refused', (t) => {
  const rows: Array<{ name: string; mode: string; labels: Record<string, string> }> = [{ name: 'web', mode: 'global', labels: { a: '1' } }, { name: 'api', mode: 'replicated', labels: { a: '2' } }, { name: 'db', mode: 'replicated', labels: {} }];
  const tests = { name: (r: (typeof rows)[number], v: string) => r.name === v, mode: (r: (typeof rows)[number], v: string) => r.mode === v, label: (r: (typeof rows)[number], v: string) => labelMatches(r.labels, v) };
  t.deepEqual(keep(rows, parseFilters(['name=web', 'name=api'], ['name', 'mode', 'label']), tests).map((r) => r.name), ['web', 'api']);
  t.deepEqual(keep(rows, parseFilters(['name=web', 'name=api', 'mode=replicated'], ['name', 'mode', 'label']), tests).map((r) => r.name), ['api']);
  t.deepEqual(keep(rows, parseFilters(['label=a'], ['label']), tests).map((r) => r.name), ['web', 'api']);
  t.deepEqual(keep(rows, parseFilters(['label=a=2'], ['label']), tests).map((r) => r.name), ['api']);
  t.throws(() => parseFilters(['colour=red'], ['name']), { message: /"colour" is not a filter here; filters: name/ });
});

test('--secret and --config take a name or source=,target=,uid=,gid=,mode= as Docker; relative targets land under /run/secrets and /', (t) => {
  t.deepEqual(parseFileReference('secret', 'db_password'), { source: 'db_password', target: '/run/secrets/db_password' });
  t.deepEqual(parseFileReference('secret', 'source=db,target=pw,uid=1000,gid=1000,mode=0400'), { source: 'db', target: '/run/secrets/pw', uid: '1000', gid: '1000', mode: 0o400 });
  t.deepEqual(parseFileReference('config', 'source=nginx,target=/etc/nginx.conf'), { source: 'nginx', target: '/etc/nginx.conf' });
  t.deepEqual(parseFileReference('config', 'app.conf'), { source: 'app.conf', target: '/app.conf' });
  t.throws(() => parseFileReference('secret', 'target=x'), { message: /no source/ });
  t.throws(() => parseFileReference('secret', 'source=a,mode=999'), { message: /octal/ });
  const spec = ServiceSpec.parse(serviceCreateSpec('busybox', [], createFlags({ secret: ['a', 'source=b,target=bee'], config: ['c'] })));
  t.deepEqual(spec.container.secrets.map((s) => s.target), ['/run/secrets/a', '/run/secrets/bee']);
  const updated = ServiceSpec.parse(applyServiceUpdate(spec, updateFlags({ secretRm: ['a'], secretAdd: ['source=d,target=bee'], configRm: ['c'] })));
  t.deepEqual(updated.container.secrets.map((s) => `${s.source}:${s.target}`), ['d:/run/secrets/bee'], 'an added secret replaces the one at its target');
  t.deepEqual(updated.container.configs, []);
});

test('stop signal and grace period, capabilities, sysctls and ulimits: set on create, edited on update as Docker does', (t) => {
  const spec = ServiceSpec.parse(serviceCreateSpec('busybox', [], createFlags({
    stopSignal: 'sigquit', stopGracePeriod: '1m30s', capAdd: ['NET_ADMIN'], capDrop: ['MKNOD'], sysctl: ['net.core.somaxconn=1024'], ulimit: ['nofile=1024:2048', 'nproc=64'],
  })));
  t.like(spec.container, { stopSignal: 'SIGQUIT', stopGracePeriodMs: 90_000, capAdd: ['NET_ADMIN'], capDrop: ['MKNOD'], sysctls: { 'net.core.somaxconn': '1024' } });
  t.deepEqual(spec.container.ulimits, [{ name: 'nofile', soft: 1024, hard: 2048 }, { name: 'nproc', soft: 64, hard: 64 }]);
  const updated = ServiceSpec.parse(applyServiceUpdate(spec, updateFlags({ capAdd: ['MKNOD'], capDrop: ['CAP_NET_ADMIN'], sysctlRm: ['net.core.somaxconn'], ulimitRm: ['nproc'], ulimitAdd: ['nofile=10'] })));
  t.deepEqual(updated.container.capAdd, ['MKNOD'], 'adding a dropped capability undoes the drop');
  t.deepEqual(updated.container.capDrop, ['CAP_NET_ADMIN']);
  t.deepEqual(updated.container.sysctls, {});
  t.deepEqual(updated.container.ulimits, [{ name: 'nofile', soft: 10, hard: 10 }]);
  t.throws(() => parseUlimit('nofile=10:5'), { message: /soft limit cannot be above/ });
  t.throws(() => parseUlimit('files=10'), { message: /a ulimit is one of/ });
});
