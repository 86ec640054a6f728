/**
 * Card bits into credentials, for every source of them (Wiegand on GPIO lines or an MQTT bridge,
 * OSDP raw card data): a card in the reader's format, or a keypad key for card and PIN. Frames that are neither (parity, length,
 * impossible timing) are dropped and counted, never guessed.
 */
import { CardPinAssembler } from '../../domain/card-pin.js';
import { decodeCard, decodeKey, type CardFormat, type CardNumberKind } from '../../domain/cards.js';
import type { Credential } from '../../domain/types.js';
import type { DoorConfig, ReaderConfig } from '../../config/schema.js';
import { credentialEvent, type CredentialEvent } from '../../domain/events.js';

export interface WiegandFramesOptions {
  format: CardFormat;
  number: CardNumberKind;
  /** The door takes card and PIN: a card waits for its PIN. */
  needPin: boolean;
  pinWaitMs: number;
  onCredential: (c: Credential) => void;
  onBadFrame: (error: string, bits: number) => void;
  now?: () => number;
}

export class WiegandFrames {
  private readonly keypad: CardPinAssembler;
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  /** Frames dropped since start. */
  bad = 0;

  /** The frames of reader `r` at `door`: its format and number, card and PIN where the door asks. */
  static forReader(r: ReaderConfig, door: DoorConfig, emit: (e: CredentialEvent) => void, onBadFrame: WiegandFramesOptions['onBadFrame']): WiegandFrames {
    return new WiegandFrames({
      format: r.card_format,
      number: r.card_number,
      needPin: door.policy.card_and_pin,
      pinWaitMs: r.pin_wait_ms,
      onCredential: (c) => emit(credentialEvent(door.id, r.id, r.direction, c)),
      onBadFrame,
    });
  }

  constructor(private readonly o: WiegandFramesOptions) {
    this.keypad = new CardPinAssembler({ needPin: o.needPin, waitMs: o.pinWaitMs });
    this.now = o.now ?? Date.now;
  }

  /** A complete frame's bits (or a framing error from the line decoder). */
  frame(bits: string): void {
    if (bits.length === 4 || bits.length === 8) {
      const k = decodeKey(bits);
      if (!k.ok) return this.badFrame(k.error, bits.length);
      return this.key(k.key);
    }
    const card = decodeCard(bits, this.o.format, this.o.number);
    if (!card.ok) return this.badFrame(card.error, bits.length);
    this.card(card.value);
  }

  /** A key from a keypad that sends keys as keys (OSDP osdp_KEYPPAD): 0–9, * or #. */
  key(k: string): void {
    const c = this.keypad.key(k, this.now());
    if (c) this.o.onCredential(c);
  }

  /** A card number already decoded (OSDP formatted card data). */
  card(value: string): void {
    const now = this.now();
    const emit = (c: Credential | null): void => {
      if (c) this.o.onCredential(c);
    };
    emit(this.keypad.expire(now));
    emit(this.keypad.card(value, now));
    if (this.keypad.waiting) {
      // The held card is decided without a PIN when its wait ends (denied pin_required, journaled).
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => emit(this.keypad.expire(this.now())), this.o.pinWaitMs + 10);
      this.timer.unref();
    }
  }

  badFrame(error: string, bits: number): void {
    this.bad++;
    this.o.onBadFrame(error, bits);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
