/** `doorgw site key new`: an operator's or a service's Ed25519 key for signing site messages. */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from '../control/errors.js';
import { keyIdOf } from '../domain/site-envelope.js';
import type { CliDeps } from './wecom.js';

export function addSiteCommands(program: Command, d: CliDeps): void {
  const site = program.command('site').description('the site: many doors as one system (signed site messages)');
  const key = site.command('key').description('signing keys of operators and services');
  key
    .command('new')
    .description('make an Ed25519 key: the private key goes into <file> (mode 0600, never printed); prints the key id and the public key for the doors\' trusted keys')
    .argument('<file>', 'where to write the private key (PEM); an existing file is refused')
    .option('--name <name>', 'who holds it (shown in the doors\' journals as the signer)', 'operator')
    .option('--json', 'machine-readable output')
    .action((file: string, o: { name: string; json?: boolean }) => {
      if (existsSync(file)) throw new UsageError(`${file} exists: a key is never overwritten (move it away first)`, 'conflict');
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
      const out = { kid: keyIdOf(publicKey), name: o.name, public_key: publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64'), file };
      if (o.json) return d.json(out);
      d.out(`key ${out.kid} for ${out.name} written to ${file} (mode 0600; keep it off the doors)`);
      d.out(`trust it on the doors with: { kid: ${out.kid}, name: ${out.name}, public_key: ${out.public_key}, roles: [guard] }`);
    });
}
