/**
 * A serial fingerprint module of the R30x family (R305, R307, R503, ZFM-20, AS608…) behind the
 * FingerprintModule interface: handshake with its password, a watch loop (capture → features →
 * search) that reports matches, enrolment (two captures → model → store → template upload),
 * template download for synced templates, deletion. doorgw keeps which library page holds whose
 * finger in a small file in the data directory (the module only knows page numbers).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Subject, type Subscription } from 'rxjs';
import type { Logger } from '../../log.js';
import { EnrolmentError, type EnrolResult, type FingerprintModule } from '../fingerprint.js';
import type { SerialLink } from '../serial.js';
import { CMD, CONFIRMATION, DEFAULT_ADDRESS, encodePacket, PacketDecoder, PID, type Packet } from './r30x-packets.js';

export class ModuleError extends Error {
  constructor(
    readonly code: number,
    what: string,
  ) {
    super(`${what}: ${CONFIRMATION[code] ?? `module error 0x${code.toString(16)}`}`);
  }
}

export interface R30xOptions {
  link: SerialLink;
  password: number;
  address?: number;
  /** page → who, kept across restarts. */
  mapFile: string;
  log: Logger;
  /** How often the watch loop looks for a finger. */
  pollMs?: number;
  /** How long one command may take (captures are the slowest). */
  timeoutMs?: number;
  /** How long an enrolment waits for a finger. */
  enrolTimeoutMs?: number;
  /** Silence for this long and the module counts as offline (default 5 s). */
  offlineAfterMs?: number;
}

interface Waiter {
  resolve: (p: Packet) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class R30xModule implements FingerprintModule {
  readonly algorithm = 'r30x';
  readonly matches$ = new Subject<{ userid: string; slot: number }>();
  readonly unmatched$ = new Subject<void>();
  capacity = 0;
  packetSize = 128;
  private readonly decoder = new PacketDecoder();
  private readonly inbox: Packet[] = [];
  private waiter: Waiter | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly sub: Subscription;
  private pages = new Map<number, { userid: string; slot: number }>();
  private enrolling = false;
  private closed = false;
  private loop: NodeJS.Timeout | null = null;
  private fingerDown = false;
  /** When the module last answered a command. */
  private lastAnswer = Date.now();

  private constructor(private readonly o: R30xOptions) {
    this.sub = o.link.data$.subscribe((b) => {
      for (const p of this.decoder.push(b)) this.deliver(p);
    });
    if (existsSync(o.mapFile)) {
      try {
        const m = JSON.parse(readFileSync(o.mapFile, 'utf8')) as Record<string, { userid: string; slot: number }>;
        this.pages = new Map(Object.entries(m).map(([k, v]) => [Number(k), v]));
      } catch {
        o.log.warn({ file: o.mapFile }, 'fingerprint page map unreadable; matches will not be named until templates are loaded again');
      }
    }
  }

  /** Open: verify the password, read the library size and packet size, start watching for fingers. */
  static async open(o: R30xOptions): Promise<R30xModule> {
    const m = new R30xModule(o);
    try {
      const pw = Buffer.alloc(4);
      pw.writeUInt32BE(o.password >>> 0);
      await m.command(CMD.verifyPassword, pw, 'handshake');
      const sys = await m.command(CMD.readSysPara, Buffer.alloc(0), 'reading the module parameters');
      // conf, status (2), system id (2), library size (2), security level (2), address (4), packet size code (2), baud (2)
      m.capacity = sys.readUInt16BE(5);
      m.packetSize = [32, 64, 128, 256][sys.readUInt16BE(13)] ?? 128;
    } catch (e) {
      await m.close();
      throw e;
    }
    o.log.info({ capacity: m.capacity, packet_size: m.packetSize, known_pages: m.pages.size }, 'fingerprint module (r30x) ready');
    m.watch();
    return m;
  }

  private deliver(p: Packet): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      clearTimeout(w.timer);
      w.resolve(p);
    } else this.inbox.push(p);
  }

  private next(what: string, timeoutMs: number): Promise<Packet> {
    const queued = this.inbox.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new EnrolmentError(`the fingerprint module did not answer (${what}) within ${timeoutMs} ms: check wiring (TX↔RX), baud rate and power`));
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** Exchanges with the module one at a time (a half-duplex line): each waits for the one before. */
  private serial<T>(run: () => Promise<T>): Promise<T> {
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** One command, one acknowledgement, one at a time; a non-zero confirmation is a ModuleError. */
  private command(code: number, params: Buffer, what: string, o: { allow?: number[]; timeoutMs?: number } = {}): Promise<Buffer> {
    const run = async (): Promise<Buffer> => {
      if (this.closed) throw new EnrolmentError('the fingerprint module is closed');
      this.inbox.length = 0;
      this.o.link.write(encodePacket(PID.command, Buffer.concat([Buffer.from([code]), params]), this.o.address ?? DEFAULT_ADDRESS));
      const ack = await this.next(what, o.timeoutMs ?? this.o.timeoutMs ?? 2000);
      this.lastAnswer = Date.now();
      if (ack.pid !== PID.ack) throw new EnrolmentError(`${what}: expected an acknowledgement, got packet type ${ack.pid}`);
      const conf = ack.payload[0] ?? 0x01;
      if (conf !== 0 && !(o.allow ?? []).includes(conf)) throw new ModuleError(conf, what);
      return ack.payload;
    };
    return this.serial(run);
  }

  /** Upload a char buffer's template from the module (UpChar then data packets to the end packet). */
  private upload(buffer: number): Promise<Buffer> {
    const run = async (): Promise<Buffer> => {
      this.inbox.length = 0;
      this.o.link.write(encodePacket(PID.command, Buffer.from([CMD.upChar, buffer]), this.o.address ?? DEFAULT_ADDRESS));
      const ack = await this.next('template upload', 2000);
      if (ack.payload[0] !== 0) throw new ModuleError(ack.payload[0] ?? 1, 'template upload');
      const parts: Buffer[] = [];
      for (;;) {
        const p = await this.next('template data', 2000);
        parts.push(p.payload);
        if (p.pid === PID.end) break;
        if (p.pid !== PID.data) throw new EnrolmentError(`template upload: unexpected packet type ${p.pid}`);
        if (parts.length > 64) throw new EnrolmentError('template upload: more data than any template');
      }
      return Buffer.concat(parts);
    };
    return this.serial(run);
  }

  /** Download a template into a char buffer (DownChar, then data packets, the last an end packet). */
  private download(buffer: number, template: Buffer): Promise<void> {
    const run = async (): Promise<void> => {
      this.inbox.length = 0;
      const addr = this.o.address ?? DEFAULT_ADDRESS;
      this.o.link.write(encodePacket(PID.command, Buffer.from([CMD.downChar, buffer]), addr));
      const ack = await this.next('template download', 2000);
      if (ack.payload[0] !== 0) throw new ModuleError(ack.payload[0] ?? 1, 'template download');
      for (let i = 0; i < template.length; i += this.packetSize) {
        const last = i + this.packetSize >= template.length;
        this.o.link.write(encodePacket(last ? PID.end : PID.data, template.subarray(i, i + this.packetSize), addr));
      }
    };
    return this.serial(run);
  }

  private saveMap(): void {
    const tmp = `${this.o.mapFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.pages)), { mode: 0o600 });
    renameSync(tmp, this.o.mapFile);
  }

  private freePage(): number {
    for (let p = 0; p < this.capacity; p++) if (!this.pages.has(p)) return p;
    throw new EnrolmentError(`the module's library is full (${this.capacity} templates)`);
  }

  /** The watch loop: a finger on the sensor is captured, searched, and reported once until lifted. */
  private watch(): void {
    const tick = async (): Promise<void> => {
      if (this.closed) return;
      try {
        if (!this.enrolling) {
          const img = await this.command(CMD.genImg, Buffer.alloc(0), 'capture', { allow: [0x02] });
          if (img[0] === 0x02) this.fingerDown = false;
          else if (!this.fingerDown) {
            this.fingerDown = true;
            await this.command(CMD.img2Tz, Buffer.from([1]), 'features');
            const params = Buffer.alloc(5);
            params[0] = 1;
            params.writeUInt16BE(0, 1);
            params.writeUInt16BE(this.capacity, 3);
            const r = await this.command(CMD.search, params, 'search', { allow: [0x09], timeoutMs: 3000 });
            if (r[0] === 0) {
              const page = r.readUInt16BE(1);
              const who = this.pages.get(page);
              if (who) this.matches$.next(who);
              else {
                this.o.log.warn({ page }, 'a finger matched a library page doorgw does not know: denied as unknown');
                this.unmatched$.next();
              }
            } else this.unmatched$.next(); // 0x09: in nobody's templates

          }
        }
      } catch (e) {
        if (!this.closed) this.o.log.warn({ err: (e as Error).message }, 'fingerprint watch');
      }
      if (!this.closed) this.loop = setTimeout(() => void tick(), this.o.pollMs ?? 250);
    };
    this.loop = setTimeout(() => void tick(), this.o.pollMs ?? 250);
  }

  /** Wait for a finger (capture returns 0) or, with `lift`, for no finger (0x02). */
  private async waitFinger(lift: boolean, signal: AbortSignal, deadline: number): Promise<void> {
    for (;;) {
      if (signal.aborted) throw new EnrolmentError('enrolment cancelled');
      if (Date.now() > deadline) throw new EnrolmentError(lift ? 'the finger was not lifted in time' : 'no finger was placed in time');
      const r = await this.command(CMD.genImg, Buffer.alloc(0), 'capture', { allow: [0x02, 0x03] });
      if (lift ? r[0] === 0x02 : r[0] === 0x00) return;
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  async enroll(userid: string, signal: AbortSignal): Promise<EnrolResult> {
    if (this.enrolling) throw new EnrolmentError('an enrolment is already in progress');
    this.enrolling = true;
    try {
      const deadline = Date.now() + (this.o.enrolTimeoutMs ?? 55_000);
      // Two captures of the same finger, lifted in between, make one template.
      await this.waitFinger(false, signal, deadline);
      await this.command(CMD.img2Tz, Buffer.from([1]), 'first capture');
      await this.waitFinger(true, signal, deadline);
      await this.waitFinger(false, signal, deadline);
      await this.command(CMD.img2Tz, Buffer.from([2]), 'second capture');
      await this.command(CMD.regModel, Buffer.alloc(0), 'making the template');
      const page = this.freePage();
      const store = Buffer.alloc(3);
      store[0] = 1;
      store.writeUInt16BE(page, 1);
      await this.command(CMD.store, store, 'storing the template');
      const template = await this.upload(1);
      const slot = [...this.pages.values()].filter((p) => p.userid === userid).length % 10;
      this.pages.set(page, { userid, slot });
      this.saveMap();
      this.fingerDown = true; // the enrolled finger is still on the sensor: not a pass
      return { slot, template };
    } catch (e) {
      if (e instanceof ModuleError) throw new EnrolmentError(e.message);
      throw e;
    } finally {
      this.enrolling = false;
    }
  }

  async load(userid: string, templates: { slot: number; template: Buffer }[]): Promise<void> {
    await this.delete(userid);
    for (const t of templates) {
      const page = this.freePage();
      await this.download(1, t.template);
      const store = Buffer.alloc(3);
      store[0] = 1;
      store.writeUInt16BE(page, 1);
      await this.command(CMD.store, store, 'storing a synced template');
      this.pages.set(page, { userid, slot: t.slot });
    }
    this.saveMap();
  }

  async delete(userid: string): Promise<void> {
    const mine = [...this.pages].filter(([, v]) => v.userid === userid).map(([p]) => p);
    for (const page of mine) {
      const b = Buffer.alloc(4);
      b.writeUInt16BE(page, 0);
      b.writeUInt16BE(1, 2);
      await this.command(CMD.deleteChar, b, 'deleting a template');
      this.pages.delete(page);
    }
    if (mine.length) this.saveMap();
  }

  /** The watch loop asks every 250 ms: silence for 5 s means the module is gone (unplugged, unpowered). */
  online(): boolean {
    return !this.closed && Date.now() - this.lastAnswer < (this.o.offlineAfterMs ?? 5000);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.loop) clearTimeout(this.loop);
    if (this.waiter) {
      clearTimeout(this.waiter.timer);
      this.waiter.reject(new EnrolmentError('the fingerprint module is closed'));
      this.waiter = null;
    }
    this.sub.unsubscribe();
    this.matches$.complete();
    this.unmatched$.complete();
    await this.o.link.close();
  }
}
