/**
 * USB HID scanners through node-hid — the only module that imports it, loaded only when a reader
 * is `hid` (or `doorgw hid …` runs). hidraw backend on Linux. Devices are chosen by vendor/product
 * id, serial or path; an unplugged device is looked for again every 2 s.
 */
import type { Logger } from '../../log.js';
import { KeyboardDecoder, type Terminator } from './keyboard.js';
import { LAYOUTS, type LayoutName } from './layouts.js';
import { PosDecoder } from './pos.js';

export class HidUnavailableError extends Error {}

export interface HidDeviceInfo {
  vendorId: number;
  productId: number;
  path?: string | undefined;
  serialNumber?: string | undefined;
  manufacturer?: string | undefined;
  product?: string | undefined;
  usagePage?: number | undefined;
  usage?: number | undefined;
  interface?: number | undefined;
}

interface HidDevice {
  on(ev: 'data', cb: (b: Buffer) => void): void;
  on(ev: 'error', cb: (e: Error) => void): void;
  close(): void;
}
interface NodeHid {
  devices(): HidDeviceInfo[];
  HID: new (path: string) => HidDevice;
  setDriverType?: (t: 'hidraw' | 'libusb') => void;
}

let lib: NodeHid | null = null;

export async function loadNodeHid(): Promise<NodeHid> {
  if (lib) return lib;
  try {
    const m = (await import('node-hid')) as unknown as { default?: NodeHid } & NodeHid;
    const h = m.default ?? m;
    if (process.platform === 'linux') h.setDriverType?.('hidraw');
    lib = h;
    return h;
  } catch (e) {
    throw new HidUnavailableError(
      `the USB HID library (node-hid) could not load: ${(e as Error).message}. On Debian/Raspberry Pi OS install libudev1 and libusb-1.0-0, then reinstall (npm ci)`,
    );
  }
}

export async function listDevices(): Promise<HidDeviceInfo[]> {
  return (await loadNodeHid()).devices();
}

export interface DeviceSelector {
  vendorId?: number | undefined;
  productId?: number | undefined;
  serial?: string | undefined;
  path?: string | undefined;
}

export function matches(d: HidDeviceInfo, s: DeviceSelector): boolean {
  return (
    (s.path === undefined || d.path === s.path) &&
    (s.vendorId === undefined || d.vendorId === s.vendorId) &&
    (s.productId === undefined || d.productId === s.productId) &&
    (s.serial === undefined || d.serialNumber === s.serial)
  );
}


const hex4 = (n: number | undefined): string => (n ?? 0).toString(16).padStart(4, '0');

export interface HidReaderOptions {
  name: string;
  selector: DeviceSelector;
  mode: 'keyboard' | 'pos';
  layout: LayoutName;
  terminator: Terminator;
  idleMs: number;
  onScan: (text: string) => void;
  log: Logger;
  retryMs?: number;
}

/** A scanner: open, decode, and reopen after an unplug. */
export class HidReader {
  private device: HidDevice | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private warnedMissing = false;

  private constructor(
    private readonly hid: NodeHid,
    private readonly o: HidReaderOptions,
  ) {}

  static async open(o: HidReaderOptions): Promise<HidReader> {
    const r = new HidReader(await loadNodeHid(), o);
    r.attempt();
    return r;
  }

  private attempt(): void {
    if (this.stopped) return;
    const { o } = this;
    const found = this.hid.devices().filter((d) => matches(d, o.selector) && d.path);
    // A keyboard-mode scanner exposes its keyboard interface (usage page 1, usage 6); prefer it.
    const pick = o.mode === 'keyboard' ? (found.find((d) => d.usagePage === 1 && d.usage === 6) ?? found[0]) : (found.find((d) => d.usagePage === 0x8c) ?? found[0]);
    if (!pick) {
      if (!this.warnedMissing) o.log.warn({ reader: o.name, selector: o.selector }, 'scanner not connected; looking for it every 2 s');
      this.warnedMissing = true;
      return this.retry();
    }
    let dev: HidDevice;
    try {
      dev = new this.hid.HID(pick.path!);
    } catch (e) {
      const msg = (e as Error).message;
      const perm = /permission|cannot open|EACCES/i.test(msg);
      o.log.error(
        { reader: o.name, path: pick.path, err: msg },
        perm
          ? `cannot open ${pick.path}: permission denied; install deploy/udev/60-doorgw-hid.rules (hidraw access for the doorgw group) and replug the scanner`
          : 'cannot open the scanner',
      );
      return this.retry();
    }
    this.warnedMissing = false;
    this.device = dev;
    o.log.info({ reader: o.name, path: pick.path, vid: hex4(pick.vendorId), pid: hex4(pick.productId), product: pick.product }, 'scanner connected');
    const decoder =
      o.mode === 'pos'
        ? new PosDecoder((text) => o.onScan(text))
        : new KeyboardDecoder({ layout: LAYOUTS[o.layout], terminator: o.terminator, idleMs: o.idleMs, onScan: (text) => o.onScan(text) });
    dev.on('data', (b) => decoder.push(b));
    dev.on('error', (e) => {
      o.log.warn({ reader: o.name, err: e.message }, 'scanner gone (unplugged?); looking for it again');
      if (decoder instanceof KeyboardDecoder) decoder.flush();
      try {
        dev.close();
      } catch {
        /* already closed */
      }
      this.device = null;
      this.retry();
    });
  }

  private retry(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.attempt(), this.o.retryMs ?? 2000);
    this.timer.unref();
  }

  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    try {
      this.device?.close();
    } catch {
      /* gone */
    }
  }
}
