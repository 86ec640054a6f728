/**
 * A device that may not be there (a USB serial adapter unplugged, not yet enumerated at boot, a
 * module unpowered): opened in the background and opened again every `retryMs` after a failure or
 * after it goes away. The gateway never waits for it; its users see it missing meanwhile. One
 * mechanism for every such device (OSDP buses, serial fingerprint modules).
 */
import type { Logger } from '../log.js';

export interface ReopenOptions<T> {
  /** Open the device; call `lost` if it later goes away on its own. */
  open(lost: (why: string) => void): Promise<T>;
  /** It is open (again): use it. */
  attach(t: T): void | Promise<void>;
  /** It went away: stop using it (it is closed afterwards). */
  detach(t: T, why: string): void;
  close(t: T): Promise<void>;
  log: Logger;
  /** What it is, for the log ("RS-485 port", "fingerprint module"). */
  what: string;
  /** What that means meanwhile ("its readers are offline"). */
  meanwhile: string;
  retryMs: number;
}

export class Reopener<T> {
  /** Why it is not open, while it is not (null: open). */
  error: string | null = 'not opened yet';
  private current: T | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly o: ReopenOptions<T>) {}

  /** Try now; resolves once this attempt is over (either way). */
  async start(): Promise<void> {
    this.timer = null;
    let t: T;
    try {
      t = await this.o.open((why) => this.lost(t, why));
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== this.error) this.o.log.warn({ err: msg }, `${this.o.what} not available: ${this.o.meanwhile}; trying again every ${this.o.retryMs / 1000} s`);
      this.error = msg;
      this.retry();
      return;
    }
    if (this.stopped) return void (await this.o.close(t));
    if (this.error !== 'not opened yet') this.o.log.info(`${this.o.what} available again`);
    this.error = null;
    this.current = t;
    await this.o.attach(t);
  }

  private lost(t: T, why: string): void {
    if (this.current !== t) return;
    this.o.log.error({ err: why }, `${this.o.what} gone (unplugged?): ${this.o.meanwhile} until it is back`);
    this.current = null;
    this.error = `it went away: ${why}`;
    this.o.detach(t, this.error);
    void this.o.close(t).catch(() => undefined);
    this.retry();
  }

  private retry(): void {
    if (!this.stopped) this.timer = setTimeout(() => void this.start(), this.o.retryMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const t = this.current;
    this.current = null;
    if (t !== null) await this.o.close(t);
  }
}
