import type { Command } from 'commander';
import { createInterface } from 'node:readline/promises';
import { Writable } from 'node:stream';
import { readAll } from '../../shared/streams.ts';
import { removeLogin, storeLogin } from '../registry-logins.ts';
import { connect, type GlobalOptions } from './common.ts';

/** Asks on the terminal; with `hidden`, what is typed is not echoed (a password). */
async function ask(question: string, hidden: boolean): Promise<string> {
  if (!process.stdin.isTTY) throw new Error(`no terminal to ask "${question.trim()}" on; pass it as a flag (the password with --password-stdin)`);
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (!muted) process.stderr.write(chunk);
      callback();
    },
  });
  const prompt = createInterface({ input: process.stdin, output, terminal: true });
  try {
    const answer = prompt.question(question);
    muted = hidden;
    return (await answer).trim();
  } finally {
    prompt.close();
    if (hidden) process.stderr.write('\n');
  }
}

export function registerRegistryCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('login')
    .description('Log in to a registry: checked from a node, stored in ~/.shoal/config.json (0600), sent with pulls and pushes from it')
    .argument('<server>', 'the registry, host:port')
    .option('-u, --username <name>', 'user name')
    .option('-p, --password <password>', 'password (visible to other users of this machine: prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .option('--node <node>', 'the node that checks the login (default: the first Ready node)')
    .action(async (server: string, options: { username?: string; password?: string; passwordStdin?: boolean; node?: string }) => {
      if (options.password && options.passwordStdin) throw new Error('--password and --password-stdin are exclusive');
      if (options.password) process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
      const username = options.username ?? (await ask('Username: ', false));
      const password = options.passwordStdin ? (await readAll(process.stdin, 64 * 1024)).toString('utf8').replace(/\r?\n$/, '') : (options.password ?? (await ask('Password: ', true)));
      if (!username || !password) throw new Error('a login needs a user name and a password');
      await (await connect(globals())).call('POST', '/v1/registry/login', { server, username, password, ...(options.node ? { node: options.node } : {}) });
      const file = await storeLogin(server, username, password);
      process.stderr.write(`Credentials stored in ${file}\n`);
      process.stdout.write('Login Succeeded\n');
    });

  program
    .command('logout')
    .description('Forget the login to a registry')
    .argument('<server>', 'the registry, host:port')
    .action(async (server: string) => {
      if (await removeLogin(server)) process.stdout.write(`Removing login credentials for ${server}\n`);
      else process.stdout.write(`Not logged in to ${server}\n`);
    });
}
