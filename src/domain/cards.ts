/**
 * Card formats: the one place that turns the bits a reader sends (Wiegand, OSDP raw card data, an
 * MQTT bridge) into the card number the directory holds. Pure.
 *
 * Bits are in transmission order, position 1 first. Parity is checked; a frame with a parity error
 * is an error, never a guess.
 *
 *   h10301   26 bits: P1 even over 2–13 · facility 2–9 (8) · card 10–25 (16) · P26 odd over 14–25
 *   h10306   34 bits: P1 even over 2–17 · facility 2–17 (16) · card 18–33 (16) · P34 odd over 18–33
 *            (the same layout as the "Wiegand 34" of Chinese readers: a 32-bit UID between parities)
 *   c1000    35 bits (HID Corporate 1000): P1 odd over 2–35 · P2 even over 3,4,6,7,9,10…33,34 ·
 *            company 3–14 (12) · card 15–34 (20) · P35 odd over 2,3,5,6,8,9…32,33
 *   h10302   37 bits: P1 even over 2–19 · card 2–36 (35) · P37 odd over 19–36
 *   h10304   37 bits: as h10302, with facility 2–17 (16) · card 18–36 (19)
 *   uid32, uid56   raw UIDs without parity, as decimal
 *   auto     by bit count: 26 h10301, 34 h10306, 35 c1000, 37 h10304, 32 uid32, 56 uid56
 *
 * Which number: `number: full` (default) is every data bit as one decimal number — facility and
 * card together, which is what Chinese directories (and WeCom/Feishu card fields) hold: the 24-bit
 * value of a 26-bit card, the 32-bit UID of a 34-bit one. `number: card` is the card field alone
 * (the number printed on many HID cards; ambiguous across facilities, so use it only with one).
 */

export const CARD_FORMATS = ['auto', 'h10301', 'h10306', 'c1000', 'h10302', 'h10304', 'uid32', 'uid56'] as const;
export type CardFormat = (typeof CARD_FORMATS)[number];
export type CardNumberKind = 'full' | 'card';

export interface DecodedCard {
  ok: true;
  format: Exclude<CardFormat, 'auto'>;
  /** The card number as the directory holds it (decimal string). */
  value: string;
  facility: number | null;
  card: string;
}
export type CardDecode = DecodedCard | { ok: false; error: string };

interface Layout {
  bits: number;
  /** Parity bits: position, even/odd, covered positions. */
  parity: { at: number; even: boolean; over: number[] }[];
  facility: [number, number] | null;
  card: [number, number];
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

const LAYOUTS: Record<Exclude<CardFormat, 'auto'>, Layout> = {
  h10301: { bits: 26, parity: [{ at: 1, even: true, over: range(2, 13) }, { at: 26, even: false, over: range(14, 25) }], facility: [2, 9], card: [10, 25] },
  h10306: { bits: 34, parity: [{ at: 1, even: true, over: range(2, 17) }, { at: 34, even: false, over: range(18, 33) }], facility: [2, 17], card: [18, 33] },
  c1000: {
    bits: 35,
    parity: [
      { at: 2, even: true, over: range(3, 34).filter((p) => p % 3 !== 2) },
      { at: 35, even: false, over: range(2, 33).filter((p) => p % 3 !== 1) },
      { at: 1, even: false, over: range(2, 35) },
    ],
    facility: [3, 14],
    card: [15, 34],
  },
  h10302: { bits: 37, parity: [{ at: 1, even: true, over: range(2, 19) }, { at: 37, even: false, over: range(19, 36) }], facility: null, card: [2, 36] },
  h10304: { bits: 37, parity: [{ at: 1, even: true, over: range(2, 19) }, { at: 37, even: false, over: range(19, 36) }], facility: [2, 17], card: [18, 36] },
  uid32: { bits: 32, parity: [], facility: null, card: [1, 32] },
  uid56: { bits: 56, parity: [], facility: null, card: [1, 56] },
};

const AUTO: Record<number, Exclude<CardFormat, 'auto'>> = { 26: 'h10301', 34: 'h10306', 35: 'c1000', 37: 'h10304', 32: 'uid32', 56: 'uid56' };

/** Positions a..b (inclusive, 1-based) of a bit string as a BigInt. */
function field(bits: string, a: number, b: number): bigint {
  return BigInt(`0b${bits.slice(a - 1, b)}`);
}

/** Decode `bits` ("0"/"1", transmission order) in `format`. */
export function decodeCard(bits: string, format: CardFormat = 'auto', number: CardNumberKind = 'full'): CardDecode {
  if (!/^[01]+$/.test(bits)) return { ok: false, error: 'bits must be a string of 0 and 1' };
  const f = format === 'auto' ? AUTO[bits.length] : format;
  if (!f) return { ok: false, error: `no card format has ${bits.length} bits (formats: ${Object.entries(AUTO).map(([n, k]) => `${n} ${k}`).join(', ')})` };
  const l = LAYOUTS[f];
  if (bits.length !== l.bits) return { ok: false, error: `${f} has ${l.bits} bits, got ${bits.length}` };
  for (const p of l.parity) {
    const ones = p.over.reduce((n, pos) => n + (bits[pos - 1] === '1' ? 1 : 0), 0) + (bits[p.at - 1] === '1' ? 1 : 0);
    if ((ones % 2 === 0) !== p.even) return { ok: false, error: `${f}: parity bit ${p.at} (${p.even ? 'even' : 'odd'}) does not match: a misread, never guessed` };
  }
  const card = field(bits, l.card[0], l.card[1]);
  const facility = l.facility ? Number(field(bits, l.facility[0], l.facility[1])) : null;
  const dataFrom = l.facility ? Math.min(l.facility[0], l.card[0]) : l.card[0];
  const full = field(bits, dataFrom, l.card[1]);
  return { ok: true, format: f, value: (number === 'card' ? card : full).toString(), facility, card: card.toString() };
}

/** Encode facility and card into a frame (for emulators, tests and `doorgw` tools). */
export function encodeCard(format: Exclude<CardFormat, 'auto'>, facility: number | null, card: bigint): string {
  const l = LAYOUTS[format];
  const bits = Array<string>(l.bits + 1).fill('0');
  const put = (a: number, b: number, v: bigint, what: string): void => {
    const w = b - a + 1;
    if (v < 0n || v >= 1n << BigInt(w)) throw new RangeError(`${format}: ${what} ${v} does not fit in ${w} bits`);
    const s = v.toString(2).padStart(w, '0');
    for (let i = 0; i < w; i++) bits[a + i] = s[i]!;
  };
  if (l.facility) put(l.facility[0], l.facility[1], BigInt(facility ?? 0), 'facility');
  put(l.card[0], l.card[1], card, 'card');
  for (const p of l.parity) {
    const ones = p.over.reduce((n, pos) => n + (bits[pos] === '1' ? 1 : 0), 0);
    bits[p.at] = (ones % 2 === 0) === p.even ? '0' : '1';
  }
  return bits.slice(1).join('');
}

/**
 * A keypad's key from a 4-bit burst (the key's value) or an 8-bit burst (the value in the low
 * nibble, its complement in the high one). 0–9, `*` (10) and `#` (11); anything else is an error.
 */
export function decodeKey(bits: string): { ok: true; key: string } | { ok: false; error: string } {
  let v: number;
  if (bits.length === 4) v = parseInt(bits, 2);
  else if (bits.length === 8) {
    const hi = parseInt(bits.slice(0, 4), 2);
    v = parseInt(bits.slice(4), 2);
    if ((hi ^ 0xf) !== v) return { ok: false, error: '8-bit key: the high nibble is not the complement of the low one' };
  } else return { ok: false, error: `a key burst has 4 or 8 bits, got ${bits.length}` };
  if (v <= 9) return { ok: true, key: String(v) };
  if (v === 10) return { ok: true, key: '*' };
  if (v === 11) return { ok: true, key: '#' };
  return { ok: false, error: `key code ${v} is not a key` };
}
