/**
 * Anti-passback across gateways (issue 24): a door's presence transitions — a person in or out of
 * an area, or forgiven (unknown) — signed with the door's own key and kept retained per person on
 * `<base>/presence/<area>/<person>`, so that a door that joins late, or comes back after a
 * partition, holds everyone's last transition within a delivery. Every door of the area decides
 * from its own copy (memory, then LevelDB), never waiting on the network.
 *
 * Order: the transition with the later wall-clock time wins, then the gateway id, then the door:
 * the same winner on every door, whatever order the broker delivered them in. A door's clock that
 * is ahead by more than the site's skew is refused (a transition "from the future" would pin a
 * person's presence until then).
 */
import { sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson, ed25519PublicKey } from './site-envelope.js';

export interface PresenceStatement {
  area: string;
  userid: string;
  /** in, out, or none (forgiven: the next passage is allowed either way). */
  where: 'in' | 'out' | 'none';
  /** Wall clock at the door, unix ms. */
  at: number;
  gateway: string;
  door: string;
}

export interface SignedPresence {
  p: PresenceStatement;
  kid: string;
  sig: string;
}

export const MAX_PRESENCE_BYTES = 2048;
const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/** A person's topic segment: base64url of the userid (MQTT topics cannot hold / + # freely). */
export const personTopic = (userid: string): string => Buffer.from(userid, 'utf8').toString('base64url');

export function signPresence(p: PresenceStatement, kid: string, privateKey: KeyObject): SignedPresence {
  return { p, kid, sig: sign(null, Buffer.from(canonicalJson({ kid, p })), privateKey).toString('base64') };
}

/** a is newer than b (the same answer on every door). */
export function newerPresence(a: PresenceStatement, b: PresenceStatement): boolean {
  return a.at !== b.at ? a.at > b.at : a.gateway !== b.gateway ? a.gateway > b.gateway : a.door > b.door;
}

export type PresenceCheck = { ok: true; p: PresenceStatement; signed: SignedPresence } | { ok: false; reason: 'malformed' | 'too_large' | 'unknown_key' | 'bad_signature' | 'not_a_peer' | 'not_yet_valid'; detail: string };

/**
 * A presence message from `<base>/presence/<topicArea>/<topicPerson>`: size, shape, slot, the
 * signature of its gateway's key, a peer of the area (when the area names its peers), and a time
 * not ahead of this door's by more than the skew.
 */
export function checkPresence(
  payload: string,
  slot: { area: string; person: string },
  ctx: { doorKeys: ReadonlyMap<string, { kid: string; public_key: string }>; peers: ReadonlySet<string> | null; nowMs: number; skewMs: number },
): PresenceCheck {
  const no = (reason: Exclude<PresenceCheck, { ok: true }>['reason'], detail: string): PresenceCheck => ({ ok: false, reason, detail });
  if (Buffer.byteLength(payload) > MAX_PRESENCE_BYTES) return no('too_large', `${Buffer.byteLength(payload)} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return no('malformed', 'not JSON');
  }
  const s = v as Partial<SignedPresence> | null;
  const p = s?.p as Partial<PresenceStatement> | undefined;
  if (typeof s !== 'object' || s === null || typeof s.kid !== 'string' || typeof s.sig !== 'string' || typeof p !== 'object' || p === null) return no('malformed', 'not a signed presence ({p, kid, sig})');
  if (typeof p.area !== 'string' || typeof p.userid !== 'string' || p.userid.length === 0 || p.userid.length > 256 || !['in', 'out', 'none'].includes(p.where as string) || typeof p.at !== 'number' || !Number.isSafeInteger(p.at) || typeof p.gateway !== 'string' || !NAME.test(p.gateway) || typeof p.door !== 'string' || !NAME.test(p.door)) return no('malformed', 'a presence needs area, userid, where (in, out, none), at, gateway and door');
  if (p.area !== slot.area || personTopic(p.userid) !== slot.person) return no('malformed', `a presence of ${p.area}/${p.userid} in another person's slot`);
  const key = ctx.doorKeys.get(p.gateway);
  if (!key) return no('unknown_key', `no key for gateway '${p.gateway}' in site.door_keys`);
  let good = false;
  try {
    good = key.kid === s.kid && verify(null, Buffer.from(canonicalJson({ kid: s.kid, p })), ed25519PublicKey(key.public_key), Buffer.from(s.sig, 'base64'));
  } catch {
    good = false;
  }
  if (!good) return no('bad_signature', `a presence said to be from '${p.gateway}' whose signature is not its key's`);
  if (ctx.peers && !ctx.peers.has(p.gateway)) return no('not_a_peer', `'${p.gateway}' is not a gateway of area '${p.area}'`);
  if (p.at > ctx.nowMs + ctx.skewMs) return no('not_yet_valid', `a presence stamped ${Math.round((p.at - ctx.nowMs) / 1000)} s ahead of this door's clock`);
  return { ok: true, p: p as PresenceStatement, signed: s as SignedPresence };
}

/** "This door is on the site" for an area, every few seconds: how a door knows its copy is current. */
export interface Heartbeat {
  area: string;
  gateway: string;
  at: number;
}

export function signHeartbeat(hb: Heartbeat, kid: string, privateKey: KeyObject): { hb: Heartbeat; kid: string; sig: string } {
  return { hb, kid, sig: sign(null, Buffer.from(canonicalJson({ kid, hb })), privateKey).toString('base64') };
}

/** A heartbeat from `<base>/presence/<area>/~<gateway>`: the gateway it names, signed by its key. */
export function checkHeartbeat(payload: string, slot: { area: string; gateway: string }, doorKeys: ReadonlyMap<string, { kid: string; public_key: string }>): boolean {
  if (payload.length > MAX_PRESENCE_BYTES) return false;
  try {
    const s = JSON.parse(payload) as { hb?: Heartbeat; kid?: string; sig?: string };
    const key = doorKeys.get(slot.gateway);
    if (!key || !s.hb || s.hb.gateway !== slot.gateway || s.hb.area !== slot.area || s.kid !== key.kid || typeof s.sig !== 'string') return false;
    return verify(null, Buffer.from(canonicalJson({ kid: s.kid, hb: s.hb })), ed25519PublicKey(key.public_key), Buffer.from(s.sig, 'base64'));
  } catch {
    return false;
  }
}
