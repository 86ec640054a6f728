/**
 * Keyboard layouts for keyboard-mode scanners: HID usage (keycode) → [unshifted, shifted]. A scanner
 * types as if it were a keyboard of the layout it was configured for; the gateway must decode with
 * the same layout. Add a layout by adding a table here.
 */
export type Layout = Readonly<Record<number, readonly [string, string]>>;

function letters(order: string): Record<number, [string, string]> {
  const out: Record<number, [string, string]> = {};
  [...order].forEach((ch, i) => (out[0x04 + i] = [ch, ch.toUpperCase()]));
  return out;
}

const common: Record<number, [string, string]> = {
  0x2c: [' ', ' '],
  // keypad (unaffected by shift here)
  0x54: ['/', '/'], 0x55: ['*', '*'], 0x56: ['-', '-'], 0x57: ['+', '+'],
  0x59: ['1', '1'], 0x5a: ['2', '2'], 0x5b: ['3', '3'], 0x5c: ['4', '4'], 0x5d: ['5', '5'],
  0x5e: ['6', '6'], 0x5f: ['7', '7'], 0x60: ['8', '8'], 0x61: ['9', '9'], 0x62: ['0', '0'], 0x63: ['.', '.'],
};

export const US: Layout = {
  ...letters('abcdefghijklmnopqrstuvwxyz'),
  0x1e: ['1', '!'], 0x1f: ['2', '@'], 0x20: ['3', '#'], 0x21: ['4', '$'], 0x22: ['5', '%'],
  0x23: ['6', '^'], 0x24: ['7', '&'], 0x25: ['8', '*'], 0x26: ['9', '('], 0x27: ['0', ')'],
  0x2d: ['-', '_'], 0x2e: ['=', '+'], 0x2f: ['[', '{'], 0x30: [']', '}'], 0x31: ['\\', '|'],
  0x33: [';', ':'], 0x34: ["'", '"'], 0x35: ['`', '~'], 0x36: [',', '<'], 0x37: ['.', '>'], 0x38: ['/', '?'],
  ...common,
};

/** German (QWERTZ): y/z swapped, symbols where a German keyboard has them. */
export const DE: Layout = {
  ...letters('abcdefghijklmnopqrstuvwxzy'),
  0x1e: ['1', '!'], 0x1f: ['2', '"'], 0x20: ['3', '§'], 0x21: ['4', '$'], 0x22: ['5', '%'],
  0x23: ['6', '&'], 0x24: ['7', '/'], 0x25: ['8', '('], 0x26: ['9', ')'], 0x27: ['0', '='],
  0x2d: ['ß', '?'], 0x2e: ['´', '`'], 0x2f: ['ü', 'Ü'], 0x30: ['+', '*'], 0x32: ['#', "'"],
  0x33: ['ö', 'Ö'], 0x34: ['ä', 'Ä'], 0x35: ['^', '°'], 0x36: [',', ';'], 0x37: ['.', ':'], 0x38: ['-', '_'],
  ...common,
};

export const LAYOUTS = { us: US, de: DE } as const;
export type LayoutName = keyof typeof LAYOUTS;
