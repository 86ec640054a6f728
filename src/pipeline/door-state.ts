/**
 * One door's state: lock (from the relay), contact (from the door-contact input), alarms.
 * A contact that opens while the lock is released — or within the grace period after — is a valid
 * opening; held open past `held_open_s` raises held-open (with a pre-alarm). A contact that opens
 * while the lock was never released is forced open. Re-locks when the door closes, if configured.
 */
import { BehaviorSubject, Subject } from 'rxjs';
import { monotonicMs } from '../domain/clock.js';
import type { DoorEvent, DoorEventType } from '../domain/events.js';
import type { DoorMode } from '../domain/types.js';

export type Contact = 'open' | 'closed' | 'unknown';
export type Alarm = 'forced_open' | 'held_open_prealarm' | 'held_open';

export interface DoorState {
  lock: 'locked' | 'unlocked';
  contact: Contact;
  alarm: Alarm | null;
}

/**
 * A door as it is reported (MQTT state, status, the console, metrics): the lock from its relay,
 * contact and alarm from its state machine, and its mode.
 */
export function doorStatus(relay: { state$: BehaviorSubject<boolean> } | undefined, sm: DoorStateMachine | undefined, mode: DoorMode | undefined): { lock: 'locked' | 'unlocked'; contact: Contact; alarm: Alarm | null; mode: DoorMode } {
  const st = sm?.state$.value;
  return { lock: relay?.state$.value ? 'unlocked' : 'locked', contact: st?.contact ?? 'unknown', alarm: st?.alarm ?? null, mode: mode ?? 'normal' };
}

export interface DoorStateOptions {
  heldOpenS: number;
  prealarmS: number;
  openGraceS: number;
  relockOnClose: boolean;
  /** End the pulse now. */
  relock: () => void;
  /** Wall clock for event stamps. */
  now?: () => number;
  /** What measures the grace after a re-lock (default: the monotonic clock, or `now` when a test gives only that). */
  mono?: () => number;
}

export class DoorStateMachine {
  readonly state$: BehaviorSubject<DoorState>;
  readonly events$ = new Subject<DoorEvent>();
  private lastRelease = Number.NEGATIVE_INFINITY;
  private timers: NodeJS.Timeout[] = [];
  private readonly now: () => number;
  /** A wall clock stepped back must not make every opening look like the grace after a re-lock (no forced-open alarm for a day). */
  private readonly mono: () => number;

  constructor(
    readonly door: string,
    private readonly o: DoorStateOptions,
    contact: Contact = 'unknown',
  ) {
    this.now = o.now ?? Date.now;
    this.mono = o.mono ?? o.now ?? monotonicMs;
    this.state$ = new BehaviorSubject<DoorState>({ lock: 'locked', contact, alarm: null });
  }

  private set(p: Partial<DoorState>): void {
    const cur = this.state$.value;
    const next = { ...cur, ...p };
    if (next.lock !== cur.lock || next.contact !== cur.contact || next.alarm !== cur.alarm) this.state$.next(next);
  }

  private emit(type: DoorEventType): void {
    this.events$.next({ type, door: this.door, at: this.now() });
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  /** The relay released (true) or re-locked (false). */
  lockChanged(released: boolean): void {
    if (!released && this.state$.value.lock === 'unlocked') this.lastRelease = this.mono();
    this.set({ lock: released ? 'unlocked' : 'locked' });
  }

  /** Why the door may stand open now (passage, a fire release): no held-open, no forced-open alarm. */
  private readonly openBy = new Set<'passage' | 'fire'>();
  private get passage(): boolean {
    return this.openBy.size > 0;
  }

  /**
   * Passage: the door may stand open (no held-open alarm). Ending it while the door is open leaves
   * the re-lock to its closing (the relay is re-locked by the mode change; a door held open just closes).
   */
  setPassage(on: boolean): void {
    this.standOpen('passage', on);
  }

  /** A fire release: as passage, whatever the mode (the door is an escape route now). */
  setFire(on: boolean): void {
    this.standOpen('fire', on);
  }

  private standOpen(why: 'passage' | 'fire', on: boolean): void {
    if (on) this.openBy.add(why);
    else this.openBy.delete(why);
    if (on) {
      this.clearTimers();
      if (this.state$.value.alarm === 'held_open' || this.state$.value.alarm === 'held_open_prealarm') {
        this.set({ alarm: null });
        this.emit('alarm_cleared');
      }
    }
  }

  /**
   * The contact's level when its input was opened: a state, not an absence. A door standing open
   * at start is open at once (its interlock partner holds, held-open is timed from now); whether it
   * was forced cannot be known, so no forced-open alarm.
   */
  startContact(contact: 'open' | 'closed'): void {
    if (this.state$.value.contact !== 'unknown') return;
    this.set({ contact });
    if (contact === 'closed') return;
    this.events$.next({ type: 'contact_open', door: this.door, at: this.now(), detail: 'open when the gateway started' });
    if (!this.passage) this.startHeldTimers();
  }

  private startHeldTimers(): void {
    const held = this.o.heldOpenS * 1000;
    const pre = Math.max(0, held - this.o.prealarmS * 1000);
    if (this.o.prealarmS > 0) {
      this.timers.push(
        setTimeout(() => {
          this.set({ alarm: 'held_open_prealarm' });
          this.emit('held_open_prealarm');
        }, pre),
      );
    }
    this.timers.push(
      setTimeout(() => {
        this.set({ alarm: 'held_open' });
        this.emit('held_open');
      }, held),
    );
  }

  /** The debounced door-contact input changed. */
  contactChanged(contact: 'open' | 'closed'): void {
    const cur = this.state$.value;
    if (cur.contact === contact) return;
    if (contact === 'open') {
      this.set({ contact });
      this.emit('contact_open');
      const authorised = this.passage || cur.lock === 'unlocked' || this.mono() - this.lastRelease < this.o.openGraceS * 1000;
      if (!authorised) {
        this.set({ alarm: 'forced_open' });
        this.emit('forced_open');
        return;
      }
      if (this.passage) return;
      this.startHeldTimers();
      return;
    }
    // closed
    this.clearTimers();
    const hadAlarm = cur.alarm !== null;
    this.set({ contact, alarm: null });
    this.emit('contact_closed');
    if (hadAlarm) this.emit('alarm_cleared');
    if (this.o.relockOnClose && cur.lock === 'unlocked' && !this.passage) {
      this.o.relock();
      this.emit('relocked_on_close');
    }
  }

  stop(): void {
    this.clearTimers();
    this.events$.complete();
  }
}
