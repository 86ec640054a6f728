/**
 * Policies that depend on what happened before at the door: timed anti-passback (the same person
 * cannot pass again within N seconds) and the two-person rule (two different authorised people within
 * N seconds; the first is told to wait). A reducer over a small per-door state the pipeline owns:
 * `apply` takes a decision already made on the credential and the clock, and returns the decision
 * the door acts on. Pure apart from updating `state`.
 */
import { isPersonalGrant, type Decision } from './types.js';

export interface SequencePolicy {
  /** Seconds during which a person who passed may not pass again (null: off). */
  antiPassbackS: number | null;
  /** Seconds within which a second, different, authorised person must present (null: off). */
  twoPersonS: number | null;
}

export interface SequenceState {
  /** Last time each person passed (ms). */
  lastPass: Map<string, number>;
  /** The first person of a pair, waiting for the second. */
  waiting: { userid: string; at: number } | null;
}

export const newSequenceState = (): SequenceState => ({ lastPass: new Map(), waiting: null });

export function applySequence(d: Decision, p: SequencePolicy, s: SequenceState, nowMs: number): Decision {
  if (!isPersonalGrant(d)) return d;
  const uid = d.userid;
  if (p.antiPassbackS !== null) {
    const last = s.lastPass.get(uid);
    if (last !== undefined && nowMs - last < p.antiPassbackS * 1000) {
      return { ...d, decision: 'deny', reason: 'anti_passback', detail: `passed ${Math.round((nowMs - last) / 1000)} s ago (anti-passback ${p.antiPassbackS} s)` };
    }
  }
  if (p.twoPersonS !== null) {
    const w = s.waiting;
    if (!w || w.userid === uid || nowMs - w.at > p.twoPersonS * 1000) {
      s.waiting = { userid: uid, at: nowMs };
      return { ...d, decision: 'deny', reason: 'awaiting_second_person', detail: `a second authorised person must present within ${p.twoPersonS} s` };
    }
    s.waiting = null;
    s.lastPass.set(w.userid, nowMs);
  }
  s.lastPass.set(uid, nowMs);
  if (s.lastPass.size > 10_000) prune(s, nowMs, p.antiPassbackS ?? 0);
  return d;
}

/** Forget passes older than the anti-passback window (the state stays bounded). */
function prune(s: SequenceState, nowMs: number, windowS: number): void {
  for (const [uid, at] of s.lastPass) if (nowMs - at >= windowS * 1000) s.lastPass.delete(uid);
}
