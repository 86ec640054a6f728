/** `doorgw web user …`: console accounts. Passwords are hashed here; only the hash leaves the CLI. */
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { Option, type Command } from 'commander';
import { UsageError } from '../control/errors.js';
import { cliActor } from './args.js';
import type { CliDeps } from './wecom.js';

const ROLES = ['viewer', 'operator', 'admin'];

/** A password: typed twice without echo on a terminal, else the first line of standard input. */
export async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  }
  const ask = (q: string): Promise<string> =>
    new Promise((resolve) => {
      process.stderr.write(q);
      const mute = new Writable({ write: (_c, _e, cb) => cb() });
      const rl = createInterface({ input: process.stdin, output: mute, terminal: true });
      rl.question('', (a) => {
        rl.close();
        process.stderr.write('\n');
        resolve(a);
      });
    });
  const a = await ask('password: ');
  if ((await ask('again: ')) !== a) throw new UsageError('the passwords differ');
  return a;
}

export function addWebCommands(program: Command, d: CliDeps): void {
  const user = program.command('web').description('the local web console').command('user').description('console accounts (roles: viewer, operator, admin)');

  user
    .command('add')
    .description('add an account, or change its role and password (the password is read from the terminal, or from standard input)')
    .argument('<name>')
    .addOption(new Option('--role <role>', 'viewer: sees everything; operator: opens doors, changes modes, blocks cards; admin: everything').choices(ROLES).makeOptionMandatory())
    .addOption(d.configOpt())
    .action(async (name: string, o: { role: string; config: string }) => {
      const { hashPassword, passwordProblem } = await import('../domain/password.js');
      const password = await readPassword();
      const problem = passwordProblem(password);
      if (problem) throw new UsageError(`the password needs ${problem}`);
      const hash = await hashPassword(password);
      const r = await d.withApi(o.config, (api) => api.webUserPut({ name, role: o.role, hash, by: cliActor() }), { create: true });
      d.out(`${r.created ? 'added' : 'changed'} console account ${r.name} (${r.role})`);
    });

  user
    .command('role')
    .description('change an account\'s role (its sessions end)')
    .argument('<name>')
    .argument('<role>', ROLES.join(' | '))
    .addOption(d.configOpt())
    .action(async (name: string, role: string, o: { config: string }) => {
      const r = await d.withApi(o.config, (api) => api.webUserPut({ name, role, by: cliActor() }));
      d.out(`console account ${r.name} is now ${r.role}`);
    });

  user
    .command('list')
    .description('console accounts')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; json?: boolean }) => {
      const list = await d.withApi(o.config, (api) => api.webUsers({}));
      if (o.json) return d.json(list);
      for (const a of list) d.out(`${a.name}\t${a.role}\tchanged ${new Date(a.updated_at).toISOString()}`);
    });

  user
    .command('remove')
    .description('remove an account (its sessions end)')
    .argument('<name>')
    .addOption(d.configOpt())
    .action(async (name: string, o: { config: string }) => {
      await d.withApi(o.config, (api) => api.webUserRemove({ name, by: cliActor() }));
      d.out(`removed console account ${name}`);
    });
}
