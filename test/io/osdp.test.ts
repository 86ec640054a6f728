/**
 * The OSDP control panel against emulated readers over a real pseudo-terminal pair (the serial port
 * opened for real by serialport): plain and secure channel, install mode and KEYSET, multi-drop with a
 * silent reader, NAK storms, BUSY, garbage and truncated frames, late replies, sequence recovery, a
 * MAC failure, checksum-only readers, key fallback from sequence 0, and a reader that lies about its key.
 */
import { statSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { OsdpBus } from '../../src/io/osdp/bus.js';
import { OsdpDevice, type OsdpDeviceEvents, type ReaderLinkState } from '../../src/io/osdp/device.js';
import { OsdpKeyFile } from '../../src/io/osdp/keys.js';
import { CMD, encodeLed } from '../../src/io/osdp/messages.js';
import { openSerial } from '../../src/io/serial.js';
import { encodeCard } from '../../src/domain/cards.js';
import { OsdpBusEmulator, type PdOptions } from '../../src/io/osdp/emulator.js';
import { doorgwAsync } from '../helpers/cli.js';
import { emulatedOsdpBus } from '../helpers/osdp-bus.js';
import { ptyPair } from '../helpers/r30x-emulator.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const stops: (() => unknown)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

interface Seen {
  cards: string[];
  keys: string[];
  states: ReaderLinkState[];
  secure: string[];
  status: { tamper: boolean; power: boolean }[];
}

async function rig(pds: PdOptions[], devices: { address: number; secure?: boolean; check?: 'crc' | 'checksum' | 'auto'; offlineAfter?: number }[], o: { dataDir?: string } = {}) {
  const { pty, emu } = await emulatedOsdpBus(stops);
  const pd = pds.map((p) => emu.add(p));
  const link = await openSerial(pty.gateway, 115200);
  const bus = new OsdpBus({ link, baud: 115200, pollIntervalMs: 20 });
  stops.push(async () => {
    await bus.stop();
    await link.close();
  });
  const keys = new OsdpKeyFile(o.dataDir ?? tmpDir());
  const seen = new Map<number, Seen>();
  const dev = devices.map((d) => {
    const s: Seen = { cards: [], keys: [], states: [], secure: [], status: [] };
    seen.set(d.address, s);
    const events: OsdpDeviceEvents = {
      card: (c) => s.cards.push(c.bits),
      cardText: (t) => s.cards.push(`text:${t}`),
      keys: (k) => s.keys.push(...k),
      status: (x) => s.status.push(x),
      state: (st) => s.states.push(st),
      secureFailure: (why) => s.secure.push(why),
      trace: () => undefined,
    };
    const device = new OsdpDevice({ address: d.address, secure: d.secure ?? true, check: d.check ?? 'crc', keys: keys.ring(`r${d.address}`), events, retryMs: 300, ...(d.offlineAfter ? { offlineAfter: d.offlineAfter } : {}) });
    bus.add(device);
    return device;
  });
  bus.start();
  return { emu, pd, bus, dev, keys, seen: (a: number) => seen.get(a)! };
}

const card = encodeCard('h10301', 12, 3456n);

describe('OSDP control panel on a real pty', () => {
  it('plaintext: identifies the reader, reads its capabilities, hears cards and keys, and delivers LED commands', async () => {
    const r = await rig([{ address: 0, secureCapable: false }], [{ address: 0, secure: false }]);
    const [d] = r.dev;
    await until(() => d!.state === 'online', 'online', 3000);
    expect(d!.pdId).toMatchObject({ vendor: '0a1b2c', model: 7, serial: 0x1000, firmware: '2.4.1' });
    expect(d!.caps).toMatchObject({ crc: true, secureChannel: false, audible: true });
    expect(d!.secured).toBe(false);
    r.pd[0]!.presentCard(card);
    r.pd[0]!.pressKeys('12#');
    await until(() => r.seen(0).cards.length === 1 && r.seen(0).keys.length === 3, 'card and keys', 2000);
    expect(r.seen(0).cards).toEqual([card]);
    expect(r.seen(0).keys).toEqual(['1', '2', '#']);
    d!.send(CMD.led, encodeLed({ temporary: { on: 'green', onMs: 500, ms: 500 } }));
    await until(() => r.pd[0]!.leds.some((l) => l.temporary?.on === 2), 'LED', 2000);
  });

  it('install mode: a new reader on the default key is polled but its cards are refused; enrolled by KEYSET it is secure, and its key is kept 0600', async () => {
    const dir = tmpDir();
    const r = await rig([{ address: 0 }], [{ address: 0 }], { dataDir: dir });
    const [d] = r.dev;
    await until(() => d!.state === 'install', 'install', 3000);
    expect(r.pd[0]!.secure).toBe(true); // a session on SCBK-D
    r.pd[0]!.presentCard(card);
    await until(() => r.pd[0]!.commands.filter((c) => c.code === CMD.poll).length > 5, 'polls', 2000);
    await new Promise((res) => setTimeout(res, 100));
    expect(r.seen(0).cards).toEqual([]); // refused: deny by default
    await d!.enroll();
    await until(() => d!.state === 'online' && d!.secured, 'secured on the new key', 3000);
    expect(r.pd[0]!.keysets).toHaveLength(1);
    const file = JSON.parse(readFileSync(r.keys.path, 'utf8')) as { readers: Record<string, { key: string; pending?: string }> };
    expect(file.readers.r0!.key).toBe(r.pd[0]!.keysets[0]!.toString('hex'));
    expect(file.readers.r0!.pending).toBeUndefined();
    expect(statSync(r.keys.path).mode & 0o777).toBe(0o600);
    // The KEYSET went encrypted: its plaintext key is nowhere in the bytes on the wire.
    r.pd[0]!.presentCard(card);
    await until(() => r.seen(0).cards.length === 1, 'card on the secure channel', 2000);
    expect(r.pd[0]!.commands.filter((c) => c.code === CMD.poll).slice(-3).every((c) => c.secure)).toBe(true);
  });

  it('a KEYSET whose acknowledgement is lost keeps the new key pending; the next handshake finds the reader holds it and keeps it', async () => {
    const r = await rig([{ address: 0 }], [{ address: 0 }]);
    const [d] = r.dev;
    await until(() => d!.state === 'install', 'install', 3000);
    r.pd[0]!.muteAfterKeyset = true;
    await expect(d!.enroll()).rejects.toThrow(/did not answer KEYSET/);
    expect(r.keys.ring('r0').get().pending?.toString('hex')).toBe(r.pd[0]!.scbk!.toString('hex'));
    r.pd[0]!.silent = false;
    r.pd[0]!.muteAfterKeyset = false;
    await until(() => d!.state === 'online' && d!.secured, 'secured on the pending key', 5000);
    expect(r.keys.ring('r0').get()).toEqual({ key: r.pd[0]!.scbk, pending: null });
    expect(r.seen(0).secure).toEqual([]);
  });

  it('a KEYSET the reader refuses leaves the old state: no pending key, still in install mode', async () => {
    const r = await rig([{ address: 0 }], [{ address: 0 }]);
    const [d] = r.dev;
    await until(() => d!.state === 'install', 'install', 3000);
    r.pd[0]!.nakNext = 1;
    r.pd[0]!.nakOnly = CMD.keyset;
    await expect(d!.enroll()).rejects.toThrow(/refused KEYSET/);
    expect(r.keys.ring('r0').get()).toEqual({ key: null, pending: null });
    expect(d!.state).toBe('install');
  });

  it('an enrolled reader that comes back on the default key (reset or replaced) is an alarm and its cards are refused: no silent downgrade', async () => {
    const r = await rig([{ address: 0 }], [{ address: 0 }]);
    const [d] = r.dev;
    await until(() => d!.state === 'install', 'install', 3000);
    await d!.enroll();
    await until(() => d!.state === 'online' && d!.secured, 'secured', 3000);
    r.pd[0]!.factoryReset();
    await until(() => d!.state === 'install', 'back in install, not online', 5000);
    expect(r.seen(0).secure.some((w) => /only on the default key/.test(w))).toBe(true);
    r.pd[0]!.presentCard(card);
    await new Promise((res) => setTimeout(res, 300));
    expect(r.seen(0).cards).toEqual([]);
    // After the failed SCBK challenge the default-key challenge restarted from sequence 0 (readers NAK it otherwise).
    const chl = r.pd[0]!.commands.filter((c) => c.code === CMD.chlng);
    expect(chl.at(-1)!.sqn).toBe(0);
  });

  it('a reader that holds a key this gateway does not know, or answers a challenge on the other key, is refused with an alarm', async () => {
    const r = await rig([{ address: 0, scbk: Buffer.alloc(16, 9), installMode: false }, { address: 1, scbk: Buffer.alloc(16, 3), installMode: false }], [{ address: 0 }, { address: 1 }]);
    r.keys.ring('r1').confirm(Buffer.alloc(16, 3));
    r.pd[1]!.wrongIndicator = true;
    await until(() => r.dev[0]!.state === 'refused' && r.dev[1]!.state === 'refused', 'both refused', 5000);
    expect(r.seen(0).secure.join()).toMatch(/does not have .*twice in a row/);
    expect(r.seen(1).secure.join()).toMatch(/does not have|refused/);
    expect(r.dev.every((d) => !d.trusted)).toBe(true);
    expect(r.dev[0]!.counters.restarts).toBeGreaterThanOrEqual(1); // one more round before the verdict
  });

  it('a handshake garbled by line noise (every key "fails" once) is tried again, not taken for another key', async () => {
    const key = Buffer.alloc(16, 7);
    const r = await rig([{ address: 0, scbk: key, installMode: true }], [{ address: 0 }]);
    r.keys.ring('r0').confirm(key);
    r.pd[0]!.garbleCryptograms = 2; // the enrolled key and the default key both look wrong, once
    await until(() => r.dev[0]!.state === 'online', 'online on its key', 8000);
    expect(r.dev[0]!.secured).toBe(true);
    expect(r.seen(0).secure.join()).not.toMatch(/does not have/);
  });

  it('a reader configured secure that offers no secure channel is refused, never polled in plaintext for cards', async () => {
    const r = await rig([{ address: 0, secureCapable: false }], [{ address: 0, secure: true }]);
    await until(() => r.dev[0]!.state === 'refused', 'refused', 3000);
    expect(r.seen(0).secure.join()).toMatch(/does not offer the secure channel/);
    expect(r.pd[0]!.commands.some((c) => c.code === CMD.poll)).toBe(false);
  });

  it('multi-drop: silent readers go offline without starving the others (at most one try of a silent reader between two polls of a live one)', async () => {
    const key = Buffer.alloc(16, 5);
    const all = [0, 1, 2, 3];
    const r = await rig(
      all.map((a) => ({ address: a, scbk: key, installMode: false })),
      all.map((a) => ({ address: a })),
    );
    for (const a of all) r.keys.ring(`r${a}`).confirm(key);
    r.pd[1]!.silent = true;
    r.pd[3]!.silent = true;
    await until(() => r.dev[0]!.state === 'online' && r.dev[2]!.state === 'online', 'live readers online', 5000);
    await new Promise((res) => setTimeout(res, 2000));
    expect([r.dev[1]!.state, r.dev[3]!.state]).toEqual(['offline', 'offline']);
    // Scheduling, exactly: each try of a silent reader costs a 200 ms deadline, so between two polls
    // of a live reader at most one silent reader is tried (two would cost 400 ms, a reader's
    // secure-channel timeout).
    const order = r.emu.seen.slice(-80).map((p) => p.addr);
    for (const a of [0, 2]) {
      const idx = order.flatMap((x, i) => (x === a ? [i] : []));
      expect(idx.length).toBeGreaterThan(3);
      for (let i = 1; i < idx.length; i++) expect(order.slice(idx[i - 1]! + 1, idx[i]).filter((x) => x === 1 || x === 3).length).toBeLessThanOrEqual(1);
      // And in time (loose: a loaded machine stretches timers).
      const at = r.pd[a]!.commands.slice(-20).map((c) => c.at);
      const gaps = at.slice(1).map((t, i) => t - at[i]!);
      expect(Math.max(...gaps)).toBeLessThan(1000);
    }
    expect(order.filter((x) => x === 1).length + order.filter((x) => x === 3).length).toBeGreaterThan(0); // they are still tried
    r.pd[0]!.presentCard(card);
    r.pd[2]!.presentCard(encodeCard('h10301', 1, 2n));
    await until(() => r.seen(0).cards.length === 1 && r.seen(2).cards.length === 1, 'both cards', 2000);
    // The silent one comes back.
    r.pd[1]!.silent = false;
    await until(() => r.dev[1]!.state === 'online' && r.dev[1]!.secured, 'reader 1 back', 5000);
  }, 20_000);

  it('a NAK storm restarts the link, BUSY is answered by asking again, and the reader stays usable', async () => {
    const r = await rig([{ address: 0, secureCapable: false }], [{ address: 0, secure: false }]);
    const [d] = r.dev;
    await until(() => d!.state === 'online', 'online', 3000);
    r.pd[0]!.nakNext = 12;
    await until(() => d!.counters.restarts >= 1, 'a restart', 3000);
    await until(() => d!.state === 'online' && r.pd[0]!.nakNext === 0, 'online after the storm', 5000);
    r.pd[0]!.busyNext = 3;
    r.pd[0]!.presentCard(card);
    await until(() => r.seen(0).cards.length === 1, 'card after BUSY', 3000);
    expect(d!.counters.busy).toBe(3);
  });

  it('garbage and truncated frames on the bus are dropped and counted; the link recovers with the same bytes', async () => {
    const r = await rig([{ address: 0, secureCapable: false }], [{ address: 0, secure: false }]);
    const [d] = r.dev;
    await until(() => d!.state === 'online', 'online', 3000);
    r.pd[0]!.garbageBeforeReply = 5;
    r.pd[0]!.truncateNext = 2;
    r.emu.inject(Buffer.from([0x53, 0x53, 0x00, 0x01, 0x99, 0x53]));
    r.pd[0]!.presentCard(card);
    await until(() => r.seen(0).cards.length === 1, 'card through the noise', 3000);
    expect(r.seen(0).cards).toEqual([card]);
    expect(r.bus.dropped.garbage + r.bus.dropped.length + r.bus.dropped.check).toBeGreaterThan(0);
    expect(d!.state).toBe('online');
  });

  it('late replies: one past the deadline is taken only as the reply to the same command repeated (same sequence), never for another', async () => {
    // More tries before offline than the default: on a loaded machine timer jitter can add a miss,
    // and a reader gone offline loses the card in its late reply (the next test covers offline).
    const r = await rig([{ address: 0, secureCapable: false }], [{ address: 0, secure: false, offlineAfter: 10 }]);
    const [d] = r.dev;
    await until(() => d!.state === 'online', 'online', 3000);
    // 320 ms: each reply lands in the window of the repeated command, which carries the same sequence number.
    r.pd[0]!.replyDelayMs = 320;
    r.pd[0]!.presentCard(card);
    r.pd[0]!.presentCard(encodeCard('h10301', 1, 1n));
    await until(() => r.seen(0).cards.length === 2, 'both cards, slowly', 8000);
    await new Promise((res) => setTimeout(res, 1000));
    expect(r.seen(0).cards).toEqual([card, encodeCard('h10301', 1, 1n)]); // each once, in order
    expect(d!.counters.timeouts).toBeGreaterThan(0);
  }, 30_000);

  it('a reader later than every retry of a command is offline, and back when it answers in time', async () => {
    const r = await rig([{ address: 0, secureCapable: false }], [{ address: 0, secure: false }]);
    const [d] = r.dev;
    await until(() => d!.state === 'online', 'online', 3000);
    // 900 ms: later than every retry of a command: offline.
    r.pd[0]!.replyDelayMs = 900;
    await until(() => d!.state === 'offline', 'offline', 8000);
    r.pd[0]!.replyDelayMs = 0;
    await until(() => d!.state === 'online', 'back online', 8000);
    r.pd[0]!.presentCard(card);
    await until(() => r.seen(0).cards.length === 1, 'card', 2000);
  }, 30_000);

  it('a reader that restarts (sequence lost) is re-identified and the secure session built again', async () => {
    const key = Buffer.alloc(16, 7);
    const r = await rig([{ address: 0, scbk: key, installMode: false }], [{ address: 0 }]);
    r.keys.ring('r0').confirm(key);
    const [d] = r.dev;
    await until(() => d!.state === 'online' && d!.secured, 'secured', 3000);
    r.pd[0]!.reboot();
    await until(() => d!.counters.restarts >= 1 && d!.state === 'online' && d!.secured, 'secured again', 5000);
    r.pd[0]!.presentCard(card);
    await until(() => r.seen(0).cards.length === 1, 'card', 2000);
  });

  it('a reply that fails its MAC is refused (the card in it is not taken) and the session restarts', async () => {
    const key = Buffer.alloc(16, 8);
    const r = await rig([{ address: 0, scbk: key, installMode: false }], [{ address: 0 }]);
    r.keys.ring('r0').confirm(key);
    const [d] = r.dev;
    await until(() => d!.state === 'online' && d!.secured, 'secured', 3000);
    await new Promise((res) => setTimeout(res, 100));
    r.pd[0]!.corruptMacNext = 1;
    r.pd[0]!.presentCard(card);
    await until(() => r.seen(0).secure.some((w) => /MAC/.test(w)), 'MAC failure reported', 3000);
    expect(r.seen(0).cards).toEqual([]);
    expect(d!.counters.macFailures).toBe(1);
    await until(() => d!.state === 'online' && d!.secured, 'a new session', 3000);
    r.pd[0]!.presentCard(card);
    await until(() => r.seen(0).cards.length === 1, 'the next card', 2000);
  });

  it('check: auto talks to a checksum-only reader (it NAKs CRC-16)', async () => {
    const r = await rig([{ address: 0, checksumOnly: true, secureCapable: false }], [{ address: 0, secure: false, check: 'auto' }]);
    const [d] = r.dev;
    await until(() => d!.state === 'online', 'online', 5000);
    expect(d!.checkMode).toBe('checksum');
    r.pd[0]!.presentCard(card);
    await until(() => r.seen(0).cards.length === 1, 'card', 2000);
  });

  it('tamper and power reports arrive as status changes', async () => {
    const r = await rig([{ address: 0, secureCapable: false }], [{ address: 0, secure: false }]);
    await until(() => r.dev[0]!.state === 'online', 'online', 3000);
    await until(() => r.seen(0).status.length === 1, 'initial status', 2000);
    r.pd[0]!.tamper = true;
    await until(() => r.seen(0).status.length === 2, 'tamper', 2000);
    r.pd[0]!.tamper = false;
    r.pd[0]!.power = true;
    await until(() => r.seen(0).status.length === 3, 'power', 2000);
    expect(r.seen(0).status).toEqual([{ tamper: false, power: false }, { tamper: true, power: false }, { tamper: false, power: true }]);
  });
});

describe('doorgw osdp scan', () => {
  // Asynchronous: the emulated readers answer from this process while the CLI scans.
  const run = doorgwAsync;

  it('finds every reader on the bus with its address, identity, check mode and capabilities', async () => {
    const pty = await ptyPair();
    stops.push(pty.stop);
    const emu = await OsdpBusEmulator.open(pty.device, 19200);
    stops.push(() => emu.close());
    emu.add({ address: 0, id: { serial: 777 } });
    emu.add({ address: 42, checksumOnly: true, secureCapable: false, display: false });
    // 30 ms a silent address (the emulated readers answer from this busy process; 15 ms missed under load in CI).
    const r = await run(['osdp', 'scan', pty.gateway, '--baud', '19200', '--timeout', '30', '--json']);
    expect(r.code).toBe(0);
    const found = JSON.parse(r.stdout) as { address: number; baud: number; check: string; id: { serial: number }; caps: { secure_channel: boolean; text: unknown } }[];
    expect(found.map((f) => [f.address, f.check, f.caps.secure_channel])).toEqual([
      [0, 'crc', true],
      [42, 'checksum', false],
    ]);
    expect(found[0]).toMatchObject({ baud: 19200, id: { serial: 777 } });
    expect(found[1]!.caps.text).toBeNull();
  }, 40_000);

  it('says so when nothing answers, and refuses a speed OSDP does not use', async () => {
    const pty = await ptyPair();
    stops.push(pty.stop);
    const none = await run(['osdp', 'scan', pty.gateway, '--baud', '9600', '--timeout', '5']);
    expect(none.code).toBe(1);
    expect(none.stdout).toMatch(/no reader answered/);
    const bad = await run(['osdp', 'scan', pty.gateway, '--baud', '4800']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/OSDP speeds are 9600, 19200, 38400, 57600, 115200/);
    const missing = await run(['osdp', 'scan', '/dev/nonexistent-tty', '--baud', '9600']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nonexistent-tty/);
  }, 20_000);
});
