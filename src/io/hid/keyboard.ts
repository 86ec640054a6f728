/**
 * Keyboard-mode scanners: USB boot-keyboard input reports — [modifiers, reserved, key1..key6],
 * optionally behind a report id — decoded into text. A key counts when it appears in a report
 * (not in the one before), in slot order, so rollover (several keys down at once) keeps order.
 * Shift is the modifier bits; Caps Lock toggles with its key and affects letters. A scan ends at
 * the terminator (Enter by default) or after `idleMs` without a key.
 */
import type { Layout } from './layouts.js';

export type Terminator = 'enter' | 'tab' | 'none';

export interface KeyboardDecoderOptions {
  layout: Layout;
  terminator: Terminator;
  /** End a scan after this long without a key (0: only the terminator ends it). */
  idleMs: number;
  onScan: (text: string, how: 'terminator' | 'idle' | 'flush') => void;
  /** Longest scan kept; beyond it the scan is cut and reported (a stuck key must not grow memory). */
  maxLength?: number;
}

const ENTER = [0x28, 0x58];
const TAB = 0x2b;
const CAPS = 0x39;
const SHIFT_BITS = 0x02 | 0x20;
const ROLLOVER_ERROR = 0x01;

export class KeyboardDecoder {
  private prev = new Set<number>();
  private text = '';
  private caps = false;
  private idle: NodeJS.Timeout | null = null;
  /** Reports that could not be keyboard reports (wrong length): counted, ignored. */
  malformed = 0;

  constructor(private readonly o: KeyboardDecoderOptions) {}

  push(report: Buffer): void {
    let r = report;
    if (r.length === 9) r = r.subarray(1); // a report id in front
    if (r.length !== 8) {
      this.malformed++;
      return;
    }
    const keys = [...r.subarray(2, 8)].filter((k) => k !== 0);
    if (keys.length > 0 && keys.every((k) => k === ROLLOVER_ERROR)) return; // phantom state: ignore
    const shift = (r[0]! & SHIFT_BITS) !== 0;
    for (const k of keys) {
      if (this.prev.has(k)) continue;
      this.key(k, shift);
    }
    this.prev = new Set(keys);
  }

  private key(k: number, shift: boolean): void {
    if (k === CAPS) {
      this.caps = !this.caps;
      return;
    }
    if ((this.o.terminator === 'enter' && ENTER.includes(k)) || (this.o.terminator === 'tab' && k === TAB)) {
      this.end('terminator');
      return;
    }
    const map = this.o.layout[k];
    if (!map) return; // not a printing key (arrows, function keys)
    let ch = shift ? map[1] : map[0];
    if (this.caps && /^[a-zA-Z]$/.test(map[0])) ch = ch === ch.toLowerCase() ? ch.toUpperCase() : ch.toLowerCase();
    this.text += ch;
    if (this.text.length >= (this.o.maxLength ?? 4096)) return this.end('flush');
    this.armIdle();
  }

  private armIdle(): void {
    if (this.idle) clearTimeout(this.idle);
    if (this.o.idleMs > 0) this.idle = setTimeout(() => this.end('idle'), this.o.idleMs);
  }

  private end(how: 'terminator' | 'idle' | 'flush'): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    const t = this.text;
    this.text = '';
    if (t.length > 0) this.o.onScan(t, how);
  }

  /** Report what is pending (end of a capture, device gone). */
  flush(): void {
    this.end('flush');
  }
}
