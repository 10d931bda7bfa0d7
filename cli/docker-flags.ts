/**
 * Docker's own flags for the commands Shoal mirrors (from Docker's CLI reference), and the
 * table docs/cli.md shows: for each flag, what Shoal does with it and an example that a unit
 * test parses with the real `shoal` command.
 */
import type { Command, Option } from 'commander';

/** Docker's flags, long names, per command. */
export const dockerFlags: Record<string, string[]> = {
  'service create': [
    'cap-add', 'cap-drop', 'config', 'constraint', 'container-label', 'credential-spec', 'detach', 'dns', 'dns-option', 'dns-search',
    'endpoint-mode', 'entrypoint', 'env', 'env-file', 'generic-resource', 'group', 'health-cmd', 'health-interval', 'health-retries',
    'health-start-interval', 'health-start-period', 'health-timeout', 'host', 'hostname', 'init', 'isolation', 'label', 'limit-cpu',
    'limit-memory', 'limit-pids', 'log-driver', 'log-opt', 'max-concurrent', 'mode', 'mount', 'name', 'network', 'no-healthcheck',
    'no-resolve-image', 'oom-score-adj', 'placement-pref', 'publish', 'quiet', 'read-only', 'replicas', 'replicas-max-per-node',
    'reserve-cpu', 'reserve-memory', 'restart-condition', 'restart-delay', 'restart-max-attempts', 'restart-window', 'rollback-delay',
    'rollback-failure-action', 'rollback-max-failure-ratio', 'rollback-monitor', 'rollback-order', 'rollback-parallelism', 'secret',
    'stop-grace-period', 'stop-signal', 'sysctl', 'tty', 'ulimit', 'update-delay', 'update-failure-action', 'update-max-failure-ratio',
    'update-monitor', 'update-order', 'update-parallelism', 'user', 'with-registry-auth', 'workdir',
  ],
  'service update': [
    'args', 'cap-add', 'cap-drop', 'config-add', 'config-rm', 'constraint-add', 'constraint-rm', 'container-label-add', 'container-label-rm',
    'credential-spec', 'detach', 'dns-add', 'dns-option-add', 'dns-option-rm', 'dns-rm', 'dns-search-add', 'dns-search-rm', 'endpoint-mode',
    'entrypoint', 'env-add', 'env-rm', 'force', 'generic-resource-add', 'generic-resource-rm', 'group-add', 'group-rm', 'health-cmd',
    'health-interval', 'health-retries', 'health-start-interval', 'health-start-period', 'health-timeout', 'host-add', 'host-rm', 'hostname',
    'image', 'init', 'isolation', 'label-add', 'label-rm', 'limit-cpu', 'limit-memory', 'limit-pids', 'log-driver', 'log-opt', 'max-concurrent',
    'mount-add', 'mount-rm', 'network-add', 'network-rm', 'no-healthcheck', 'no-resolve-image', 'oom-score-adj', 'placement-pref-add',
    'placement-pref-rm', 'publish-add', 'publish-rm', 'quiet', 'read-only', 'replicas', 'replicas-max-per-node', 'reserve-cpu', 'reserve-memory',
    'restart-condition', 'restart-delay', 'restart-max-attempts', 'restart-window', 'rollback', 'rollback-delay', 'rollback-failure-action',
    'rollback-max-failure-ratio', 'rollback-monitor', 'rollback-order', 'rollback-parallelism', 'secret-add', 'secret-rm', 'stop-grace-period',
    'stop-signal', 'sysctl-add', 'sysctl-rm', 'tty', 'ulimit-add', 'ulimit-rm', 'update-delay', 'update-failure-action', 'update-max-failure-ratio',
    'update-monitor', 'update-order', 'update-parallelism', 'user', 'with-registry-auth', 'workdir',
  ],
  'service ls': ['filter', 'format', 'quiet'],
  'service ps': ['filter', 'format', 'no-resolve', 'no-trunc', 'quiet'],
  'service inspect': ['format', 'pretty'],
  'service logs': ['details', 'follow', 'no-resolve', 'no-task-ids', 'no-trunc', 'raw', 'since', 'tail', 'timestamps'],
  'service scale': ['detach'],
  'service rollback': ['detach', 'quiet'],
  'service rm': [],
  'node ls': ['filter', 'format', 'quiet'],
  'node ps': ['filter', 'format', 'no-resolve', 'no-trunc', 'quiet'],
  'node inspect': ['format', 'pretty'],
  'node update': ['availability', 'label-add', 'label-rm', 'role'],
  'node promote': [],
  'node demote': [],
  'node rm': ['force'],
  'network create': [
    'attachable', 'aux-address', 'config-from', 'config-only', 'driver', 'gateway', 'ingress', 'internal', 'ip-range', 'ipam-driver', 'ipam-opt',
    'ipv6', 'label', 'opt', 'scope', 'subnet',
  ],
  'network ls': ['filter', 'format', 'no-trunc', 'quiet'],
  'network inspect': ['format', 'verbose'],
  'network rm': ['force'],
  'network prune': ['filter', 'force'],
  'network connect': ['alias', 'driver-opt', 'gw-priority', 'ip', 'ip6', 'link', 'link-local-ip'],
  'network disconnect': ['force'],
  'stack deploy': ['compose-file', 'detach', 'prune', 'quiet', 'resolve-image', 'with-registry-auth'],
  'stack config': ['compose-file', 'skip-interpolation'],
  'stack ls': ['format'],
  'stack ps': ['filter', 'format', 'no-resolve', 'no-trunc', 'quiet'],
  'stack services': ['filter', 'format', 'quiet'],
  'stack rm': ['detach'],
  'secret create': ['driver', 'label', 'template-driver'],
  'secret ls': ['filter', 'format', 'quiet'],
  'secret inspect': ['format', 'pretty'],
  'secret rm': [],
  'config create': ['label', 'template-driver'],
  'config ls': ['filter', 'format', 'quiet'],
  'config inspect': ['format', 'pretty'],
  'config rm': [],
  events: ['filter', 'format', 'since', 'until'],
  info: ['format'],
  version: ['format'],
};

/** What each command needs after its flags, in the examples. */
const operands: Record<string, string> = {
  'service create': 'busybox:1.35.0 sleep 60',
  'service update': 'web',
  'service ps': 'web',
  'service inspect': 'web',
  'service logs': 'web',
  'service scale': 'web=3',
  'service rollback': 'web',
  'service rm': 'web',
  'node ps': 'h1',
  'node inspect': 'h1',
  'node update': 'h1',
  'node promote': 'h2',
  'node demote': 'h2',
  'node rm': 'h3',
  'network create': 'web-net',
  'network inspect': 'web-net',
  'network rm': 'web-net',
  'network connect': 'web-net web.1',
  'network disconnect': 'web-net web.1',
  'stack deploy': 'shop',
  'stack ps': 'shop',
  'stack services': 'shop',
  'stack rm': 'shop',
  'secret create': 'db_password /dev/null',
  'secret inspect': 'db_password',
  'secret rm': 'db_password',
  'config create': 'app_conf /dev/null',
  'config inspect': 'app_conf',
  'config rm': 'app_conf',
};

const filters: Record<string, string> = {
  'service ls': 'name=web',
  'service ps': 'desired-state=running',
  'node ls': 'role=manager',
  'node ps': 'desired-state=running',
  'network ls': 'driver=overlay',
  'network prune': 'until=24h',
  'stack ps': 'desired-state=running',
  'stack services': 'name=shop_web',
  'secret ls': 'name=db',
  'config ls': 'name=app',
  events: 'type=service',
};

/** A value that fits the flag, for its example. */
function sample(command: string, flag: string): string {
  const exact: Record<string, string> = {
    filter: filters[command] ?? 'name=web', format: 'json', env: 'A=1', 'env-add': 'A=1', 'env-rm': 'A', 'env-file': '/dev/null',
    label: 'team=ops', 'label-add': 'team=ops', 'label-rm': 'team', 'container-label': 'owner=ops', 'container-label-add': 'owner=ops',
    'container-label-rm': 'owner', constraint: 'node.hostname==h1', 'constraint-add': 'node.hostname==h1', 'constraint-rm': 'node.hostname==h1',
    'placement-pref': 'spread=node.labels.zone', 'placement-pref-add': 'spread=node.labels.zone', 'placement-pref-rm': 'spread=node.labels.zone',
    mount: 'type=tmpfs,target=/scratch', 'mount-add': 'type=tmpfs,target=/scratch', 'mount-rm': '/scratch', network: 'web-net',
    'network-add': 'web-net', 'network-rm': 'web-net', mode: 'global', name: 'web', image: 'busybox:1.35.0', args: "'sleep 60'",
    entrypoint: 'sh', workdir: '/tmp', user: 'nobody', hostname: 'web', 'restart-condition': 'on-failure', 'health-cmd': "'wget -q localhost'",
    'log-driver': 'json-file', 'log-opt': 'max-size=10m', tail: '10', since: '10m', until: '1s', availability: 'drain', role: 'worker',
    driver: 'overlay', subnet: '198.19.64.0/24', gateway: '198.19.64.1', 'ip-range': '198.19.64.128/25', opt: 'mtu=1400', scope: 'swarm',
    'ipam-driver': 'default', ip: '198.19.64.10', 'limit-cpu': '0.5', 'reserve-cpu': '0.25', 'limit-memory': '64m', 'reserve-memory': '32m',
    'update-failure-action': 'rollback', 'rollback-failure-action': 'continue', 'update-order': 'start-first', 'rollback-order': 'start-first',
    'update-max-failure-ratio': '0.2', 'rollback-max-failure-ratio': '0.2',
    publish: '8080:80', 'publish-add': 'published=8080,target=80,mode=host', 'publish-rm': '8080', 'endpoint-mode': 'dnsrr',
    dns: '198.18.0.250', 'dns-add': '198.18.0.250', 'dns-rm': '198.18.0.250', 'dns-search': 'example.org', 'dns-search-add': 'example.org',
    'dns-search-rm': 'example.org', 'dns-option': 'ndots:2', 'dns-option-add': 'ndots:2', 'dns-option-rm': 'ndots:2',
    host: 'db:198.19.0.9', 'host-add': 'db:198.19.0.9', 'host-rm': 'db',
    'compose-file': 'compose.yaml', 'resolve-image': 'never', secret: 'db_password', 'secret-add': 'source=db_password,target=pw,mode=0400',
    'secret-rm': 'db_password', config: 'source=app_conf,target=/etc/app.conf', 'config-add': 'app_conf', 'config-rm': 'app_conf',
    'config-from': 'lan-config',
  };
  if (exact[flag] !== undefined) return exact[flag];
  if (/(delay|window|interval|timeout|period|monitor)$/.test(flag)) return '5s';
  if (/(parallelism|retries|replicas|attempts|pids)$/.test(flag)) return '2';
  return 'x';
}

export interface FlagRow {
  command: string;
  flag: string;
  status: string;
  example: string;
}

function commandAt(program: Command, path: string): Command {
  let current = program;
  for (const name of path.split(' ')) {
    const next = current.commands.find((c) => c.name() === name);
    if (!next) throw new Error(`shoal has no command "${path}"`);
    current = next;
  }
  return current;
}

function status(option: Option): string {
  if (option.description.startsWith('not supported: ')) return `refused: ${option.description.slice('not supported: '.length)}`;
  if (option.description.startsWith('accepted for Docker\'s sake: ')) return `accepted, no effect: ${option.description.slice('accepted for Docker\'s sake: '.length)}`;
  return 'yes';
}

/** One row per Docker flag of each command, from the program as built: what it does in Shoal, and an example. */
export function flagTable(program: Command): FlagRow[] {
  const rows: FlagRow[] = [];
  for (const [path, flags] of Object.entries(dockerFlags)) {
    const command = commandAt(program, path);
    const tail = operands[path] ? ` ${operands[path]}` : '';
    if (flags.length === 0) rows.push({ command: path, flag: '(none)', status: 'yes', example: `shoal ${path}${tail}` });
    for (const flag of flags) {
      const option = command.options.find((o) => o.long === `--${flag}`);
      if (!option) {
        rows.push({ command: path, flag: `--${flag}`, status: 'missing', example: '' });
        continue;
      }
      const value = option.required ? ` ${sample(path, flag)}` : '';
      rows.push({ command: path, flag: option.short ? `${option.short}, --${flag}` : `--${flag}`, status: status(option), example: `shoal ${path} --${flag}${value}${tail}` });
    }
  }
  return rows;
}

/** The markdown table docs/cli.md carries between its markers. */
export function renderFlagTable(rows: FlagRow[]): string {
  const escape = (text: string) => text.replace(/\|/g, '\\|');
  return ['| command | Docker flag | in Shoal | example |', '| --- | --- | --- | --- |', ...rows.map((r) => `| ${r.command} | \`${r.flag}\` | ${escape(r.status)} | \`${escape(r.example)}\` |`)].join('\n');
}
