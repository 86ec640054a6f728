/** `doorgw hid …`: diagnose scanners on site. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseCapture } from '../io/hid/capture.js';
import { KeyboardDecoder, type Terminator } from '../io/hid/keyboard.js';
import { LAYOUTS, type LayoutName } from '../io/hid/layouts.js';
import { PosDecoder } from '../io/hid/pos.js';
import { UsageError } from '../control/errors.js';

const hexId = (v: string, name: string): number => {
  const n = Number(v.startsWith('0x') ? v : `0x${v}`);
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new UsageError(`${name} '${v}' is not a 16-bit id (e.g. 0x0581)`);
  return n;
};

export function addHidCommands(program: Command, out: (s: string) => void, json: (v: unknown) => void): void {
  const hid = program.command('hid').description('USB HID scanners: list, sniff, replay captures');

  hid
    .command('list')
    .description('HID devices this user can see (vendor/product ids, usage page, path)')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const { listDevices } = await import('../io/hid/device.js');
      const devices = await listDevices();
      if (o.json) return json(devices);
      if (!devices.length) return out('no HID devices (none plugged in, or no permission on /dev/hidraw*: see docs/hardware.md, "Scanners")');
      out('VID:PID\tUSAGE\tPATH\tPRODUCT');
      for (const d of devices) {
        const usage = d.usagePage === 1 && d.usage === 6 ? 'keyboard' : d.usagePage === 0x8c ? 'hid-pos' : `${(d.usagePage ?? 0).toString(16)}:${(d.usage ?? 0).toString(16)}`;
        out(`${d.vendorId.toString(16).padStart(4, '0')}:${d.productId.toString(16).padStart(4, '0')}\t${usage}\t${d.path ?? ''}\t${[d.manufacturer, d.product].filter(Boolean).join(' ')}`);
      }
    });

  const decodeOpts = (c: Command): Command =>
    c
      .option('--mode <mode>', 'keyboard or pos', 'keyboard')
      .option('--layout <layout>', `keyboard layout (${Object.keys(LAYOUTS).join(', ')})`, 'us')
      .option('--terminator <key>', 'enter, tab or none', 'enter');
  type DecodeOpts = { mode: string; layout: string; terminator: string };
  const check = (o: DecodeOpts): void => {
    if (!['keyboard', 'pos'].includes(o.mode)) throw new UsageError(`--mode ${o.mode}: keyboard or pos`);
    if (!(o.layout in LAYOUTS)) throw new UsageError(`--layout ${o.layout}: one of ${Object.keys(LAYOUTS).join(', ')}`);
    if (!['enter', 'tab', 'none'].includes(o.terminator)) throw new UsageError(`--terminator ${o.terminator}: enter, tab or none`);
  };

  decodeOpts(hid.command('replay'))
    .description('decode a recorded capture (one raw report per line, hex) and print the scans')
    .argument('<capture>', 'capture file')
    .option('--json', 'machine-readable output')
    .action((file: string, o: DecodeOpts & { json?: boolean }) => {
      check(o);
      let reports: Buffer[];
      try {
        reports = parseCapture(readFileSync(file, 'utf8'));
      } catch (e) {
        throw new UsageError(`${file}: ${(e as Error).message}`);
      }
      const scans: { text: string; end: string }[] = [];
      let malformed = 0;
      if (o.mode === 'pos') {
        const d = new PosDecoder((text, sym) => scans.push({ text, end: `symbology ${sym}` }));
        reports.forEach((r) => d.push(r));
        malformed = d.malformed;
      } else {
        const d = new KeyboardDecoder({ layout: LAYOUTS[o.layout as LayoutName], terminator: o.terminator as Terminator, idleMs: 0, onScan: (text, how) => scans.push({ text, end: how === 'flush' ? 'end of capture (no terminator)' : how }) });
        reports.forEach((r) => d.push(r));
        d.flush();
        malformed = d.malformed;
      }
      if (o.json) return json({ reports: reports.length, malformed, scans });
      out(`${reports.length} reports, ${malformed} malformed, ${scans.length} scan${scans.length === 1 ? '' : 's'}`);
      for (const s of scans) out(`${s.text}\t(${s.end})`);
    });

  decodeOpts(hid.command('sniff'))
    .description('print decoded scans from a live scanner (Ctrl-C stops)')
    .option('--vendor-id <hex>', 'vendor id, e.g. 0x0581')
    .option('--product-id <hex>', 'product id')
    .option('--serial <s>', 'serial number')
    .option('--path <p>', 'hidraw path, e.g. /dev/hidraw0')
    .action(async (o: DecodeOpts & { vendorId?: string; productId?: string; serial?: string; path?: string }) => {
      check(o);
      const { HidReader } = await import('../io/hid/device.js');
      const { createLogger } = await import('../log.js');
      const log = createLogger({ level: 'info', pretty: 'auto', destination: process.stderr });
      const reader = await HidReader.open({
        name: 'sniff',
        selector: { vendorId: o.vendorId ? hexId(o.vendorId, '--vendor-id') : undefined, productId: o.productId ? hexId(o.productId, '--product-id') : undefined, serial: o.serial, path: o.path },
        mode: o.mode as 'keyboard' | 'pos',
        layout: o.layout as LayoutName,
        terminator: o.terminator as Terminator,
        idleMs: 150,
        onScan: (text) => out(text),
        log,
      });
      await new Promise<void>((r) => {
        process.once('SIGINT', r);
        process.once('SIGTERM', r);
      });
      reader.close();
    });
}
