/**
 * Console sessions and login throttling, in memory (a restart logs everyone out, which is the
 * safe direction). A session has an idle and an absolute lifetime and its own CSRF token.
 */
import { randomBytes } from 'node:crypto';
import type { WebRole } from '../domain/password.js';

export interface Session {
  id: string;
  user: string;
  role: WebRole;
  csrf: string;
  created: number;
  seen: number;
}

export const ROLE_RANK: Record<WebRole, number> = { viewer: 0, operator: 1, admin: 2 };

export class Sessions {
  private readonly byId = new Map<string, Session>();

  constructor(
    private readonly idleMs: number,
    private readonly maxMs: number,
    /** A monotonic clock (ms): a wall-clock step must neither end sessions nor make them live longer. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  create(user: string, role: WebRole): Session {
    const t = this.now();
    const s: Session = { id: randomBytes(32).toString('base64url'), user, role, csrf: randomBytes(24).toString('base64url'), created: t, seen: t };
    this.byId.set(s.id, s);
    return s;
  }

  /** The live session for a cookie value (touching it), or null when unknown or expired. */
  get(id: string | undefined): Session | null {
    if (!id) return null;
    const s = this.byId.get(id);
    if (!s) return null;
    const t = this.now();
    if (t - s.seen > this.idleMs || t - s.created > this.maxMs) {
      this.byId.delete(id);
      return null;
    }
    s.seen = t;
    return s;
  }

  end(id: string): void {
    this.byId.delete(id);
  }

  /** End every session of an account (removed, or its role or password changed). */
  endAllOf(user: string): void {
    for (const [id, s] of this.byId) if (s.user === user) this.byId.delete(id);
  }

  /** Forget expired sessions (called now and then). */
  sweep(): void {
    const t = this.now();
    for (const [id, s] of this.byId) if (t - s.seen > this.idleMs || t - s.created > this.maxMs) this.byId.delete(id);
  }

  get size(): number {
    return this.byId.size;
  }
}

/**
 * Failed logins, throttled per (account, client) and per client, never per account alone: locking
 * an account for everyone let anyone lock the admin out, renewably, from anywhere. After
 * `maxFailures` a key waits 1 s, then twice as long after each further failure, up to `lockoutMs`;
 * a client gets four times the failures across accounts (password spraying) before it waits.
 * Counts are forgotten `lockoutMs` after a key's last failure or wait, whichever ends later. Bounded: at `maxKeys` the key idle the
 * longest goes (never the whole table, which once lifted every lockout at once).
 */
export class LoginThrottle {
  private readonly fails = new Map<string, { n: number; last: number; lockedUntil: number }>();

  constructor(
    private readonly maxFailures: number,
    private readonly lockoutMs: number,
    /** A monotonic clock (ms): a step of the wall clock must neither lift nor extend a wait. */
    private readonly now: () => number = () => performance.now(),
    private readonly maxKeys = 10_000,
  ) {}

  private keys(user: string, client: string): [string, number][] {
    return [[`p:${user}\u0000${client}`, this.maxFailures], [`c:${client}`, this.maxFailures * 4]];
  }

  /** Seconds until this account may try again from this client (0: now). */
  retryAfterS(user: string, client: string): number {
    const t = this.now();
    let until = 0;
    for (const [k] of this.keys(user, client)) until = Math.max(until, this.fails.get(k)?.lockedUntil ?? 0);
    return until > t ? Math.ceil((until - t) / 1000) : 0;
  }

  failed(user: string, client: string): void {
    const t = this.now();
    for (const [k, max] of this.keys(user, client)) {
      let f = this.fails.get(k);
      if (!f || t - Math.max(f.last, f.lockedUntil) > this.lockoutMs) f = { n: 0, last: t, lockedUntil: 0 };
      f.n++;
      f.last = t;
      if (f.n >= max) f.lockedUntil = t + Math.min(this.lockoutMs, 1000 * 2 ** Math.min(30, f.n - max));
      this.fails.delete(k); // re-inserted: the map's order is idle order
      this.fails.set(k, f);
      if (this.fails.size > this.maxKeys) this.fails.delete(this.fails.keys().next().value!);
    }
  }

  succeeded(user: string, client: string): void {
    this.fails.delete(this.keys(user, client)[0]![0]);
  }

  get size(): number {
    return this.fails.size;
  }
}
