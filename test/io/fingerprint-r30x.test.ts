/** The R30x serial fingerprint driver against an emulated module over a real pseudo-terminal pair. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodePacket, PacketDecoder, PID } from '../../src/io/fingerprint/r30x-packets.js';
import { R30xModule } from '../../src/io/fingerprint/r30x.js';
import { openSerial } from '../../src/io/serial.js';
import { createLogger } from '../../src/log.js';
import type { SimRelay } from '../../src/io/relay.js';
import { ptyPair, R30xEmulator } from '../helpers/r30x-emulator.js';
import { tmpDir } from '../helpers/tmp.js';
import { startRig, synced, type Rig } from '../helpers/wecom.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: 'silent', pretty: false });
const stops: (() => unknown)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function setup(o: { password?: number; modulePassword?: number } = {}) {
  const pty = await ptyPair();
  stops.push(pty.stop);
  const emu = await R30xEmulator.open(pty.device);
  stops.push(() => emu.close());
  if (o.modulePassword !== undefined) emu.password = o.modulePassword;
  const mapFile = join(tmpDir(), 'fingerprint-r30x.json');
  const open = async () => R30xModule.open({ link: await openSerial(pty.gateway, 57600), password: o.password ?? 0, mapFile, log, pollMs: 50, enrolTimeoutMs: 5000, offlineAfterMs: 1000 });
  return { pty, emu, mapFile, open };
}

/** Place a finger, lift it after `liftMs`, place it again after `againMs` (an enrolment's two captures). */
function twoTouches(emu: R30xEmulator, finger: string, liftMs = 300, againMs = 600): void {
  emu.finger = finger;
  setTimeout(() => (emu.finger = null), liftMs);
  setTimeout(() => (emu.finger = finger), againMs);
}

describe('packets', () => {
  it('frame with checksums; garbage and a bad checksum on the line are skipped, the next packet read', () => {
    const p = encodePacket(PID.ack, Buffer.from([0x00, 0x12]));
    // header, address, ack, length 4 (payload + checksum), payload 00 12, checksum 07+00+04+00+12 = 1d
    expect(p.toString('hex')).toBe('ef01' + 'ffffffff' + '07' + '0004' + '0012' + '001d');
    const bad = Buffer.from(p);
    bad.writeUInt8(bad.readUInt8(bad.length - 1) ^ 0xff, bad.length - 1);
    const d = new PacketDecoder();
    const got = d.push(Buffer.concat([Buffer.from('noise'), bad, Buffer.from([0xef]), p.subarray(0, 5)]));
    expect(got).toEqual([]);
    expect(d.push(p.subarray(5)).map((x) => [x.pid, x.payload.toString('hex')])).toEqual([[PID.ack, '0012']]);
    expect(d.bad).toBe(1);
  });
});

describe('R30x module over a serial line', () => {
  it('handshakes, enrols from two slow captures, stores, uploads the template, and reports the finger when it comes back', async () => {
    const { emu, mapFile, open } = await setup();
    emu.captureDelayMs = 40; // slow captures, as real sensors are
    const m = await open();
    stops.push(() => m.close());
    expect([m.capacity, m.packetSize]).toEqual([100, 128]);
    twoTouches(emu, 'alice-index');
    const r = await m.enroll('alice', new AbortController().signal);
    expect(r.slot).toBe(0);
    expect(r.template.equals(R30xEmulator.features('alice-index'))).toBe(true); // uploaded over 4 data packets
    expect(emu.library.size).toBe(1);
    expect(JSON.parse(readFileSync(mapFile, 'utf8'))).toEqual({ 0: { userid: 'alice', slot: 0 } });
    // The finger still on the sensor after enrolment is no pass; lifted and put back, it is.
    const matches: unknown[] = [];
    m.matches$.subscribe((x) => matches.push(x));
    await new Promise((res) => setTimeout(res, 200));
    expect(matches).toEqual([]);
    emu.finger = null;
    await new Promise((res) => setTimeout(res, 200));
    emu.finger = 'alice-index';
    await until(() => matches.length === 1, 'a match');
    expect(matches).toEqual([{ userid: 'alice', slot: 0 }]);
  }, 20_000);

  it('loads synced templates (downloaded to the module), deletes them, and keeps who is who across a restart', async () => {
    const { emu, mapFile, open } = await setup();
    let m = await open();
    await m.load('bob', [{ slot: 3, template: R30xEmulator.features('bob-thumb') }]);
    expect([...emu.library.values()].map((t) => t.equals(R30xEmulator.features('bob-thumb')))).toEqual([true]);
    await m.close();
    expect(existsSync(mapFile)).toBe(true);
    m = await open(); // a restart: the page map comes back from the data directory
    stops.push(() => m.close());
    const matches: unknown[] = [];
    m.matches$.subscribe((x) => matches.push(x));
    emu.finger = 'bob-thumb';
    await until(() => matches.length === 1, 'bob matches');
    expect(matches).toEqual([{ userid: 'bob', slot: 3 }]);
    await m.delete('bob');
    expect(emu.library.size).toBe(0);
  }, 20_000);

  it('maps module errors and silence to clear messages', async () => {
    const wrong = await setup({ modulePassword: 1234 });
    await expect(wrong.open()).rejects.toThrow('handshake: wrong module password');
    const { emu, open } = await setup();
    const m = await open();
    stops.push(() => m.close());
    // Two different fingers do not make one template.
    emu.finger = 'one';
    setTimeout(() => (emu.finger = null), 200);
    setTimeout(() => (emu.finger = 'two'), 400);
    await expect(m.enroll('x', new AbortController().signal)).rejects.toThrow('making the template: the two images do not make one template');
    // Cancelled while waiting for a finger.
    emu.finger = null;
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    await expect(m.enroll('x', ac.signal)).rejects.toThrow('enrolment cancelled');
    // The module goes silent: enrolment says so, and the module counts as offline.
    expect(m.online()).toBe(true);
    await emu.close();
    await expect(m.enroll('x', new AbortController().signal)).rejects.toThrow(/did not answer \(capture\) within 2000 ms: check wiring/);
    expect(m.online()).toBe(false);
  }, 20_000);
});

describe('WeCom enrolment with a serial module', () => {
  let rig: Rig | null = null;
  afterEach(async () => {
    await rig?.stop();
    rig = null;
  });

  it('enrols on push_enter_page, uploads the template with its algorithm, and the finger then opens the door', async () => {
    const pty = await ptyPair();
    stops.push(pty.stop);
    const emu = await R30xEmulator.open(pty.device);
    stops.push(() => emu.close());
    rig = await startRig({ users: 5, doors: [{ id: 'front', fingerprint: { driver: 'r30x', path: pty.gateway } }] });
    await synced(rig);
    const pending = rig.emu.enterPage('u1', 'fp', 'op-r1');
    twoTouches(emu, 'u1-finger', 500, 900);
    const body = await pending;
    expect(body).toMatchObject({ oper_id: 'op-r1', errcode: 0, userinfo: [{ userid: 'u1', fp_algorithm: 'r30x', fp: [{ id: 0, data: R30xEmulator.features('u1-finger').toString('base64') }] }] });
    emu.finger = null;
    await new Promise((r) => setTimeout(r, 600));
    emu.finger = 'u1-finger';
    await until(() => (rig!.gw.relays.get('front') as SimRelay).pulses.length === 1, 'the finger opens the door', 8000);
    // A finger in nobody's templates is journaled like an unknown card, and opens nothing.
    emu.finger = null;
    await new Promise((r) => setTimeout(r, 600));
    emu.finger = 'a-stranger';
    await until(async () => (await rig!.gw.journal.flush().then(() => rig!.gw.store.recentJournal(1)))[0]?.reason === 'unknown_user', 'the stranger journaled', 8000);
    expect((await rig.gw.store.recentJournal(1))[0]).toMatchObject({ decision: 'deny', reason: 'unknown_user', method: 'fingerprint', userid: null });
    expect((rig.gw.relays.get('front') as SimRelay).pulses).toHaveLength(1);
  }, 30_000);

  it('loads synced templates made by the module\'s algorithm into it (and refuses others), so those fingers open the door', async () => {
    const pty = await ptyPair();
    stops.push(pty.stop);
    const emu = await R30xEmulator.open(pty.device);
    stops.push(() => emu.close());
    rig = await startRig({ users: 0, doors: [{ id: 'front', fingerprint: { driver: 'r30x', path: pty.gateway } }] });
    const fp = (finger: string) => [{ id: 1, data: R30xEmulator.features(finger).toString('base64') }];
    rig.emu.upsertUsers(
      [
        { userid: 'u2', openvid: '902', user_type: 0, name: 'u2', fp: fp('u2-finger'), fp_algorithm: 'r30x' },
        { userid: 'u3', openvid: '903', user_type: 0, name: 'u3', fp: fp('u3-finger'), fp_algorithm: 'zk-finger-10' },
      ],
      { push: false },
    );
    await synced(rig);
    await until(() => emu.library.size === 1, 'u2 loaded into the module', 8000);
    expect([...emu.library.values()][0]!.equals(R30xEmulator.features('u2-finger'))).toBe(true);
    emu.finger = 'u3-finger'; // a template of another algorithm: not in the module, no match
    await new Promise((r) => setTimeout(r, 500));
    expect((rig.gw.relays.get('front') as SimRelay).pulses).toHaveLength(0);
    emu.finger = null;
    await new Promise((r) => setTimeout(r, 400));
    emu.finger = 'u2-finger';
    await until(() => (rig!.gw.relays.get('front') as SimRelay).pulses.length === 1, 'u2 opens the door', 8000);
    // Removed in the cloud: removed from the module.
    rig.emu.deleteUsers(['u2']);
    await until(() => emu.library.size === 0, 'u2 deleted from the module', 8000);
  }, 30_000);
});

describe('a serial module that is missing or unplugged', () => {
  let rig: Rig | null = null;
  afterEach(async () => {
    await rig?.stop();
    rig = null;
  });

  it('the gateway starts without it (offline, a health problem), takes it when it appears, and again after it is unplugged', async () => {
    const dir = tmpDir();
    const at = { gateway: join(dir, 'ttyFP'), device: join(dir, 'ttyFPdev') };
    rig = await startRig({ users: 5, doors: [{ id: 'front', fingerprint: { driver: 'r30x', path: at.gateway } }] });
    const st = async () => (await rig!.gw.api.status()).fingerprint_module;
    expect(await st()).toBe('offline');
    let pty = await ptyPair(at);
    let emu = await R30xEmulator.open(pty.device);
    await until(async () => (await st()) === 'online', 'module taken once its port appears', 8000);
    await emu.close();
    pty.stop();
    await until(async () => (await st()) === 'offline', 'offline when unplugged', 8000);
    pty = await ptyPair(at);
    emu = await R30xEmulator.open(pty.device);
    stops.push(pty.stop, () => emu.close());
    await until(async () => (await st()) === 'online', 'online again', 8000);
  }, 30_000);
});
