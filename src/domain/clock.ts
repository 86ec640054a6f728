/**
 * Two clocks. The wall clock (unix ms) says what time it is and steps when NTP, an RTC-less boot or
 * an operator sets it; the monotonic clock (ms) never steps but means nothing across a reboot. Every
 * memory kept "for a while" measures its age on the monotonic clock when it can, so that a step of
 * the wall clock, forward and back, neither lets a used code in again nor locks someone out for a day.
 */

/** The monotonic clock (ms): CLOCK_MONOTONIC, shared by every process of one boot. */
export type MonoClock = () => number;

/** A moment taken on both clocks. `boot` names the boot the monotonic reading belongs to. */
export interface Stamp {
  /** Wall clock, unix ms. */
  at: number;
  /** Monotonic clock, ms (absent: stamped before this was recorded, or elsewhere). */
  mono?: number;
  boot?: string;
}

/**
 * How long ago `s` was: on the monotonic clock when both readings are of this boot, else on the
 * wall clock — never negative (a stamp "in the future" is one the wall clock stepped back past).
 */
export function elapsedMs(s: Stamp, now: Required<Stamp>): number {
  if (s.mono !== undefined && s.boot === now.boot) return Math.max(0, now.mono - s.mono);
  return Math.max(0, now.at - s.at);
}

/** The monotonic clock of this process in ms; shared across processes of one boot (libuv's hrtime is CLOCK_MONOTONIC). */
export const monotonicMs: MonoClock = () => Number(process.hrtime.bigint() / 1_000_000n);

/**
 * A wall clock that never runs ahead of the time really elapsed since it was last trusted: what
 * "older than N days" is measured on before anything is deleted. Stepped forward a year, the wall
 * clock would otherwise delete the whole journal; stepped back, this follows it (deleting less).
 */
export class SteadyWall {
  private anchorWall: number;
  private anchorMono: number;
  constructor(
    anchorWall: number,
    private readonly mono: MonoClock,
  ) {
    this.anchorWall = anchorWall;
    this.anchorMono = mono();
  }

  now(wall: number): number {
    return Math.min(wall, this.anchorWall + (this.mono() - this.anchorMono));
  }

  /** The wall clock is known good now (e.g. confirmed by the cloud's time). */
  trust(wall: number): void {
    this.anchorWall = wall;
    this.anchorMono = this.mono();
  }
}

/**
 * How long the item at the head of a queue has been waiting, on the monotonic clock: seen first
 * with its wall-clock age (clamped at 0), then measured monotonically while it stays at the head.
 */
export class HeadAge {
  private head: { id: number; since: number } | null = null;
  constructor(private readonly mono: MonoClock) {}

  ageMs(id: number | null, wallAgeMs: number): number | null {
    if (id === null) return (this.head = null);
    if (this.head?.id !== id) this.head = { id, since: this.mono() - Math.max(0, wallAgeMs) };
    return this.mono() - this.head.since;
  }
}
