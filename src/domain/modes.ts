/** Door modes as persisted. */
import { DOOR_MODES, type DoorMode } from './types.js';

/** A persisted door mode: a mode name (before timed modes) or {mode, until}; null when none or expired. */
export function parseSavedMode(v: unknown, nowMs: number): { mode: DoorMode; until: number | null } | null {
  if (typeof v === 'string') return (DOOR_MODES as readonly string[]).includes(v) ? { mode: v as DoorMode, until: null } : null;
  if (typeof v !== 'object' || v === null) return null;
  const o = v as { mode?: unknown; until?: unknown; auto?: unknown };
  if (typeof o.mode !== 'string' || !(DOOR_MODES as readonly string[]).includes(o.mode)) return null;
  const until = typeof o.until === 'number' ? o.until : null;
  if (until !== null && until <= nowMs) return null;
  // A mode the schedule or a timer set is not restored: the schedule decides again.
  if (o.auto === true) return null;
  return { mode: o.mode as DoorMode, until };
}
