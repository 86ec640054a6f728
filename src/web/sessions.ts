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
    private readonly now: () => number = Date.now,
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
 * Failed logins per account and per client address: after `maxFailures` within the window the key
 * is locked out for `lockoutMs` (even a right password is refused meanwhile). Bounded in size.
 */
export class LoginThrottle {
  private readonly fails = new Map<string, { n: number; first: number; lockedUntil: number }>();

  constructor(
    private readonly maxFailures: number,
    private readonly lockoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until a locked key may try again (0: not locked). */
  retryAfterS(keys: string[]): number {
    const t = this.now();
    let until = 0;
    for (const k of keys) until = Math.max(until, this.fails.get(k)?.lockedUntil ?? 0);
    return until > t ? Math.ceil((until - t) / 1000) : 0;
  }

  failed(keys: string[]): void {
    const t = this.now();
    if (this.fails.size > 10_000) this.fails.clear(); // a flood of made-up names must not grow this forever
    for (const k of keys) {
      let f = this.fails.get(k);
      if (!f || t - f.first > this.lockoutMs) f = { n: 0, first: t, lockedUntil: 0 };
      f.n++;
      if (f.n >= this.maxFailures) f.lockedUntil = t + this.lockoutMs;
      this.fails.set(k, f);
    }
  }

  succeeded(keys: string[]): void {
    for (const k of keys) this.fails.delete(k);
  }
}
