/**
 * What of a compose model a cluster can and cannot do, said once: keys the Compose
 * Specification does not define are errors at their place (`replicas:` beside `image:`
 * instead of under `deploy:`); keys it defines that mean nothing on a cluster are named per
 * service with what Shoal does instead; a service with `build:` and no `image:` is an error.
 */
import { type ComposeProblem, positionKey } from './load.ts';
import { ComposeService } from './schema.ts';

/** Top-level keys of the Compose Specification (besides `x-*`). */
const topLevelKeys = new Set(['version', 'name', 'include', 'services', 'models', 'networks', 'volumes', 'secrets', 'configs']);

/** Service keys of the Compose Specification (besides `x-*`). */
const serviceKeys = new Set([
  'develop', 'deploy', 'annotations', 'attach', 'build', 'blkio_config', 'cap_add', 'cap_drop', 'cgroup', 'cgroup_parent', 'command', 'configs',
  'container_name', 'cpu_count', 'cpu_percent', 'cpu_shares', 'cpu_quota', 'cpu_period', 'cpu_rt_period', 'cpu_rt_runtime', 'cpus', 'cpuset',
  'credential_spec', 'depends_on', 'device_cgroup_rules', 'devices', 'dns', 'dns_opt', 'dns_search', 'domainname', 'entrypoint', 'env_file',
  'label_file', 'environment', 'expose', 'extends', 'provider', 'external_links', 'extra_hosts', 'gpus', 'group_add', 'healthcheck', 'hostname',
  'image', 'init', 'ipc', 'isolation', 'labels', 'links', 'logging', 'mac_address', 'mem_limit', 'mem_reservation', 'mem_swappiness',
  'memswap_limit', 'network_mode', 'models', 'networks', 'oom_kill_disable', 'oom_score_adj', 'pid', 'pids_limit', 'platform', 'ports',
  'post_start', 'pre_stop', 'privileged', 'profiles', 'pull_policy', 'pull_refresh_after', 'read_only', 'restart', 'runtime', 'scale',
  'security_opt', 'shm_size', 'secrets', 'sysctls', 'stdin_open', 'stop_grace_period', 'stop_signal', 'storage_opt', 'tmpfs', 'tty',
  'ulimits', 'use_api_socket', 'user', 'uts', 'userns_mode', 'volumes', 'volumes_from', 'working_dir',
]);

/** Keys of `deploy:`, often written one level too high. */
const deployKeys = new Set(['mode', 'replicas', 'resources', 'placement', 'restart_policy', 'update_config', 'rollback_config', 'endpoint_mode']);

/** Keys that mean nothing on a cluster, with what Shoal does instead (as `docker stack deploy` ignores them, but said). */
const clusterless: Record<string, string> = {
  build: 'not built: the image is pulled from its registry',
  container_name: 'ignored: tasks are named STACK_SERVICE.SLOT.ID',
  depends_on: 'services start together; use healthchecks',
  links: 'ignored: services on one network reach each other by name',
  external_links: 'ignored: services on one network reach each other by name',
  network_mode: 'ignored: tasks join the stack\'s networks',
  expose: 'ignored: every port of a task is reachable on its networks',
  profiles: 'ignored: every service of the file is deployed',
  privileged: 'ignored: tasks never run privileged',
  devices: 'ignored: no host device is given to tasks',
  cgroup_parent: 'ignored: tasks run in Shoal\'s cgroups',
  ipc: 'ignored: each task has its own IPC namespace',
  pid: 'ignored: each task has its own PID namespace',
  userns_mode: 'ignored',
  mac_address: 'ignored: an endpoint\'s MAC follows its address',
  scale: 'use deploy.replicas',
  mem_limit: 'use deploy.resources.limits.memory',
  cpus: 'use deploy.resources.limits.cpus',
  extends: 'not followed: write the service out whole',
  volumes_from: 'ignored: use named volumes',
  stdin_open: 'ignored: tasks have no stdin',
  tty: 'ignored: tasks have no terminal',
  pull_policy: 'ignored: images are pulled when missing',
  develop: 'ignored',
  attach: 'ignored',
  platform: 'ignored: each node pulls the image for its own platform',
};

/** Service keys a stack maps onto Shoal's objects: those its schema types (cli/compose/plan.ts reads them); any other defined key is named as not applied. */
const mappedKeys = new Set(Object.keys(ComposeService.shape));

export interface ClusterFit {
  /** One line per service that uses keys a cluster cannot honour. */
  notes: string[];
  problems: ComposeProblem[];
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

export function checkForCluster(model: Record<string, unknown>, positions: ReadonlyMap<string, Omit<ComposeProblem, 'message'>>): ClusterFit {
  const notes: string[] = [];
  const problems: ComposeProblem[] = [];
  const at = (path: Array<string | number>, message: string) => {
    const pos = positions.get(positionKey(path)) ?? { file: '-', line: 1, column: 1 };
    problems.push({ ...pos, message });
  };
  for (const key of Object.keys(model)) {
    if (!topLevelKeys.has(key) && !key.startsWith('x-')) at([key], `"${key}" is not a top-level key of the Compose Specification (services, networks, volumes, secrets, configs, name, x-...)`);
  }
  const services = isObject(model.services) ? model.services : {};
  for (const [name, raw] of Object.entries(services)) {
    if (!isObject(raw)) {
      at(['services', name], `service "${name}" is a mapping of its keys (image:, ...)`);
      continue;
    }
    const ignored: string[] = [];
    for (const key of Object.keys(raw)) {
      if (key.startsWith('x-')) continue;
      if (!serviceKeys.has(key)) {
        at(['services', name, key], deployKeys.has(key) ? `"${key}" belongs under deploy: (deploy: { ${key}: ... })` : `"${key}" is not a service key of the Compose Specification`);
        continue;
      }
      const instead = clusterless[key] ?? (mappedKeys.has(key) ? undefined : 'not applied: a stack does not carry it to its tasks, as docker stack deploy does not');
      if (instead && !(key === 'build' && raw.image === undefined)) ignored.push(`${key} (${instead})`);
    }
    if (raw.build !== undefined && raw.image === undefined) {
      at(['services', name, 'build'], `service "${name}" has build: but no image: a cluster pulls images; build and push it (shoal image push), then set image:`);
    }
    if (ignored.length > 0) notes.push(`service "${name}": ${ignored.join('; ')}`);
  }
  return { notes, problems };
}
