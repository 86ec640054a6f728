/**
 * One RS-485 bus as an OSDP control panel drives it: half duplex, one exchange at a time. Readers are
 * polled in turn; each exchange is a command, then the reply from that address within the reply
 * deadline (200 ms after the command has left the wire), then a turnaround pause before the next
 * command. Offline readers are probed at most one per cycle, so a dead reader costs the live ones one
 * deadline per cycle, never one per reader (live readers' own session timers keep running).
 * Bytes that are not a reply from the address asked — our own echo on two-wire adapters, a late
 * reply to an earlier command, line noise — are dropped by address and reply bit.
 */
import type { Subscription } from 'rxjs';
import type { SerialLink } from '../serial.js';
import type { OsdpDevice } from './device.js';
import { PacketDecoder, type Packet } from './packet.js';

export interface OsdpBusOptions {
  /** The port, if open already (else `attach` it when it is). */
  link?: SerialLink;
  baud: number;
  /** Time a reader has to start its reply (OSDP: 200 ms). */
  replyTimeoutMs?: number;
  /** Pause after a reply before the next command (the reader's driver must release the line). */
  turnaroundMs?: number;
  /** A cycle over all readers starts at most this often. */
  pollIntervalMs?: number;
  now?: () => number;
  onStray?: (p: Packet) => void;
}

/** Milliseconds `bytes` take on the wire at `baud` (8N1: 10 bits a byte). */
export const wireMs = (bytes: number, baud: number): number => (bytes * 10 * 1000) / baud;

export class OsdpBus {
  private readonly devices: OsdpDevice[] = [];
  private readonly decoder: PacketDecoder;
  private waiting: { addr: number; resolve: (p: Packet | null) => void } | null = null;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wake: (() => void) | null = null;
  private readonly now: () => number;
  private link: SerialLink | null = null;
  private linkSub: Subscription | null = null;
  /** Replies from addresses not asked, or after their deadline. */
  stray = 0;
  exchanges = 0;
  private probeNext = 0;
  /** Scans: a broadcast is answered from the reader's own address. */
  acceptAnyAddress = false;

  constructor(private readonly o: OsdpBusOptions) {
    this.now = o.now ?? Date.now;
    // Inter-character timeout: generous at low speeds (4 characters), never under 20 ms.
    this.decoder = new PacketDecoder(Math.max(20, wireMs(4, o.baud)));
    if (o.link) this.attach(o.link);
  }

  /** The port is open: poll on it. */
  attach(link: SerialLink): void {
    this.detach('replaced');
    this.link = link;
    this.linkSub = link.data$.subscribe((b) => this.onData(b));
    this.kick();
  }

  /** The port is gone (unplugged): every reader on it is offline until it is back. */
  detach(why: string): void {
    if (!this.link) return;
    this.linkSub?.unsubscribe();
    this.linkSub = null;
    this.link = null;
    this.decoder.reset();
    this.waiting?.resolve(null);
    for (const d of this.devices) d.linkLost(why);
  }

  get attached(): boolean {
    return this.link !== null;
  }

  get dropped(): PacketDecoder['dropped'] {
    return this.decoder.dropped;
  }

  add(d: OsdpDevice): void {
    if (this.devices.some((x) => x.address === d.address)) throw new Error(`two readers on one bus at address ${d.address}`);
    this.devices.push(d);
    this.kick();
  }

  remove(d: OsdpDevice): void {
    const i = this.devices.indexOf(d);
    if (i >= 0) this.devices.splice(i, 1);
  }

  get size(): number {
    return this.devices.length;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** Cut the idle pause short: a command waits (feedback after a decision). */
  kick(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.kick();
    this.waiting?.resolve(null);
    await this.loopDone;
  }

  private onData(b: Buffer): void {
    for (const p of this.decoder.push(b, this.now())) {
      const w = this.waiting;
      if (w && p.reply && (p.addr === w.addr || this.acceptAnyAddress)) {
        this.waiting = null;
        w.resolve(p);
      } else if (p.reply) {
        this.stray++;
        this.o.onStray?.(p);
      } // a command on the bus is our own echo (two-wire adapters): ignored
    }
  }

  /** Send one frame and wait for the reply from `addr` (null: none in time, or no port). */
  exchange(addr: number, frame: Buffer, replyTimeoutMs = this.o.replyTimeoutMs ?? 200): Promise<Packet | null> {
    const link = this.link;
    if (!link) return Promise.resolve(null);
    this.decoder.reset();
    this.exchanges++;
    return new Promise<Packet | null>((resolve) => {
      let timer: NodeJS.Timeout;
      const done = (p: Packet | null): void => {
        clearTimeout(timer);
        if (this.waiting?.resolve === done) this.waiting = null;
        resolve(p);
      };
      this.waiting = { addr, resolve: done };
      link.write(frame);
      const deadline = wireMs(frame.length, this.o.baud) + replyTimeoutMs;
      timer = setTimeout(
        // After the poll phase (setImmediate): bytes that arrived while the event loop was busy are
        // read before the deadline is judged. A reply under way then gets the time to finish (a long
        // card reply at 9600).
        () =>
          setImmediate(() => {
            if (this.waiting?.resolve !== done) return;
            if (this.decoder.pending > 0) timer = setTimeout(() => done(null), wireMs(128, this.o.baud) + 20);
            else done(null);
          }),
        deadline,
      );
    });
  }

  private async loop(): Promise<void> {
    while (this.running) {
      if (!this.link) {
        await this.idle(1000);
        continue;
      }
      const started = this.now();
      // Live readers in turn, then at most one offline reader, round robin: between two polls of
      // a live reader there is never more than one dead reader's deadline.
      const isDead = (d: OsdpDevice): boolean => d.down && !d.responsive;
      const live = this.devices.filter((d) => !isDead(d));
      const dead = this.devices.filter(isDead);
      for (const d of live) {
        if (!this.running || !this.link) break;
        await this.turn(d);
      }
      for (let i = 0; i < dead.length && this.running && this.link; i++) {
        const d = dead[(this.probeNext + i) % dead.length]!;
        if (await this.turn(d)) {
          this.probeNext = (this.probeNext + i + 1) % dead.length;
          break;
        }
      }
      const rest = (this.o.pollIntervalMs ?? 30) - (this.now() - started);
      if (this.running && (rest > 0 || !this.devices.length)) await this.idle(this.devices.length ? rest : 1000);
    }
  }

  /** One exchange with `d`, if it has something due; false if it had nothing. */
  private async turn(d: OsdpDevice): Promise<boolean> {
    const frame = d.nextFrame();
    if (!frame) return false;
    const reply = await this.exchange(d.address, frame);
    if (!this.running || !this.link || !this.devices.includes(d)) return true;
    d.onReply(reply);
    await this.pause(this.o.turnaroundMs ?? Math.max(1, Math.ceil(wireMs(3, this.o.baud))));
    return true;
  }

  private pause(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
    });
  }
}
