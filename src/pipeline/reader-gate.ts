/**
 * Trust per source: a configured reader may present only the credential kinds it declares, and
 * only as fast as its rate limit. What a reader may not claim is denied and raised as an alarm;
 * what it sends beyond its rate is dropped (not decided, not journaled one by one) and reported
 * once per flood, so one flooding reader can neither fill the journal nor starve the others.
 */
import { methodOf } from '../domain/policy.js';
import { TokenBucket } from '../domain/rate-limit.js';
import type { Method } from '../domain/types.js';
import type { CredentialEvent } from '../domain/events.js';

export interface ReaderTrust {
  accepts: readonly Method[];
  /** null: no rate limit (the development terminal). */
  rate: { perS: number; burst: number } | null;
}

export interface GateVerdict {
  verdict: 'ok' | 'not_allowed' | 'flood';
  /** not_allowed: what the reader may present and what it presented. */
  detail?: string;
  /** flood: this is the first credential dropped in this flood. */
  firstDrop?: boolean;
  /** A flood ended with this credential (it was admitted); how many were dropped in it. */
  floodEnded?: number;
}
const OK: GateVerdict = { verdict: 'ok' };

interface ReaderState {
  accepts: ReadonlySet<Method>;
  list: string;
  bucket: TokenBucket | null;
  /** Dropped in the current flood (0: no flood). */
  dropped: number;
  lastDropMs: number;
  /** A flood is over once the reader has sent nothing beyond its rate for this long. */
  quietMs: number;
}

export class ReaderGate {
  private readonly readers = new Map<string, ReaderState>();
  /** Dropped credentials by reader since start. */
  readonly droppedTotal = new Map<string, number>();

  constructor(readers: ReadonlyMap<string, ReaderTrust>) {
    for (const [id, t] of readers) this.readers.set(id, { accepts: new Set(t.accepts), list: t.accepts.join(', '), bucket: t.rate && new TokenBucket(t.rate.perS, t.rate.burst), dropped: 0, lastDropMs: 0, quietMs: t.rate ? Math.max(1000, (t.rate.burst / t.rate.perS) * 1000) : 0 });
  }

  /** Judge an event; events of the gateway's own sources (exit button, cloud, module) pass. */
  admit(e: CredentialEvent, nowMs: number): GateVerdict {
    const r = this.readers.get(e.reader);
    const c = e.credential;
    if (!r || (c.type !== 'card' && c.type !== 'qr' && c.type !== 'userid')) return OK;
    if (r.bucket && !r.bucket.take(nowMs)) {
      r.dropped++;
      r.lastDropMs = nowMs;
      this.droppedTotal.set(e.reader, (this.droppedTotal.get(e.reader) ?? 0) + 1);
      return { verdict: 'flood', firstDrop: r.dropped === 1 };
    }
    const v: GateVerdict = { verdict: 'ok' };
    if (r.dropped > 0 && nowMs - r.lastDropMs >= r.quietMs) {
      v.floodEnded = r.dropped;
      r.dropped = 0;
    }
    const method = methodOf(c);
    if (!r.accepts.has(method)) {
      v.verdict = 'not_allowed';
      v.detail = `reader '${e.reader}' may present ${r.list}; it presented ${method}`;
    }
    return v;
  }
}
