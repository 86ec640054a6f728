/**
 * The packet protocol of the R30x / ZFM / AS608 / R503 fingerprint modules (UART, 57600 8N1 by
 * default): `EF 01 | address (4) | PID | length (2, payload + checksum) | payload | checksum (2)`,
 * the checksum being the 16-bit sum of PID, length and payload. PIDs: 01 command, 02 data (more
 * follows), 07 acknowledge, 08 end of data.
 */

export const PID = { command: 0x01, data: 0x02, ack: 0x07, end: 0x08 } as const;
export const DEFAULT_ADDRESS = 0xffffffff;

/** Instruction codes used here. */
export const CMD = {
  genImg: 0x01,
  img2Tz: 0x02,
  search: 0x04,
  regModel: 0x05,
  store: 0x06,
  upChar: 0x08,
  downChar: 0x09,
  deleteChar: 0x0c,
  empty: 0x0d,
  readSysPara: 0x0f,
  verifyPassword: 0x13,
  templateNum: 0x1d,
} as const;

/** Confirmation codes, in words for the log and the cloud. */
export const CONFIRMATION: Record<number, string> = {
  0x00: 'ok',
  0x01: 'packet error',
  0x02: 'no finger on the sensor',
  0x03: 'could not take an image',
  0x06: 'the image is too disorderly',
  0x07: 'too few features in the image',
  0x08: 'the finger does not match',
  0x09: 'no matching template',
  0x0a: 'the two images do not make one template',
  0x0b: 'page out of range',
  0x0c: 'could not read the template',
  0x0d: 'could not upload the template',
  0x0e: 'the module could not receive the data packets',
  0x10: 'could not delete the template',
  0x11: 'could not clear the library',
  0x13: 'wrong module password',
  0x15: 'no valid image in the buffer',
  0x18: 'flash write error',
  0x1a: 'invalid register',
};

export interface Packet {
  address: number;
  pid: number;
  payload: Buffer;
}

export function encodePacket(pid: number, payload: Buffer, address = DEFAULT_ADDRESS): Buffer {
  const len = payload.length + 2;
  const b = Buffer.alloc(9 + payload.length + 2);
  b.writeUInt16BE(0xef01, 0);
  b.writeUInt32BE(address >>> 0, 2);
  b[6] = pid;
  b.writeUInt16BE(len, 7);
  payload.copy(b, 9);
  let sum = pid + (len >> 8) + (len & 0xff);
  for (const x of payload) sum += x;
  b.writeUInt16BE(sum & 0xffff, 9 + payload.length);
  return b;
}

/** A streaming decoder: feed bytes, get packets; garbage and bad checksums are skipped (counted). */
export class PacketDecoder {
  private buf = Buffer.alloc(0);
  bad = 0;

  push(chunk: Buffer): Packet[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: Packet[] = [];
    for (;;) {
      const start = this.buf.indexOf(Buffer.from([0xef, 0x01]));
      if (start < 0) {
        this.buf = this.buf.subarray(Math.max(0, this.buf.length - 1));
        return out;
      }
      if (start > 0) this.buf = this.buf.subarray(start);
      if (this.buf.length < 9) return out;
      const len = this.buf.readUInt16BE(7);
      if (len < 2 || len > 1024) {
        this.bad++;
        this.buf = this.buf.subarray(2);
        continue;
      }
      if (this.buf.length < 9 + len) return out;
      const pid = this.buf[6]!;
      const payload = Buffer.from(this.buf.subarray(9, 9 + len - 2));
      let sum = pid + (len >> 8) + (len & 0xff);
      for (const x of payload) sum += x;
      const want = this.buf.readUInt16BE(9 + len - 2);
      if ((sum & 0xffff) !== want) {
        this.bad++;
        this.buf = this.buf.subarray(2);
        continue;
      }
      out.push({ address: this.buf.readUInt32BE(2), pid, payload });
      this.buf = this.buf.subarray(9 + len);
    }
  }
}
