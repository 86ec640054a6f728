/**
 * A burst of denials at one door (someone trying cards, a cloned card being probed): `count`
 * denials within `withinMs` raise one alarm, then none until the door has been quiet for a whole
 * window. Time is an input (monotonic ms: a wall-clock step neither raises nor hides a burst).
 */
export interface DenyBurstState {
  /** Monotonic times of the recent denials, oldest first (at most `count`). */
  readonly at: readonly number[];
  /** An alarm was raised and the burst has not ended yet. */
  readonly raised: boolean;
}

export const NO_BURST: DenyBurstState = { at: [], raised: false };

export function denyBurst(s: DenyBurstState, monoMs: number, o: { count: number; withinMs: number }): { state: DenyBurstState; alarm: boolean } {
  const recent = s.at.filter((t) => monoMs - t < o.withinMs);
  // Quiet for a whole window since the last denial: the burst is over.
  const raised = s.raised && recent.length > 0;
  const at = [...recent, monoMs].slice(-o.count);
  const alarm = !raised && at.length >= o.count;
  return { state: { at, raised: raised || alarm }, alarm };
}
