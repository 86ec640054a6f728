/**
 * OSDP end to end: the gateway with an OSDP reader on a real pty, an emulated reader on the other end,
 * a real Mosquitto. Install mode refuses cards; `osdpEnroll` keys the reader; a card read on the wire
 * grants through the pipeline, pulses the relay, and the reader then gets the green LED and the beep;
 * a deny gets red; lockdown turns the idle LED red; tamper and a silent reader are alarms on MQTT, in
 * the journal, in status and Home Assistant's reader entities.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCard } from '../../src/domain/cards.js';
import { CMD } from '../../src/io/osdp/messages.js';
import { createLogger } from '../../src/log.js';
import { healthProblems } from '../../src/control/api.js';
import { cleanup, simRelay, startMqttGateway } from '../helpers/mqtt-gateway.js';
import { Broker, client } from '../helpers/mosquitto.js';
import { OsdpBusEmulator } from '../../src/io/osdp/emulator.js';
import { makeKey } from '../helpers/qr.js';
import { emulatedOsdpBus } from '../helpers/osdp-bus.js';
import { ptyPair } from '../helpers/r30x-emulator.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: 'silent', pretty: false });
const broker = new Broker();
beforeAll(() => broker.start());
afterAll(() => broker.stop());
const t = cleanup();

describe('OSDP reader in the gateway', () => {
  it('enrolls the reader, grants a card through the pipeline with feedback after the relay, and raises supervision alarms', async () => {
    const { pty, emu } = await emulatedOsdpBus(t.closers);
    const pd = emu.add({ address: 3 });
    const ha = await client(broker, 'homeassistant', ['doorgw/gw1/#', 'homeassistant/binary_sensor/gw1/#']);
    t.closers.push(() => ha.c.endAsync());
    const doors = [{ id: 'lobby', name: 'Lobby', relay: { pulse_ms: 300 }, readers: [{ id: 'lobby-osdp', type: 'osdp', path: pty.gateway, address: 3, baud_rate: 115200, poll_interval_ms: 20 }] }];
    t.gw = await startMqttGateway(broker, { log, key: makeKey(), doors });
    const gw = t.gw;
    const reader = async () => (await gw.api.status()).readers!.find((r) => r.id === 'lobby-osdp')!;

    // A new reader on the default key: polled, but its cards are refused, and status says what to do.
    await until(async () => (await reader()).state === 'install', 'install mode', 5000);
    const st = await gw.api.status();
    expect(healthProblems(st, { maxLinkDownS: 600, maxOutboxAgeS: 600, maxSkewS: 60 }).join()).toMatch(/lobby-osdp awaits enrollment \(doorgw osdp enroll lobby-osdp\)/);
    pd.presentCard(encodeCard('h10301', 0, 1001n));
    await new Promise((r) => setTimeout(r, 400));
    expect(simRelay(gw).pulses).toHaveLength(0);

    const enrolled = await gw.api.osdpEnroll({ reader: 'lobby-osdp', by: 'test' });
    expect(enrolled).toMatchObject({ state: 'online', secure: true, enrolled: true, device: { vendor: '0a1b2c', serial: 0x1003 } });
    await expect(gw.api.osdpEnroll({ reader: 'nope' })).rejects.toThrow(/no OSDP reader 'nope'/);

    // alice's card (1001 = facility 0, card 1001 as a 26-bit frame): grant, pulse, then green and a short beep.
    const ledsBefore = pd.leds.length;
    pd.presentCard(encodeCard('h10301', 0, 1001n));
    await until(() => simRelay(gw).pulses.length === 1, 'pulse', 3000);
    await until(() => pd.leds.slice(ledsBefore).some((l) => l.temporary?.on === 2) && pd.buzzes.length >= 1 && pd.texts.length >= 1, 'green LED, beep and text', 3000);
    const pulseAt = simRelay(gw).pulses[0]!.at;
    const feedbackAt = pd.commands.filter((c) => c.code === CMD.led).at(-1)!.at;
    expect(feedbackAt).toBeGreaterThanOrEqual(pulseAt); // feedback leaves after the relay command
    expect(pd.buzzes[0]).toMatchObject({ tone: 2, onMs: 200, count: 1 });
    expect(pd.texts.at(-1)?.text).toBe('Welcome');
    expect(pd.commands.filter((c) => c.code === CMD.led).at(-1)!.secure).toBe(true);
    await until(() => ha.got.some((m) => m.topic === 'doorgw/gw1/door/lobby/event' && /"granted"|"grant"/.test(m.payload) && m.payload.includes('lobby-osdp')), 'decision on MQTT', 3000);

    // An unknown card: denied, red and a long beep.
    pd.presentCard(encodeCard('h10301', 0, 4242n));
    await until(() => pd.buzzes.some((b) => b.onMs === 1000), 'long beep', 3000);
    expect(pd.leds.some((l) => l.temporary?.on === 1)).toBe(true);
    expect(simRelay(gw).pulses).toHaveLength(1);

    // Lockdown: the idle LED turns red.
    await gw.api.setMode({ door: 'lobby', mode: 'lockdown', by: 'test' });
    await until(() => pd.leds.at(-1)?.permanent?.on === 1, 'red idle LED', 3000);

    // Tamper: an alarm on MQTT, in the journal, in the gateway state and Home Assistant's tamper entity.
    pd.tamper = true;
    await until(() => ha.got.some((m) => m.topic === 'doorgw/gw1/door/lobby/event' && m.payload.includes('"reader_tamper"')), 'tamper event', 3000);
    await until(() => ha.got.some((m) => m.topic === 'doorgw/gw1/state' && m.payload.includes('"tamper":true')), 'tamper in state', 3000);
    const cfgs = ha.got.filter((m) => m.topic.startsWith('homeassistant/binary_sensor/gw1/reader_lobby-osdp_'));
    expect(cfgs.map((m) => m.topic).sort()).toEqual(['homeassistant/binary_sensor/gw1/reader_lobby-osdp_link/config', 'homeassistant/binary_sensor/gw1/reader_lobby-osdp_tamper/config']);
    const events = await gw.api.doorEvents({ limit: 50 });
    expect(events.some((e) => e.type === 'reader_tamper' && e.reader === 'lobby-osdp')).toBe(true);
    expect(events.some((e) => e.type === 'operator_action' && /enrolled OSDP reader lobby-osdp/.test(e.detail ?? ''))).toBe(true);

    // The reader goes silent: offline alarm, status and health say so.
    pd.silent = true;
    await until(() => ha.got.some((m) => m.payload.includes('"reader_offline"')), 'offline event', 5000);
    expect((await reader()).state).toBe('offline');
    expect(healthProblems(await gw.api.status(), { maxLinkDownS: 600, maxOutboxAgeS: 600, maxSkewS: 60 }).join()).toMatch(/reader lobby-osdp offline/);
    pd.silent = false;
    await until(() => ha.got.some((m) => m.payload.includes('"reader_online"')), 'online again', 5000);
    expect(await reader()).toMatchObject({ state: 'online', secure: true });
  }, 40_000);
});

describe('OSDP keypad', () => {
  it('card and PIN at a door that asks: the card waits for the PIN typed on the reader', async () => {
    const { pty, emu } = await emulatedOsdpBus(t.closers);
    const pd = emu.add({ address: 0, secureCapable: false });
    const doors = [{ id: 'lobby', relay: { pulse_ms: 300 }, policy: { card_and_pin: true }, readers: [{ id: 'pin-pad', type: 'osdp', path: pty.gateway, secure: false, baud_rate: 115200, poll_interval_ms: 20 }] }];
    t.gw = await startMqttGateway(broker, { log, key: makeKey(), doors });
    const gw = t.gw;
    await gw.api.usersAdd({ userid: 'guard', cards: [77], pin: '2468', by: 'test' });
    await until(async () => (await gw.api.status()).readers![0]!.state === 'online', 'online', 5000);
    const card = encodeCard('h10301', 0, 77n);
    pd.presentCard(card);
    pd.pressKeys('1111#');
    await until(async () => (await gw.api.journal({ limit: 1 }))[0]?.reason === 'wrong_pin', 'wrong PIN denied', 3000);
    pd.presentCard(card);
    pd.pressKeys('24');
    pd.pressKeys('68#');
    await until(() => simRelay(gw, 'lobby').pulses.length === 1, 'card and PIN open the door', 3000);
    // The journal is written after the relay moves (by design): wait for the entry, then check it.
    await until(async () => (await gw.api.journal({ limit: 1 }))[0]?.decision === 'grant', 'the grant journaled', 3000);
    expect((await gw.api.journal({ limit: 1 }))[0]).toMatchObject({ decision: 'grant', userid: 'guard' });
  }, 20_000);
});

describe('OSDP adapter missing or unplugged', () => {
  it('starts without the adapter, brings the reader online when it appears, and again after it is unplugged and back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'doorgw-osdp-port-'));
    t.closers.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const at = { gateway: join(dir, 'ttyRS485'), device: join(dir, 'ttyReader') };
    const doors = [{ id: 'lobby', relay: { pulse_ms: 300 }, readers: [{ id: 'gate', type: 'osdp', path: at.gateway, secure: false, baud_rate: 115200, poll_interval_ms: 20 }] }];
    t.gw = await startMqttGateway(broker, { log, key: makeKey(), doors });
    const gw = t.gw;
    const reader = async () => (await gw.api.status()).readers![0]!;
    expect(await reader()).toMatchObject({ state: 'offline', detail: expect.stringMatching(/serial port .*ttyRS485/) });

    // The adapter appears (plugged in after boot).
    let pty = await ptyPair(at);
    let emu = await OsdpBusEmulator.open(pty.device, 115200);
    emu.add({ address: 0, secureCapable: false });
    await until(async () => (await reader()).state === 'online', 'online once the port exists', 8000);
    const card = encodeCard('h10301', 0, 1001n);
    emu.pds.get(0)!.presentCard(card);
    await until(() => simRelay(gw).pulses.length === 1, 'card opens', 3000);

    // Unplugged: offline (an alarm), then back.
    await emu.close();
    pty.stop();
    await until(async () => (await reader()).state === 'offline', 'offline when the port goes', 5000);
    pty = await ptyPair(at);
    emu = await OsdpBusEmulator.open(pty.device, 115200);
    emu.add({ address: 0, secureCapable: false });
    t.closers.push(async () => {
      await emu.close();
      pty.stop();
    });
    await until(async () => (await reader()).state === 'online', 'online again', 8000);
    emu.pds.get(0)!.presentCard(card);
    await until(() => simRelay(gw).pulses.length === 2, 'card opens again', 3000);
    const events = await gw.api.doorEvents({ limit: 20 });
    expect(events.some((e) => e.type === 'reader_offline' && e.reader === 'gate')).toBe(true);
    expect(events.some((e) => e.type === 'reader_online' && e.reader === 'gate')).toBe(true);
  }, 40_000);
});

describe('doorgw osdp emulator', () => {
  it('is a reader to develop against: a typed card opens the door, and it shows the feedback it gets', async () => {
    const pty = await ptyPair();
    t.closers.push(() => Promise.resolve(pty.stop()));
    const root = new URL('../..', import.meta.url).pathname;
    const emu = spawn(process.execPath, [join(root, 'dist/cli/main.js'), 'osdp', 'emulator', pty.device, '--baud', '115200', '--no-secure'], { stdio: ['pipe', 'pipe', 'pipe'] });
    t.closers.push(() => Promise.resolve(emu.kill()));
    let out = '';
    emu.stdout.on('data', (b: Buffer) => (out += b.toString()));
    await until(() => out.includes('OSDP reader emulated'), 'emulator up', 8000);
    const doors = [{ id: 'lobby', relay: { pulse_ms: 300 }, readers: [{ id: 'dev-reader', type: 'osdp', path: pty.gateway, secure: false, baud_rate: 115200, poll_interval_ms: 20 }] }];
    t.gw = await startMqttGateway(broker, { log, key: makeKey(), doors });
    const gw = t.gw;
    await until(async () => (await gw.api.status()).readers![0]!.state === 'online', 'online', 5000);
    emu.stdin.write('card 1001\n');
    await until(() => simRelay(gw).pulses.length === 1, 'a typed card opens', 5000);
    await until(() => out.includes('reader: LED green for 2000 ms') && out.includes('reader: beep 200 ms × 1'), 'feedback shown', 5000);
    emu.stdin.write('tamper on\n');
    await until(async () => (await gw.api.status()).readers![0]!.tamper === true, 'tamper', 5000);
    emu.stdin.write('bogus\n');
    await until(() => out.includes('? card <number>'), 'help on a bad line', 3000);
  }, 30_000);
});

describe('OSDP: no downgrade by configuration', () => {
  it('an enrolled reader stays on the secure channel when its configuration says secure: false; forgetting its key is journaled and the reader is then refused', async () => {
    const { pty, emu } = await emulatedOsdpBus(t.closers);
    const pd = emu.add({ address: 0 });
    const dataDir = join(mkdtempSync(join(tmpdir(), 'doorgw-osdp-dg-')), 'data');
    const reader = (secure: boolean) => [{ id: 'lobby', relay: { pulse_ms: 300 }, readers: [{ id: 'gate', type: 'osdp', path: pty.gateway, secure, baud_rate: 115200, poll_interval_ms: 20 }] }];
    t.gw = await startMqttGateway(broker, { log, key: makeKey(), doors: reader(true), dataDir });
    await until(async () => (await t.gw!.api.status()).readers![0]!.state === 'install', 'install', 5000);
    await t.gw.api.osdpEnroll({ reader: 'gate', by: 'test' });
    await t.gw.stop();

    // Someone edits the configuration to plaintext: the reader is still talked to securely.
    t.gw = await startMqttGateway(broker, { log, key: makeKey(), doors: reader(false), dataDir });
    const gw = t.gw;
    await until(async () => (await gw.api.status()).readers![0]!.state === 'online', 'online', 5000);
    expect((await gw.api.status()).readers![0]).toMatchObject({ secure: true, enrolled: true });
    expect(pd.commands.filter((c) => c.code === CMD.poll).slice(-3).every((c) => c.secure)).toBe(true);

    // Forgetting the key: journaled; the reader, which still holds it, is refused (never plaintext).
    expect(await gw.api.osdpForget({ reader: 'gate', by: 'test' })).toEqual({ reader: 'gate', forgotten: true });
    expect((await gw.api.doorEvents({ limit: 5 })).some((e) => e.type === 'operator_action' && /dropped the key of OSDP reader gate/.test(e.detail ?? ''))).toBe(true);
    await expect(gw.api.osdpForget({ reader: 'nope' })).rejects.toThrow(/no OSDP reader 'nope'/);
    pd.reboot(); // the next session needs the key
    await until(async () => (await gw.api.status()).readers![0]!.state === 'refused', 'refused', 8000);
  }, 40_000);
});
