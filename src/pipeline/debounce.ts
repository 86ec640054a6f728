import type { Credential } from '../domain/types.js';

/** Identity of a read for debouncing: the same credential at the same door. */
export function readKey(door: string, c: Credential): string {
  switch (c.type) {
    case 'qr': return `${door}\u0000qr\u0000${c.text.trim()}`;
    // A retyped PIN is a new attempt, not a repeated read.
    case 'card': return `${door}\u0000card\u0000${c.value}${c.pin !== undefined ? `\u0000${c.pin}` : ''}`;
    case 'userid': return `${door}\u0000userid\u0000${c.value}`;
    case 'remote': return `${door}\u0000remote\u0000${c.oper_id ?? c.userid}`;
    case 'exit': return `${door}\u0000exit`;
    case 'operator': return `${door}\u0000operator\u0000${c.source}`;
  }
}

/**
 * Scanners often report one presentation two or three times; a repeat of the same read within the
 * window is the same read, not a second decision (and must not turn into a `replayed` deny).
 */
export class Debouncer {
  private readonly last = new Map<string, number>();
  constructor(private readonly windowMs: number) {}

  /** True when `key` was seen less than the window ago; either way `nowMs` becomes its last read. */
  isRepeat(key: string, nowMs: number): boolean {
    if (this.windowMs <= 0) return false;
    const prev = this.last.get(key);
    this.last.set(key, nowMs);
    if (this.last.size > 10_000) {
      for (const [k, t] of this.last) if (nowMs - t >= this.windowMs) this.last.delete(k);
    }
    return prev !== undefined && nowMs - prev < this.windowMs;
  }
}
