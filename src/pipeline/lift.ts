/**
 * One lift car's floor outputs: a grant at the car's readers enables the floors the person may
 * select (domain/lift.ts) for `enable_s`; floors on free access by schedule are held on inside
 * their windows (looked at just after every wall-clock minute, as passage schedules are); a fire
 * release of the car opens its fire floors until the release ends. A floor is on while any of the
 * three holds it. Every change of what is enabled is journaled on the car's door: which floors,
 * for whom, why.
 */
import type { DoorConfig } from '../config/schema.js';
import type { DecisionEvent, DoorEvent } from '../domain/events.js';
import type { LiftStatus } from '../domain/io-status.js';
import { floorsFor, freeFloors, type LiftPolicy } from '../domain/lift.js';
import { parseRule } from '../domain/rules.js';
import { HOLD_MS, type Relay } from '../io/relay.js';
import type { Logger } from '../log.js';

interface FloorState {
  output: Relay;
  grant: NodeJS.Timeout | null;
  free: boolean;
  fire: boolean;
}

export function liftPolicy(l: NonNullable<DoorConfig['lift']>, timezone: string): LiftPolicy {
  const floors = l.floors.map((f) => f.floor);
  const rules = (schedule: readonly string[]) =>
    schedule.map((text, i) => {
      const r = parseRule(text, i);
      if (!r.ok) throw new RangeError(`lift schedule '${text}': ${r.error}`); // the schema refused it already
      return r.rule;
    });
  return {
    floors,
    groupFloors: new Map(Object.entries(l.groups)),
    everyone: l.everyone,
    freeAccess: l.free_access.map((w) => ({ floors: w.floors, rules: rules(w.schedule) })),
    fire: l.fire === 'all' ? floors : l.fire === 'none' ? [] : l.fire,
    timezone,
  };
}

export class LiftFloors {
  private readonly floors = new Map<string, FloorState>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly o: {
      door: string;
      policy: LiftPolicy;
      /** Floor → its output (io.outputs). */
      outputs: ReadonlyMap<string, Relay>;
      enableMs: number;
      /** Whether this person is in this group (configured lists, or their local or site record). */
      memberOf: (userid: string, group: string) => boolean;
      doorEvent: (e: DoorEvent) => void;
      log: Logger;
      now: () => number;
    },
  ) {
    for (const f of o.policy.floors) this.floors.set(f, { output: o.outputs.get(f)!, grant: null, free: false, fire: false });
  }

  /** Free access from now on (applied at once, then just after every wall-clock minute). */
  start(): void {
    this.tick();
  }

  private tick(): void {
    const now = this.o.now();
    const free = new Set(freeFloors(this.o.policy, now));
    const began: string[] = [];
    const ended: string[] = [];
    for (const [f, s] of this.floors) {
      if (s.free === free.has(f)) continue;
      s.free = free.has(f);
      (s.free ? began : ended).push(f);
      this.apply(s);
    }
    if (began.length) this.o.doorEvent({ type: 'lift_floors', door: this.o.door, at: now, detail: `free access (schedule): floors ${began.join(', ')}` });
    if (ended.length) this.o.doorEvent({ type: 'lift_floors', door: this.o.door, at: now, detail: `free access ended (schedule): floors ${ended.join(', ')}` });
    this.timer = setTimeout(() => this.tick(), Math.min(60_000, 60_000 - (now % 60_000) + 5));
    this.timer.unref();
  }

  /** A grant at the car: the person's floors, for enable_s. */
  granted(d: DecisionEvent): void {
    const floors = floorsFor(this.o.policy, d.userid, (g) => d.userid !== null && this.o.memberOf(d.userid, g));
    for (const f of floors) {
      const s = this.floors.get(f)!;
      if (s.grant) clearTimeout(s.grant);
      s.grant = setTimeout(() => {
        s.grant = null;
        this.apply(s);
      }, this.o.enableMs);
      s.grant.unref();
      this.apply(s);
    }
    const who = d.userid ?? d.reason;
    this.o.doorEvent({ type: 'lift_floors', door: this.o.door, at: d.at, detail: floors.length ? `floors ${floors.join(', ')} enabled for ${this.o.enableMs / 1000} s: ${who}` : `granted, but no floors for ${who}` });
  }

  /** A fire release of the car began or ended: its fire floors are held open meanwhile. */
  fire(on: boolean): void {
    const floors = this.o.policy.fire;
    for (const f of floors) {
      const s = this.floors.get(f)!;
      s.fire = on;
      this.apply(s);
    }
    if (floors.length) this.o.doorEvent({ type: 'lift_floors', door: this.o.door, at: this.o.now(), detail: `${on ? 'fire release: floors' : 'fire release ended: floors'} ${floors.join(', ')}` });
  }

  private apply(s: FloorState): void {
    const on = s.free || s.fire || s.grant !== null;
    if (on && !s.output.energised) s.output.pulse(HOLD_MS);
    else if (!on && s.output.energised) s.output.relock();
  }

  status(): LiftStatus {
    return {
      door: this.o.door,
      floors: [...this.floors].map(([floor, s]) => ({ floor, on: s.output.energised, why: [...(s.grant ? ['grant'] : []), ...(s.free ? ['free access'] : []), ...(s.fire ? ['fire'] : [])] })),
    };
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.floors.values()) if (s.grant) clearTimeout(s.grant);
  }
}
