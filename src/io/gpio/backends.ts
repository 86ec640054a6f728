/**
 * Relay and input backends by configuration: `sim` in memory, `gpio` through onoff on sysfs (loaded
 * only when configured). A new backend (the GPIO character device) is a module in this folder and a
 * branch here.
 */
import type { Config, DoorConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { SimRelay, type Relay } from '../relay.js';
import { sysfsNumber } from './sysfs.js';

export interface InputSpec {
  door: string;
  name: 'exit_button' | 'door_contact';
  pin: number;
  activeLow: boolean;
  debounceMs: number;
  /** Debounced logical level: exit button pressed / door contact closed. */
  onChange: (active: boolean) => void;
}

export interface Input {
  close(): void;
}

const sysfs = (config: Config, pin: number): number => sysfsNumber(pin, { root: config.gpio.sysfs_root, chipLabel: config.gpio.chip_label, base: config.gpio.base });

/** The door's relay, at its idle level from the moment it is opened. */
export async function openRelay(door: DoorConfig, config: Config, log: Logger): Promise<Relay> {
  const rlog = log.child({ module: 'relay', door: door.id });
  if (door.relay.driver === 'sim') return new SimRelay(door.id, rlog);
  const { GpioRelay } = await import('./onoff.js');
  return GpioRelay.open({ door: door.id, number: sysfs(config, door.relay.pin!), activeLow: door.relay.active_low, lockType: door.relay.lock_type, log: rlog });
}

/** A door input (exit button, door contact) on GPIO. */
export async function openInput(spec: InputSpec, config: Config, log: Logger): Promise<Input> {
  const { GpioInput } = await import('./onoff.js');
  return GpioInput.open({ name: `${spec.door}.${spec.name}`, number: sysfs(config, spec.pin), activeLow: spec.activeLow, debounceMs: spec.debounceMs, onChange: spec.onChange, log: log.child({ module: 'input', door: spec.door }) });
}
