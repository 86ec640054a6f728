/**
 * Third outside probe, MQTT replies, against a real Mosquitto with the shipped configuration and
 * ACL: a reply larger than the broker's max_packet_size knocked the gateway off the broker in a loop
 * (and MQTT readers with it, while health said fine); every account read every reply, an admin's
 * users/export included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { healthProblems } from '../../src/control/health.js';
import { publishPacketSize } from '../../src/io/mqtt/client.js';
import { capturedLog } from '../helpers/log.js';
import { Broker, client } from '../helpers/mosquitto.js';
import { cleanup, simRelay, startMqttGateway } from '../helpers/mqtt-gateway.js';
import { makeKey } from '../helpers/qr.js';
import { user } from '../helpers/users.js';
import { until } from '../helpers/wait.js';

const broker = new Broker();
const key = makeKey();
beforeAll(() => broker.start());
afterAll(() => broker.stop());

const { log, lines } = capturedLog();
const t = cleanup();

type Reply = { status: string; code?: string; error?: string; transaction?: unknown; data?: unknown };
const json = (s: string) => JSON.parse(s) as Reply;

describe('replies fit the broker', () => {
  it('a reply above max_packet_size is answered with too_large; the gateway stays on the broker and MQTT readers keep deciding', async () => {
    const g = await startMqttGateway(broker, { log, key });
    t.gw = g;
    // 5,000 users with long names: users/list of them all is ~1.4 MB, above the shipped 1 MiB.
    await g.store.upsertUsers(Array.from({ length: 5000 }, (_, i) => user({ userid: `u${String(i).padStart(5, '0')}`, name: 'x'.repeat(200), cards: [50_000 + i] })));
    let drops = 0;
    g.mqtt!.link.connected$.subscribe((up) => void (up ? undefined : drops++));
    drops = 0;
    const op = await client(broker, 'operator', ['doorgw/gw1/response/operator/#']);
    const reader = await client(broker, 'lobby-reader');
    t.closers.push(() => op.c.endAsync(), () => reader.c.endAsync());
    const responseTopic = 'doorgw/gw1/response/operator/big';
    await op.c.publishAsync('doorgw/gw1/request/users/list', JSON.stringify({ limit: 5000, transaction: 'big' }), { qos: 1, properties: { responseTopic } });
    await until(() => op.got.some((m) => m.topic === responseTopic), 'the reply');
    const r = json(op.got.find((m) => m.topic === responseTopic)!.payload);
    expect(r).toMatchObject({ status: 'error', code: 'too_large', transaction: 'big' });
    expect(r.error).toMatch(/larger than the broker accepts \(1048576 bytes\)/);
    // Paging answers: a page that fits comes through whole.
    await op.c.publishAsync('doorgw/gw1/request/users/list', JSON.stringify({ limit: 1000, transaction: 'page' }), { qos: 1, properties: { responseTopic } });
    await until(() => op.got.some((m) => json(m.payload).transaction === 'page'), 'the page');
    expect((json(op.got.find((m) => json(m.payload).transaction === 'page')!.payload).data as { users: unknown[] }).users).toHaveLength(1000);
    // The reader's credentials are decided meanwhile: the link was never dropped.
    for (let i = 0; i < 20; i++) await reader.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'card', value: 1001 }), { qos: 1 });
    await until(async () => (await g.journal.flush().then(() => g.store.recentJournal(100))).length === 20, '20 decisions');
    expect(simRelay(g).pulses.length).toBeGreaterThanOrEqual(1);
    expect(drops).toBe(0);
    expect(g.mqtt!.link.oversized).toBe(0); // the too_large answer replaced it before it was sent
  }, 60_000);

  it('never sends an event or state above the limit (counted and logged instead), and sizes packets exactly', async () => {
    const g = await startMqttGateway(broker, { log, key, extra: { broker_max_packet_size: 1024 } });
    t.gw = g;
    g.mqtt!.link.publishEvent('doorgw/gw1/door/lobby/event', 'y'.repeat(2000));
    expect(g.mqtt!.link.oversized).toBe(1);
    expect(lines.some((l) => l.includes('larger than the broker accepts'))).toBe(true);
    // topic "a/b" (3) + 2, packet id 2, properties length 1, payload 10: 18 bytes after 2 of fixed header.
    expect(publishPacketSize('a/b', '0123456789', 5)).toBe(20);
    expect(publishPacketSize('a/b', '0123456789', 4)).toBe(19);
    expect(publishPacketSize('a/b', 'x'.repeat(200), 4)).toBe(210);
    expect(publishPacketSize('a/b/cc', 'x'.repeat(20000), 5, Buffer.from('abcd'))).toBe(20022);
  });

  it('a broker link that MQTT readers depend on, down beyond the grace, is a health problem', () => {
    const base = { storage: null, cloud: null, readers: [], outbox_oldest: null } as unknown as Parameters<typeof healthProblems>[0];
    const limits = { maxLinkDownS: 600, maxOutboxAgeS: 900, maxSkewS: 300 };
    expect(healthProblems({ ...base, mqtt: { connected: false, down_s: 60, readers: ['lobby-reader'], oversized: 0 } }, limits)).toEqual(['mqtt broker unreachable for 60 s: readers lobby-reader cannot be heard']);
    expect(healthProblems({ ...base, mqtt: { connected: false, down_s: 5, readers: ['lobby-reader'], oversized: 0 } }, limits)).toEqual([]);
    expect(healthProblems({ ...base, mqtt: { connected: false, down_s: 60, readers: [], oversized: 0 } }, limits)).toEqual([]);
  });

  it('status says the link is down, on a running gateway whose broker went away', async () => {
    const g = await startMqttGateway(broker, { log, key });
    t.gw = g;
    expect((await g.api.status()).mqtt).toEqual({ connected: true, down_s: 0, readers: ['lobby-reader', 'other-reader'], oversized: 0 });
    const port = broker.port;
    await broker.stop();
    try {
      await until(() => !g.mqtt!.link.connected$.value, 'disconnected');
      expect((await g.api.status()).mqtt).toMatchObject({ connected: false, readers: ['lobby-reader', 'other-reader'] });
    } finally {
      await broker.start(port);
    }
  });
});

describe('a reply reaches only whoever asked', () => {
  it("an admin's users/export is read by the admin alone: not by operator, not by Home Assistant, even subscribed to everything", async () => {
    const g = await startMqttGateway(broker, { log, key });
    t.gw = g;
    const admin = await client(broker, 'admin', ['doorgw/gw1/response/admin/#']);
    const op = await client(broker, 'operator', ['doorgw/#', 'doorgw/gw1/response/admin/#']);
    const ha = await client(broker, 'homeassistant', ['doorgw/#', '#']);
    t.closers.push(() => admin.c.endAsync(), () => op.c.endAsync(), () => ha.c.endAsync());
    await g.api.usersAdd({ userid: 'cleaner', cards: ['4242'], by: 'test' });
    await admin.c.publishAsync('doorgw/gw1/request/users/export', JSON.stringify({ transaction: 'x' }), { qos: 1, properties: { responseTopic: 'doorgw/gw1/response/admin/export' } });
    await until(() => admin.got.length === 1, "the admin's reply");
    expect(json(admin.got[0]!.payload)).toMatchObject({ status: 'ok', data: [expect.objectContaining({ userid: 'cleaner', cards: ['4242'] })] });
    // Sentinels: the gateway answers the operator and Home Assistant after the admin; the broker
    // delivers one publisher's messages in order, so once theirs arrive the admin's never will.
    await op.c.publishAsync('doorgw/gw1/request/status', JSON.stringify({ transaction: 'op' }), { qos: 1, properties: { responseTopic: 'doorgw/gw1/response/operator/status' } });
    await until(() => op.got.some((m) => m.topic === 'doorgw/gw1/response/operator/status'), "the operator's own reply");
    await ha.c.publishAsync('doorgw/gw1/request/sync', JSON.stringify({ transaction: 'ha', response_topic: 'doorgw/gw1/response/homeassistant/sync' }), { qos: 1 });
    await until(() => ha.got.some((m) => m.topic === 'doorgw/gw1/response/homeassistant/sync'), "Home Assistant's own reply");
    for (const c of [op, ha]) {
      expect(c.got.filter((m) => m.topic.includes('/response/admin/'))).toEqual([]);
      expect(c.got.filter((m) => m.payload.includes('4242') && m.topic.includes('/response/'))).toEqual([]);
    }
  });

  it('a request without a response topic is carried out and answered to nobody; one naming a topic outside the tree is refused', async () => {
    const g = await startMqttGateway(broker, { log, key });
    t.gw = g;
    const op = await client(broker, 'operator', ['doorgw/gw1/response/operator/#']);
    t.closers.push(() => op.c.endAsync());
    await op.c.publishAsync('doorgw/gw1/request/door/open', JSON.stringify({ door: 'lobby' }), { qos: 1 });
    await until(() => simRelay(g).pulses.length === 1, 'opened');
    await op.c.publishAsync('doorgw/gw1/request/door/open', JSON.stringify({ door: 'lobby', response_topic: 'elsewhere/x' }), { qos: 1 });
    await until(() => lines.some((l) => l.includes('request ignored: its response topic is not under doorgw/gw1/response/<account>/')), 'refused');
    await op.c.publishAsync('doorgw/gw1/request/status', JSON.stringify({ response_topic: 'doorgw/gw1/response/operator/s' }), { qos: 1 });
    await until(() => op.got.length === 1, 'the sentinel reply');
    expect(simRelay(g).pulses).toHaveLength(1);
  });
});
