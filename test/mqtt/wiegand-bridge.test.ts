/** Wiegand frames from an MQTT bridge: card formats, keypad bursts, card and PIN, bad frames dropped. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCard } from '../../src/domain/cards.js';
import { createLogger } from '../../src/log.js';
import { Broker, client } from '../helpers/mosquitto.js';
import { cleanup, simRelay, startMqttGateway } from '../helpers/mqtt-gateway.js';
import { makeKey } from '../helpers/qr.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: 'silent', pretty: false });
const broker = new Broker();
beforeAll(() => broker.start());
afterAll(() => broker.stop());
const t = cleanup();

const key = (k: string): string => {
  const v = k === '*' ? 10 : k === '#' ? 11 : Number(k);
  return ((~v & 0xf).toString(2).padStart(4, '0') + v.toString(2).padStart(4, '0'));
};

describe('a Wiegand bridge on MQTT', () => {
  it('decodes cards by the reader\'s format, takes card and PIN at a door that asks, and drops bad frames', async () => {
    const doors = [
      { id: 'lobby', relay: { pulse_ms: 200 }, readers: [{ id: 'lobby-reader', type: 'mqtt', direction: 'in', card_format: 'h10301' }] },
      { id: 'back', relay: { pulse_ms: 200 }, policy: { card_and_pin: true }, readers: [{ id: 'other-reader', type: 'mqtt', direction: 'in', pin_wait_ms: 1000 }] },
    ];
    t.gw = await startMqttGateway(broker, { log, key: makeKey(), doors });
    const gw = t.gw;
    // alice holds card 1001 in the directory; a 26-bit frame of facility 0, card 1001 is that number.
    await gw.api.usersSet({ userid: 'alice', pin: '2468' });
    const lobby = await client(broker, 'lobby-reader');
    const back = await client(broker, 'other-reader');
    t.closers.push(() => lobby.c.endAsync(), () => back.c.endAsync());
    const send = (r: typeof lobby, topic: string, bits: string) => r.c.publishAsync(`doorgw/gw1/reader/${topic}/credential`, JSON.stringify({ type: 'wiegand', bits }), { qos: 1 });
    const journal = async (n: number) => (await gw.store.recentJournal(n)).reverse();

    const frame = encodeCard('h10301', 0, 1001n);
    await send(lobby, 'lobby-reader', frame);
    await until(() => simRelay(gw, 'lobby').pulses.length === 1, 'lobby opens');
    // One bit flipped: dropped and counted, nothing decided.
    await send(lobby, 'lobby-reader', `${frame.slice(0, 5)}${frame[5] === '1' ? '0' : '1'}${frame.slice(6)}`);
    await until(() => gw.mqtt!.badFrames.get('lobby-reader') === 1, 'bad frame counted');

    // Card and PIN: the card waits for 2468#; a wrong PIN is denied; a card alone is denied when its wait ends.
    await send(back, 'other-reader', frame);
    for (const k of '2468#') await send(back, 'other-reader', key(k));
    await until(() => simRelay(gw, 'back').pulses.length === 1, 'back opens with the PIN');
    await send(back, 'other-reader', frame);
    for (const k of '1*2468#') await send(back, 'other-reader', key(k)); // * clears the 1
    await until(() => simRelay(gw, 'back').pulses.length === 2, 'after a correction');
    await send(back, 'other-reader', frame);
    for (const k of '1111#') await send(back, 'other-reader', key(k));
    await send(back, 'other-reader', frame);
    await until(async () => (await journal(10)).filter((e) => e.door === 'back').length === 4, 'four decisions at the back door', 5000);
    const backs = (await journal(10)).filter((e) => e.door === 'back').map((e) => `${e.decision}:${e.reason}`);
    expect(backs).toEqual(['grant:default_allow', 'grant:default_allow', 'deny:wrong_pin', 'deny:pin_required']);
    expect(simRelay(gw, 'back').pulses).toHaveLength(2);
  }, 20_000);
});
