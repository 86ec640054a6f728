/**
 * systemd's notification protocol (sd_notify): datagrams to $NOTIFY_SOCKET — READY=1 once the
 * gateway decides, WATCHDOG=1 at half of $WATCHDOG_USEC while the event loop runs, STOPPING=1 on
 * shutdown. Without NOTIFY_SOCKET (a terminal, tests, other init systems) it does nothing. The only
 * importer of `unix-dgram` (Node has no Unix datagram sockets), loaded only when needed.
 */
import type { Logger } from '../log.js';

interface DgramSocket {
  send(buf: Buffer, offset: number, length: number, path: string, cb?: (err?: Error) => void): void;
  close(): void;
  on(ev: 'error', cb: (e: Error) => void): void;
}

export class SdNotify {
  private watchdog: NodeJS.Timeout | null = null;

  private constructor(
    private readonly socket: DgramSocket,
    private readonly path: string,
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** A notifier, or null when not started by systemd (or the socket cannot be used). */
  static async fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<SdNotify | null> {
    const path = env.NOTIFY_SOCKET;
    if (!path) return null;
    if (path.startsWith('@')) {
      log.warn({ path }, 'abstract NOTIFY_SOCKET not supported; systemd notifications disabled');
      return null;
    }
    try {
      const mod = (await import('unix-dgram')) as unknown as { createSocket: (type: 'unix_dgram') => DgramSocket; default?: { createSocket: (type: 'unix_dgram') => DgramSocket } };
      const create = mod.createSocket ?? mod.default!.createSocket;
      const socket = create('unix_dgram');
      socket.on('error', (e) => log.warn({ err: e.message }, 'sd_notify socket error'));
      return new SdNotify(socket, path, log, env);
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'unix-dgram unavailable; systemd notifications disabled');
      return null;
    }
  }

  send(state: string): void {
    const buf = Buffer.from(state);
    this.socket.send(buf, 0, buf.length, this.path, (err) => {
      if (err) this.log.warn({ err: err.message, state: state.split('\n')[0] }, 'sd_notify failed');
    });
  }

  /** READY=1, and start the watchdog pings if systemd asked for them (for this process). */
  ready(status: string): void {
    this.send(`READY=1\nSTATUS=${status}`);
    const usec = Number(this.env.WATCHDOG_USEC);
    const pid = this.env.WATCHDOG_PID;
    if (Number.isFinite(usec) && usec > 0 && (!pid || Number(pid) === process.pid)) {
      const every = Math.max(50, Math.floor(usec / 1000 / 2));
      this.watchdog = setInterval(() => this.send('WATCHDOG=1'), every);
      this.watchdog.unref();
      this.log.info({ every_ms: every }, 'systemd watchdog pings started');
    }
  }

  stopping(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.send('STOPPING=1');
  }

  close(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.socket.close();
  }
}
