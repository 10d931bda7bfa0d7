import { readFile } from 'node:fs/promises';
import { inBackground } from '../../shared/concurrency.ts';
import type { Command } from 'commander';
import { createLogger, type Logger, type LogLevel, logLevelFrom } from '../../shared/log.ts';
import { parsePrefix, type Prefix } from '../../netplug/ipam/ipv4.ts';
import { parseListenAddress } from '../../shared/listen-address.ts';
import { ShoalError } from '../../shared/errors.ts';
import { type AddressPools, defaultAddressPools, type ManagerView } from '../../shared/schemas.ts';
import { parseDuration } from '../duration.ts';
import { parseFormat, printList } from '../output.ts';
import { collect, connect, type GlobalOptions, parseLabels } from './common.ts';

/** Keeps a daemon until SIGTERM or SIGINT, then stops it cleanly. */
function stopOnSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`shoal: did not stop cleanly: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

/**
 * The last line of defence: every operation catches its own failure, so reaching either of
 * these is a bug, logged as one (tests search the logs for "unhandled"). A rejected promise
 * leaves no state half-changed and the daemon goes on; an uncaught exception may have, so the
 * daemon exits non-zero and its supervisor (systemd, the lab) starts it again.
 */
function guardDaemon(log: Logger): void {
  process.on('unhandledRejection', (reason) => {
    log.error('unhandled rejection (a bug: an operation did not catch its own failure)', { error: reason instanceof Error ? reason.stack : String(reason) });
  });
  process.on('uncaughtException', (error) => {
    log.error('unhandled exception (a bug); exiting so the supervisor restarts the daemon', { error: error.stack });
    process.exit(70);
  });
}

function daemonLogger(component: string, level: string | undefined): Logger {
  let parsed: LogLevel;
  try {
    parsed = logLevelFrom(level ?? process.env.SHOAL_LOG_LEVEL);
  } catch (error) {
    throw new ShoalError('invalid', 'invalid_flags', `--log-level: ${(error as Error).message}`);
  }
  const log = createLogger(component, { level: parsed });
  guardDaemon(log);
  return log;
}

/** The default address pools from the manager's flags, refused with the reason when malformed. */
function parseAddressPools(pool: string, maskLength: string): AddressPools {
  let prefix: Prefix;
  try {
    prefix = parsePrefix(pool);
  } catch (error) {
    throw new ShoalError('invalid', 'invalid_flags', `--default-addr-pool: ${(error as Error).message}`);
  }
  const bits = Number(maskLength);
  if (!Number.isInteger(bits) || bits < prefix.length || bits > 30) {
    throw new ShoalError('invalid', 'invalid_flags', `--default-addr-pool-mask-length must be a whole number from ${prefix.length} to 30`);
  }
  return { ...defaultAddressPools, swarm: pool, maskLength: bits };
}

/** A --metrics-listen value, refused with an example when it is not HOST:PORT. */
function checkListenAddress(value: string | undefined): void {
  if (value === undefined) return;
  try {
    parseListenAddress(value);
  } catch (error) {
    throw new ShoalError('invalid', 'invalid_flags', `--metrics-listen: ${(error as Error).message}`);
  }
}

/** A token kept in a file; a missing file is an error that names it. */
async function tokenFromFile(file: string | undefined): Promise<string | undefined> {
  if (!file) return undefined;
  const text = await readFile(file, 'utf8').catch((error: Error) => {
    throw new ShoalError('invalid', 'invalid_flags', `cannot read the token file ${file}: ${error.message}`);
  });
  return text.trim() || undefined;
}

export function registerDaemonCommands(program: Command, globals: () => GlobalOptions): void {
  const manager = program.command('manager').description('Run a manager, or list the managers');

  manager
    .command('run', { isDefault: true })
    .description('Run a manager: the API, and (when elected leader) the control loops')
    .requiredOption('--etcd <urls>', 'etcd client URLs, comma separated')
    .option('--state-dir <dir>', 'where the manager keeps its identity and token', '/var/lib/shoal/manager')
    .option('--listen-p2p <multiaddr>', 'libp2p listen address for agents (repeatable)', collect, [])
    .option('--api-listen <host:port>', 'serve the HTTP API on this TCP address')
    .option('--api-socket <path>', 'serve the HTTP API on this Unix socket (mode 0660)')
    .option('--api-socket-group <group>', 'the group besides root that may use the socket')
    .option('--api-client-certs', 'the TCP API also demands a client certificate from the cluster CA (mutual TLS)')
    .option('--pki <dir>', 'the cluster PKI directory: its CA (made here if absent), seal key and certificates', '/etc/shoal/pki')
    .option('--heartbeat-period <duration>', 'agents\' heartbeat period, set when the cluster is created', '5s')
    .option('--join-token <token>', 'manager join token, to add this manager to an existing cluster')
    .option('--join-token-file <file>', 'read the manager join token from a file (keeps it off the command line)')
    .option('--leader-ttl <seconds>', 'leader lease TTL in seconds', '3')
    .option('--default-addr-pool <cidr>', 'where overlay networks created without --subnet get theirs, set when the cluster is created', defaultAddressPools.swarm)
    .option('--default-addr-pool-mask-length <bits>', 'prefix length of those subnets', String(defaultAddressPools.maskLength))
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics on GET /metrics at this TCP address (plain HTTP; none by default)')
    .option('--log-level <level>', 'debug, info, warn or error (env SHOAL_LOG_LEVEL)')
    .action(async (options: { logLevel?: string; etcd: string; stateDir: string; listenP2p: string[]; apiListen?: string; apiSocket?: string; apiSocketGroup?: string; apiClientCerts?: boolean; pki: string; heartbeatPeriod: string; joinToken?: string; joinTokenFile?: string; leaderTtl: string; defaultAddrPool: string; defaultAddrPoolMaskLength: string; metricsListen?: string }) => {
      checkListenAddress(options.metricsListen);
      const addressPools = parseAddressPools(options.defaultAddrPool, options.defaultAddrPoolMaskLength);
      const log = daemonLogger('manager', options.logLevel);
      // Loaded on demand: libp2p and the etcd client take a second to load, which other commands should not pay.
      const { runManager } = await import('../../manager/main.ts');
      const running = await runManager({
        etcd: options.etcd.split(','),
        stateDir: options.stateDir,
        p2pListen: options.listenP2p.length ? options.listenP2p : ['/ip4/0.0.0.0/tcp/4240'],
        apiListen: options.apiListen,
        apiSocket: options.apiSocket,
        apiSocketGroup: options.apiSocketGroup,
        apiClientCerts: options.apiClientCerts,
        pkiDir: options.pki,
        heartbeatPeriodMs: parseDuration(options.heartbeatPeriod),
        joinToken: options.joinToken || (await tokenFromFile(options.joinTokenFile)),
        leaderTtlSeconds: Number(options.leaderTtl),
        addressPools,
        metricsListen: options.metricsListen,
        log,
      });
      stopOnSignal(running.stop);
    });

  manager
    .command('ls')
    .alias('list')
    .description('List managers: which leads, which are reachable')
    .option('--format <format>', 'table or json', 'table')
    .action(async (options: { format: string }) => {
      const format = parseFormat(options.format);
      const managers = await (await connect(globals())).call<ManagerView[]>('GET', '/v1/managers');
      printList(managers, [
        { header: 'ID', value: (m) => m.id.slice(-12) },
        { header: 'HOSTNAME', value: (m) => m.hostname, shrinkable: true },
        { header: 'STATUS', value: (m) => (m.leader ? 'Leader' : m.reachable ? 'Reachable' : 'Unreachable') },
        { header: 'API', value: (m) => m.apiAddress ?? '-' },
        { header: 'P2P', value: (m) => m.p2pAddrs[0] ?? '-', shrinkable: true },
      ], format);
    });

  program
    .command('agent')
    .description('Run an agent: join a cluster and hold a session with its leader')
    .option('--join <multiaddr>', 'a manager\'s libp2p address, /ip4/.../tcp/.../p2p/... (repeatable)', collect, [])
    .option('--token <token>', 'join token (needed the first time only)')
    .option('--token-file <file>', 'read the join token from a file (keeps it off the command line and out of `ps`)')
    .option('--state-dir <dir>', 'where the agent keeps its identity and cluster membership', '/var/lib/shoal/agent')
    .option('--listen <multiaddr>', 'libp2p listen address (repeatable)', collect, [])
    .option('--advertise-addr <ip>', 'underlay address to report (default: first non-loopback IPv4)')
    .option('--label <key=value>', 'engine label (repeatable)', collect, [])
    .option('--registry <host:port>', 'registry for image references that name none', '')
    .option('--insecure-registry <host:port>', 'a registry spoken to over plain HTTP (repeatable), as Docker\'s daemon option', collect, [])
    .option('--registry-certs <dir>', 'CAs of registries: DIR/<host:port>/ca.crt, as Docker\'s certs.d', '/etc/shoal/certs.d')
    .option('--netns-prefix <prefix>', 'name prefix of containers\' network namespaces', 'shoal-')
    .option('--resolv-conf <file>', 'the resolv.conf whose nameservers the embedded DNS forwards other names to', '/etc/resolv.conf')
    .option('--dns-ttl <seconds>', 'how long clients may cache the embedded DNS\'s answers', '5')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics on GET /metrics at this TCP address (plain HTTP; none by default)')
    .option('--log-level <level>', 'debug, info, warn or error (env SHOAL_LOG_LEVEL)')
    .action(async (options: { logLevel?: string; join: string[]; token?: string; tokenFile?: string; stateDir: string; listen: string[]; advertiseAddr?: string; label: string[]; registry: string; insecureRegistry: string[]; registryCerts: string; netnsPrefix: string; resolvConf: string; dnsTtl: string; metricsListen?: string }) => {
      checkListenAddress(options.metricsListen);
      const ttl = Number(options.dnsTtl);
      if (!Number.isInteger(ttl) || ttl < 0 || ttl > 86_400) throw new ShoalError('invalid', 'invalid_flags', `--dns-ttl: "${options.dnsTtl}" is not a number of seconds from 0 to 86400`);
      const log = daemonLogger('agent', options.logLevel);
      const { runAgent } = await import('../../agent/main.ts');
      const agent = await runAgent({
        stateDir: options.stateDir,
        join: options.join,
        token: options.token || (await tokenFromFile(options.tokenFile)),
        listen: options.listen.length ? options.listen : ['/ip4/0.0.0.0/tcp/4241'],
        advertiseAddress: options.advertiseAddr,
        labels: parseLabels(options.label),
        defaultRegistry: options.registry,
        insecureRegistries: options.insecureRegistry,
        registryCerts: options.registryCerts,
        netnsPrefix: options.netnsPrefix,
        resolvConf: options.resolvConf,
        dnsTtlSeconds: ttl,
        metricsListen: options.metricsListen,
        log,
      });
      stopOnSignal(agent.stop);
      // Refused at the first session (a bad state) or at a later one (the node was removed): stop.
      inBackground(agent.session.refused.then((error) => {
        process.stderr.write(`shoal agent: ${error.message}\n`);
        agent.stop().finally(() => process.exit(1)).catch(() => process.exit(1));
      }), () => process.exit(1));
    });
}
