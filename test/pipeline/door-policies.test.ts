/** Door policies through the real gateway: an MQTT reader, the simulated relay, the journal and MQTT events. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { Broker, client } from '../helpers/mosquitto.js';
import { cleanup, simRelay, startMqttGateway } from '../helpers/mqtt-gateway.js';
import { employeeQr, makeKey } from '../helpers/qr.js';
import { user } from '../helpers/users.js';
import { until } from '../helpers/wait.js';

const broker = new Broker();
const key = makeKey();
const log = createLogger({ level: 'silent', pretty: false });
beforeAll(() => broker.start());
afterAll(() => broker.stop());
const t = cleanup();

const doors = [
  {
    id: 'lobby',
    relay: { pulse_ms: 1000 },
    readers: [{ id: 'lobby-reader', type: 'mqtt' }],
    policy: { lockdown_override_groups: ['security'], extended_unlock: { groups: ['accessible'], pulse_ms: 9000 } },
  },
];
const top = { groups: { security: ['guard'], accessible: ['alice'] } };

describe('door policies at the gateway', () => {
  it('opens exactly as usual under duress, and raises the duress alarm on MQTT and in the journal', async () => {
    const g = (t.gw = await startMqttGateway(broker, { log, key, doors, top }));
    const watch = await client(broker, 'operator', ['doorgw/gw1/door/+/event']);
    const reader = await client(broker, 'lobby-reader');
    t.closers.push(() => watch.c.endAsync(), () => reader.c.endAsync());
    await reader.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'card', value: 1001, duress: true }), { qos: 1 });
    await until(() => watch.got.length >= 2, 'decision and alarm');
    const events = watch.got.map((m) => JSON.parse(m.payload) as Record<string, unknown>);
    expect(events.find((e) => e.event_type === 'granted')).toMatchObject({ decision: 'grant', reason: 'default_allow', userid: 'alice' });
    expect(events.find((e) => e.event_type === 'duress')).toMatchObject({ door: 'lobby', reader: 'lobby-reader', detail: 'credential presented under duress by alice' });
    expect(simRelay(g).pulses).toHaveLength(1);
    await g.journal.flush();
    expect((await g.store.recentJournal(1))[0]).toMatchObject({ decision: 'grant', duress: true });
    await until(async () => (await g.api.doorEvents({ limit: 5 })).some((e) => e.type === 'duress'), 'duress journaled');
  });

  it('gives the extended-unlock group its longer pulse', async () => {
    const g = (t.gw = await startMqttGateway(broker, { log, key, doors, top }));
    const reader = await client(broker, 'lobby-reader');
    t.closers.push(() => reader.c.endAsync());
    await reader.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'card', value: 1001 }), { qos: 1 });
    await until(() => simRelay(g).pulses.length === 1, 'pulse');
    expect(simRelay(g).pulses[0]).toMatchObject({ ms: 9000 });
  });

  it('two-person rule: the first waits (their code not used up), a second person opens', async () => {
    const g = (t.gw = await startMqttGateway(broker, { log, key, doors: [{ id: 'lobby', readers: [{ id: 'lobby-reader', type: 'mqtt' }], policy: { two_person_s: 5, anti_passback_s: 60 } }] }));
    await g.store.upsertUsers([user({ userid: 'bob', cards: [2002] })]);
    const watch = await client(broker, 'operator', ['doorgw/gw1/door/+/event']);
    const reader = await client(broker, 'lobby-reader');
    t.closers.push(() => watch.c.endAsync(), () => reader.c.endAsync());
    const code = employeeQr(key.privateKey, '11', Math.floor(Date.now() / 1000));
    const send = (p: object) => reader.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify(p), { qos: 1 });
    await send({ type: 'qr', value: code });
    await send({ type: 'qr', value: code }); // shown again while waiting: still the first person, not a replay
    await send({ type: 'card', value: 2002 });
    await send({ type: 'card', value: 2002 }); // bob just passed: anti-passback
    await until(() => watch.got.length === 4, 'four decisions');
    expect(watch.got.map((m) => JSON.parse(m.payload) as Record<string, unknown>).map((e) => [e.userid, e.decision, e.reason])).toEqual([
      ['alice', 'deny', 'awaiting_second_person'],
      ['alice', 'deny', 'awaiting_second_person'],
      ['bob', 'grant', 'default_allow'],
      ['bob', 'deny', 'anti_passback'],
    ]);
    expect(simRelay(g).pulses).toHaveLength(1);
  });

  it('refuses a duress flag that is not a boolean', async () => {
    const g = (t.gw = await startMqttGateway(broker, { log, key, doors, top }));
    const reader = await client(broker, 'lobby-reader');
    t.closers.push(() => reader.c.endAsync());
    await reader.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'card', value: 1001, duress: 'yes' }), { qos: 1 });
    await reader.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'card', value: 1001 }), { qos: 1 });
    await until(() => simRelay(g).pulses.length === 1, 'the valid one decided');
    await g.journal.flush();
    expect(await g.store.recentJournal(10)).toHaveLength(1);
  });
});

describe('mode commands', () => {
  it('parse PASSAGE and timed JSON modes, and refuse bad durations', async () => {
    const { parseDoorCommand } = await import('../../src/io/mqtt/topics.js');
    expect(parseDoorCommand('passage')).toEqual({ ok: true, cmd: { command: 'mode', mode: 'passage' } });
    expect(parseDoorCommand('{"command":"mode","mode":"lockdown","duration_s":1800}')).toEqual({ ok: true, cmd: { command: 'mode', mode: 'lockdown', duration_s: 1800 } });
    expect(parseDoorCommand('{"command":"mode","mode":"passage","duration_s":-5}')).toEqual({ ok: false, error: 'duration_s must be whole seconds, 1 to 2592000 (30 days)' });
    expect(parseDoorCommand('{"command":"mode","mode":"open"}')).toMatchObject({ ok: false });
  });
});
