/**
 * Relay and input backends by configuration: `sim` in memory; `gpio` through the GPIO character
 * device (cdev.ts) or sysfs through onoff (onoff.ts), as `gpio.backend` says — `auto` takes the
 * character device where one exists and doorgw's addon is built. Each is loaded only when used.
 */
import type { Config, DoorConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { SimRelay, type Relay } from '../relay.js';
import { GpioUnavailableError, sysfsNumber } from './sysfs.js';

export interface InputSpec {
  /** The door it belongs to; `io` for the gateway's named inputs (io.inputs). */
  door: string;
  /** exit_button, door_contact, or the named input's name. */
  name: string;
  /** BCM number, or `line`: the line's name (character device only). */
  pin?: number | undefined;
  line?: string | undefined;
  activeLow: boolean;
  debounceMs: number;
  /** The pull resistor (character device only; absent: as the line is). */
  bias?: 'pull-up' | 'pull-down' | 'disabled' | undefined;
  /** Debounced logical level: exit button pressed / door contact closed. */
  onChange: (active: boolean) => void;
}

export interface Input {
  /**
   * The debounced logical level now — read when the input is opened, so the level at start is a
   * state (a door standing open when the gateway starts is open, not "unknown" until it moves).
   */
  readonly active: boolean;
  close(): void;
}

/** Which GPIO interface this configuration uses on this system, and why (for logs and `hw probe`). */
export async function gpioBackend(config: Config): Promise<{ backend: 'cdev' | 'sysfs'; why: string }> {
  const g = config.gpio;
  if (g.backend === 'cdev') return { backend: 'cdev', why: 'gpio.backend: cdev' };
  if (g.backend === 'sysfs') return { backend: 'sysfs', why: 'gpio.backend: sysfs' };
  const { addonBuilt, chipDevices } = await import('./cdev.js');
  const chips = chipDevices();
  if (chips.length && addonBuilt()) return { backend: 'cdev', why: `auto: ${chips.join(', ')} present and the addon is built` };
  return { backend: 'sysfs', why: chips.length ? 'auto: the character-device addon is not built' : 'auto: no /dev/gpiochip* here' };
}

const sysfs = (config: Config, pin: number): number => sysfsNumber(pin, { root: config.gpio.sysfs_root, chipLabel: config.gpio.chip_label, base: config.gpio.base });

/** The door's relay, at its idle level from the moment it is opened. */
export async function openRelay(door: DoorConfig, config: Config, log: Logger): Promise<Relay> {
  const rlog = log.child({ module: 'relay', door: door.id });
  if (door.relay.driver === 'sim') return new SimRelay(door.id, rlog);
  if ((await gpioBackend(config)).backend === 'cdev') {
    const { CdevRelay, resolveLine } = await import('./cdev.js');
    const { chip, offset } = resolveLine({ chip: config.gpio.chip, chipLabel: config.gpio.chip_label }, door.relay.pin, door.relay.line);
    return CdevRelay.open({ door: door.id, chip, offset, activeLow: door.relay.active_low, lockType: door.relay.lock_type, log: rlog });
  }
  if (door.relay.pin === undefined) throw new GpioUnavailableError(`door '${door.id}': relay line ${door.relay.line}: line names need the character device (gpio.backend: cdev); with sysfs give the BCM pin`);
  const { GpioRelay } = await import('./onoff.js');
  return GpioRelay.open({ door: door.id, number: sysfs(config, door.relay.pin), activeLow: door.relay.active_low, lockType: door.relay.lock_type, log: rlog });
}

/**
 * A named output (siren, strobe, auxiliary relay): a relay whose energised level is "on", idle
 * (off) from the moment it is opened.
 */
export async function openOutput(name: string, o: Config['io']['outputs'][string], config: Config, log: Logger): Promise<Relay> {
  const olog = log.child({ module: 'output', output: name });
  if (o.driver === 'sim') return new SimRelay(name, olog);
  if ((await gpioBackend(config)).backend === 'cdev') {
    const { CdevRelay, resolveLine } = await import('./cdev.js');
    const { chip, offset } = resolveLine({ chip: config.gpio.chip, chipLabel: config.gpio.chip_label }, o.pin, o.line);
    return CdevRelay.open({ door: `io.${name}`, chip, offset, activeLow: o.active_low, lockType: 'fail_secure', log: olog });
  }
  if (o.pin === undefined) throw new GpioUnavailableError(`output '${name}': line ${o.line}: line names need the character device (gpio.backend: cdev); with sysfs give the BCM pin`);
  const { GpioRelay } = await import('./onoff.js');
  return GpioRelay.open({ door: `io.${name}`, number: sysfs(config, o.pin), activeLow: o.active_low, lockType: 'fail_secure', log: olog });
}

/** A door input (exit button, door contact) or a named input on GPIO. */
export async function openInput(spec: InputSpec, config: Config, log: Logger): Promise<Input> {
  if ((await gpioBackend(config)).backend === 'cdev') {
    const { CdevInput, resolveLine } = await import('./cdev.js');
    const { chip, offset } = resolveLine({ chip: config.gpio.chip, chipLabel: config.gpio.chip_label }, spec.pin, spec.line);
    return CdevInput.open({ name: `${spec.door}.${spec.name}`, chip, offset, activeLow: spec.activeLow, debounceMs: spec.debounceMs, bias: spec.bias, onChange: spec.onChange, log: log.child({ module: 'input', door: spec.door }) });
  }
  if (spec.bias) log.warn({ input: `${spec.door}.${spec.name}`, bias: spec.bias }, 'sysfs cannot set a pull resistor: set it in config.txt (e.g. gpio=5=ip,pu), or the line floats');
  if (spec.pin === undefined) throw new GpioUnavailableError(`door '${spec.door}': ${spec.name} line ${spec.line}: line names need the character device (gpio.backend: cdev); with sysfs give the BCM pin`);
  const { GpioInput } = await import('./onoff.js');
  return GpioInput.open({ name: `${spec.door}.${spec.name}`, number: sysfs(config, spec.pin), activeLow: spec.activeLow, debounceMs: spec.debounceMs, onChange: spec.onChange, log: log.child({ module: 'input', door: spec.door }) });
}
