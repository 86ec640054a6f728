/**
 * Which sequence numbers of a door a reader of its journal holds (or knows to be empty): a sorted
 * list of disjoint closed intervals, and the gaps below the door's head. Pure.
 */
export type Interval = [number, number];

/** Add [from, to] to `covered` (sorted, disjoint, adjacent ones merged): a new list. */
export function cover(covered: readonly Interval[], from: number, to: number): Interval[] {
  const out: Interval[] = [];
  let lo = from;
  let hi = to;
  let placed = false;
  for (const [a, b] of covered) {
    if (b < lo - 1) out.push([a, b]);
    else if (a > hi + 1) {
      if (!placed) out.push([lo, hi]);
      placed = true;
      out.push([a, b]);
    } else {
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
    }
  }
  if (!placed) out.push([lo, hi]);
  return out;
}

/** The numbers 1..head not covered, oldest first. */
export function gaps(covered: readonly Interval[], head: number): Interval[] {
  const out: Interval[] = [];
  let next = 1;
  for (const [a, b] of covered) {
    if (a > head) break;
    if (a > next) out.push([next, a - 1]);
    next = Math.max(next, b + 1);
  }
  if (next <= head) out.push([next, head]);
  return out;
}

/** How many numbers of 1..head are covered up to the first gap (the contiguous prefix). */
export function contiguous(covered: readonly Interval[]): number {
  const first = covered[0];
  return first && first[0] <= 1 ? first[1] : 0;
}

/** How many numbers of 1..head are not covered. */
export function missing(covered: readonly Interval[], head: number): number {
  return gaps(covered, head).reduce((n, [a, b]) => n + b - a + 1, 0);
}
