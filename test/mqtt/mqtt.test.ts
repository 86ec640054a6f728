/** The MQTT surface against a real Mosquitto with the shipped ACL. */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { credentialEvent } from '../../src/domain/events.js';
import { Broker, client, USERS } from '../helpers/mosquitto.js';
import { cleanup, mqttConfig, simRelay, startMqttGateway } from '../helpers/mqtt-gateway.js';
import { employeeQr, makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: process.env.DOORGW_TEST_LOG ?? 'silent', pretty: true });
const broker = new Broker();
const key = makeKey();
beforeAll(() => broker.start());
afterAll(() => broker.stop());

const t = cleanup();

const configFor = (dataDir: string, extra: Record<string, unknown> = {}, doors?: unknown[]) => mqttConfig(broker, dataDir, extra, doors);

async function startGateway(dataDir = join(tmpDir(), 'data'), extra: Record<string, unknown> = {}, doors?: unknown[]): Promise<Gateway> {
  t.gw = await startMqttGateway(broker, { log, key, dataDir, extra, ...(doors ? { doors } : {}) });
  return t.gw;
}

const relay = simRelay;
const json = (s: string): Record<string, unknown> => JSON.parse(s) as Record<string, unknown>;


/**
 * Present an unknown card from the lobby reader until the gateway has decided one (a gateway just
 * started may not have subscribed yet), and return the journal: whatever the gateway had received
 * before the sentinel on that reader's topic was decided before it.
 */
async function sentinel(g: Gateway, reader: Awaited<ReturnType<typeof client>>['c']) {
  const topic = 'doorgw/gw1/reader/lobby-reader/credential';
  return until(async () => {
    await reader.publishAsync(topic, JSON.stringify({ type: 'card', value: 4242 }), { qos: 1 });
    await g.journal.flush();
    const j = await g.store.recentJournal();
    return j.some((e) => e.reason === 'unknown_user') ? j.reverse() : null;
  }, 'the sentinel decided');
}

describe('reader credentials', () => {
  it('grants and denies through the same pipeline, publishing events with latency and allowed user fields only', async () => {
    const g = await startGateway();
    const watch = await client(broker, 'operator', ['doorgw/gw1/door/+/event']);
    const reader = await client(broker, 'lobby-reader');
    t.closers.push(() => watch.c.endAsync(), () => reader.c.endAsync());
    await reader.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'card', value: 1001 }), { qos: 1 });
    await reader.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'qr', value: employeeQr(key.privateKey, '11', Math.floor(Date.now() / 1000)) }), { qos: 1 });
    await reader.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'card', value: '999' }), { qos: 1 });
    await until(() => watch.got.length === 3, 'three events');
    const events = watch.got.map((m) => json(m.payload));
    expect(events.map((e) => [e.event_type, e.reason, e.method, e.userid])).toEqual([
      ['granted', 'default_allow', 'card', 'alice'],
      ['granted', 'default_allow', 'qr', 'alice'],
      ['denied', 'unknown_user', 'card', null],
    ]);
    expect(events[0]).toMatchObject({ door: 'lobby', reader: 'lobby-reader', direction: 'in', user_type: 0, latency_us: expect.any(Number), at: expect.stringMatching(/Z$/) });
    expect(events[0]).not.toHaveProperty('name'); // names are opt-in personal data
    expect(watch.got.every((m) => !m.retain)).toBe(true);
    expect(relay(g).pulses).toHaveLength(2);
  });

  it('works over MQTT 3.1.1 when configured', async () => {
    const g = await startGateway(join(tmpDir(), 'data'), { protocol_version: 4 });
    const reader = await client(broker, 'lobby-reader');
    t.closers.push(() => reader.c.endAsync());
    await reader.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'card', value: 1001 }), { qos: 1 });
    await until(() => relay(g).pulses.length === 1, 'pulse over 3.1.1');
  });

  it('ignores invalid payloads, unknown readers and retained credentials', async () => {
    const g = await startGateway();
    const reader = await client(broker, 'lobby-reader');
    t.closers.push(() => reader.c.endAsync());
    const topic = 'doorgw/gw1/reader/lobby-reader/credential';
    for (const p of ['not json', '{"type":"retina","value":"x"}', '{"type":"card","value":""}', '{"type":"card","value":"12ab"}']) await reader.c.publishAsync(topic, p, { qos: 1 });
    await reader.c.publishAsync(topic, JSON.stringify({ type: 'card', value: 1001 }), { qos: 1, retain: true });
    // A sentinel after them on the same topic (delivered in order): once it is decided, everything before was seen.
    const seen = await sentinel(g, reader.c);
    expect(new Set(seen.map((j) => j.reason))).toEqual(new Set(['unknown_user'])); // sentinels alone
    expect(relay(g).pulses).toHaveLength(0);
    await reader.c.publishAsync(topic, '', { qos: 1, retain: true }); // clear the retained message
  });
});

describe('commands', () => {
  it('opens on an operator OPEN, re-locks on LOCK, and changes modes that survive a restart', async () => {
    const dataDir = join(tmpDir(), 'data');
    const g = await startGateway(dataDir);
    const op = await client(broker, 'operator', ['doorgw/gw1/door/lobby/state', 'doorgw/gw1/door/lobby/event']);
    t.closers.push(() => op.c.endAsync());
    await op.c.publishAsync('doorgw/gw1/door/lobby/set', 'OPEN', { qos: 1 });
    await until(() => relay(g).energised, 'door open');
    await until(() => op.got.some((m) => m.topic.endsWith('/state') && json(m.payload).lock === 'unlocked'), 'state unlocked');
    const event = await until(() => op.got.find((m) => m.topic.endsWith('/event')), 'open event');
    expect(json(event.payload)).toMatchObject({ event_type: 'granted', reason: 'operator_open', method: 'operator' });
    await op.c.publishAsync('doorgw/gw1/door/lobby/set', 'LOCK', { qos: 1 });
    await until(() => !relay(g).energised, 'relocked');
    await op.c.publishAsync('doorgw/gw1/door/lobby/set', JSON.stringify({ command: 'mode', mode: 'lockdown' }), { qos: 1 });
    await until(() => op.got.some((m) => m.topic.endsWith('/state') && json(m.payload).mode === 'lockdown'), 'lockdown state');
    g.pipeline.handle(credentialEvent('lobby', 't', 'in', { type: 'card', value: '1001' }));
    await op.c.publishAsync('doorgw/gw1/door/lobby/set', 'OPEN', { qos: 1 });
    // Commands go through the API: each is journaled as an operator action by the channel.
    const actions = async () => (await g.store.recentDoorEvents(20)).filter((e) => e.type === 'operator_action').map((e) => e.detail).reverse();
    await until(async () => (await actions()).length === 4, 'four operator actions');
    expect(await actions()).toEqual(['mqtt: open (grant)', 'mqtt: lock', 'mqtt: mode lockdown', 'mqtt: open (deny: lockdown)']);
    expect(relay(g).pulses).toHaveLength(1);
    await g.journal.flush();
    expect((await g.store.recentJournal(2)).map((j) => j.reason)).toEqual(['lockdown', 'lockdown']);
    await g.stop();
    t.gw = null;
    const again = await startGateway(dataDir);
    expect(again.pipeline.modeOf('lobby')).toBe('lockdown');
    await op.c.publishAsync('doorgw/gw1/door/lobby/set', 'NORMAL', { qos: 1 });
    await until(() => again.pipeline.modeOf('lobby') === 'normal', 'back to normal');
  });

  it('ignores a retained OPEN, live and at every restart, and bad commands', async () => {
    const dataDir = join(tmpDir(), 'data');
    const g = await startGateway(dataDir);
    const op = await client(broker, 'operator');
    t.closers.push(() => op.c.endAsync());
    await op.c.publishAsync('doorgw/gw1/door/lobby/set', 'OPEN', { qos: 1, retain: true });
    await op.c.publishAsync('doorgw/gw1/door/lobby/set', 'DANCE', { qos: 1 });
    await op.c.publishAsync('doorgw/gw1/door/nowhere/set', 'OPEN', { qos: 1 });
    const reader = await client(broker, 'lobby-reader');
    t.closers.push(() => reader.c.endAsync());
    // Sentinels: a reader's unknown card, decided (and journaled) once the gateway has read what came before.
    expect((await sentinel(g, reader.c)).every((j) => j.reason === 'unknown_user')).toBe(true);
    expect(relay(g).pulses).toHaveLength(0);
    await g.stop();
    t.gw = null;
    const again = await startGateway(dataDir); // the retained OPEN is delivered at subscription
    expect((await sentinel(again, reader.c)).every((j) => j.reason === 'unknown_user')).toBe(true); // no operator_open among them
    expect(relay(again).pulses).toHaveLength(0);
    await op.c.publishAsync('doorgw/gw1/door/lobby/set', '', { qos: 1, retain: true });
  });

  it('cannot be opened by a user the ACL does not allow', async () => {
    const g = await startGateway();
    const reader = await client(broker, 'lobby-reader');
    const other = await client(broker, 'other-reader');
    t.closers.push(() => reader.c.endAsync(), () => other.c.endAsync());
    const denied = async (c: typeof reader.c, topic: string, payload: string): Promise<void> => {
      // Mosquitto refuses the publish (MQTT 5: PUBACK reason "not authorised"); either way nothing arrives.
      await c.publishAsync(topic, payload, { qos: 1 }).catch(() => undefined);
    };
    await denied(reader.c, 'doorgw/gw1/door/lobby/set', 'OPEN');
    await denied(other.c, 'doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'card', value: 1001 }));
    await denied(reader.c, 'doorgw/gw1/door/lobby/state', JSON.stringify({ lock: 'unlocked' }));
    // Refused by the broker before its PUBACK: nothing was delivered; a permitted sentinel is the only decision.
    expect((await sentinel(g, reader.c)).every((j) => j.reason === 'unknown_user')).toBe(true);
    expect(relay(g).pulses).toHaveLength(0);
  });
});

describe('state, availability and requests', () => {
  it('publishes retained availability, gateway state and door state, and answers requests with the transaction', async () => {
    const g = await startGateway();
    const op = await client(broker, 'operator', ['doorgw/gw1/availability', 'doorgw/gw1/state', 'doorgw/gw1/door/+/state', 'doorgw/gw1/response/operator/#']);
    t.closers.push(() => op.c.endAsync());
    await until(() => op.got.some((m) => m.topic.endsWith('/state') && m.topic.includes('/door/back/')), 'retained states');
    expect(op.got.find((m) => m.topic.endsWith('/availability'))).toMatchObject({ payload: 'online', retain: true });
    expect(json(op.got.find((m) => m.topic === 'doorgw/gw1/state')!.payload)).toMatchObject({ gateway_id: 'gw1', users: 1, outbox_depth: 0, cloud: null });
    expect(json(op.got.find((m) => m.topic === 'doorgw/gw1/door/lobby/state')!.payload)).toEqual({ door: 'lobby', lock: 'locked', contact: 'unknown', mode: 'normal', alarm: null, fire: false });
    const to = (name: string) => ({ qos: 1 as const, properties: { responseTopic: `doorgw/gw1/response/operator/${name}` } });
    await op.c.publishAsync('doorgw/gw1/request/users/show', JSON.stringify({ userid: 'alice', transaction: 't-1' }), to('users/show'));
    // MQTT 3.1.1 has no response-topic property: the payload may name it.
    await op.c.publishAsync('doorgw/gw1/request/journal', JSON.stringify({ transaction: 7, response_topic: 'doorgw/gw1/response/operator/journal' }), { qos: 1 });
    // An unknown request: only the admin account may publish outside the operator's requests.
    const admin = await client(broker, 'admin', ['doorgw/gw1/response/admin/#']);
    t.closers.push(() => admin.c.endAsync());
    await admin.c.publishAsync('doorgw/gw1/request/frobnicate', '{}', { qos: 1, properties: { responseTopic: 'doorgw/gw1/response/admin/frobnicate' } });
    await expect(op.c.publishAsync('doorgw/gw1/request/frobnicate', '{}', to('frobnicate'))).rejects.toThrow(/Not authorized/);
    await op.c.publishAsync('doorgw/gw1/request/status', '{not json', to('status'));
    await until(() => op.got.filter((m) => m.topic.includes('/response/')).length === 3 && admin.got.length === 1, 'responses');
    const resp = (name: string) => json(op.got.find((m) => m.topic === `doorgw/gw1/response/operator/${name}`)!.payload);
    expect(resp('users/show')).toMatchObject({ status: 'ok', transaction: 't-1', data: { record: { userid: 'alice', cards: ['1001'] } } });
    expect(resp('journal')).toMatchObject({ status: 'ok', transaction: 7, data: [] });
    expect(json(admin.got[0]!.payload)).toMatchObject({ status: 'error', code: 'not_found', error: expect.stringContaining('unknown request') });
    expect(resp('status')).toMatchObject({ status: 'error', error: 'request payload is not a JSON object' });
    void g;
  });

  it('goes offline through the last will when the gateway process dies', async () => {
    const dir = tmpDir();
    const config = join(dir, 'doorgw.yaml');
    writeFileSync(config, `gateway_id: gw-lwt\ndata_dir: ${join(dir, 'data')}\nlog: { level: warn, pretty: false }\ndoors: [{ id: front }]\nmqtt: { enabled: true, url: "${broker.url}", username: doorgw, password: ${USERS.doorgw}, keepalive_s: 5 }\n`);
    const watch = await client(broker, 'operator', ['doorgw/gw-lwt/availability']);
    t.closers.push(() => watch.c.endAsync());
    const child = spawn(process.execPath, [join(new URL('../..', import.meta.url).pathname, 'dist/cli/main.js'), 'start', '-c', config], { stdio: 'ignore' });
    t.closers.push(() => Promise.resolve(child.kill('SIGKILL')));
    await until(() => watch.got.some((m) => m.payload === 'online'), 'online', 30_000);
    child.kill('SIGKILL');
    await until(() => watch.got.at(-1)?.payload === 'offline', 'last will', 30_000);
  }, 60_000);
});

describe('broker outage', () => {
  it('keeps deciding while the broker is down, then catches up with availability, state and queued events', async () => {
    const g = await startGateway();
    const port = broker.port;
    await broker.stop();
    await until(() => !g.mqtt!.link.connected$.value, 'disconnected');
    for (let i = 0; i < 5; i++) expect(g.pipeline.handle(credentialEvent('lobby', 't', 'in', { type: 'card', value: '1001' }))?.decision).toBe('grant');
    expect(relay(g).pulses.length).toBeGreaterThanOrEqual(1);
    expect(g.mqtt!.link.queued).toBe(5);
    await broker.start(port);
    const op = await client(broker, 'operator', ['doorgw/gw1/door/lobby/event', 'doorgw/gw1/availability']);
    t.closers.push(() => op.c.endAsync());
    await until(() => op.got.filter((m) => m.topic.endsWith('/event')).length === 5, 'queued events delivered', 15_000);
    expect(op.got.find((m) => m.topic.endsWith('/availability'))?.payload).toBe('online');
  });

  it('starts and decides with no broker at all, and bounds what it queues', async () => {
    const port = broker.port;
    await broker.stop();
    try {
      const g = await Gateway.start({ config: configFor(join(tmpDir(), 'data'), { offline_queue: 3 }), log, controlSocket: false });
      t.gw = g;
      await g.store.upsertUsers([user({ userid: 'alice', cards: [1001] })]);
      for (let i = 0; i < 10; i++) g.pipeline.handle(credentialEvent('lobby', 't', 'in', { type: 'card', value: '1001' }));
      expect(relay(g).pulses.length).toBeGreaterThanOrEqual(1);
      expect(g.mqtt!.link.queued).toBe(3);
      expect(g.mqtt!.link.dropped).toBe(7);
    } finally {
      await broker.start(port);
    }
  });
});
