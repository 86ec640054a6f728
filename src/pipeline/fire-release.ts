/**
 * Fire release across the gateway's doors: sources (fire-panel inputs, the site's fire threat
 * level) go active and clear; each door follows its reducer (domain/fire.ts). The relays move
 * first, for every governed door, synchronously in the caller's turn; then the door state machines,
 * the journal, the persisted latch and subscribers follow. A latched release is persisted, so a
 * gateway restarted after the alarm cleared starts with the door released, until an operator resets.
 */
import { Subject } from 'rxjs';
import { FIRE_IDLE, fireReset, fireSource, isReleased, parseSavedLatch, type FireDoorState } from '../domain/fire.js';
import type { DoorEvent } from '../domain/events.js';
import type { FireDoorStatus, FireResetReport, FireStatus } from '../domain/io-status.js';
import type { Logger } from '../log.js';
import type { DoorStateMachine } from './door-state.js';
import type { SafetyRelay } from './safety-relay.js';

export interface FireDoor {
  safety: SafetyRelay;
  state: DoorStateMachine;
}

export interface FireReleaseOptions {
  doors: ReadonlyMap<string, FireDoor>;
  meta: { get(key: string): Promise<unknown>; put(key: string, value: { cause: string; since: number } | null): Promise<void> };
  doorEvent: (e: DoorEvent) => void;
  /** The door's mode applied again once its release ends (passage holds the lock again). */
  reapply: (door: string) => void;
  log: Logger;
  now?: () => number;
}

const metaKey = (door: string): string => `door.${door}.fire`;

export class FireRelease {
  /** A door's release began (true) or ended (false). */
  readonly changed$ = new Subject<{ door: string; released: boolean }>();
  private readonly states = new Map<string, FireDoorState>();
  /** Doors whose release already journaled a source clearing (until the release ends). */
  private readonly clearedOnce = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly o: FireReleaseOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Latched releases as persisted: those doors are released at once (before the first decision). */
  async restore(): Promise<void> {
    for (const door of this.o.doors.keys()) {
      const latch = parseSavedLatch(await this.o.meta.get(metaKey(door)));
      if (!latch) continue;
      this.states.set(door, { active: new Map(), latched: latch });
      this.o.doors.get(door)!.safety.hold(true);
      this.o.log.warn({ door, cause: latch.cause, since: latch.since }, 'fire release still latched from before the restart: door released until an operator resets');
      this.after(door, true, `still latched (${latch.cause}) from before the restart`);
    }
  }

  private state(door: string): FireDoorState {
    return this.states.get(door) ?? FIRE_IDLE;
  }

  released(door: string): boolean {
    return isReleased(this.state(door));
  }

  /** A source went active or cleared at these doors (`cause` says which, for the journal). The relays move before this returns. */
  source(key: string, doors: readonly string[], active: boolean, o: { latch: boolean; cause: string }): void {
    const at = this.now();
    const moved: { door: string; before: FireDoorState; after: FireDoorState }[] = [];
    for (const door of doors) {
      const d = this.o.doors.get(door);
      if (!d) continue;
      const before = this.state(door);
      const after = fireSource(before, key, active, { latch: o.latch, at, cause: o.cause });
      if (after === before) continue;
      this.states.set(door, after);
      // The relay first: nothing below may delay it.
      if (isReleased(after) !== isReleased(before)) d.safety.hold(isReleased(after));
      moved.push({ door, before, after });
    }
    for (const { door, before, after } of moved) {
      const was = isReleased(before);
      const is = isReleased(after);
      if (!was && is) {
        this.o.log.warn({ door, source: key, cause: o.cause, latch: after.latched !== null }, 'fire release: door released');
        this.after(door, true, `${o.cause}${after.latched ? ' (latched until reset)' : ''}`);
      } else if (was && !is) {
        this.o.log.warn({ door, source: key }, 'fire alarm cleared (not latched): door back to its mode');
        this.after(door, false, `${o.cause} (not latched)`);
      } else if (!active && is && !this.clearedOnce.has(door)) {
        // Once per release: a flapping panel line (a loose terminal) must not flood the journal.
        this.clearedOnce.add(door);
        this.o.doorEvent({ type: 'fire_cleared', door, at, detail: after.active.size ? `${o.cause}; still active: ${[...after.active.values()].map((a) => a.cause).join(', ')}` : `${o.cause}; released until an operator resets` });
      }
      if (after.latched && !before.latched) this.persist(door, after.latched);
    }
  }

  /** An operator's reset of these doors (default: every door released). Refused per door while its alarm is active. */
  reset(doors: readonly string[] | undefined, by: string): FireResetReport {
    const out: FireResetReport = { reset: [], refused: [] };
    for (const door of doors ?? [...this.states.keys()]) {
      const before = this.state(door);
      if (!isReleased(before)) continue;
      const r = fireReset(before);
      if (!r.ok) {
        out.refused.push({ door, reason: r.reason });
        continue;
      }
      this.states.delete(door);
      this.o.doors.get(door)?.safety.hold(false);
      out.reset.push(door);
    }
    for (const door of out.reset) {
      this.o.log.warn({ door, by }, 'fire release reset: door back to its mode');
      this.persist(door, null);
      this.after(door, false, `reset by ${by}`);
    }
    return out;
  }

  /** After the relay moved: the door state machine, the door's mode, the journal, subscribers. */
  private after(door: string, released: boolean, detail: string): void {
    if (!released) this.clearedOnce.delete(door);
    this.o.doors.get(door)!.state.setFire(released);
    if (!released) this.o.reapply(door);
    this.o.doorEvent({ type: released ? 'fire_release' : 'fire_reset', door, at: this.now(), detail });
    this.changed$.next({ door, released });
  }

  private persist(door: string, latch: { cause: string; since: number } | null): void {
    this.o.meta.put(metaKey(door), latch).catch((e: unknown) => this.o.log.error({ err: e, door }, latch ? 'fire latch not persisted (a restart would forget it)' : 'fire reset not persisted'));
  }

  status(): FireStatus {
    const doors = [...this.o.doors.keys()].map((door): FireDoorStatus => {
      const s = this.state(door);
      return { door, released: isReleased(s), active: [...s.active].map(([source, a]) => ({ source, cause: a.cause, since: a.since })), latched: s.latched };
    });
    return { released: doors.filter((d) => d.released).map((d) => d.door), doors };
  }

  stop(): void {
    this.changed$.complete();
  }
}
