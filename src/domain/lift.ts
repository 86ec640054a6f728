/**
 * Lift floors: which floors a granted person may select (their groups → floors, plus the floors
 * everyone granted gets), which floors are on free access now (schedules, time as an input), and
 * which a fire release opens. Pure; the floor outputs are driven by pipeline/lift.ts.
 */
import { ruleMatches, type CompiledRule } from './rules.js';

export interface LiftPolicy {
  /** Floor names in the configured order (the order the journal lists them in). */
  floors: readonly string[];
  /** Group name → floors its members may select. */
  groupFloors: ReadonlyMap<string, readonly string[]>;
  /** Floors every granted person may select. */
  everyone: readonly string[];
  /** Floors on free access while one of the rules matches. */
  freeAccess: readonly { floors: readonly string[]; rules: readonly CompiledRule[] }[];
  /** Floors a fire release opens (held free until the release ends). */
  fire: readonly string[];
  timezone: string;
}

/** In the configured order, each once. */
const ordered = (p: LiftPolicy, set: ReadonlySet<string>): string[] => p.floors.filter((f) => set.has(f));

/**
 * The floors a granted person may select: `everyone`, and the floors of every group they are in
 * (configured member lists, or the groups their local or site record names).
 */
export function floorsFor(p: LiftPolicy, userid: string | null, memberOf: (group: string) => boolean): string[] {
  const out = new Set(p.everyone);
  if (userid !== null) for (const [g, floors] of p.groupFloors) if (memberOf(g)) for (const f of floors) out.add(f);
  return ordered(p, out);
}

/** The floors on free access at `nowMs` (wall clock, the lift's zone). */
export function freeFloors(p: LiftPolicy, nowMs: number): string[] {
  const out = new Set<string>();
  for (const w of p.freeAccess) if (w.rules.some((r) => ruleMatches(r, nowMs, p.timezone))) for (const f of w.floors) out.add(f);
  return ordered(p, out);
}
