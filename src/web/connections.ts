/**
 * Connection limits for the console: idle sockets are closed, and connections are capped in all
 * and per client. The HTTP timeouts never apply to a socket that sends nothing: 2,000 idle
 * connections once pinned the console under a 1,024-descriptor limit (health and the CLI failed
 * with it, and nothing was logged).
 */
import type { Server } from 'node:net';
import type { Logger } from '../log.js';

/** An address as compared with configured ones: IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as plain IPv4. */
export const bareAddress = (a: string): string => (a.startsWith('::ffff:') ? a.slice(7) : a);

export interface ConnectionLimits {
  maxTotal: number;
  maxPerClient: number;
  /** A socket with no traffic either way for this long is closed (live event streams are pinged more often). */
  idleMs: number;
  /** Peers exempt from the per-client cap (trusted reverse proxies carry many clients). */
  proxies: readonly string[];
}

export class ConnectionGuard {
  private total = 0;
  private readonly perClient = new Map<string, number>();
  private refusedSinceLog = 0;
  private lastLog = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly o: ConnectionLimits,
    private readonly log: Logger,
  ) {}

  attach(server: Server): void {
    server.on('connection', (socket) => {
      const peer = bareAddress(socket.remoteAddress ?? '?');
      const mine = this.perClient.get(peer) ?? 0;
      const overClient = !this.o.proxies.includes(peer) && mine >= this.o.maxPerClient;
      if (this.total >= this.o.maxTotal || overClient) {
        socket.destroy();
        this.refused(peer, overClient ? 'per client' : 'in all');
        return;
      }
      this.total++;
      this.perClient.set(peer, mine + 1);
      socket.setTimeout(this.o.idleMs, () => socket.destroy());
      socket.once('close', () => {
        this.total--;
        const n = (this.perClient.get(peer) ?? 1) - 1;
        if (n <= 0) this.perClient.delete(peer);
        else this.perClient.set(peer, n);
      });
    });
  }

  /** Logged at most once a minute, with how many were refused since. */
  private refused(peer: string, which: string): void {
    this.refusedSinceLog++;
    const now = performance.now();
    if (now - this.lastLog < 60_000) return;
    this.log.warn({ peer, cap: which, max_total: this.o.maxTotal, max_per_client: this.o.maxPerClient, open: this.total, refused: this.refusedSinceLog }, 'console connection refused: connection cap reached');
    this.lastLog = now;
    this.refusedSinceLog = 0;
  }

  get open(): number {
    return this.total;
  }
}
