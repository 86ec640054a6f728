import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeQr } from '../../src/domain/qr.js';
import { parseCapture } from '../../src/io/hid/capture.js';
import { matches } from '../../src/io/hid/device.js';
import { KeyboardDecoder, type Terminator } from '../../src/io/hid/keyboard.js';
import { DE, US, type Layout } from '../../src/io/hid/layouts.js';
import { PosDecoder } from '../../src/io/hid/pos.js';

const QR = 'AQD//////////2VDIQABLNMqh6l6m/SlRjJXeyUxB8lAXqbtCwFSQnyRJ5eVv4wXJXUJ/mBgO2KJcHp4XD4Q1Sw+NSLHWcb0li4ySbahwz4=';
const capture = (name: string): Buffer[] => parseCapture(readFileSync(new URL(`../fixtures/hid/${name}`, import.meta.url), 'utf8'));

function keyboard(reports: Buffer[], o: { layout?: Layout; terminator?: Terminator; idleMs?: number } = {}) {
  const scans: [string, string][] = [];
  const d = new KeyboardDecoder({ layout: o.layout ?? US, terminator: o.terminator ?? 'enter', idleMs: o.idleMs ?? 0, onScan: (t, how) => scans.push([t, how]) });
  for (const r of reports) d.push(r);
  return { scans, d };
}

afterEach(() => vi.useRealTimers());

describe('keyboard-mode scanner captures', () => {
  it('types a whole WeCom QR payload exactly, + / = and shifted letters included', () => {
    const { scans } = keyboard(capture('keyboard-wecom-qr.hex'));
    expect(scans).toEqual([[QR, 'terminator']]);
    expect(decodeQr(scans[0]![0]).ok).toBe(true);
  });

  it('keeps key order under rollover and strips report ids', () => {
    expect(keyboard(capture('keyboard-rollover.hex')).scans).toEqual([['Rollover+Test/123==', 'terminator']]);
  });

  it('ends a truncated scan at the idle timeout (and QR decoding then calls it malformed)', () => {
    vi.useFakeTimers();
    const { scans } = keyboard(capture('keyboard-truncated.hex'), { idleMs: 150 });
    expect(scans).toEqual([]);
    vi.advanceTimersByTime(150);
    expect(scans).toEqual([[QR.slice(0, 40), 'idle']]);
    expect(decodeQr(scans[0]![0])).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('applies Caps Lock to letters only', () => {
    expect(keyboard(capture('keyboard-capslock.hex')).scans).toEqual([['ABc1', 'terminator'], ['ab', 'terminator']]);
  });

  it('ignores phantom-state reports, wrong lengths and non-printing keys', () => {
    const { scans, d } = keyboard(capture('keyboard-garbage.hex'));
    expect(scans).toEqual([['ok', 'terminator']]);
    expect(d.malformed).toBe(2);
  });

  it('decodes with the configured layout (German: y/z swapped, / on shift+7)', () => {
    const rep = (mod: number, k: number) => Buffer.from([mod, 0, k, 0, 0, 0, 0, 0]);
    const up = Buffer.alloc(8);
    const reports = [rep(0, 0x1c), up, rep(0, 0x1d), up, rep(2, 0x24), up, rep(0, 0x28), up];
    expect(keyboard(reports, { layout: DE }).scans).toEqual([['zy/', 'terminator']]);
    expect(keyboard(reports, { layout: US }).scans).toEqual([['yz&', 'terminator']]);
  });

  it('supports Tab as terminator and bounds a runaway scan', () => {
    const rep = (k: number) => Buffer.from([0, 0, k, 0, 0, 0, 0, 0]);
    const up = Buffer.alloc(8);
    expect(keyboard([rep(0x04), up, rep(0x2b), up], { terminator: 'tab' }).scans).toEqual([['a', 'terminator']]);
    const scans: string[] = [];
    const d = new KeyboardDecoder({ layout: US, terminator: 'enter', idleMs: 0, maxLength: 10, onScan: (t) => scans.push(t) });
    for (let i = 0; i < 25; i++) {
      d.push(rep(0x04));
      d.push(up);
    }
    expect(scans).toEqual(['a'.repeat(10), 'a'.repeat(10)]);
  });
});

describe('HID-POS scanner captures', () => {
  it('reassembles a barcode across Scanned Data Reports and ignores other report ids', () => {
    const scans: [string, string][] = [];
    const d = new PosDecoder((t, sym) => scans.push([t, sym]));
    for (const r of capture('pos-wecom-qr.hex')) d.push(r);
    expect(scans).toEqual([[QR, ']Q1']]);
  });

  it('drops a report whose length byte lies', () => {
    const scans: string[] = [];
    const d = new PosDecoder((t) => scans.push(t));
    const r = Buffer.alloc(64);
    r[0] = 2;
    r[1] = 200;
    d.push(r);
    expect([scans, d.malformed]).toEqual([[], 1]);
  });
});

describe('captures and device selection', () => {
  it('parses hex with spaces, colons and comments, and names a bad line', () => {
    expect(parseCapture('# x\n00 01:02\n\n0a0b # y\n')).toEqual([Buffer.from([0, 1, 2]), Buffer.from([10, 11])]);
    expect(() => parseCapture('00 01\nzz\n')).toThrow(/line 2: not hex/);
  });

  it('selects devices by vendor/product id, serial or path', () => {
    const d = { vendorId: 0x0581, productId: 0x0115, path: '/dev/hidraw3', serialNumber: 'S1' };
    expect(matches(d, { vendorId: 0x0581, productId: 0x0115 })).toBe(true);
    expect(matches(d, { serial: 'S2' })).toBe(false);
    expect(matches(d, { path: '/dev/hidraw3' })).toBe(true);
    expect(matches(d, { vendorId: 0x0582 })).toBe(false);
  });
});

describe('doorgw hid (the commands)', () => {
  const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;
  const run = async (args: string[]) => {
    const { spawnSync } = await import('node:child_process');
    return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  };
  const fixture = (n: string): string => new URL(`../fixtures/hid/${n}`, import.meta.url).pathname;

  it('replays captures in both modes', async () => {
    const kb = await run(['hid', 'replay', fixture('keyboard-wecom-qr.hex'), '--json']);
    expect(kb.status).toBe(0);
    expect(JSON.parse(kb.stdout)).toMatchObject({ malformed: 0, scans: [{ text: QR, end: 'terminator' }] });
    const pos = await run(['hid', 'replay', fixture('pos-wecom-qr.hex'), '--mode', 'pos']);
    expect(pos.stdout).toContain(QR);
    const cut = await run(['hid', 'replay', fixture('keyboard-truncated.hex')]);
    expect(cut.stdout).toMatch(/end of capture \(no terminator\)/);
    expect((await run(['hid', 'replay', fixture('keyboard-wecom-qr.hex'), '--layout', 'fr'])).status).toBe(2);
  });

  it('loads the native HID library and lists devices (none on a build machine)', async () => {
    const r = await run(['hid', 'list', '--json']);
    expect(r.status).toBe(0);
    expect(Array.isArray(JSON.parse(r.stdout))).toBe(true);
  });
});
