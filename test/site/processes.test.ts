/**
 * A site of 20 gateway processes (`doorgw start`, as deployed) on one site Mosquitto with the
 * shipped site ACL (issue 23): 15 connect to it directly, 5 sit behind their own local Mosquitto
 * bridged as the role configures it. Seen as the operator sees it — each door's signed report on
 * the site bus (`doorgw site status`):
 *
 * - a lockdown reaches every door;
 * - 5 doors cut off — two local brokers frozen (SIGSTOP), one killed, two gateways killed -9 —
 *   while a card is blocked, a site user deleted and the lockdown lifted: the 15 others take it,
 *   and when the 5 heal every one of them holds exactly the site's facts (its digest equals the
 *   manifest's) and reports the level lifted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SiteTool } from '../../src/cli/site-tool.js';
import { validateConfig } from '../../src/config/load.js';
import { keyIdOf, rawPublicKey } from '../../src/domain/site-envelope.js';
import { doorKey } from '../../src/io/door-key.js';
import { ToolClient } from '../../src/io/mqtt/client.js';
import { CLI_MAIN, ROOT } from '../helpers/cli.js';
import { Broker, siteBroker, USERS } from '../helpers/mosquitto.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wecom.js';

const IDS = Array.from({ length: 20 }, (_, i) => `gw${String(i + 1).padStart(2, '0')}`);
const BRIDGED = new Set(IDS.slice(15));
const ACCOUNTS: Record<string, string> = { ...Object.fromEntries(IDS.map((id) => [id, `pw-${id}`])), 'site-operator': 'op-secret' };
const site = siteBroker(ACCOUNTS);
const admin = generateKeyPairSync('ed25519');
const locals = new Map<string, Broker>();
const procs = new Map<string, ChildProcess>();
let output = '';

/** The bridge lines mosquitto-doorgw.conf.j2 renders for a door with the site on. */
const bridge = (id: string) =>
  [
    `connection doorgw-site-${id}`,
    `address 127.0.0.1:${site.port}`,
    `remote_clientid doorgw-bridge-${id}`,
    `remote_username ${id}`,
    `remote_password ${ACCOUNTS[id]}`,
    'bridge_protocol_version mqttv50',
    'cleansession false',
    `topic doorgw/${id}/availability out 1`,
    `topic doorgw/${id}/state out 1`,
    `topic doorgw/${id}/door/# out 1`,
    'topic doorgw-site/command in 1',
    'topic doorgw-site/manifest in 1',
    'topic doorgw-site/fact/# both 1',
    `topic doorgw-site/door/${id} out 1`,
    `topic doorgw-site/journal/${id} out 1`,
    'topic doorgw-site/presence/# both 1',
    'topic doorgw-site/uses/# both 1',
  ].join('\n');

const files = new Map<string, string>();
function start(id: string): void {
  const p = spawn(process.execPath, [CLI_MAIN, 'start', '-c', files.get(id)!], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (b: Buffer) => (output = (output + `${id}: ${b.toString()}`).slice(-20_000));
  p.stdout.on('data', keep);
  p.stderr.on('data', keep);
  procs.set(id, p);
}
const killed = (p: ChildProcess, signal: NodeJS.Signals) => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : (p.once('exit', () => r()), p.kill(signal))));

beforeAll(async () => {
  await site.start();
  for (const id of BRIDGED) {
    const b = new Broker(null, bridge(id));
    await b.start();
    locals.set(id, b);
  }
  const dirs = new Map(IDS.map((id) => [id, join(tmpDir(), id)]));
  const door_keys = IDS.map((id) => ({ gateway: id, kid: doorKey(dirs.get(id)!).kid, public_key: doorKey(dirs.get(id)!).publicKey }));
  const siteConfig = { enabled: true, door_keys, keys: [{ kid: keyIdOf(admin.publicKey), name: 'site-admin', public_key: rawPublicKey(admin.publicKey), roles: ['admin'] }], levels: [{ name: 'normal' }, { name: 'lockdown', mode: 'lockdown' }] };
  for (const id of IDS) {
    const local = locals.get(id);
    const mqtt = local ? { enabled: true, url: local.url, username: 'doorgw', password: USERS.doorgw } : { enabled: true, url: site.url, username: id, password: ACCOUNTS[id] };
    const file = join(tmpDir(), `${id}.json`);
    writeFileSync(file, JSON.stringify({ gateway_id: id, data_dir: dirs.get(id), log: { level: 'warn' }, doors: [{ id: 'lobby' }], mqtt, site: siteConfig }));
    files.set(id, file);
  }
  for (const id of IDS) start(id);
  toolConfig = validateConfig({ data_dir: join(tmpDir(), 'tool'), doors: [{ id: 'x' }], mqtt: { enabled: true, url: site.url }, site: siteConfig }, 'tool');
}, 60_000);

afterAll(async () => {
  await Promise.all([...procs.values()].map((p) => killed(p, 'SIGKILL')));
  for (const b of locals.values()) {
    b.resume();
    await b.stop();
  }
  await site.stop();
});

let toolConfig: ReturnType<typeof validateConfig>;
async function operator(): Promise<{ tool: SiteTool; close: () => Promise<void> }> {
  const c = await ToolClient.connect({ url: site.url, username: 'site-operator', password: ACCOUNTS['site-operator'], clientId: 'site-operator' });
  return { tool: new SiteTool(c, toolConfig, { privateKey: admin.privateKey, kid: keyIdOf(admin.publicKey) }), close: () => c.end() };
}
type Status = Awaited<ReturnType<SiteTool['status']>>;
const lobbyMode = (s: Status, id: string) => s.doors.find((d) => d.gateway === id)?.states?.find((x) => x.door === 'lobby')?.mode ?? null;

describe('a site of 20 gateway processes', () => {
  it('a lockdown reaches every door; 5 doors cut off (frozen and killed brokers, gateways killed -9) converge on the block, the deletion and the lifted level when they heal', async () => {
    const { tool: op, close } = await operator();
    const waitAll = (what: string, ok: (s: Status) => boolean, ms = 60_000) =>
      until(async () => {
        const s = await op.status();
        return ok(s) ? s : null;
      }, what, ms).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n${output.slice(-4000)}`);
      });
    try {
      await op.state('user/bob', { site: true }, { name: 'Bob', cards: ['2002'] });
      await waitAll('20 doors report, each holding the site user', (s) => s.doors.length === 20 && s.unconfirmed.length === 0);

      await op.state('threat_level/site', { site: true }, { level: 'lockdown' });
      const locked = await waitAll('lockdown at every door', (s) => s.unconfirmed.length === 0 && IDS.every((id) => lobbyMode(s, id) === 'lockdown'));
      expect(locked.doors.every((d) => d.signed)).toBe(true);

      // Cut off: gw16 and gw17's brokers frozen, gw18's killed; gw01 and gw02 killed -9.
      const cut = ['gw01', 'gw02', 'gw16', 'gw17', 'gw18'];
      locals.get('gw16')!.pause();
      locals.get('gw17')!.pause();
      const gw18Port = locals.get('gw18')!.port;
      await locals.get('gw18')!.stop();
      await Promise.all(['gw01', 'gw02'].map((id) => killed(procs.get(id)!, 'SIGKILL')));

      await op.state('block/card:1001', { site: true }, { reason: 'lost' });
      await op.state('user/bob', { site: true }, null);
      await op.state('threat_level/site', { site: true }, { level: 'normal' });
      const split = await waitAll('the 15 connected doors take all three', (s) => IDS.filter((id) => !cut.includes(id)).every((id) => s.doors.find((d) => d.gateway === id)?.confirmed && lobbyMode(s, id) === 'normal'));
      // The cut-off doors still report what they held: the older facts, lockdown.
      expect(split.unconfirmed.sort()).toEqual(cut);
      for (const id of cut) expect(lobbyMode(split, id)).toBe('lockdown');

      // Healed: the brokers thawed and started again, the gateways started again.
      locals.get('gw16')!.resume();
      locals.get('gw17')!.resume();
      await locals.get('gw18')!.start(gw18Port);
      start('gw01');
      start('gw02');
      const healed = await waitAll('every door converged', (s) => s.doors.length === 20 && s.unconfirmed.length === 0 && IDS.every((id) => lobbyMode(s, id) === 'normal'));
      expect(healed.doors.every((d) => d.complete === true && d.manifest?.version === healed.manifest?.version)).toBe(true);
      expect(healed.refused).toEqual([]);
    } finally {
      await close();
    }
  }, 180_000);
});
