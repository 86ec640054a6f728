/**
 * Site facts through a real Mosquitto with the shipped ACL (issue 23): the operator's tool states
 * blocks, site users, threat levels and door modes, signed; a gateway takes them within a
 * delivery, holds them across a restart without the broker, refuses older and misplaced versions
 * (and repairs the broker's retained copy), and reports itself complete against the manifest.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SiteTool } from '../../src/cli/site-tool.js';
import { credentialEvent } from '../../src/domain/events.js';
import { keyIdOf, signEnvelope } from '../../src/domain/site-envelope.js';
import { signReport } from '../../src/domain/door-report.js';
import { doorKey } from '../../src/io/door-key.js';
import type { Credential } from '../../src/domain/types.js';
import type { Gateway } from '../../src/gateway.js';
import { ToolClient } from '../../src/io/mqtt/client.js';
import { createLogger } from '../../src/log.js';
import { Broker, client, USERS } from '../helpers/mosquitto.js';
import { cleanup, mqttConfig, simRelay, startMqttGateway } from '../helpers/mqtt-gateway.js';
import { localStamp } from '../../src/domain/localtime.js';
import { makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

// Each test its own broker, so the retained facts of one never reach the next.
let broker = new Broker();
const qrKey = makeKey();
beforeEach(async () => {
  broker = new Broker();
  await broker.start();
});
afterEach(() => broker.stop());
const log = createLogger({ level: 'silent', pretty: false });
const t = cleanup();

const admin = generateKeyPairSync('ed25519');
const guard = generateKeyPairSync('ed25519');
const raw = (k: KeyObject) => k.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
const siteOf = () => ({
  enabled: true,
  base_topic: 'doorgw-site',
  keys: [
    { kid: keyIdOf(admin.publicKey), name: 'site-admin', public_key: raw(admin.publicKey), roles: ['admin'] },
    { kid: keyIdOf(guard.publicKey), name: 'guard-desk', public_key: raw(guard.publicKey), roles: ['guard'] },
  ],
  areas: ['hq'],
  levels: [{ name: 'normal' }, { name: 'elevated', deny_groups: ['contractors'] }, { name: 'lockdown', mode: 'lockdown', override_groups: ['security'] }],
});

/** A tool on the broker; each its own account (the client id is the account: a second session would take over the first). */
async function tool(site: ReturnType<typeof siteOf>, who: { privateKey: KeyObject; publicKey: KeyObject } = admin, account: 'operator' | 'admin' = who === admin ? 'admin' : 'operator'): Promise<SiteTool> {
  const c = await ToolClient.connect({ url: broker.url, username: account, password: USERS[account], clientId: account });
  t.closers.push(() => c.end());
  const config = mqttConfig(broker, join(tmpDir(), 'tool'), {}, undefined, { site, groups: { contractors: ['bob'], security: ['sam'] } });
  return new SiteTool(c, config, { privateKey: who.privateKey, kid: keyIdOf(who.publicKey) });
}

const decide = (g: Gateway, cred: Credential, door = 'lobby') => g.pipeline.handle(credentialEvent(door, 'test', 'in', cred))!;
const card = (n: number): Credential => ({ type: 'card', value: String(n) });

describe('site facts', () => {
  it('the site fire level releases the doors it holds over their modes, latched past its end until a local reset', async () => {
    const site = { ...siteOf(), levels: [...siteOf().levels, { name: 'fire', mode: 'passage' as const }] };
    const g = await startMqttGateway(broker, { log, key: qrKey, top: { site, groups: { contractors: ['bob'], security: ['sam'] } } });
    t.gw = g;
    const desk = await tool(site as ReturnType<typeof siteOf>, guard);
    expect(g.pipeline.setMode('lobby', 'lockdown', { by: 'test' })).toBe(true);
    await desk.state('threat_level/site', { site: true }, { level: 'fire', reason: 'panel zone 3' });
    await until(() => g.io!.fire.released('lobby'), 'released by the site fire level');
    // The level in the gateway's retained state (Home Assistant's threat-level sensors read it).
    const watcher = await client(broker, 'homeassistant', [`doorgw/${g.config.gateway_id}/state`]); // not operator: the desk's tool has that session
    t.closers.push(() => watcher.c.endAsync());
    await until(() => watcher.got.some((m) => (JSON.parse(m.payload) as { levels?: Record<string, string | null> }).levels?.lobby === 'fire'), 'levels in the state');
    expect(simRelay(g).energised).toBe(true);
    await desk.state('threat_level/site', { site: true }, { level: 'normal' });
    await until(() => g.pipeline.heldBy('lobby') === null && g.pipeline.modeOf('lobby') !== 'passage', 'the level let go');
    expect(g.io!.fire.released('lobby')).toBe(true); // latched (io.site_fire_latch)
    expect(simRelay(g).energised).toBe(true);
    // The reset by a signed site command (the guard desk's key), journaled with its name.
    await desk.command('fire_reset/lobby', { doors: ['lobby'] }, {});
    await until(() => !g.io!.fire.released('lobby'), 'reset by the signed command');
    expect(simRelay(g).energised).toBe(false);
    expect(g.io!.fire.released('back')).toBe(true); // only the door it named
    const events = async () => (await g.store.recentDoorEvents(100)).filter((e) => e.type.startsWith('fire') && e.door === 'lobby').reverse();
    await until(async () => (await events()).length === 3, 'the reset journaled');
    expect((await events()).map((e) => [e.type, e.detail])).toEqual([
      ['fire_release', 'site:guard-desk (threat level fire) (latched until reset)'],
      ['fire_cleared', 'site fire level ended; released until an operator resets'],
      ['fire_reset', 'reset by site:guard-desk'],
    ]);
  });

  it('blocks, site users, levels and door modes apply at once, are journaled with the signer, and are undone by deletion', async () => {
    const site = siteOf();
    const g = await startMqttGateway(broker, { log, key: qrKey, top: { site, groups: { contractors: ['bob'], security: ['sam'] } } });
    t.gw = g;
    const op = await tool(site);
    const desk = await tool(site, guard);
    expect(decide(g, card(1001)).decision).toBe('grant'); // alice, a cloud user

    await desk.state('block/card:1001', { site: true }, { reason: 'lost' });
    await until(() => decide(g, card(1001)).reason === 'blocked', 'the site block applies');
    expect(decide(g, card(1001)).detail).toContain('lost');

    await op.state('user/bob', { site: true }, { name: 'Bob', cards: ['2002'], groups: ['contractors'] });
    await until(() => decide(g, card(2002)).decision === 'grant', 'the site user passes');
    expect(decide(g, card(2002)).userid).toBe('bob');
    await op.state('user/sam', { areas: ['hq'] }, { name: 'Sam', cards: ['3003'] });
    await until(() => decide(g, card(3003)).decision === 'grant', 'a user of this area passes');
    await op.state('user/zed', { areas: ['elsewhere'] }, { name: 'Zed', cards: ['4004'] });
    await until(() => g.site!.status().facts === 4, 'an out-of-scope fact is held (it counts for completeness)');
    expect(decide(g, card(4004)).reason).toBe('unknown_user');

    // elevated denies the contractors' group; lockdown holds the door and lets security through.
    await desk.state('threat_level/site', { site: true }, { level: 'elevated', reason: 'drill' });
    await until(() => decide(g, card(2002)).reason === 'threat_level', 'elevated denies contractors');
    await desk.state('threat_level/hq', { areas: ['hq'] }, { level: 'lockdown' });
    await until(() => g.pipeline.modeOf('lobby') === 'lockdown' && g.pipeline.modeOf('back') === 'lockdown', 'lockdown of the area reaches both doors');
    expect(decide(g, card(2002)).reason).toBe('lockdown');
    expect(decide(g, card(3003)).reason).toBe('lockdown_override'); // sam is in the level's override group
    await expect(g.api.setMode({ door: 'lobby', mode: 'normal', by: 'cli' })).rejects.toThrow(/held in its mode by the site's threat level/);
    const st = await g.api.status();
    expect(st.site!.levels[0]).toMatchObject({ door: 'lobby', level: 'lockdown', from: 'hq', by: 'guard-desk', mode: 'lockdown' });
    await desk.state('threat_level/hq', { areas: ['hq'] }, null);
    await until(() => g.pipeline.modeOf('lobby') === 'normal', 'the area lockdown ends: back to the site level');
    expect(g.site!.status().levels[0]!.level).toBe('elevated');
    await desk.state('threat_level/site', { site: true }, { level: 'normal' });
    await until(() => decide(g, card(2002)).decision === 'grant', 'normal again');

    await op.state('door_mode/lobby', { doors: ['lobby'] }, { mode: 'passage' });
    await until(() => g.pipeline.modeOf('lobby') === 'passage', 'a site door mode');
    await op.state('door_mode/lobby', { doors: ['lobby'] }, null);
    await until(() => g.pipeline.modeOf('lobby') === 'normal', 'cleared');

    await desk.state('block/card:1001', { site: true }, null);
    await until(() => decide(g, card(1001)).decision === 'grant', 'unblocked by a deletion');

    // A guard may not change the directory: the tool will not sign it, and a door refuses it by role.
    await expect(desk.state('user/mallory', { site: true }, { cards: ['6666'] })).rejects.toThrow(/do not trust key .* to state user/);
    const raw = await client(broker, 'operator'); // takes the desk's session over: the desk is done
    t.closers.push(() => raw.c.endAsync());
    const mallory = signEnvelope({ v: 1, kid: keyIdOf(guard.publicKey), iat: Date.now(), id: 'mallory-0001', kind: 'fact', subject: 'user/mallory', scope: { site: true }, version: 1, body: { cards: ['6666'] } }, guard.privateKey);
    await raw.c.publishAsync('doorgw-site/fact/user/mallory', JSON.stringify(mallory), { qos: 1, retain: true });
    await until(async () => (await g.store.recentDoorEvents(100)).some((e) => e.type === 'site_refused' && e.detail!.startsWith('role_not_allowed')), 'refused by role');
    expect(decide(g, card(6666)).reason).toBe('unknown_user');

    const events = await g.store.recentDoorEvents(300);
    expect(events.some((e) => e.type === 'threat_level' && e.door === 'lobby' && e.detail === 'lockdown (hq) set by guard-desk; door lockdown')).toBe(true);
    expect(events.some((e) => e.type === 'site_changed' && e.detail!.includes('block/card:1001 v1 by guard-desk'))).toBe(true);
    await until(() => g.site!.status().complete === true, 'complete against the manifest');
  }, 60_000);

  it('a scheduled level holds at each door from its own clock, over a signed lower level, and is journaled as the schedule\'s', async () => {
    const zone = 'Asia/Shanghai';
    const hhmm = (ms: number) => localStamp(ms, zone).slice(11, 16);
    const window = { level: 'lockdown', from: hhmm(Date.now() - 3_600_000), to: hhmm(Date.now() + 3_600_000) };
    const site = { ...siteOf(), level_schedule: [window] };
    const g = await startMqttGateway(broker, { log, key: qrKey, top: { timezone: zone, site, groups: { contractors: ['bob'], security: ['sam'] } } });
    t.gw = g;
    expect(g.pipeline.modeOf('lobby')).toBe('lockdown'); // from the first decision: applied when the facts load
    expect(decide(g, card(1001)).reason).toBe('lockdown');
    const desk = await tool(site, guard);
    await desk.state('threat_level/site', { site: true }, { level: 'normal' });
    await until(() => g.site!.status().facts === 1, 'the signed level held');
    expect(g.pipeline.modeOf('lobby')).toBe('lockdown'); // the most severe holds
    expect(g.site!.status().levels.find((l) => l.door === 'lobby')).toMatchObject({ level: 'lockdown', by: 'schedule', reason: `scheduled ${window.from}–${window.to}` });
    const ev = (await g.store.recentDoorEvents(50)).find((e) => e.type === 'threat_level' && e.door === 'lobby');
    expect(ev?.detail).toBe(`lockdown (site) set by schedule: scheduled ${window.from}–${window.to}; door lockdown`);
    // A schedule that names no configured level, or an empty window, is refused at load.
    expect(() => mqttConfig(broker, tmpDir(), {}, undefined, { site: { ...siteOf(), level_schedule: [{ level: 'nope', from: '01:00', to: '02:00' }] } })).toThrow(/no level 'nope' in site.levels/);
    expect(() => mqttConfig(broker, tmpDir(), {}, undefined, { site: { ...siteOf(), level_schedule: [{ level: 'lockdown', scope: 'mars', from: '01:00', to: '01:00' }] } })).toThrow(/scope 'mars' is neither site nor an area[\s\S]*an empty window/);
  });

  it('a tool whose session another client takes over fails at once with the reason, never waits without end', async () => {
    const c = await ToolClient.connect({ url: broker.url, username: 'operator', password: USERS.operator, clientId: 'operator' });
    t.closers.push(() => c.end());
    expect(await c.retained(['doorgw-site/fact/#'], 'doorgw-site/tool/x1')).toEqual([]);
    // The same account again: with use_username_as_clientid the broker hands it the session.
    const other = await client(broker, 'operator');
    t.closers.push(() => other.c.endAsync());
    await expect(c.retained(['doorgw-site/fact/#'], 'doorgw-site/tool/x2')).rejects.toThrow(/the broker closed the connection \(another session with this account took it over/);
    await expect(c.publish('doorgw-site/fact/block/card:1', '{}', true)).rejects.toThrow(/closed the connection/);
  });

  it('holds its facts across a restart without the broker, and decides at once', async () => {
    const site = siteOf();
    const dataDir = join(tmpDir(), 'data');
    let g = await startMqttGateway(broker, { log, key: qrKey, dataDir, top: { site } });
    t.gw = g;
    const op = await tool(site);
    await op.state('block/user:alice', { site: true }, { reason: 'left' });
    await until(() => decide(g, card(1001)).reason === 'blocked', 'blocked');
    await g.stop();
    t.gw = null;
    // Nowhere to connect: the block must come from the disk.
    const { Gateway } = await import('../../src/gateway.js');
    const config = mqttConfig(broker, dataDir, { url: 'mqtt://127.0.0.1:1' }, undefined, { site });
    g = await Gateway.start({ config, log, controlSocket: false });
    t.gw = g;
    expect(decide(g, card(1001)).reason).toBe('blocked');
    expect(g.site!.status()).toMatchObject({ facts: 1, complete: true });
  }, 30_000);

  it('an older or misplaced version is refused, journaled, and the broker\'s copy repaired', async () => {
    const site = siteOf();
    const g = await startMqttGateway(broker, { log, key: qrKey, top: { site } });
    t.gw = g;
    const op = await tool(site);
    const v1 = (await op.state('block/card:5005', { site: true }, {})).fact;
    await op.state('block/card:5005', { site: true }, { reason: 'v2' });
    await until(() => g.store.site.held.get('block/card:5005')?.stamp.version === 2, 'v2 held');
    const pub = await client(broker, 'operator'); // an account that may publish there, with no key that counts
    t.closers.push(() => pub.c.endAsync());
    // v1 put back as the retained copy (a stale tool, a replay by a broker account).
    await pub.c.publishAsync(`${site.base_topic}/fact/block/card:5005`, JSON.stringify(v1), { qos: 1, retain: true });
    await until(async () => (await g.store.recentDoorEvents(50)).some((e) => e.type === 'site_refused' && e.detail!.startsWith('older_version')), 'older version refused');
    // v1 on the slot of another subject.
    await pub.c.publishAsync(`${site.base_topic}/fact/block/card:7007`, JSON.stringify(v1), { qos: 1, retain: true });
    await until(async () => (await g.store.recentDoorEvents(50)).some((e) => e.type === 'site_refused' && e.detail!.includes('carries a fact of block/card:5005')), 'misplaced refused');
    // The repair: the broker's retained copy is v2 again.
    await until(async () => (await op.snapshot()).facts.get('block/card:5005')?.version === 2, 'the retained copy repaired');
    // Forged: a v3 with a bad signature changes nothing.
    const forged = { ...signEnvelope({ v: 1, kid: keyIdOf(admin.publicKey), iat: Date.now(), id: 'forged-000001', kind: 'fact', subject: 'block/card:5005', scope: { site: true }, version: 3, body: null }, guard.privateKey) };
    await pub.c.publishAsync(`${site.base_topic}/fact/block/card:5005`, JSON.stringify(forged), { qos: 1, retain: false });
    await until(async () => (await g.store.recentDoorEvents(50)).some((e) => e.type === 'site_refused' && e.detail!.startsWith('bad_signature')), 'forged refused');
    expect(g.store.site.held.get('block/card:5005')?.stamp.version).toBe(2);
    expect(decide(g, { type: 'card', value: '5005' }).reason).toBe('unknown_user');
  }, 30_000);
});

describe('the operator\'s tool against hostile retained content', () => {
  it('reads a broker a door\'s account has filled with junk: nothing larger than a site message reaches it, every bad one is listed as refused', async () => {
    const site = siteOf();
    const op = await tool(site);
    await op.state('block/card:7001', { site: true }, { reason: 'lost' });
    // The gateways' account may write facts (a door repairs the broker's copy): here it writes junk.
    const rogue = await ToolClient.connect({ url: broker.url, username: 'doorgw', password: USERS.doorgw, clientId: 'doorgw' });
    t.closers.push(() => rogue.end());
    await rogue.publish('doorgw-site/fact/block/card:7002', 'x'.repeat(512 * 1024), true); // 512 KiB: the broker takes it, the tool does not
    await rogue.publish('doorgw-site/fact/block/card:7003', '{"v":1,"not":"an envelope"', true);
    await rogue.publish('doorgw-site/fact/user/mallory', JSON.stringify({ v: 1, kid: '0'.repeat(32), iat: Date.now(), id: 'abcdefgh12', kind: 'fact', subject: 'user/mallory', scope: { site: true }, version: 1, body: { name: 'M' } }), true);
    await rogue.publish('doorgw-site/door/gw9', '[]', true);
    const snap = await op.snapshot();
    expect([...snap.facts.keys()]).toEqual(['block/card:7001']);
    expect(snap.refused.map((r) => [r.topic, r.reason.split(':')[0]]).sort()).toEqual([
      ['doorgw-site/door/gw9', 'door report refused'],
      ['doorgw-site/fact/block/card:7003', 'malformed'],
      ['doorgw-site/fact/user/mallory', 'no_signature'],
    ]);
    // The 512 KiB message never reached the tool (its MQTT 5 maximum packet size); the facts it reads still add up.
    expect(snap.refused.some((r) => r.topic.endsWith('card:7002'))).toBe(false);
  });
});

describe('a site of doors behind their own brokers, bridged as the role configures them', () => {
  it('a lockdown reaches every door; a door cut off during a block and a deletion converges when it heals; a new door joins complete', async () => {
    const site = siteOf();
    // The site broker with the shipped site ACL: each door's bridge logs in as its gateway id.
    await broker.stop();
    broker = new Broker({ users: { gw1: 'b1', gw2: 'b2', gw3: 'b3', gw4: 'b4' }, acl: readFileSync(new URL('../../deploy/mosquitto/site.acl', import.meta.url), 'utf8') });
    await broker.start();
    const doors: { id: string; local: Broker; g: Gateway }[] = [];
    const bridged = (id: string) => new Broker(null, `connection doorgw-${id}\naddress 127.0.0.1:${broker.port}\nremote_clientid ${id}\nremote_username ${id}\nremote_password b${id.slice(2)}\nbridge_protocol_version mqttv50\ncleansession false\ntopic doorgw-site/command in 1\ntopic doorgw-site/manifest in 1\ntopic doorgw-site/fact/# both 1\ntopic doorgw-site/door/${id} out 1\n`);
    const join_ = async (id: string) => {
      const local = bridged(id);
      await local.start();
      t.closers.push(() => local.stop());
      const g = await startMqttGateway(local, { log, key: qrKey, top: { site, gateway_id: id } });
      t.closers.push(() => g.stop());
      doors.push({ id, local, g });
      return doors.at(-1)!;
    };
    for (const id of ['gw1', 'gw2', 'gw3']) await join_(id);
    const op = await tool(site);

    await op.state('user/bob', { site: true }, { name: 'Bob', cards: ['2002'] });
    await until(() => doors.every((d) => decide(d.g, card(2002)).decision === 'grant'), 'bob known everywhere', 15_000);
    await op.state('threat_level/site', { site: true }, { level: 'lockdown' });
    await until(() => doors.every((d) => d.g.pipeline.modeOf('lobby') === 'lockdown'), 'lockdown at every door');
    await op.state('threat_level/site', { site: true }, { level: 'normal' });
    await until(() => doors.every((d) => d.g.pipeline.modeOf('lobby') === 'normal'), 'normal at every door');

    // gw3 cut off: its broker (and with it the bridge) gone.
    const cut = doors[2]!;
    await cut.local.stop();
    await op.state('block/card:1001', { site: true }, { reason: 'lost' });
    await op.state('user/bob', { site: true }, null);
    await until(() => doors.slice(0, 2).every((d) => decide(d.g, card(1001)).reason === 'blocked' && decide(d.g, card(2002)).reason === 'unknown_user'), 'the connected doors take both');
    expect(decide(cut.g, card(1001)).decision).toBe('grant'); // it decides alone, on what it holds
    expect(decide(cut.g, card(2002)).decision).toBe('grant');
    await cut.local.start(cut.local.port);
    await until(() => decide(cut.g, card(1001)).reason === 'blocked' && decide(cut.g, card(2002)).reason === 'unknown_user', 'healed: the block and the deletion', 15_000);
    await until(() => cut.g.site!.status().complete === true, 'complete after healing');

    // A new door, with nothing on disk.
    const late = await join_('gw4');
    await until(() => late.g.site!.status().complete === true, 'the late door is complete', 15_000);
    expect(decide(late.g, card(1001)).reason).toBe('blocked');
    expect(decide(late.g, card(2002)).reason).toBe('unknown_user');

    // The convergence view: every door reports, each confirmed (no door keys listed: read, marked unsigned).
    const plain = await until(async () => {
      const s = await op.status();
      return s.doors.length === 4 && s.unconfirmed.length === 0 ? s : null;
    }, 'site status: all four confirmed', 15_000);
    expect(plain.doors.map((d) => d.signed)).toEqual([false, false, false, false]);

    // With the doors' keys listed (each door's `doorgw site door-key`), reports are verified.
    const doorKeys = doors.map((d) => ({ gateway: d.id, kid: doorKey(d.g.config.data_dir).kid, public_key: doorKey(d.g.config.data_dir).publicKey }));
    const keyed = await tool({ ...site, door_keys: doorKeys } as ReturnType<typeof siteOf>, admin, 'admin');
    const verified = await keyed.status();
    expect(verified.doors.map((d) => [d.gateway, d.signed, d.confirmed])).toEqual(['gw1', 'gw2', 'gw3', 'gw4'].map((g) => [g, true, true]));
    // A shared account (the gateways' `doorgw`, which may write any door's topic on a local broker)
    // forges gw2's report: unsigned, then signed with another key. Refused, and gw2 is unconfirmed.
    const rogue = await ToolClient.connect({ url: broker.url, username: 'doorgw', password: USERS.doorgw, clientId: 'doorgw' });
    t.closers.push(() => rogue.end());
    const genuine = verified.doors.find((d) => d.gateway === 'gw2')!;
    const { signed: _s, age_s: _a, confirmed: _c, ...body } = genuine;
    await rogue.publish('doorgw-site/door/gw2', JSON.stringify(body), true);
    await until(async () => (await keyed.status()).refused.some((r) => r.topic === 'doorgw-site/door/gw2' && r.reason === "door report refused: unsigned (site.door_keys lists the doors' keys)"), 'an unsigned report refused');
    const other = generateKeyPairSync('ed25519');
    await rogue.publish('doorgw-site/door/gw2', JSON.stringify(signReport(body, keyIdOf(other.publicKey), other.privateKey)), true);
    const forged = await until(async () => {
      const s = await keyed.status();
      return s.refused.some((r) => r.topic === 'doorgw-site/door/gw2' && r.reason.startsWith('door report refused: signed by key ')) ? s : null;
    }, 'a report signed by another key refused');
    expect(forged.unconfirmed).toEqual(['gw2']);
    expect(forged.doors.map((d) => d.gateway)).toEqual(['gw1', 'gw3', 'gw4']);
  }, 90_000);
});
