/**
 * Anti-passback across gateways (issue 24) through a real Mosquitto with the shipped site ACL:
 * in at one gateway, in again at another denied; forged, replayed and future presence refused; a
 * late door converging from the retained presence; a partition decided soft and flagged, and both
 * sides converging on the newest transition when it heals.
 */
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { credentialEvent } from '../../src/domain/events.js';
import { keyIdOf } from '../../src/domain/site-envelope.js';
import { personTopic, signPresence, type SignedPresence } from '../../src/domain/site-presence.js';
import type { Gateway } from '../../src/gateway.js';
import { doorKey } from '../../src/io/door-key.js';
import { createLogger } from '../../src/log.js';
import { type Broker, siteBroker } from '../helpers/mosquitto.js';
import { startMqttGateway } from '../helpers/mqtt-gateway.js';
import { makeKey } from '../helpers/qr.js';
import { TcpCut } from '../helpers/tcp-cut.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: 'silent', pretty: false });
const qrKey = makeKey();
const ACCOUNTS = { gw1: 'b1', gw2: 'b2', gw3: 'b3' } as const;
type Id = keyof typeof ACCOUNTS;
let broker: Broker;
const closers: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  broker = siteBroker(ACCOUNTS);
  await broker.start();
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await broker.stop();
});

/** Each door's data directory and key, made before any starts: every door lists every door's key. */
function doorsOf(ids: Id[]) {
  const dirs = new Map(ids.map((id) => [id, join(tmpDir(), id)]));
  const door_keys = ids.map((id) => {
    const k = doorKey(dirs.get(id)!);
    return { gateway: id, kid: k.kid, public_key: k.publicKey };
  });
  const start = async (id: Id, url = broker.url, staleS = 30): Promise<Gateway> => {
    const g = await startMqttGateway(broker, {
      log,
      key: qrKey,
      dataDir: dirs.get(id)!,
      extra: { url, username: id, password: ACCOUNTS[id] },
      top: { gateway_id: id, site: { enabled: true, door_keys, presence_stale_s: staleS }, areas: { hq: { doors: ['lobby', 'back'], site: true } } },
    });
    closers.push(() => g.stop());
    return g;
  };
  return { start, dirs };
}
const pass = (g: Gateway, door: 'lobby' | 'back') => g.pipeline.handle(credentialEvent(door, door === 'lobby' ? 'lobby-reader' : 'other-reader', door === 'lobby' ? 'in' : 'out', { type: 'card', value: '1001' }))!;
const where = (g: Gateway) => g.pipeline.presenceOf('hq', 'alice')?.where;

describe('anti-passback across gateways', () => {
  it('in at gw1, in again at gw2 denied; out at gw2, in at gw1 again; a late door knows from the retained presence', async () => {
    const site = doorsOf(['gw1', 'gw2', 'gw3']);
    const [g1, g2] = [await site.start('gw1'), await site.start('gw2')];
    expect(pass(g1, 'lobby').decision).toBe('grant');
    await until(() => where(g2) === 'in', 'gw2 knows alice is in');
    const again = pass(g2, 'lobby');
    expect([again.decision, again.reason]).toEqual(['deny', 'anti_passback']);
    expect(pass(g2, 'back').decision).toBe('grant');
    await until(() => where(g1) === 'out', 'gw1 knows alice is out');
    expect(pass(g1, 'lobby').decision).toBe('grant');
    const g3 = await site.start('gw3');
    await until(() => where(g3) === 'in', 'the late door holds alice in');
    expect(pass(g3, 'lobby').reason).toBe('anti_passback');
  }, 30_000);

  it('refuses a forged presence, one from the future and a replayed older one (and repairs the retained copy)', async () => {
    const site = doorsOf(['gw1', 'gw2']);
    const [g1, g2] = [await site.start('gw1'), await site.start('gw2')];
    const watch = await mqtt.connectAsync(broker.url, { username: 'gw1', password: ACCOUNTS.gw1, clientId: 'gw1-watch', protocolVersion: 5 });
    closers.push(() => watch.endAsync());
    const seen: SignedPresence[] = [];
    watch.on('message', (t, p) => t.endsWith(personTopic('alice')) && p.length && seen.push(JSON.parse(p.toString()) as SignedPresence));
    await watch.subscribeAsync('doorgw-site/presence/hq/#', { qos: 1 });
    expect(pass(g1, 'lobby').decision).toBe('grant');
    await until(() => seen.length === 1, 'the in transition on the bus');
    const oldIn = seen[0]!;
    expect(pass(g1, 'back').decision).toBe('grant');
    await until(() => where(g2) === 'out', 'gw2 knows alice is out');
    const topic = `doorgw-site/presence/hq/${personTopic('alice')}`;
    const refusedBefore = { ...g2.mqtt!.sitePresence!.refused };
    // Forged: "gw1 says alice is in", signed by a key that is not gw1's.
    const other = generateKeyPairSync('ed25519');
    await watch.publishAsync(topic, JSON.stringify(signPresence({ area: 'hq', userid: 'alice', where: 'in', at: Date.now(), gateway: 'gw1', door: 'lobby' }, keyIdOf(other.publicKey), other.privateKey)), { qos: 1, retain: true });
    // From the future: gw1's own key, an hour ahead.
    const k1 = doorKey(site.dirs.get('gw1')!);
    await watch.publishAsync(topic, JSON.stringify(signPresence({ area: 'hq', userid: 'alice', where: 'in', at: Date.now() + 3_600_000, gateway: 'gw1', door: 'lobby' }, k1.kid, k1.privateKey)), { qos: 1, retain: true });
    await until(() => (g2.mqtt!.sitePresence!.refused.bad_signature ?? 0) > (refusedBefore.bad_signature ?? 0) && (g2.mqtt!.sitePresence!.refused.not_yet_valid ?? 0) > (refusedBefore.not_yet_valid ?? 0), 'both refused');
    expect(where(g2)).toBe('out');
    // Replayed: gw1's real, older "in", put back retained. Ignored, and the retained slot repaired with the newer "out".
    seen.length = 0;
    await watch.publishAsync(topic, JSON.stringify(oldIn), { qos: 1, retain: true });
    await until(() => seen.some((s) => s.p.where === 'out'), 'the newer out published again (repair)');
    expect(where(g2)).toBe('out');
    expect(where(g1)).toBe('out');
    const late = await mqtt.connectAsync(broker.url, { username: 'gw2', password: ACCOUNTS.gw2, clientId: 'gw2-late', protocolVersion: 5 });
    closers.push(() => late.endAsync());
    const retained: SignedPresence[] = [];
    late.on('message', (t, p, packet) => packet.retain && p.length && retained.push(JSON.parse(p.toString()) as SignedPresence));
    await late.subscribeAsync(topic, { qos: 1 });
    await until(() => retained.length === 1, 'the retained slot');
    expect(retained[0]!.p.where).toBe('out');
  }, 30_000);

  it('a door cut off longer than presence_stale_s decides soft and flags it; healed, both hold the newest transition', async () => {
    const site = doorsOf(['gw1', 'gw2']);
    const cut = new TcpCut(broker.port);
    await cut.start();
    closers.push(() => cut.stop());
    const g1 = await site.start('gw1', broker.url, 2);
    const g2 = await site.start('gw2', cut.url, 2);
    expect(pass(g1, 'lobby').decision).toBe('grant');
    await until(() => where(g2) === 'in', 'gw2 knows alice is in');
    expect(pass(g2, 'lobby').reason).toBe('anti_passback'); // on the site: hard
    cut.cut();
    await until(() => g2.mqtt!.sitePresence!.staleness('hq') !== null, 'gw2 notices it hears no peer', 10_000);
    expect(pass(g1, 'back').decision).toBe('grant'); // out at gw1, which gw2 does not hear of
    const soft = pass(g2, 'lobby');
    expect(soft.decision).toBe('grant');
    expect(soft.detail).toMatch(/anti-passback violation \(soft\).*site presence not current \(no peer heard for \d+ s\)/);
    cut.heal();
    // gw2's "in" came after gw1's "out": the newest, on both sides once healed.
    await until(() => where(g1) === 'in' && where(g2) === 'in' && g2.mqtt!.sitePresence!.staleness('hq') === null, 'converged on the newest, and current again', 20_000);
    expect(pass(g1, 'lobby').reason).toBe('anti_passback');
  }, 45_000);
});

describe('muster', () => {
  it('lists who is inside a site area at any of its doors; a fire release starts the muster; safe marks are journaled; over MQTT too', async () => {
    const site = doorsOf(['gw1', 'gw2']);
    const [g1, g2] = [await site.start('gw1'), await site.start('gw2')];
    expect(pass(g2, 'lobby').decision).toBe('grant'); // alice in at gw2
    await until(() => where(g1) === 'in', 'gw1 holds alice in');
    const before = await g1.api.muster({ area: 'hq' });
    expect(before.areas[0]).toMatchObject({ area: 'hq', site: true, started: null, stale_s: null, safe: 0, unaccounted: 1 });
    expect(before.areas[0]!.inside).toMatchObject([{ userid: 'alice', door: 'lobby', gateway: 'gw2', safe: null }]);
    // The fire alarm at gw1's lobby: a muster of hq begins by itself.
    const events: { type: string; detail?: string }[] = [];
    const sub = g1.pipeline.doorEvents$.subscribe((e) => events.push(e));
    closers.push(() => Promise.resolve(sub.unsubscribe()));
    g1.io!.fire.source('test-panel', ['lobby'], true, { latch: false, cause: 'zone 3' });
    const started = await until(async () => (await g1.api.muster({ area: 'hq' })).areas[0]!.started, 'the muster begun');
    expect(started.by).toBe('fire release');
    expect(events.find((e) => e.type === 'muster_started')?.detail).toMatch(/^1 inside area 'hq' \(fire release: fire alarm\)/);
    await expect(g1.api.musterSafe({ area: 'hq', userid: 'nobody', by: 'guard-1' })).rejects.toThrow(/nobody is not inside area 'hq'/);
    await expect(g1.api.musterSafe({ area: 'hq', userid: 'alice', by: 'guard-1' })).resolves.toEqual({ marked: true, area: 'hq', userid: 'alice' });
    expect(events.find((e) => e.type === 'muster_safe')?.detail).toBe("alice safe (area 'hq', marked by guard-1)");
    const now = (await g1.api.muster({})).areas[0]!;
    expect(now).toMatchObject({ safe: 1, unaccounted: 0 });
    expect(now.inside[0]!.safe).toMatchObject({ by: 'guard-1' });
    // The same list over MQTT (an operator request), and refused for an area that does not exist.
    const op = await mqtt.connectAsync(broker.url, { username: 'operator', password: 'op-pass', clientId: 'operator', protocolVersion: 5 });
    closers.push(() => op.endAsync());
    const replies: { topic: string; payload: string }[] = [];
    op.on('message', (topic, p) => replies.push({ topic, payload: p.toString() }));
    await op.subscribeAsync('doorgw/gw1/response/operator/#', { qos: 1 });
    await op.publishAsync('doorgw/gw1/request/muster', JSON.stringify({ area: 'hq', transaction: 'm1' }), { qos: 1, properties: { responseTopic: 'doorgw/gw1/response/operator/muster' } });
    await op.publishAsync('doorgw/gw1/request/muster', JSON.stringify({ area: 'nowhere', transaction: 'm2' }), { qos: 1, properties: { responseTopic: 'doorgw/gw1/response/operator/muster' } });
    await until(() => replies.length === 2, 'both answered');
    const [ok, bad] = ['m1', 'm2'].map((tx) => JSON.parse(replies.find((r) => (JSON.parse(r.payload) as { transaction: string }).transaction === tx)!.payload) as { status: string; data?: { areas: { inside: { userid: string }[] }[] }; error?: string });
    expect(ok!.status).toBe('ok');
    expect(ok!.data!.areas[0]!.inside.map((p) => p.userid)).toEqual(['alice']);
    expect(bad).toMatchObject({ status: 'error' });
    expect(JSON.stringify(bad)).toMatch(/no area 'nowhere'/);
    // Out at gw2: no longer inside anywhere.
    expect(pass(g2, 'back').decision).toBe('grant');
    await until(async () => (await g1.api.muster({ area: 'hq' })).areas[0]!.inside.length === 0, 'alice out');
  }, 30_000);
});

describe('anti-passback across 20 gateways', () => {
  it('in at one of 20, denied in again at each of the other 19; out at the last, let in again at the first', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `g${String(i + 1).padStart(2, '0')}`);
    const big = siteBroker(Object.fromEntries(ids.map((id) => [id, `pw-${id}`])));
    await big.start();
    closers.push(() => big.stop());
    const dirs = new Map(ids.map((id) => [id, join(tmpDir(), id)]));
    const door_keys = ids.map((id) => ({ gateway: id, kid: doorKey(dirs.get(id)!).kid, public_key: doorKey(dirs.get(id)!).publicKey }));
    const gws: Gateway[] = [];
    for (const id of ids) {
      const g = await startMqttGateway(big, { log, key: qrKey, dataDir: dirs.get(id)!, extra: { username: id, password: `pw-${id}` }, top: { gateway_id: id, site: { enabled: true, door_keys }, areas: { hq: { doors: ['lobby', 'back'], site: true } } } });
      closers.push(() => g.stop());
      gws.push(g);
    }
    expect(pass(gws[0]!, 'lobby').decision).toBe('grant');
    await until(() => gws.every((g) => where(g) === 'in'), 'all 20 hold alice in', 15_000);
    for (const g of gws.slice(1)) expect(pass(g, 'lobby').reason, g.config.gateway_id).toBe('anti_passback');
    expect(pass(gws[19]!, 'back').decision).toBe('grant');
    await until(() => gws.every((g) => where(g) === 'out'), 'all 20 hold alice out', 15_000);
    expect(pass(gws[0]!, 'lobby').decision).toBe('grant');
  }, 90_000);
});
