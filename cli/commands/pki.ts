import type { Command } from 'commander';
import { isIP } from 'node:net';
import { ShoalError } from '../../shared/errors.ts';
import type { Usage } from '../../shared/pki/certificates.ts';
import { collect } from './common.ts';

const usages: Usage[] = ['server', 'client', 'peer'];

/** The X.509 code costs a third of a second to import: only the pki commands load it. */
const loadPki = async () => ({ ...(await import('../../shared/pki/certificates.ts')), ...(await import('../../shared/pki/pki-dir.ts')) });

/** `shoal pki`: the cluster CA and the certificates etcd and the CLI need, made without openssl. */
export function registerPkiCommands(program: Command): void {
  const pki = program.command('pki').description('The cluster CA, and certificates for etcd and CLI users');

  pki
    .command('init')
    .description('Make the cluster CA and seal key in DIR (once; the first manager does it too when its --pki has none)')
    .option('--dir <dir>', 'the PKI directory', '/etc/shoal/pki')
    .action(async (options: { dir: string }) => {
      const { ensureCa, caDigest } = await loadPki();
      const { ca, created } = await ensureCa(options.dir);
      process.stdout.write(`${created ? 'made' : 'kept'} the cluster CA in ${options.dir} (digest ${caDigest(ca.certificate)})\n`);
      process.stdout.write(`copy ${options.dir} to every manager host; etcd hosts need ca.crt and their own certificate only\n`);
    });

  pki
    .command('issue')
    .description('Issue NAME.crt and NAME.key from the CA in DIR (kept as they are while they fit and are not near expiry)')
    .requiredOption('--name <name>', 'file name, e.g. etcd0 or alice')
    .option('--dir <dir>', 'the PKI directory', '/etc/shoal/pki')
    .option('--ip <address>', 'an IP address it is valid for (repeatable)', collect, [])
    .option('--dns <name>', 'a DNS name it is valid for (repeatable)', collect, [])
    .option('--usage <usage>', 'server, client, or peer (both: etcd members)', 'client')
    .action(async (options: { name: string; dir: string; ip: string[]; dns: string[]; usage: string }) => {
      if (!usages.includes(options.usage as Usage)) throw new ShoalError('invalid', 'invalid_flags', `--usage must be one of ${usages.join(', ')}, not "${options.usage}"`);
      if (!/^[a-zA-Z0-9._-]+$/.test(options.name)) throw new ShoalError('invalid', 'invalid_flags', `--name "${options.name}" must be letters, digits, ".", "_" or "-"`);
      const bad = options.ip.find((ip) => isIP(ip) === 0);
      if (bad) throw new ShoalError('invalid', 'invalid_flags', `--ip "${bad}" is not an IP address`);
      const { ensureCa, ensureIssued, daysLeft } = await loadPki();
      await ensureCa(options.dir);
      const issued = await ensureIssued(options.dir, options.name, { commonName: options.name, ips: options.ip, dns: options.dns, usage: options.usage as Usage });
      process.stdout.write(`${issued.certificateFile} and ${issued.keyFile} (CA ${issued.caFile}), valid ${Math.floor(daysLeft(issued.certificate))} more days\n`);
    });
}
