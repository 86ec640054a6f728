/**
 * Card and PIN from a reader that sends cards and keys separately (Wiegand keypads, bridges):
 * at a door that asks for a PIN the card is held until its PIN ends with `#` (or the wait runs
 * out: then it is decided without one, and denied `pin_required`, so the attempt is journaled).
 * `*` clears the digits. Keys without a card waiting are dropped (no PIN-only identification).
 * Pure: the caller passes the time and calls `expire` when the wait ends.
 */
import type { Credential } from './types.js';

export class CardPinAssembler {
  private held: { value: string; at: number } | null = null;
  private digits = '';

  constructor(private readonly o: { needPin: boolean; waitMs: number; maxDigits?: number }) {}

  /** A card read: decided now, or held for its PIN. */
  card(value: string, nowMs: number): Credential | null {
    if (!this.o.needPin) return { type: 'card', value };
    this.held = { value, at: nowMs };
    this.digits = '';
    return null;
  }

  /** A key: `#` completes the PIN of the held card. */
  key(k: string, nowMs: number): Credential | null {
    const late = this.expire(nowMs);
    if (late) return late;
    if (!this.held) return null;
    if (k === '*') this.digits = '';
    else if (k === '#') {
      const c: Credential = { type: 'card', value: this.held.value, pin: this.digits };
      this.held = null;
      this.digits = '';
      return c;
    } else if (this.digits.length < (this.o.maxDigits ?? 12)) this.digits += k;
    return null;
  }

  /** The held card once its wait is over (decided without a PIN), else null. */
  expire(nowMs: number): Credential | null {
    if (!this.held || nowMs - this.held.at < this.o.waitMs) return null;
    const c: Credential = { type: 'card', value: this.held.value };
    this.held = null;
    this.digits = '';
    return c;
  }

  get waitMs(): number {
    return this.o.waitMs;
  }

  get waiting(): boolean {
    return this.held !== null;
  }
}
