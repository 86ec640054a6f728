/**
 * Uses of a site user's temporary credential (issue 26, item 5), counted across the site: each
 * door counts the passages it let through and says so, signed with its key, retained on
 * `<base>/uses/<person>/<gateway>` — one slot per door, written by that door alone. The site's
 * count is the sum over doors of each door's newest count (a grow-only counter: merging is taking
 * the larger count per door, so every door converges on the same total whatever order, or however
 * late, it hears them). A count belongs to one `since` (when the credential's max_uses was set): a
 * credential issued again starts from zero.
 *
 * During a partition a door knows only the counts it heard: a credential of N uses can pass up to
 * N times at each side of the split (stated in docs/site.md).
 */
import { sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson, ed25519PublicKey } from './site-envelope.js';
import { personTopic } from './site-presence.js';

export interface UseStatement {
  userid: string;
  /** The credential's uses_since (unix ms): counts of another `since` are of another credential. */
  since: number;
  /** Passages at this gateway's doors since `since`. */
  count: number;
  gateway: string;
  /** Wall clock at the door, unix ms (for the log; the count orders itself). */
  at: number;
}

export interface SignedUse {
  u: UseStatement;
  kid: string;
  sig: string;
}

export const MAX_USE_BYTES = 1024;
const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

export function signUse(u: UseStatement, kid: string, privateKey: KeyObject): SignedUse {
  return { u, kid, sig: sign(null, Buffer.from(canonicalJson({ kid, u })), privateKey).toString('base64') };
}

/** a supersedes b in one door's slot: a later credential, or more passages of the same one. */
export function newerUse(a: Pick<UseStatement, 'since' | 'count'>, b: Pick<UseStatement, 'since' | 'count'>): boolean {
  return a.since !== b.since ? a.since > b.since : a.count > b.count;
}

export type UseCheck = { ok: true; u: UseStatement } | { ok: false; reason: 'malformed' | 'too_large' | 'unknown_key' | 'bad_signature' | 'not_yet_valid'; detail: string };

/** A message from `<base>/uses/<person>/<gateway>`: size, shape, its own slot, its gateway's signature, a `since` not from the future. */
export function checkUse(payload: string, slot: { person: string; gateway: string }, ctx: { doorKeys: ReadonlyMap<string, { kid: string; public_key: string }>; nowMs: number; skewMs: number }): UseCheck {
  const no = (reason: Exclude<UseCheck, { ok: true }>['reason'], detail: string): UseCheck => ({ ok: false, reason, detail });
  if (Buffer.byteLength(payload) > MAX_USE_BYTES) return no('too_large', `${Buffer.byteLength(payload)} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return no('malformed', 'not JSON');
  }
  const s = v as Partial<SignedUse> | null;
  const u = s?.u as Partial<UseStatement> | undefined;
  if (typeof s !== 'object' || s === null || typeof s.kid !== 'string' || typeof s.sig !== 'string' || typeof u !== 'object' || u === null) return no('malformed', 'not a signed use count ({u, kid, sig})');
  const int = (x: unknown, max = Number.MAX_SAFE_INTEGER): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 && x <= max;
  if (typeof u.userid !== 'string' || u.userid.length === 0 || u.userid.length > 256 || !int(u.since) || !int(u.count, 1_000_000) || !int(u.at) || typeof u.gateway !== 'string' || !NAME.test(u.gateway)) return no('malformed', 'a use count needs userid, since, count, gateway and at');
  if (u.gateway !== slot.gateway || personTopic(u.userid) !== slot.person) return no('malformed', `a count of ${u.gateway}/${u.userid} in another slot`);
  const key = ctx.doorKeys.get(u.gateway);
  if (!key) return no('unknown_key', `no key for gateway '${u.gateway}' in site.door_keys`);
  let good = false;
  try {
    good = key.kid === s.kid && verify(null, Buffer.from(canonicalJson({ kid: s.kid, u })), ed25519PublicKey(key.public_key), Buffer.from(s.sig, 'base64'));
  } catch {
    good = false;
  }
  if (!good) return no('bad_signature', `a use count said to be from '${u.gateway}' whose signature is not its key's`);
  if (u.since! > ctx.nowMs + ctx.skewMs) return no('not_yet_valid', 'a count of a credential issued in the future');
  return { ok: true, u: u as UseStatement };
}

/**
 * The other doors' counts, per person: the newest per gateway, summed for a `since`. Bounded:
 * at most `maxPersons` persons (every size from outside has a limit).
 */
export class SiteUseCounts {
  private readonly held = new Map<string, Map<string, { since: number; count: number }>>();
  constructor(private readonly maxPersons = 100_000) {}

  /** Take a door's count; false when it is not newer than the one held (or the table is full). */
  merge(u: Pick<UseStatement, 'userid' | 'gateway' | 'since' | 'count'>): boolean {
    let m = this.held.get(u.userid);
    if (!m) {
      if (this.held.size >= this.maxPersons) return false;
      this.held.set(u.userid, (m = new Map<string, { since: number; count: number }>()));
    }
    const cur = m.get(u.gateway);
    if (cur && !newerUse(u, cur)) return false;
    m.set(u.gateway, { since: u.since, count: u.count });
    return true;
  }

  /** Passages of `userid`'s credential of `since` at every door but `except` (this one). */
  total(userid: string, since: number, except: string): number {
    let n = 0;
    for (const [g, c] of this.held.get(userid) ?? []) if (g !== except && c.since === since) n += c.count;
    return n;
  }

  get(userid: string, gateway: string): { since: number; count: number } | undefined {
    return this.held.get(userid)?.get(gateway);
  }

  get persons(): number {
    return this.held.size;
  }
}
