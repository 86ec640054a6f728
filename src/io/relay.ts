/**
 * The lock relay. A pulse energises the output for its length; a second grant during a pulse
 * extends it rather than stacking. `sim` keeps a record of pulses for tests and logs them.
 */
import { BehaviorSubject } from 'rxjs';
import type { Logger } from '../log.js';

/** The longest pulse a timer allows (~24.8 days): what holds a relay released (passage, fire, an output held on). */
export const HOLD_MS = 2 ** 31 - 1;

export interface Relay {
  /** Release the lock for `ms` (extends a pulse in progress). Synchronous: never waits on I/O. */
  pulse(ms: number): void;
  readonly energised: boolean;
  /** true while the lock is released (for state reporting; never a command path). */
  readonly state$: BehaviorSubject<boolean>;
  /** End a pulse in progress now (re-lock). */
  relock(): void;
  /** De-energise and release the hardware. */
  close(): Promise<void>;
}

export interface PulseRecord {
  /** Date.now() when energised or extended. */
  at: number;
  ms: number;
  extended: boolean;
}

export class SimRelay implements Relay {
  readonly pulses: PulseRecord[] = [];
  readonly state$ = new BehaviorSubject(false);
  private timer: NodeJS.Timeout | null = null;
  private on = false;

  constructor(
    readonly door: string,
    private readonly log?: Logger,
  ) {}

  get energised(): boolean {
    return this.on;
  }

  pulse(ms: number): void {
    const extended = this.on;
    if (this.timer) clearTimeout(this.timer);
    this.on = true;
    this.pulses.push({ at: Date.now(), ms, extended });
    if (!extended) this.state$.next(true);
    this.timer = setTimeout(() => this.release(), ms);
    this.timer.unref();
    this.log?.info({ ms, extended }, extended ? 'relay pulse extended' : 'relay energised: door unlocked');
  }

  private release(): void {
    this.timer = null;
    if (!this.on) return;
    this.on = false;
    this.state$.next(false);
    this.log?.info('relay released: door locked');
  }

  relock(): void {
    if (this.timer) clearTimeout(this.timer);
    this.release();
  }

  close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.release();
    return Promise.resolve();
  }
}
