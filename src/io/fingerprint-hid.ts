/**
 * A fingerprint module on USB HID, speaking doorgw's generic framed protocol (README,
 * "Fingerprint modules"). Other modules are added by writing a decoder/encoder for their frames.
 *
 * Transport: 64-byte HID reports; byte 0 = how many of the following 63 bytes carry the stream.
 * Stream: frames  0xEF 0x01 | cmd | len (u16 BE) | payload | xor(cmd, len bytes, payload)
 *   module → host  0x10 MATCH    {slot u8}
 *                  0x11 ENROLLED {slot u8, template …}
 *                  0x12 ERROR    {code u8, message ascii}
 *   host → module  0x20 ENROLL {slot u8} · 0x21 CANCEL {} · 0x22 LOAD {slot u8, template …} · 0x23 DELETE {slot u8}
 * Slots (0-199) belong to the host, which maps them to (userid, WeCom fp id).
 */
import { Subject } from 'rxjs';
import { EnrolmentError, type EnrolResult, type FingerprintModule } from './fingerprint.js';

export const CMD = { MATCH: 0x10, ENROLLED: 0x11, ERROR: 0x12, ENROLL: 0x20, CANCEL: 0x21, LOAD: 0x22, DELETE: 0x23 } as const;
const SYNC = [0xef, 0x01];
const MAX_PAYLOAD = 4096;

export interface Frame {
  cmd: number;
  payload: Buffer;
}

export function encodeFrame(f: Frame): Buffer {
  const head = Buffer.from([...SYNC, f.cmd, f.payload.length >> 8, f.payload.length & 0xff]);
  let x = 0;
  for (const b of [...head.subarray(2), ...f.payload]) x ^= b;
  return Buffer.concat([head, f.payload, Buffer.from([x])]);
}

/** Split a stream into 64-byte reports (length-prefixed). */
export function toReports(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += 63) {
    const chunk = stream.subarray(i, i + 63);
    const r = Buffer.alloc(64);
    r[0] = chunk.length;
    chunk.copy(r, 1);
    out.push(r);
  }
  return out;
}

/** Reassembles frames from reports; resynchronises on garbage and bad checksums. */
export class FrameDecoder {
  private buf = Buffer.alloc(0);
  errors = 0;

  constructor(private readonly onFrame: (f: Frame) => void) {}

  push(report: Buffer): void {
    const n = report[0] ?? 0;
    if (n === 0 || n > 63 || report.length < 1 + n) {
      if (n !== 0) this.errors++;
      return;
    }
    this.buf = Buffer.concat([this.buf, report.subarray(1, 1 + n)]);
    for (;;) {
      const start = this.buf.findIndex((b, i) => b === SYNC[0] && this.buf[i + 1] === SYNC[1]);
      if (start < 0) {
        this.buf = this.buf.subarray(Math.max(0, this.buf.length - 1));
        return;
      }
      if (start > 0) {
        this.errors++;
        this.buf = this.buf.subarray(start);
      }
      if (this.buf.length < 5) return;
      const len = this.buf.readUInt16BE(3);
      if (len > MAX_PAYLOAD) {
        this.errors++;
        this.buf = this.buf.subarray(2);
        continue;
      }
      if (this.buf.length < 6 + len) return;
      let x = 0;
      for (const b of this.buf.subarray(2, 5 + len)) x ^= b;
      if (x !== this.buf[5 + len]) {
        this.errors++;
        this.buf = this.buf.subarray(2);
        continue;
      }
      const frame = { cmd: this.buf[2]!, payload: Buffer.from(this.buf.subarray(5, 5 + len)) };
      this.buf = this.buf.subarray(6 + len);
      this.onFrame(frame);
    }
  }
}

/** What HidFingerprint needs of a HID device (node-hid's HID, or a test transport). */
export interface HidTransport {
  on(ev: 'data', cb: (report: Buffer) => void): void;
  write(report: number[]): void;
  close(): void;
}

export class HidFingerprint implements FingerprintModule {
  readonly algorithm = 'doorgw-hid-frame-1';
  readonly matches$ = new Subject<{ userid: string; slot: number }>();
  /** Module slot → (userid, WeCom fp id). */
  private readonly slots = new Map<number, { userid: string; fpId: number }>();
  private pending: { resolve: (r: EnrolResult) => void; reject: (e: Error) => void; slot: number; userid: string } | null = null;
  private readonly decoder: FrameDecoder;

  constructor(private readonly dev: HidTransport) {
    this.decoder = new FrameDecoder((f) => this.onFrame(f));
    dev.on('data', (r) => this.decoder.push(r));
  }

  private send(cmd: number, payload: Buffer = Buffer.alloc(0)): void {
    for (const r of toReports(encodeFrame({ cmd, payload }))) this.dev.write([0x00, ...r]); // report id 0
  }

  private freeSlot(): number {
    for (let s = 0; s < 200; s++) if (!this.slots.has(s)) return s;
    throw new EnrolmentError('the fingerprint module is full (200 templates)');
  }

  private onFrame(f: Frame): void {
    if (f.cmd === CMD.MATCH) {
      const owner = this.slots.get(f.payload[0] ?? -1);
      if (owner) this.matches$.next({ userid: owner.userid, slot: owner.fpId });
    } else if (f.cmd === CMD.ENROLLED && this.pending) {
      const p = this.pending;
      this.pending = null;
      const fpId = [...this.slots.values()].filter((s) => s.userid === p.userid).length % 10;
      this.slots.set(p.slot, { userid: p.userid, fpId });
      p.resolve({ slot: fpId, template: f.payload.subarray(1) });
    } else if (f.cmd === CMD.ERROR && this.pending) {
      const p = this.pending;
      this.pending = null;
      p.reject(new EnrolmentError(f.payload.subarray(1).toString('latin1') || `module error ${f.payload[0] ?? '?'}`));
    }
  }

  enroll(userid: string, signal: AbortSignal): Promise<EnrolResult> {
    if (this.pending) return Promise.reject(new EnrolmentError('another enrolment is in progress'));
    const slot = this.freeSlot();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        if (this.pending?.slot !== slot) return;
        this.pending = null;
        this.send(CMD.CANCEL);
        reject(new EnrolmentError('enrolment cancelled'));
      };
      this.pending = {
        slot,
        userid,
        resolve: (r) => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.send(CMD.ENROLL, Buffer.from([slot]));
    });
  }

  async load(userid: string, templates: { slot: number; template: Buffer }[]): Promise<void> {
    await this.delete(userid);
    for (const t of templates) {
      const s = this.freeSlot();
      this.slots.set(s, { userid, fpId: t.slot });
      this.send(CMD.LOAD, Buffer.concat([Buffer.from([s]), t.template]));
    }
  }

  delete(userid: string): Promise<void> {
    for (const [s, v] of this.slots) {
      if (v.userid !== userid) continue;
      this.slots.delete(s);
      this.send(CMD.DELETE, Buffer.from([s]));
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.matches$.complete();
    this.dev.close();
    return Promise.resolve();
  }
}
