/**
 * Temporary credentials of site users (issue 26, item 5) counted across the site, through a real
 * Mosquitto with the shipped site ACL: a site user of 3 uses passes 3 times at 3 different
 * gateways and is then refused at every one of them (uses_exhausted, sponsor named), also after a
 * gateway restarts; a forged count, and one in another door's slot, are refused; the same person
 * issued again starts from zero; "today only" is a window of the gateway's day.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { SiteTool } from '../../src/cli/site-tool.js';
import { todayWindow } from '../../src/cli/args.js';
import { credentialEvent } from '../../src/domain/events.js';
import { keyIdOf } from '../../src/domain/site-envelope.js';
import { personTopic } from '../../src/domain/site-presence.js';
import { SiteUseCounts, signUse } from '../../src/domain/site-uses.js';
import type { Gateway } from '../../src/gateway.js';
import { doorKey } from '../../src/io/door-key.js';
import { ToolClient } from '../../src/io/mqtt/client.js';
import { createLogger } from '../../src/log.js';
import { Broker, SITE_ACL } from '../helpers/mosquitto.js';
import { mqttConfig, startMqttGateway } from '../helpers/mqtt-gateway.js';
import { doorgwAsync } from '../helpers/cli.js';
import { makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: 'silent', pretty: false });
const qrKey = makeKey();
const ACCOUNTS = { gw1: 'b1', gw2: 'b2', gw3: 'b3', 'site-operator': 'op' } as const;
type Id = 'gw1' | 'gw2' | 'gw3';
const admin = generateKeyPairSync('ed25519');
const raw = (k: typeof admin.publicKey) => k.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
let broker: Broker;
const closers: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  // The shipped site ACL, and a watcher that may read the retained counts (no gateway's account: it would take that gateway's session).
  broker = new Broker({ users: { ...ACCOUNTS, watcher: 'w' }, acl: `${readFileSync(SITE_ACL, 'utf8')}\npattern readwrite doorgw/%u/#\nuser watcher\ntopic read doorgw-site/uses/#\ntopic readwrite doorgw-site/tool/#\n` });
  await broker.start();
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await broker.stop();
});

function siteOf(ids: Id[]) {
  const dirs = new Map(ids.map((id) => [id, join(tmpDir(), id)]));
  const door_keys = ids.map((id) => {
    const k = doorKey(dirs.get(id)!);
    return { gateway: id, kid: k.kid, public_key: k.publicKey };
  });
  const site = { enabled: true, door_keys, keys: [{ kid: keyIdOf(admin.publicKey), name: 'site-admin', public_key: raw(admin.publicKey), roles: ['admin'] }] };
  const running = new Map<Id, Gateway>();
  const start = async (id: Id): Promise<Gateway> => {
    const g = await startMqttGateway(broker, { log, key: qrKey, dataDir: dirs.get(id)!, extra: { url: broker.url, username: id, password: ACCOUNTS[id] }, top: { gateway_id: id, site } });
    running.set(id, g);
    closers.push(async () => running.get(id) === g && (await g.stop()));
    return g;
  };
  const stop = async (id: Id) => {
    await running.get(id)!.stop();
    running.delete(id);
  };
  const tool = async (): Promise<SiteTool> => {
    const c = await ToolClient.connect({ url: broker.url, username: 'site-operator', password: ACCOUNTS['site-operator'], clientId: 'site-operator' });
    closers.push(() => c.end());
    return new SiteTool(c, mqttConfig(broker, join(tmpDir(), 'tool'), {}, undefined, { site }), { privateKey: admin.privateKey, kid: keyIdOf(admin.publicKey) });
  };
  return { start, stop, tool, dirs, site };
}
const pass = (g: Gateway) => g.pipeline.handle(credentialEvent('lobby', 'test', 'in', { type: 'card', value: '5005' }))!;
const others = (g: Gateway) => g.mqtt!.siteUses!.others('guest', g.store.directory.user('guest')?.local?.uses_since ?? -1);

describe('temporary credentials of site users', () => {
  it('3 uses across 3 gateways, then refused at every one (also after a restart); the sponsor is journaled', async () => {
    const site = siteOf(['gw1', 'gw2', 'gw3']);
    const gws = { gw1: await site.start('gw1'), gw2: await site.start('gw2'), gw3: await site.start('gw3') };
    const op = await site.tool();
    await op.state('user/guest', { site: true }, { name: 'Guest', cards: ['5005'], max_uses: 3, uses_since: Date.now(), sponsor: 'alice' });
    for (const g of Object.values(gws)) await until(() => g.store.directory.user('guest'), 'the site user at every door');
    expect(pass(gws.gw1)).toMatchObject({ decision: 'grant', userid: 'guest', detail: 'use 1 of 3; sponsor alice' });
    await until(() => others(gws.gw2) === 1, 'gw2 heard gw1\'s count');
    expect(pass(gws.gw2)).toMatchObject({ decision: 'grant', detail: 'use 2 of 3; sponsor alice' });
    await until(() => others(gws.gw3) === 2, 'gw3 heard both');
    expect(pass(gws.gw3)).toMatchObject({ decision: 'grant', detail: 'use 3 of 3; sponsor alice' });
    await until(() => others(gws.gw1) === 2 && others(gws.gw2) === 2, 'every door heard every count');
    for (const g of Object.values(gws)) expect(pass(g)).toMatchObject({ decision: 'deny', reason: 'uses_exhausted', detail: 'used 3 of 3 times (sponsor alice)' });
    // gw1 restarts: its own use from its disk, the others' from the retained counts.
    await site.stop('gw1');
    const again = await site.start('gw1');
    await until(() => others(again) === 2, 'the retained counts after the restart');
    expect(pass(again).reason).toBe('uses_exhausted');
    const journal = await again.store.recentJournal(10);
    expect(journal.find((e) => e.decision === 'grant')?.detail).toBe('use 1 of 3; sponsor alice');
    // Issued again (a new uses_since): a fresh count at every door.
    await op.state('user/guest', { site: true }, { name: 'Guest', cards: ['5005'], max_uses: 1, uses_since: Date.now() + 1 });
    await until(() => gws.gw2.store.directory.user('guest')?.local?.max_uses === 1, 'the new credential');
    expect(pass(gws.gw2)).toMatchObject({ decision: 'grant', detail: 'use 1 of 1' });
    await until(() => others(again) === 1, 'gw1 heard it');
    expect(pass(again).reason).toBe('uses_exhausted');
    // Removed from the site: each door clears its own slot, so no count of a deleted person stays retained.
    const watcher = await ToolClient.connect({ url: broker.url, username: 'watcher', password: 'w', clientId: 'watcher' });
    closers.push(() => watcher.end());
    expect((await watcher.retained(['doorgw-site/uses/#'], 'doorgw-site/tool/watcher')).length).toBeGreaterThan(0);
    await op.state('user/guest', { site: true }, null);
    await until(async () => (await watcher.retained(['doorgw-site/uses/#'], 'doorgw-site/tool/watcher')).length === 0, 'every slot cleared');
  }, 40_000);

  it('refuses a forged count and one in another door\'s slot; counts merge as a grow-only counter', async () => {
    const site = siteOf(['gw1', 'gw2']);
    const g1 = await site.start('gw1');
    const op = await site.tool();
    const since = Date.now();
    await op.state('user/guest', { site: true }, { cards: ['5005'], max_uses: 2, uses_since: since });
    await until(() => g1.store.directory.user('guest'), 'the site user');
    // gw2's account (it may write its own slot only, by the ACL) publishes counts gw1 must refuse.
    const c = await mqtt.connectAsync(broker.url, { username: 'gw2', password: ACCOUNTS.gw2, protocolVersion: 5 });
    closers.push(() => c.endAsync());
    const other = generateKeyPairSync('ed25519');
    const slot = `doorgw-site/uses/${personTopic('guest')}/gw2`;
    await c.publishAsync(slot, JSON.stringify(signUse({ userid: 'guest', since, count: 2, gateway: 'gw2', at: Date.now() }, keyIdOf(other.publicKey), other.privateKey)), { qos: 1, retain: true });
    const k2 = doorKey(site.dirs.get('gw2')!);
    await c.publishAsync(slot, JSON.stringify(signUse({ userid: 'mallory', since, count: 2, gateway: 'gw2', at: Date.now() }, k2.kid, k2.privateKey)), { qos: 1 });
    await until(() => g1.mqtt!.siteUses!.refused.bad_signature === 1 && g1.mqtt!.siteUses!.refused.malformed === 1, 'both refused');
    expect(pass(g1).decision).toBe('grant');
    // A genuine count of gw2 (its own key) is taken: the credential is used up.
    await c.publishAsync(slot, JSON.stringify(signUse({ userid: 'guest', since, count: 1, gateway: 'gw2', at: Date.now() }, k2.kid, k2.privateKey)), { qos: 1, retain: true });
    await until(() => pass(g1).reason === 'uses_exhausted', 'gw2\'s use counted');
    // The counter as a table: newest per door, summed per credential, never counting this door.
    const t = new SiteUseCounts(2);
    expect(t.merge({ userid: 'u', gateway: 'a', since: 1, count: 2 })).toBe(true);
    expect(t.merge({ userid: 'u', gateway: 'a', since: 1, count: 1 })).toBe(false); // older, delivered late
    expect(t.merge({ userid: 'u', gateway: 'b', since: 1, count: 1 })).toBe(true);
    expect([t.total('u', 1, 'me'), t.total('u', 1, 'a'), t.total('u', 2, 'me')]).toEqual([3, 1, 0]);
    expect(t.merge({ userid: 'u', gateway: 'a', since: 2, count: 1 })).toBe(true); // reissued
    expect(t.total('u', 1, 'me')).toBe(1);
    t.merge({ userid: 'v', gateway: 'a', since: 1, count: 1 });
    expect(t.merge({ userid: 'w', gateway: 'a', since: 1, count: 1 })).toBe(false); // full: bounded
  }, 30_000);

  it('doorgw site users add --max-uses --sponsor --today: the fact every door holds', async () => {
    const s = siteOf(['gw1']);
    const g = await s.start('gw1');
    const dir = tmpDir();
    const keyFile = join(dir, 'admin.pem');
    writeFileSync(keyFile, admin.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    const config = join(dir, 'tool.yaml');
    writeFileSync(config, JSON.stringify({ data_dir: join(dir, 'data'), timezone: 'Asia/Shanghai', mqtt: { enabled: true, url: broker.url }, site: s.site, doors: [{ id: 'front' }] }));
    const env = { DOORGW_SITE_USERNAME: 'site-operator', DOORGW_SITE_PASSWORD: ACCOUNTS['site-operator'], DOORGW_SITE_KEY: keyFile };
    expect((await doorgwAsync(['site', 'users', 'add', 'guest', '--card', '5005', '--max-uses', '0', '-c', config], env)).stderr).toMatch(/--max-uses must be 1 to 100000/);
    expect((await doorgwAsync(['site', 'users', 'add', 'guest', '--card', '5005', '--today', '--valid-until', '2030-01-01T00:00:00Z', '-c', config], env)).stderr).toMatch(/--today sets --valid-from and --valid-until/);
    const r = await doorgwAsync(['site', 'users', 'add', 'guest', '--card', '5005', '--max-uses', '2', '--sponsor', 'alice', '--today', '-c', config], env);
    expect(r.code).toBe(0);
    await until(() => g.store.directory.user('guest'), 'the site user at the door');
    const f = g.store.directory.user('guest')!.local!;
    const [from, to] = todayWindow('Asia/Shanghai');
    expect(f).toMatchObject({ max_uses: 2, sponsor: 'alice', valid_from: from, valid_until: to });
    expect(f.uses_since).toBeGreaterThan(Date.now() - 60_000);
    expect(pass(g)).toMatchObject({ decision: 'grant', detail: 'use 1 of 2; sponsor alice' });
  }, 30_000);

  it('"today only" is today in the gateway\'s zone (23 and 25 hour days included)', () => {
    const [from, until_] = todayWindow('Asia/Shanghai', Date.parse('2026-12-04T10:00:00+08:00'));
    expect([new Date(from).toISOString(), new Date(until_).toISOString()]).toEqual(['2026-12-03T16:00:00.000Z', '2026-12-04T16:00:00.000Z']);
    const [a, b] = todayWindow('Europe/Berlin', Date.parse('2026-10-25T12:00:00+01:00'));
    expect((b - a) / 3_600_000).toBe(25);
    const [c, d] = todayWindow('Europe/Berlin', Date.parse('2026-03-29T12:00:00+02:00'));
    expect((d - c) / 3_600_000).toBe(23);
  });
});
