/**
 * GPIO through the character device (Linux GPIO uAPI v2), by doorgw's own small addon
 * (src/io/gpio/native/gpio_cdev.c, built with the system compiler by scripts/build-native.sh): the interface
 * recent kernels keep and Raspberry Pi OS trixie is left with. A relay's line is requested as an
 * output *with* its idle level (never driven to anything else first); inputs get kernel debounce
 * where the chip has it (else the same debounce in user space) and edge events stamped by the kernel.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Logger } from '../../log.js';
import type { Relay } from '../relay.js';
import { DebouncedLevel } from './debounce.js';
import { LevelRelay, relayLevels } from './level-relay.js';
import { GpioUnavailableError, PI_CHIP_LABELS } from './sysfs.js';

export interface CdevBinding {
  chipInfo(path: string): { name: string; label: string; lines: number };
  lineInfo(path: string, offset: number): { name: string; consumer: string; used: boolean; output: boolean };
  request(path: string, consumer: string, offsets: number[], o: { output?: boolean; values?: number[]; edges?: 'none' | 'both' | 'rising' | 'falling'; debounceUs?: number; bias?: string }): number;
  setValues(fd: number, values: number[]): void;
  getValues(fd: number, count: number): number[];
  watch(fd: number, cb: (offset: number, rising: boolean, ns: bigint, seqno: number) => void): unknown;
  unwatch(handle: unknown): void;
  close(fd: number): void;
}

/** Where the build puts the addon (from src/ in development and dist/ when installed alike). */
export const ADDON_PATH = new URL('../../../dist/io/gpio/gpio_cdev.node', import.meta.url).pathname;
let binding: CdevBinding | null = null;

export function cdevBinding(): CdevBinding {
  if (binding) return binding;
  if (!existsSync(ADDON_PATH)) throw new GpioUnavailableError(`the GPIO character-device addon is not built (${ADDON_PATH}): run \`sh scripts/build-native.sh\` with build-essential installed (the Ansible role does)`);
  try {
    binding = createRequire(import.meta.url)(ADDON_PATH) as CdevBinding;
    return binding;
  } catch (e) {
    throw new GpioUnavailableError(`the GPIO character-device addon did not load: ${(e as Error).message}; rebuild it on this machine (sh scripts/build-native.sh)`);
  }
}

export const addonBuilt = (): boolean => existsSync(ADDON_PATH);

/** /dev/gpiochipN devices present. */
export function chipDevices(dev = '/dev'): string[] {
  try {
    return readdirSync(dev).filter((n) => /^gpiochip\d+$/.test(n)).map((n) => `${dev}/${n}`).sort();
  } catch {
    return [];
  }
}

function explain(e: unknown, what: string): Error {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'EACCES' || err.code === 'EPERM') return new GpioUnavailableError(`${what}: permission denied; the service user needs the gpio group (deploy/udev/99-doorgw-gpio.rules gives it /dev/gpiochip*)`);
  if (err.code === 'EBUSY') return new GpioUnavailableError(`${what}: the line is in use by another program (\`doorgw hw probe\` or gpioinfo shows its consumer)`);
  if (err.code === 'EINVAL') return new GpioUnavailableError(`${what}: the kernel refused the request (EINVAL): no such line on this chip?`);
  return new GpioUnavailableError(`${what}: ${err.message}`);
}

/** The gpiochip to use: the configured one, or the one labelled like a Raspberry Pi pin controller. */
export function findChip(o: { chip?: string | undefined; chipLabel?: string | undefined }, b: CdevBinding = cdevBinding(), devices = chipDevices()): string {
  if (o.chip) {
    try {
      const info = b.chipInfo(o.chip);
      if (o.chipLabel && info.label !== o.chipLabel) throw new GpioUnavailableError(`${o.chip} is labelled ${info.label}, not ${o.chipLabel}`);
      return o.chip;
    } catch (e) {
      if (e instanceof GpioUnavailableError) throw e;
      throw explain(e, o.chip);
    }
  }
  const labels = o.chipLabel ? [o.chipLabel] : PI_CHIP_LABELS;
  const seen: string[] = [];
  for (const path of devices) {
    try {
      const info = b.chipInfo(path);
      if (labels.includes(info.label)) return path;
      seen.push(`${path} (${info.label}, ${info.lines} lines)`);
    } catch (e) {
      seen.push(`${path} (${(e as Error).message})`);
    }
  }
  throw new GpioUnavailableError(`no gpiochip labelled ${labels.join(' or ')} (found: ${seen.join('; ') || 'none'}); set gpio.chip or gpio.chip_label`);
}

/**
 * A line by BCM number on the Raspberry Pi's chip, or by its name (`GPIO17`, as the kernel's
 * device tree names it) on whichever chip has it.
 */
export function resolveLine(o: { chip?: string | undefined; chipLabel?: string | undefined }, pin: number | undefined, line: string | undefined, b: CdevBinding = cdevBinding(), devices = chipDevices()): { chip: string; offset: number } {
  if (line === undefined) return { chip: findChip(o, b, devices), offset: pin! };
  const chips = [...new Set([...(o.chip ? [o.chip] : []), ...devices])];
  for (const path of chips) {
    let lines = 0;
    try {
      lines = b.chipInfo(path).lines;
    } catch {
      continue;
    }
    for (let i = 0; i < Math.min(lines, 512); i++) if (b.lineInfo(path, i).name === line) return { chip: path, offset: i };
  }
  throw new GpioUnavailableError(`no GPIO line named ${line} on ${chips.join(', ') || 'any gpiochip'} (\`doorgw hw probe\` lists the chips; or give the BCM pin)`);
}

export interface CdevRelayOptions {
  door: string;
  chip: string;
  offset: number;
  activeLow: boolean;
  lockType: 'fail_secure' | 'fail_safe';
  log: Logger;
  binding?: CdevBinding;
}

/**
 * A relay on a character-device line, requested with its idle level. On close it stays requested
 * at idle: a released line's level is the driver's to choose. The process's exit releases it.
 */
export const CdevRelay = {
  open(o: CdevRelayOptions): Relay {
    const b = o.binding ?? cdevBinding();
    const levels = relayLevels(o.activeLow, o.lockType);
    let fd: number;
    try {
      fd = b.request(o.chip, `doorgw-${o.door}-relay`, [o.offset], { output: true, values: [levels.idle] });
    } catch (e) {
      throw explain(e, `door '${o.door}': relay on ${o.chip} line ${o.offset}`);
    }
    o.log.info({ chip: o.chip, line: o.offset, active_low: o.activeLow, lock_type: o.lockType, idle_level: levels.idle, backend: 'cdev' }, 'relay on GPIO ready (locked)');
    return new LevelRelay((v) => b.setValues(fd, [v]), levels, o.log);
  },
};

export interface CdevInputOptions {
  name: string;
  chip: string;
  offset: number;
  activeLow: boolean;
  debounceMs: number;
  bias?: 'pull-up' | 'pull-down' | 'disabled' | undefined;
  onChange: (active: boolean) => void;
  log: Logger;
  binding?: CdevBinding;
}

export class CdevInput {
  private constructor(
    private readonly b: CdevBinding,
    private readonly fd: number,
    private readonly handle: unknown,
    private readonly level: DebouncedLevel,
    readonly debounce: 'kernel' | 'user',
  ) {}

  static open(o: CdevInputOptions): CdevInput {
    const b = o.binding ?? cdevBinding();
    const consumer = `doorgw-${o.name}`.slice(0, 31);
    let fd: number;
    let debounce: 'kernel' | 'user' = 'kernel';
    const bias = o.bias ? { bias: o.bias } : {};
    try {
      try {
        fd = b.request(o.chip, consumer, [o.offset], { output: false, edges: 'both', ...bias, ...(o.debounceMs > 0 ? { debounceUs: o.debounceMs * 1000 } : {}) });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (o.debounceMs <= 0 || (code !== 'EINVAL' && code !== 'ENOTSUP')) throw e;
        // A chip without hardware or kernel debounce: the same debounce, in user space.
        fd = b.request(o.chip, consumer, [o.offset], { output: false, edges: 'both', ...bias });
        debounce = 'user';
      }
    } catch (e) {
      throw explain(e, `input '${o.name}' on ${o.chip} line ${o.offset}`);
    }
    const logical = (physical: number): number => (o.activeLow ? 1 - physical : physical);
    const level = new DebouncedLevel(debounce === 'kernel' ? 0 : o.debounceMs, (v) => o.onChange(v === 1), logical(b.getValues(fd, 1)[0]!));
    const handle = b.watch(fd, (_offset, rising) => level.sample(logical(rising ? 1 : 0)));
    o.log.info({ input: o.name, chip: o.chip, line: o.offset, debounce, active_low: o.activeLow, bias: o.bias ?? 'as-is', backend: 'cdev' }, 'input on GPIO ready');
    return new CdevInput(b, fd, handle, level, debounce);
  }

  get active(): boolean {
    return this.level.value === 1;
  }

  close(): void {
    this.level.stop();
    this.b.unwatch(this.handle);
    this.b.close(this.fd);
  }
}
