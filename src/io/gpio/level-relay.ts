/**
 * A relay on one GPIO output, whatever drives the line (sysfs through onoff, the character device):
 * the levels a lock type and polarity mean, and the pulse semantics — a grant during a pulse extends
 * it, it does not stack; relock ends it; close leaves the line at idle (never released: an
 * unconfigured pin floats, which energises some relay boards).
 */
import { BehaviorSubject } from 'rxjs';
import type { Logger } from '../../log.js';
import type { Relay } from '../relay.js';

/** The physical levels for locked (idle) and released, by polarity and lock type. */
export function relayLevels(activeLow: boolean, lockType: 'fail_secure' | 'fail_safe'): { idle: 0 | 1; released: 0 | 1 } {
  const energised = activeLow ? 0 : 1;
  const deenergised = activeLow ? 1 : 0;
  // fail_secure (strike): energise to release. fail_safe (maglock): de-energise to release.
  return lockType === 'fail_secure' ? { idle: deenergised, released: energised } : { idle: energised, released: deenergised };
}

export class LevelRelay implements Relay {
  readonly state$ = new BehaviorSubject(false);
  private timer: NodeJS.Timeout | null = null;

  constructor(
    /** Drive the line to a physical level: synchronous, never waits on I/O. */
    private readonly write: (level: 0 | 1) => void,
    private readonly levels: { idle: 0 | 1; released: 0 | 1 },
    private readonly log: Logger,
  ) {}

  get energised(): boolean {
    return this.state$.value;
  }

  pulse(ms: number): void {
    const extended = this.state$.value;
    if (this.timer) clearTimeout(this.timer);
    if (!extended) this.write(this.levels.released);
    this.timer = setTimeout(() => this.relock(), ms);
    if (!extended) this.state$.next(true);
    this.log.info({ ms, extended }, extended ? 'relay pulse extended' : 'relay released: door unlocked');
  }

  relock(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.write(this.levels.idle);
    if (this.state$.value) {
      this.state$.next(false);
      this.log.info('relay idle: door locked');
    }
  }

  /** The idle level, and the line kept configured (see the module comment). */
  close(): Promise<void> {
    this.relock();
    return Promise.resolve();
  }
}
