/** `doorgw site key new`, the built command. */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyIdOf } from '../../src/domain/site-envelope.js';
import { doorgwAsync } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

describe('doorgw site key new', () => {
  it('writes the private key 0600 and prints only its id and public key; never overwrites a key', async () => {
    const file = join(tmpDir(), 'desk.pem');
    const r = await doorgwAsync(['site', 'key', 'new', file, '--name', 'guard-desk', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { kid: string; name: string; public_key: string };
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const pem = readFileSync(file, 'utf8');
    expect(r.stdout + r.stderr).not.toContain(pem.split('\n')[1]!);
    expect(out.kid).toBe(keyIdOf(createPublicKey(createPrivateKey(pem))));
    expect(out).toMatchObject({ name: 'guard-desk', public_key: expect.stringMatching(/^[A-Za-z0-9+/]{43}=$/) });
    const again = await doorgwAsync(['site', 'key', 'new', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists: a key is never overwritten/);
    expect(readFileSync(file, 'utf8')).toBe(pem);
  });
});

describe('doorgw site on the bus', () => {
  it('refuses to log in under the configuration\'s broker account (the gateway\'s own), before connecting anywhere', async () => {
    const dir = tmpDir();
    const config = join(dir, 'c.yaml');
    writeFileSync(config, `data_dir: ${join(dir, 'data')}\nmqtt: { enabled: true, url: 'mqtt://127.0.0.1:1', username: doorgw, password: gw-secret }\nsite: { enabled: true }\ndoors: [{ id: front }]\n`);
    const r = await doorgwAsync(['site', 'status', '-c', config], { DOORGW_SITE_USERNAME: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/the site tool logs in under its own broker account: --username or \$DOORGW_SITE_USERNAME/);
    // The tool's own variables are not configuration overrides (they once made every site command
    // fail with "no configuration key site_password").
    const withEnv = await doorgwAsync(['site', 'status', '-c', config], { DOORGW_SITE_USERNAME: 'site-operator', DOORGW_SITE_PASSWORD: 'x', DOORGW_SITE_KEY: join(dir, 'none.pem') });
    expect(withEnv.stderr).not.toMatch(/invalid configuration/);
    expect(withEnv.stderr).toMatch(/127\.0\.0\.1:1|ECONNREFUSED|connect/); // it got as far as the broker
  });
});

describe('doorgw site door-key', () => {
  it('makes the door\'s key once (0600, in the data directory), and prints only its entry for site.door_keys', async () => {
    const dir = tmpDir();
    const config = join(dir, 'c.yaml');
    writeFileSync(config, `gateway_id: gw7\ndata_dir: ${join(dir, 'data')}\ndoors: [{ id: front }]\n`);
    mkdirSync(join(dir, 'data'));
    const a = await doorgwAsync(['site', 'door-key', '--json', '-c', config]);
    expect(a.code).toBe(0);
    const out = JSON.parse(a.stdout) as { gateway: string; kid: string; public_key: string };
    expect(out).toMatchObject({ gateway: 'gw7', kid: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(statSync(join(dir, 'data', 'site-door-key.pem')).mode & 0o777).toBe(0o600);
    expect(a.stdout).not.toContain(readFileSync(join(dir, 'data', 'site-door-key.pem'), 'utf8').split('\n')[1]!);
    const b = await doorgwAsync(['site', 'door-key', '--json', '-c', config]);
    expect(JSON.parse(b.stdout)).toEqual(out); // the same key: made once
    // The entry as printed is what site.door_keys takes.
    writeFileSync(config, `gateway_id: gw7\ndata_dir: ${join(dir, 'data')}\nsite: { door_keys: [{ gateway: gw7, kid: ${out.kid}, public_key: '${out.public_key}' }] }\ndoors: [{ id: front }]\n`);
    expect((await doorgwAsync(['config', 'check', config])).code).toBe(0);
  });
});

