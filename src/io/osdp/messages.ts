/**
 * OSDP commands and replies used by doorgw, and their data codecs (multi-byte fields LSB first).
 * Pure: both the control panel and the reader emulator build and read messages here.
 */

export const CMD = {
  poll: 0x60,
  id: 0x61,
  cap: 0x62,
  lstat: 0x64,
  led: 0x69,
  buz: 0x6a,
  text: 0x6b,
  comset: 0x6e,
  keyset: 0x75,
  chlng: 0x76,
  scrypt: 0x77,
} as const;

export const REPLY = {
  ack: 0x40,
  nak: 0x41,
  pdid: 0x45,
  pdcap: 0x46,
  lstatr: 0x48,
  raw: 0x50,
  fmt: 0x51,
  keypad: 0x53,
  com: 0x54,
  ccrypt: 0x76,
  rmacI: 0x78,
  busy: 0x79,
} as const;

export const NAK = {
  check: 0x01,
  length: 0x02,
  unknownCommand: 0x03,
  sequence: 0x04,
  securityConditions: 0x05,
  encryptionRequired: 0x06,
  unableToProcess: 0x09,
} as const;

export const NAK_WORDS: Record<number, string> = {
  0x01: 'bad CRC/checksum',
  0x02: 'bad command length',
  0x03: 'unknown command',
  0x04: 'sequence number error',
  0x05: 'security block not supported or conditions not met',
  0x06: 'encrypted communication required',
  0x07: 'biometric type not supported',
  0x08: 'biometric format not supported',
  0x09: 'unable to process the command',
};

export const CODE_NAMES: Record<number, string> = {
  0x60: 'POLL', 0x61: 'ID', 0x62: 'CAP', 0x64: 'LSTAT', 0x69: 'LED', 0x6a: 'BUZ', 0x6b: 'TEXT', 0x6e: 'COMSET', 0x75: 'KEYSET', 0x76: 'CHLNG', 0x77: 'SCRYPT',
};
export const REPLY_NAMES: Record<number, string> = {
  0x40: 'ACK', 0x41: 'NAK', 0x45: 'PDID', 0x46: 'PDCAP', 0x48: 'LSTATR', 0x50: 'RAW', 0x51: 'FMT', 0x53: 'KEYPAD', 0x54: 'COM', 0x76: 'CCRYPT', 0x78: 'RMAC_I', 0x79: 'BUSY',
};

export class MessageError extends Error {}

const need = (d: Buffer, n: number, what: string): void => {
  if (d.length < n) throw new MessageError(`${what}: ${d.length} bytes, needs ${n}`);
};

export interface PdId {
  vendor: string;
  model: number;
  version: number;
  serial: number;
  firmware: string;
}

export function parsePdId(d: Buffer): PdId {
  need(d, 12, 'PDID');
  return { vendor: d.subarray(0, 3).toString('hex'), model: d[3]!, version: d[4]!, serial: d.readUInt32LE(5), firmware: `${d[9]}.${d[10]}.${d[11]}` };
}

export function encodePdId(id: PdId): Buffer {
  const b = Buffer.alloc(12);
  Buffer.from(id.vendor, 'hex').copy(b, 0, 0, 3);
  b[3] = id.model;
  b[4] = id.version;
  b.writeUInt32LE(id.serial >>> 0, 5);
  id.firmware.split('.').slice(0, 3).forEach((x, i) => (b[9 + i] = Number(x) & 0xff));
  return b;
}

/** Capability function codes (PDCAP) doorgw reads. */
export const CAP = { contactStatus: 1, output: 2, cardFormat: 3, led: 4, audible: 5, text: 6, timeKeeping: 7, checkCharacter: 8, security: 9, receiveBuffer: 10, largestMessage: 11, readers: 13 } as const;

export interface Capabilities {
  /** function code → [compliance, number of items] */
  raw: Map<number, [number, number]>;
  crc: boolean;
  secureChannel: boolean;
  leds: number;
  audible: boolean;
  /** Text lines × characters, or null without a display. */
  text: { lines: number; chars: number } | null;
  receiveBuffer: number | null;
}

export function parseCapabilities(d: Buffer): Capabilities {
  if (d.length % 3 !== 0) throw new MessageError(`PDCAP: ${d.length} bytes is not whole triplets`);
  const raw = new Map<number, [number, number]>();
  for (let i = 0; i < d.length; i += 3) raw.set(d[i]!, [d[i + 1]!, d[i + 2]!]);
  const get = (f: number): [number, number] => raw.get(f) ?? [0, 0];
  const [textCompliance, textLines] = get(CAP.text);
  const rb = raw.get(CAP.receiveBuffer);
  return {
    raw,
    crc: get(CAP.checkCharacter)[0] === 1,
    secureChannel: (get(CAP.security)[0] & 1) === 1,
    leds: get(CAP.led)[0] ? Math.max(1, get(CAP.led)[1]) : 0,
    audible: get(CAP.audible)[0] > 0,
    text: textCompliance > 0 ? { lines: Math.max(1, textLines), chars: 16 } : null,
    receiveBuffer: rb ? rb[0] | (rb[1] << 8) : null,
  };
}

export function encodeCapabilities(entries: [number, number, number][]): Buffer {
  return Buffer.from(entries.flat());
}

/** LED colours. */
export const COLOR = { black: 0, red: 1, green: 2, amber: 3, blue: 4, magenta: 5, cyan: 6, white: 7 } as const;
export type LedColor = keyof typeof COLOR;

export interface LedCommand {
  reader?: number;
  led?: number;
  /** A temporary state for `ms`, then back to the permanent one. */
  temporary?: { on: LedColor; off?: LedColor; onMs: number; offMs?: number; ms: number } | 'cancel';
  /** The state the LED stays in (steady when offMs is 0). */
  permanent?: { on: LedColor; off?: LedColor; onMs?: number; offMs?: number };
}

const tenths = (ms: number): number => Math.max(0, Math.min(255, Math.round(ms / 100)));

/** osdp_LED: one 14-byte record. Times on the wire are 100 ms units. */
export function encodeLed(c: LedCommand): Buffer {
  const b = Buffer.alloc(14);
  b[0] = c.reader ?? 0;
  b[1] = c.led ?? 0;
  const t = c.temporary;
  if (t === 'cancel') b[2] = 1;
  else if (t) {
    b[2] = 2;
    b[3] = tenths(t.onMs);
    b[4] = tenths(t.offMs ?? 0);
    b[5] = COLOR[t.on];
    b[6] = COLOR[t.off ?? 'black'];
    b.writeUInt16LE(Math.max(1, Math.min(0xffff, Math.round(t.ms / 100))), 7);
  }
  const p = c.permanent;
  if (p) {
    b[9] = 1;
    b[10] = p.offMs ? tenths(p.onMs ?? 500) : 1;
    b[11] = tenths(p.offMs ?? 0);
    b[12] = COLOR[p.on];
    b[13] = COLOR[p.off ?? 'black'];
  }
  return b;
}

export interface LedState {
  temporary: { on: number; off: number; onMs: number; offMs: number; ms: number } | null;
  permanent: { on: number; off: number; onMs: number; offMs: number } | null;
}

/** Read osdp_LED records (the emulator's side); every record is 14 bytes. */
export function parseLed(d: Buffer): { reader: number; led: number; temp: number; perm: number; state: LedState }[] {
  if (d.length === 0 || d.length % 14 !== 0) throw new MessageError(`LED: ${d.length} bytes is not whole 14-byte records`);
  const out = [];
  for (let i = 0; i < d.length; i += 14) {
    const r = d.subarray(i, i + 14);
    out.push({
      reader: r[0]!,
      led: r[1]!,
      temp: r[2]!,
      perm: r[9]!,
      state: {
        temporary: r[2] === 2 ? { onMs: r[3]! * 100, offMs: r[4]! * 100, on: r[5]!, off: r[6]!, ms: r.readUInt16LE(7) * 100 } : null,
        permanent: r[9] === 1 ? { onMs: r[10]! * 100, offMs: r[11]! * 100, on: r[12]!, off: r[13]! } : null,
      },
    });
  }
  return out;
}

/** osdp_BUZ: tone 2 (default) for onMs, offMs between, `count` times (0: until told otherwise); tone 1 off. */
export function encodeBuzzer(b: { reader?: number; onMs: number; offMs?: number; count: number } | 'off'): Buffer {
  if (b === 'off') return Buffer.from([0, 1, 0, 0, 0]);
  return Buffer.from([b.reader ?? 0, 2, tenths(b.onMs), tenths(b.offMs ?? 0), Math.max(0, Math.min(255, b.count))]);
}

export function parseBuzzer(d: Buffer): { reader: number; tone: number; onMs: number; offMs: number; count: number } {
  if (d.length !== 5) throw new MessageError(`BUZ: ${d.length} bytes, needs 5`);
  return { reader: d[0]!, tone: d[1]!, onMs: d[2]! * 100, offMs: d[3]! * 100, count: d[4]! };
}

/** osdp_TEXT: temporary (for `seconds`) or permanent text at row/column (1-based). ASCII only on the wire. */
export function encodeText(t: { reader?: number; text: string; seconds?: number; row?: number; column?: number }): Buffer {
  const ascii = Buffer.from(t.text.replace(/[^\x20-\x7e]/g, '?').slice(0, 32), 'latin1');
  const temporary = t.seconds !== undefined;
  return Buffer.concat([Buffer.from([t.reader ?? 0, temporary ? 3 : 1, temporary ? Math.max(1, Math.min(255, t.seconds!)) : 0, t.row ?? 1, t.column ?? 1, ascii.length]), ascii]);
}

export function parseText(d: Buffer): { reader: number; command: number; seconds: number; row: number; column: number; text: string } {
  need(d, 6, 'TEXT');
  if (d.length !== 6 + d[5]!) throw new MessageError(`TEXT: length ${d[5]} does not match the ${d.length - 6} bytes sent`);
  return { reader: d[0]!, command: d[1]!, seconds: d[2]!, row: d[3]!, column: d[4]!, text: d.subarray(6).toString('latin1') };
}

/** osdp_RAW: card bits as the reader saw them (format 0: raw, 1: Wiegand), packed MSB first. */
export function parseRawCard(d: Buffer): { reader: number; format: number; bits: string } {
  need(d, 4, 'RAW');
  const count = d.readUInt16LE(2);
  const bytes = Math.ceil(count / 8);
  if (count === 0 || d.length !== 4 + bytes) throw new MessageError(`RAW: ${count} bits need ${bytes} data bytes, got ${d.length - 4}`);
  let bits = '';
  for (let i = 0; i < bytes; i++) bits += d[4 + i]!.toString(2).padStart(8, '0');
  return { reader: d[0]!, format: d[1]!, bits: bits.slice(0, count) };
}

export function encodeRawCard(bits: string, format = 1, reader = 0): Buffer {
  const bytes = Math.ceil(bits.length / 8);
  const b = Buffer.alloc(4 + bytes);
  b[0] = reader;
  b[1] = format;
  b.writeUInt16LE(bits.length, 2);
  const padded = bits.padEnd(bytes * 8, '0');
  for (let i = 0; i < bytes; i++) b[4 + i] = parseInt(padded.slice(i * 8, i * 8 + 8), 2);
  return b;
}

/** osdp_FMT (deprecated in v2.2, still sent): the card as characters, e.g. a decimal number. */
export function parseFormattedCard(d: Buffer): { reader: number; reverse: boolean; text: string } {
  need(d, 3, 'FMT');
  if (d.length !== 3 + d[2]!) throw new MessageError(`FMT: ${d[2]} characters announced, ${d.length - 3} sent`);
  return { reader: d[0]!, reverse: d[1] === 1, text: d.subarray(3).toString('latin1') };
}

export function encodeFormattedCard(text: string, reader = 0): Buffer {
  const t = Buffer.from(text, 'latin1');
  return Buffer.concat([Buffer.from([reader, 0, t.length]), t]);
}

/**
 * osdp_KEYPPAD: keys pressed. `*` arrives as 0x7F and `#` as 0x0D (the spec's codes); some readers
 * send ASCII '*' and '#' instead: both are read.
 */
export function parseKeypad(d: Buffer): { reader: number; keys: string[] } {
  need(d, 2, 'KEYPAD');
  if (d.length !== 2 + d[1]!) throw new MessageError(`KEYPAD: ${d[1]} keys announced, ${d.length - 2} sent`);
  const keys: string[] = [];
  for (const c of d.subarray(2)) {
    if (c >= 0x30 && c <= 0x39) keys.push(String.fromCharCode(c));
    else if (c === 0x7f || c === 0x2a) keys.push('*');
    else if (c === 0x0d || c === 0x23) keys.push('#');
    else throw new MessageError(`KEYPAD: key code 0x${c.toString(16)} is not a key`);
  }
  return { reader: d[0]!, keys };
}

export function encodeKeypad(keys: string, reader = 0): Buffer {
  const codes = [...keys].map((k) => (k === '*' ? 0x7f : k === '#' ? 0x0d : k.charCodeAt(0)));
  return Buffer.from([reader, codes.length, ...codes]);
}

export function parseLocalStatus(d: Buffer): { tamper: boolean; power: boolean } {
  need(d, 2, 'LSTATR');
  return { tamper: d[0] === 1, power: d[1] === 1 };
}

/** osdp_KEYSET: a new secure channel base key (type 1). */
export function encodeKeyset(key: Buffer): Buffer {
  return Buffer.concat([Buffer.from([1, key.length]), key]);
}

export function parseKeyset(d: Buffer): Buffer {
  need(d, 2, 'KEYSET');
  if (d[0] !== 1 || d[1] !== 16 || d.length !== 18) throw new MessageError('KEYSET: only a 16-byte SCBK (type 1) is understood');
  return Buffer.from(d.subarray(2));
}

export function encodeComset(address: number, baud: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = address;
  b.writeUInt32LE(baud, 1);
  return b;
}

export function parseComset(d: Buffer): { address: number; baud: number } {
  need(d, 5, 'COMSET');
  return { address: d[0]!, baud: d.readUInt32LE(1) };
}

export function parseCcrypt(d: Buffer): { cuid: Buffer; rndB: Buffer; cryptogram: Buffer } {
  if (d.length !== 32) throw new MessageError(`CCRYPT: ${d.length} bytes, needs 32`);
  return { cuid: Buffer.from(d.subarray(0, 8)), rndB: Buffer.from(d.subarray(8, 16)), cryptogram: Buffer.from(d.subarray(16, 32)) };
}
