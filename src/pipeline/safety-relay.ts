/**
 * A door's relay as the door logic drives it, with a safety release on top: while a release is held
 * (fire), the relay stays at its released level whatever the lock type, and nothing the door logic
 * does moves it — a grant's pulse (which would end the hold when it runs out), a re-lock on close,
 * lockdown, leaving passage, an operator's lock. When the release ends, the relay re-locks and the
 * door's mode is applied again by whoever ended it (passage holds it again).
 */
import type { BehaviorSubject } from 'rxjs';
import { HOLD_MS, type Relay } from '../io/relay.js';

/** The hold is renewed daily while the release holds (a pulse runs out after ~24.8 days). */
const RENEW_MS = 86_400_000;

export class SafetyRelay implements Relay {
  private renew: NodeJS.Timeout | null = null;

  constructor(readonly inner: Relay) {}

  get state$(): BehaviorSubject<boolean> {
    return this.inner.state$;
  }

  get energised(): boolean {
    return this.inner.energised;
  }

  /** A safety release holds the relay now. */
  get held(): boolean {
    return this.renew !== null;
  }

  pulse(ms: number): void {
    if (!this.held) this.inner.pulse(ms);
  }

  relock(): void {
    if (!this.held) this.inner.relock();
  }

  /** Hold the relay released (true), or let it go and re-lock (false). Synchronous. */
  hold(on: boolean): void {
    if (on === this.held) return;
    if (on) {
      this.inner.pulse(HOLD_MS);
      this.renew = setInterval(() => this.inner.pulse(HOLD_MS), RENEW_MS);
      this.renew.unref();
      return;
    }
    clearInterval(this.renew!);
    this.renew = null;
    this.inner.relock();
  }

  /**
   * Stopping during a release leaves the line at its released level: a gateway restarted (an
   * upgrade, a crash) during a fire must not lock the escape route until it is back. What the line
   * does after the process exits is the GPIO driver's: sysfs keeps the value; a character-device
   * line released by the exit is the driver's to choose. The next start releases again before its
   * first decision (the input's level, or the persisted latch).
   */
  close(): Promise<void> {
    if (!this.renew) return this.inner.close();
    clearInterval(this.renew);
    this.renew = null;
    return Promise.resolve();
  }
}
