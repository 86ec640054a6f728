/**
 * Linkage rules as data: `on` an input changing or a door event, `do` actions — pulse an output,
 * hold it while the input is active, set door modes, raise an alarm, deny groups while the input
 * is active (holds follow their input both ways). Pure: a trigger and the time
 * in, the commands out (the I/O layer carries them out and journals each with its cause). A set of
 * rules in which an action could trigger, through other rules, the rule itself is refused when the
 * configuration is read (`linkageLoop`), so a running gateway never chases its own tail.
 */
import type { DoorMode } from './types.js';

export type LinkTrigger = { input: string; state: 'active' | 'inactive' } | { event: string; door?: string | undefined };

export type LinkAction =
  | { output: string; pulse_s: number }
  | { output: string; while_active: true }
  | { doors?: string[] | undefined; mode: DoorMode; duration_s?: number | undefined }
  | { alarm: string }
  /** Deny these groups at these doors (default: every door) while the rule's input is active. */
  | { deny_groups: string[]; doors?: string[] | undefined }
  /** Raise the site's threat level (signed with this door's key; site.door_keys[].may_raise). */
  | { site_level: string; scope: string };

export interface LinkRule {
  name: string;
  on: LinkTrigger;
  do: LinkAction[];
}

/** What happened: an input's new level, or a door event. */
export type Happening = { kind: 'input'; name: string; active: boolean } | { kind: 'event'; type: string; door: string };

export type LinkCommand =
  | { kind: 'pulse'; output: string; ms: number }
  | { kind: 'hold'; output: string; on: boolean }
  | { kind: 'mode'; door: string; mode: DoorMode; untilMs: number | undefined }
  | { kind: 'alarm'; text: string }
  | { kind: 'deny'; door: string; groups: readonly string[]; on: boolean }
  | { kind: 'site_level'; level: string; scope: string };

export interface LinkStep {
  rule: string;
  /** Why, for the journal: `input doorbell active`, `forced_open at front`. */
  cause: string;
  command: LinkCommand;
}

/** The event a door-mode action causes, and the one an alarm action raises (what rules may chain on). */
export const MODE_EVENT = 'mode_changed';
export const ALARM_EVENT = 'linkage_alarm';
/** Door events raised for the gateway as a whole carry this door. */
export const GATEWAY_DOOR = 'gateway';

const causeOf = (h: Happening): string => (h.kind === 'input' ? `input ${h.name} ${h.active ? 'active' : 'inactive'}` : `${h.type} at ${h.door}`);

function matches(t: LinkTrigger, h: Happening): boolean {
  if ('input' in t) return h.kind === 'input' && h.name === t.input && (t.state === 'active') === h.active;
  return h.kind === 'event' && h.type === t.event && (t.door === undefined || t.door === h.door);
}

/**
 * The commands for one happening, in rule order then action order. A `while_active` output is
 * held on when its input goes active and let go when it goes inactive (whatever state the rule
 * names: the hold follows the input).
 */
export function linkageSteps(rules: readonly LinkRule[], h: Happening, nowMs: number, doors: readonly string[]): LinkStep[] {
  const out: LinkStep[] = [];
  const cause = causeOf(h);
  for (const r of rules) {
    const holdsFollow = h.kind === 'input' && 'input' in r.on && r.on.input === h.name;
    if (holdsFollow) {
      for (const a of r.do) {
        if ('while_active' in a) out.push({ rule: r.name, cause, command: { kind: 'hold', output: a.output, on: h.active } });
        if ('deny_groups' in a) for (const door of a.doors ?? doors) out.push({ rule: r.name, cause, command: { kind: 'deny', door, groups: a.deny_groups, on: h.active } });
      }
    }
    if (!matches(r.on, h)) continue;
    for (const a of r.do) {
      if ('while_active' in a || 'deny_groups' in a) continue;
      if ('pulse_s' in a) out.push({ rule: r.name, cause, command: { kind: 'pulse', output: a.output, ms: a.pulse_s * 1000 } });
      else if ('mode' in a) for (const door of a.doors ?? doors) out.push({ rule: r.name, cause, command: { kind: 'mode', door, mode: a.mode, untilMs: a.duration_s === undefined ? undefined : nowMs + a.duration_s * 1000 } });
      else if ('site_level' in a) out.push({ rule: r.name, cause, command: { kind: 'site_level', level: a.site_level, scope: a.scope } });
      else out.push({ rule: r.name, cause, command: { kind: 'alarm', text: a.alarm } });
    }
  }
  return out;
}

/** The events a rule's actions raise, as (type, door) pairs (door null: any door they name). */
function raised(r: LinkRule, doors: readonly string[]): { type: string; door: string }[] {
  return r.do.flatMap((a) => ('mode' in a ? (a.doors ?? doors).map((door) => ({ type: MODE_EVENT, door })) : 'alarm' in a ? [{ type: ALARM_EVENT, door: GATEWAY_DOOR }] : []));
}

/**
 * A chain of rules that would trigger itself (each rule's action raising the event the next is
 * on), as rule names with the first repeated at the end; null when there is none.
 */
export function linkageLoop(rules: readonly LinkRule[], doors: readonly string[]): string[] | null {
  const next = new Map<string, string[]>();
  for (const r of rules) {
    const evs = raised(r, doors);
    next.set(
      r.name,
      rules.filter((o) => 'event' in o.on && evs.some((e) => matches(o.on, { kind: 'event', type: e.type, door: e.door }))).map((o) => o.name),
    );
  }
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === 'open') return [...path.slice(path.indexOf(n)), n];
    if (state.get(n) === 'done') return null;
    state.set(n, 'open');
    path.push(n);
    for (const m of next.get(n) ?? []) {
      const loop = visit(m);
      if (loop) return loop;
    }
    path.pop();
    state.set(n, 'done');
    return null;
  };
  for (const r of rules) {
    const loop = visit(r.name);
    if (loop) return loop;
  }
  return null;
}
