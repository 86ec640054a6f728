/**
 * GPIO through onoff — the only module that imports it, loaded only when a door uses `gpio`.
 *
 * Levels are computed here as physical levels (the kernel's active_low is left at 0), so the line
 * is configured at its idle level in the same write that makes it an output: an active-high strike
 * never sees a high at start. Outputs are never unexported (an unexported pin floats as an input,
 * which energises some relay boards); on shutdown the idle level is written and left.
 */
import type { Logger } from '../../log.js';
import type { Relay } from '../relay.js';
import { DebouncedLevel } from './debounce.js';
import { LevelRelay, relayLevels } from './level-relay.js';
import { GpioUnavailableError } from './sysfs.js';

type GpioCtor = typeof import('onoff').Gpio;
type GpioT = InstanceType<GpioCtor>;
let ctor: GpioCtor | null = null;

async function onoff(): Promise<GpioCtor> {
  if (ctor) return ctor;
  try {
    ctor = (await import('onoff')).Gpio;
    return ctor;
  } catch (e) {
    throw new GpioUnavailableError(`the GPIO library (onoff/epoll) could not load: ${(e as Error).message}. Reinstall with build tools present (npm ci), or use relay.driver: sim`);
  }
}

/**
 * Construct a Gpio, retrying while the exported pin's files are not there or not yet accessible:
 * after `export` the kernel creates gpioN/ and udev then changes its group, asynchronously.
 * onoff only busy-waits briefly; on a loaded or slow board that is not always enough.
 */
async function withExportRetry<T>(make: () => T, attempts = 40, delayMs = 50): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return make();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (i >= attempts || (code !== 'ENOENT' && code !== 'EACCES')) throw e;
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}

function explain(e: unknown, what: string): Error {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'EACCES') return new GpioUnavailableError(`${what}: permission denied; add the service user to the gpio group (deploy/udev/99-doorgw-gpio.rules)`);
  if (err.code === 'EINVAL') return new GpioUnavailableError(`${what}: the kernel refused the GPIO number (EINVAL) — the sysfs base is wrong for this image; set gpio.base or gpio.chip_label`);
  return new GpioUnavailableError(`${what}: ${err.message}`);
}

export interface GpioRelayOptions {
  door: string;
  /** sysfs number. */
  number: number;
  activeLow: boolean;
  /** fail_secure: energise to release (strike). fail_safe: de-energise to release (maglock held while idle). */
  lockType: 'fail_secure' | 'fail_safe';
  log: Logger;
}

/** A relay on a sysfs GPIO, at its idle level from the moment it is exported. */
export const GpioRelay = {
  async open(o: GpioRelayOptions): Promise<Relay> {
    const Gpio = await onoff();
    const levels = relayLevels(o.activeLow, o.lockType);
    let gpio: GpioT;
    try {
      // 'high'/'low' set direction and initial level in one write: no glitch through the other level.
      gpio = await withExportRetry(() => new Gpio(o.number, levels.idle === 1 ? 'high' : 'low', 'none', { activeLow: false }));
    } catch (e) {
      throw explain(e, `door '${o.door}': relay GPIO ${o.number}`);
    }
    o.log.info({ gpio: o.number, active_low: o.activeLow, lock_type: o.lockType, idle_level: levels.idle }, 'relay on GPIO ready (locked)');
    // Not unexported on close: see the module comment.
    return new LevelRelay((v) => gpio.writeSync(v), levels, o.log);
  },
};

export interface GpioInputOptions {
  name: string;
  number: number;
  activeLow: boolean;
  debounceMs: number;
  /** Logical level changes (1 = active), debounced. */
  onChange: (active: boolean) => void;
  log: Logger;
  pollMs?: number;
}

/** An input by interrupts (epoll on the value file) or, where edges are unavailable, by polling. */
export class GpioInput {
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly gpio: GpioT,
    private readonly level: DebouncedLevel,
    readonly mode: 'interrupt' | 'poll',
  ) {}

  static async open(o: GpioInputOptions): Promise<GpioInput> {
    const Gpio = await onoff();
    const toLogical = (physical: number): number => (o.activeLow ? 1 - physical : physical);
    let gpio: GpioT;
    try {
      gpio = await withExportRetry(() => new Gpio(o.number, 'in', 'both', { activeLow: false }));
    } catch (e) {
      throw explain(e, `input '${o.name}' GPIO ${o.number}`);
    }
    const level = new DebouncedLevel(o.debounceMs, (v) => o.onChange(v === 1), toLogical(gpio.readSync()));
    let mode: 'interrupt' | 'poll' = 'interrupt';
    try {
      // onoff attaches epoll here; it fails where the value file cannot signal edges.
      gpio.watch((err, value) => {
        if (err) return o.log.warn({ err: err.message, gpio: o.number }, 'input interrupt error');
        level.sample(toLogical(value));
      });
    } catch (e) {
      o.log.warn({ gpio: o.number, err: (e as Error).message }, 'edge interrupts unavailable; polling the input');
      mode = 'poll';
    }
    const input = new GpioInput(gpio, level, mode);
    if (mode === 'poll') {
      input.timer = setInterval(() => level.sample(toLogical(gpio.readSync())), o.pollMs ?? 20);
      input.timer.unref();
    }
    o.log.info({ input: o.name, gpio: o.number, mode, active_low: o.activeLow }, 'input on GPIO ready');
    return input;
  }

  /** Current debounced logical level. */
  get active(): boolean {
    return this.level.value === 1;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.level.stop();
    try {
      this.gpio.unwatchAll();
      this.gpio.unexport(); // inputs may be released
    } catch {
      /* already gone */
    }
  }
}
