/**
 * OSDP v2.2 packets (SIA OSDP, IEC 60839-11-5), the byte layer both ends share:
 *
 *   SOM 0x53 | ADDR (bit 7 set on replies) | LEN (2, LSB first: SOM … check) | CTRL |
 *   [SCB: length, type, data] | CMND/REPLY | DATA | [MAC (4)] | CRC-16 (2, LSB first) or checksum (1)
 *
 * CTRL: bits 0–1 sequence number, bit 2 CRC (else checksum), bit 3 security block present.
 * CRC-16 is CCITT with initial value 0x1D0F (CRC-16/AUG-CCITT); the checksum is the two's complement
 * of the byte sum. Some devices send a 0xFF mark byte before SOM: it is skipped like any other byte
 * between packets. Pure: no I/O, no timers (the decoder takes the time as an argument).
 */

export const SOM = 0x53;
export const MARK = 0xff;
export const BROADCAST = 0x7f;
/** The largest packet accepted from the wire (v2.2 readers announce far less; every size from outside has a limit). */
export const MAX_PACKET = 1024;

/** Security block types (SCS_11 … SCS_18). */
export const SCS = { chlng: 0x11, ccrypt: 0x12, scrypt: 0x13, rmacI: 0x14, cmdMac: 0x15, replyMac: 0x16, cmdEnc: 0x17, replyEnc: 0x18 } as const;

export interface Packet {
  /** 0–0x7F (the reply bit removed). */
  addr: number;
  reply: boolean;
  sqn: number;
  crc: boolean;
  /** Security control block: its type and data (without the length and type bytes). */
  scb: { type: number; data: Buffer } | null;
  code: number;
  /** As on the wire (encrypted for SCS_17/18). */
  data: Buffer;
  /** The 4 MAC bytes of SCS_15–18 packets, else null. */
  mac: Buffer | null;
  /** SOM … end of data: what the MAC covers. */
  macInput: Buffer;
}

export function crc16(b: Uint8Array, from = 0, to = b.length): number {
  let crc = 0x1d0f;
  for (let i = from; i < to; i++) {
    crc ^= b[i]! << 8;
    for (let k = 0; k < 8; k++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

export function checksum(b: Uint8Array, from = 0, to = b.length): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += b[i]!;
  return (0x100 - (sum & 0xff)) & 0xff;
}

const hasMac = (scbType: number | undefined): boolean => scbType !== undefined && scbType >= SCS.cmdMac && scbType <= SCS.replyEnc;

export interface PacketSpec {
  addr: number;
  reply?: boolean;
  sqn: number;
  crc: boolean;
  scb?: { type: number; data?: Buffer } | null;
  code: number;
  data?: Buffer;
}

/**
 * Encode a packet. `mac` computes the 4 MAC bytes from SOM … data (the length field already counts
 * them): it is called only for SCS_15–18.
 */
export function encodePacket(p: PacketSpec, mac?: (macInput: Buffer) => Buffer): Buffer {
  const data = p.data ?? Buffer.alloc(0);
  const scb = p.scb ? Buffer.concat([Buffer.from([2 + (p.scb.data?.length ?? 0), p.scb.type]), p.scb.data ?? Buffer.alloc(0)]) : Buffer.alloc(0);
  const withMac = hasMac(p.scb?.type);
  const len = 5 + scb.length + 1 + data.length + (withMac ? 4 : 0) + (p.crc ? 2 : 1);
  if (len > MAX_PACKET) throw new RangeError(`an OSDP packet of ${len} bytes is over the ${MAX_PACKET}-byte limit`);
  const head = Buffer.from([SOM, (p.addr & 0x7f) | (p.reply ? 0x80 : 0), len & 0xff, len >> 8, (p.sqn & 3) | (p.crc ? 4 : 0) | (p.scb ? 8 : 0)]);
  const body = Buffer.concat([head, scb, Buffer.from([p.code]), data]);
  let macBytes: Buffer = Buffer.alloc(0);
  if (withMac) {
    if (!mac) throw new Error('a secure-channel packet needs its MAC');
    macBytes = mac(body).subarray(0, 4);
  }
  const out = Buffer.alloc(len);
  body.copy(out, 0);
  macBytes.copy(out, body.length);
  const end = body.length + macBytes.length;
  if (p.crc) out.writeUInt16LE(crc16(out, 0, end), end);
  else out[end] = checksum(out, 0, end);
  return out;
}

/** Parse one whole packet (SOM at 0, exactly LEN bytes, check already verified). */
function parse(b: Buffer): Packet | string {
  const ctrl = b[4]!;
  const crc = (ctrl & 4) !== 0;
  const end = b.length - (crc ? 2 : 1);
  let i = 5;
  let scb: Packet['scb'] = null;
  if (ctrl & 8) {
    const l = b[5]!;
    if (l < 2 || 5 + l >= end) return `security block length ${l} does not fit the packet`;
    scb = { type: b[6]!, data: Buffer.from(b.subarray(7, 5 + l)) };
    i = 5 + l;
  }
  const macLen = hasMac(scb?.type) ? 4 : 0;
  if (i + 1 + macLen > end) return 'packet too short for its code and MAC';
  return {
    addr: b[1]! & 0x7f,
    reply: (b[1]! & 0x80) !== 0,
    sqn: ctrl & 3,
    crc,
    scb,
    code: b[i]!,
    data: Buffer.from(b.subarray(i + 1, end - macLen)),
    mac: macLen ? Buffer.from(b.subarray(end - macLen, end)) : null,
    macInput: Buffer.from(b.subarray(0, end - macLen)),
  };
}

/** Does `b` begin (after mark bytes) with a whole packet whose check is right? */
function startsWithFrame(b: Buffer): boolean {
  let i = 0;
  while (i < b.length && b[i] === MARK) i++;
  if (b.length - i < 7 || b[i] !== SOM) return false;
  const len = b[i + 2]! | (b[i + 3]! << 8);
  if (len < 7 || len > MAX_PACKET || b.length - i < len) return false;
  const f = b.subarray(i, i + len);
  return f[4]! & 4 ? len >= 8 && f.readUInt16LE(len - 2) === crc16(f, 0, len - 2) : f[len - 1] === checksum(f, 0, len - 1);
}

/**
 * Finds packets in a byte stream. Garbage, impossible lengths and bad checks are skipped byte by
 * byte to the next SOM (counted); a frame whose bytes stopped for `interCharMs` and is followed by a
 * whole new frame is dropped (a truncated frame must not swallow the next one). Silence alone never
 * drops bytes: a busy event loop reads late what the kernel received on time.
 */
export class PacketDecoder {
  private buf: Buffer = Buffer.alloc(0);
  private lastByteAt = 0;
  /** Bytes or frames thrown away, by why. */
  readonly dropped = { garbage: 0, check: 0, length: 0, truncated: 0 };

  constructor(private readonly interCharMs = 20) {}

  push(chunk: Buffer, nowMs: number): Packet[] {
    // After a silence, bytes are either the rest of a frame (delivered late by a busy event loop: the
    // kernel kept them) or a new frame after one that was cut off. Only a whole, valid frame at the
    // start of the new bytes proves the latter; then the stale partial frame is dropped.
    if (this.buf.length && nowMs - this.lastByteAt > this.interCharMs && startsWithFrame(chunk)) {
      this.dropped.truncated++;
      this.buf = Buffer.alloc(0);
    }
    this.lastByteAt = nowMs;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Packet[] = [];
    for (;;) {
      this.resync();
      if (this.buf.length < 5) break;
      const len = this.buf[2]! | (this.buf[3]! << 8);
      const minLen = this.buf[4]! & 4 ? 8 : 7;
      if (len < minLen || len > MAX_PACKET) {
        this.dropped.length++;
        this.buf = this.buf.subarray(1);
        continue;
      }
      if (this.buf.length < len) break;
      const frame = this.buf.subarray(0, len);
      const crc = (frame[4]! & 4) !== 0;
      const ok = crc ? frame.readUInt16LE(len - 2) === crc16(frame, 0, len - 2) : frame[len - 1] === checksum(frame, 0, len - 1);
      if (!ok) {
        this.dropped.check++;
        this.buf = this.buf.subarray(1);
        continue;
      }
      const p = parse(Buffer.from(frame));
      this.buf = this.buf.subarray(len);
      if (typeof p === 'string') this.dropped.length++;
      else out.push(p);
    }
    if (!this.buf.length) this.buf = Buffer.alloc(0);
    return out;
  }

  /** Drop everything before the next SOM. */
  private resync(): void {
    const at = this.buf.indexOf(SOM);
    const skip = at < 0 ? this.buf.length : at;
    for (let i = 0; i < skip; i++) if (this.buf[i] !== MARK) this.dropped.garbage++;
    if (skip) this.buf = this.buf.subarray(skip);
  }

  /** Forget a partial frame (after a reply deadline passes, before the next command). */
  reset(): void {
    this.buf = Buffer.alloc(0);
  }

  get pending(): number {
    return this.buf.length;
  }
}
