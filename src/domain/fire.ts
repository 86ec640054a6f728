/**
 * Fire release at one door, as a reducer (time is an input): which sources call for release now
 * (a fire-panel input, the site's fire threat level), and whether the release is latched. The door
 * is released while any source is active or the release is latched; a latched release ends only by
 * an operator's reset, and only once no source is active (a reset during the alarm changes nothing).
 */

export interface FireSourceState {
  /** What set it (for the journal): `input fire_panel`, `site:alice (threat level fire)`. */
  cause: string;
  /** When it became active (unix ms). */
  since: number;
}

export interface FireDoorState {
  /** Sources active now, by key (`input:fire_panel`, `site`). */
  readonly active: ReadonlyMap<string, FireSourceState>;
  /** Latched: held released after every source cleared, until reset (null: not latched). */
  readonly latched: FireSourceState | null;
}

export const FIRE_IDLE: FireDoorState = { active: new Map(), latched: null };

export const isReleased = (s: FireDoorState): boolean => s.active.size > 0 || s.latched !== null;

/** A source went active or cleared. With `latch`, its activation latches the release (the first cause is kept). */
export function fireSource(s: FireDoorState, key: string, active: boolean, o: { latch: boolean; at: number; cause: string }): FireDoorState {
  const has = s.active.has(key);
  if (active === has) return s;
  const next = new Map(s.active);
  if (active) {
    const src = { cause: o.cause, since: o.at };
    next.set(key, src);
    return { active: next, latched: o.latch ? (s.latched ?? src) : s.latched };
  }
  next.delete(key);
  return { active: next, latched: s.latched };
}

export type FireResetResult = { ok: true; state: FireDoorState; wasReleased: boolean } | { ok: false; reason: string };

/** An operator's reset: refused while a source is still active (the alarm has not cleared). */
export function fireReset(s: FireDoorState): FireResetResult {
  if (s.active.size > 0) return { ok: false, reason: `the fire alarm is still active (${[...s.active.values()].map((a) => a.cause).join(', ')})` };
  return { ok: true, state: FIRE_IDLE, wasReleased: s.latched !== null };
}

/** The persisted form of a latched release (so a restart after the alarm cleared keeps the door released). */
export function parseSavedLatch(v: unknown): FireSourceState | null {
  if (typeof v !== 'object' || v === null) return null;
  const { cause, since } = v as { cause?: unknown; since?: unknown };
  return typeof cause === 'string' && typeof since === 'number' && Number.isFinite(since) ? { cause: cause.slice(0, 200), since } : null;
}
