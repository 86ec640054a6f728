/**
 * Wiegand frames from timestamped edges. A reader pulls D0 low for a 0 and D1 low for a 1 (pulses
 * of 20–100 µs, 1–2 ms apart); a frame ends when the lines stay quiet. Given the kernel's edge
 * timestamps (the GPIO character device stamps every edge as it happens), the order and timing are
 * exact however late the events reach JavaScript — a stalled event loop delays a frame, it never
 * reorders or loses bits. Pure: the caller passes the edges and the current monotonic time.
 *
 * A frame is refused (never guessed) when its timing is impossible: both lines low at once, bits
 * closer than `minBitNs`, more than `maxBits`, or it began before the framer was listening (the
 * "invalid first read after start" of user-space decoders).
 */

export interface WiegandEdge {
  /** 0: D0 fell (a 0 bit), 1: D1 fell (a 1 bit). */
  line: 0 | 1;
  /** Kernel timestamp, CLOCK_MONOTONIC nanoseconds. */
  ns: bigint;
}

export type WiegandFrame = { ok: true; bits: string; startNs: bigint; endNs: bigint } | { ok: false; error: string; bits: number; startNs: bigint };

export interface WiegandTiming {
  /** Quiet time that ends a frame (readers send bits 1–2 ms apart; keypads their keys farther). */
  frameGapNs: bigint;
  /** Closer bits than this are noise or two lines at once. */
  minBitNs: bigint;
  maxBits: number;
}

export const DEFAULT_WIEGAND_TIMING: WiegandTiming = { frameGapNs: 25_000_000n, minBitNs: 150_000n, maxBits: 128 };

export class WiegandFramer {
  private bits = '';
  private startNs = 0n;
  private lastNs: bigint | null = null;
  private error: string | null = null;

  /** `listeningSinceNs`: when the lines were first watched (a frame already under way is dropped). */
  constructor(
    private readonly listeningSinceNs: bigint,
    private readonly t: WiegandTiming = DEFAULT_WIEGAND_TIMING,
  ) {}

  /** Take edges (in kernel order); returns the frames they completed. */
  push(edges: readonly WiegandEdge[]): WiegandFrame[] {
    const out: WiegandFrame[] = [];
    for (const e of edges) {
      if (this.lastNs !== null && e.ns - this.lastNs >= this.t.frameGapNs) out.push(this.finish());
      if (this.lastNs === null) {
        this.startNs = e.ns;
        // Less than a frame gap after we started listening: we may have missed its first bits.
        if (e.ns - this.listeningSinceNs < this.t.frameGapNs) this.error ??= 'began before the lines were watched (partial frame)';
      } else if (e.ns - this.lastNs < this.t.minBitNs) {
        this.error ??= e.ns === this.lastNs || e.ns - this.lastNs < 20_000n ? 'both lines low at once (wiring or noise)' : `bits ${(e.ns - this.lastNs) / 1000n} µs apart (faster than any reader)`;
      }
      this.lastNs = e.ns;
      if (this.bits.length >= this.t.maxBits) this.error ??= `longer than ${this.t.maxBits} bits`;
      else this.bits += e.line === 1 ? '1' : '0';
    }
    return out;
  }

  /** The frame under way, if the lines have been quiet long enough by `nowNs`. */
  flush(nowNs: bigint): WiegandFrame[] {
    return this.lastNs !== null && nowNs - this.lastNs >= this.t.frameGapNs ? [this.finish()] : [];
  }

  /** When to call flush next (monotonic ns), or null when no frame is under way. */
  get dueNs(): bigint | null {
    return this.lastNs === null ? null : this.lastNs + this.t.frameGapNs;
  }

  private finish(): WiegandFrame {
    const f: WiegandFrame = this.error ? { ok: false, error: this.error, bits: this.bits.length, startNs: this.startNs } : { ok: true, bits: this.bits, startNs: this.startNs, endNs: this.lastNs! };
    this.bits = '';
    this.lastNs = null;
    this.error = null;
    return f;
  }
}
