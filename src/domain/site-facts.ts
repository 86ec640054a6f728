/**
 * Site facts (issue 23): the state a site holds — threat levels, blocks of people and cards, site
 * users, site-wide door modes — each the newest signed envelope of its subject (site-envelope.ts).
 * A deletion is a fact too (a tombstone: body null), so that it wins over the version it deletes on
 * every door, however late that door hears of either.
 *
 * Completeness is told by a set digest: the XOR of SHA-256(subject, version, iat, id) over every
 * fact held, tombstones included. It is order-free and kept up to date in O(1) per change; the
 * site's signed manifest carries the digest and count of the site's facts, so a door whose digest
 * equals the manifest's holds exactly the site's facts. The digest proves completeness, not
 * authenticity: every fact carries its own signature.
 *
 * Pure: no I/O, no clock.
 */
import { createHash } from 'node:crypto';
import { localTime } from './localtime.js';
import { checkCards, checkInstant, checkRules, checkUserid, LocalInputError, type Block, type LocalFields } from './local-directory.js';
import type { CompiledRule } from './rules.js';
import type { FactStamp, SiteEnvelope } from './site-envelope.js';
import { DOOR_MODES, type DoorMode, type UserType } from './types.js';
import type { UserRecord } from './user.js';

/** The subject types a fact may have, and the one the manifest has. */
export const FACT_TYPES = ['threat_level', 'block', 'user', 'door_mode'] as const;
export type FactType = (typeof FACT_TYPES)[number];
export const MANIFEST_SUBJECT = 'manifest/site';

export interface SiteUserBody {
  name: string | null;
  user_type: UserType;
  cards: string[];
  groups: string[];
  doors: string[] | null;
  valid_from: number | null;
  valid_until: number | null;
  rules: string[];
  /** `salt:hmac` as hashPin makes it (the signer hashed it; the PIN itself never crosses the bus). */
  pin_hash: string | null;
  /** A temporary credential: at most this many passages across the site (site-uses.ts), counted from uses_since. */
  max_uses?: number | null;
  uses_since?: number | null;
  /** Who vouched for them (journaled with every passage). */
  sponsor?: string | null;
}

/** A fact's meaning, parsed from its subject and body. */
export type SiteFact =
  | { type: 'threat_level'; scope: string; level: string; reason: string | null }
  | { type: 'block'; target: { card: string } | { userid: string }; until: number | null; reason: string | null }
  /** `rules`: the body's rules, compiled once when the fact is read (never again per apply). */
  | { type: 'user'; userid: string; user: SiteUserBody; rules: CompiledRule[] }
  | { type: 'door_mode'; door: string; mode: DoorMode }
  | { type: 'deleted' };

export interface Manifest {
  count: number;
  digest: string;
}

const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const str = (v: unknown, what: string, max = 200): string | null => {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.length > max) throw new LocalInputError(`${what} must be a string of at most ${max} characters`);
  return v;
};
const names = (v: unknown, what: string): string[] => {
  if (!Array.isArray(v) || v.length > 64 || !v.every((x) => typeof x === 'string' && NAME.test(x))) throw new LocalInputError(`${what} must be a list of at most 64 names`);
  return [...new Set(v as string[])];
};
const obj = (v: unknown): Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new LocalInputError('body must be an object (or null: deleted)');
  return v as Record<string, unknown>;
};

/** What a fact says, or why it cannot be understood (the envelope is then refused as malformed). */
export function parseFact(subject: string, body: unknown): { ok: true; fact: SiteFact } | { ok: false; detail: string } {
  const slash = subject.indexOf('/');
  const type = subject.slice(0, slash);
  const name = subject.slice(slash + 1);
  if (!(FACT_TYPES as readonly string[]).includes(type)) return { ok: false, detail: `unknown fact type '${type}' (${FACT_TYPES.join(', ')})` };
  if (body === null) return { ok: true, fact: { type: 'deleted' } };
  try {
    const b = obj(body);
    switch (type as FactType) {
      case 'threat_level': {
        if (!NAME.test(name)) throw new LocalInputError('threat_level/<site or area name>');
        if (typeof b.level !== 'string' || !NAME.test(b.level)) throw new LocalInputError('level must be a level name');
        return { ok: true, fact: { type: 'threat_level', scope: name, level: b.level, reason: str(b.reason, 'reason') } };
      }
      case 'block': {
        const until = b.until === undefined ? null : checkInstant('until', b.until);
        const reason = str(b.reason, 'reason');
        if (name.startsWith('card:')) {
          const card = checkCards([name.slice(5)])[0]!;
          if (card !== name.slice(5)) throw new LocalInputError(`block/card:<number> names the card as a plain number (card:${card})`);
          return { ok: true, fact: { type: 'block', target: { card }, until, reason } };
        }
        if (name.startsWith('user:')) return { ok: true, fact: { type: 'block', target: { userid: checkUserid(name.slice(5)) }, until, reason } };
        throw new LocalInputError('block/card:<number> or block/user:<userid>');
      }
      case 'user': {
        const userid = checkUserid(name);
        const t = b.user_type ?? 0;
        if (t !== 0 && t !== 1 && t !== 2) throw new LocalInputError('user_type must be 0 (employee), 1 (visitor) or 2 (student)');
        const rules = b.rules === undefined ? [] : b.rules;
        const compiled = checkRules(rules);
        const pin = b.pin_hash === undefined || b.pin_hash === null ? null : b.pin_hash;
        if (pin !== null && (typeof pin !== 'string' || !/^[0-9a-f]{32}:[0-9a-f]{64}$/.test(pin))) throw new LocalInputError('pin_hash must be salt:hmac as doorgw site users add makes it');
        const vf = b.valid_from === undefined ? null : checkInstant('valid_from', b.valid_from);
        const vu = b.valid_until === undefined ? null : checkInstant('valid_until', b.valid_until);
        if (vf !== null && vu !== null && vu <= vf) throw new LocalInputError('valid_until must be after valid_from');
        const user: SiteUserBody = {
          name: str(b.name, 'name'),
          user_type: t,
          cards: b.cards === undefined ? [] : checkCards(b.cards),
          groups: b.groups === undefined ? [] : names(b.groups, 'groups'),
          doors: b.doors === undefined || b.doors === null ? null : names(b.doors, 'doors'),
          valid_from: vf,
          valid_until: vu,
          rules: rules as string[],
          pin_hash: pin,
        };
        if (b.max_uses !== undefined && b.max_uses !== null) {
          if (typeof b.max_uses !== 'number' || !Number.isInteger(b.max_uses) || b.max_uses < 1 || b.max_uses > 100_000) throw new LocalInputError('max_uses must be 1 to 100000 passages');
          user.max_uses = b.max_uses;
          user.uses_since = b.uses_since === undefined ? 0 : (checkInstant('uses_since', b.uses_since) ?? 0);
        }
        const sponsor = str(b.sponsor, 'sponsor');
        if (sponsor !== null) user.sponsor = sponsor;
        return { ok: true, fact: { type: 'user', userid, user, rules: compiled } };
      }
      case 'door_mode': {
        if (!NAME.test(name)) throw new LocalInputError('door_mode/<door>');
        if (typeof b.mode !== 'string' || !(DOOR_MODES as readonly string[]).includes(b.mode)) throw new LocalInputError(`mode must be ${DOOR_MODES.join(', ')}`);
        return { ok: true, fact: { type: 'door_mode', door: name, mode: b.mode as DoorMode } };
      }
    }
  } catch (e) {
    return { ok: false, detail: `${subject}: ${(e as Error).message}` };
  }
  return { ok: false, detail: `${subject}: not understood` };
}

export function parseManifest(body: unknown): Manifest | null {
  if (typeof body !== 'object' || body === null) return null;
  const b = body as Record<string, unknown>;
  if (typeof b.count !== 'number' || !Number.isSafeInteger(b.count) || b.count < 0 || typeof b.digest !== 'string' || !/^[0-9a-f]{64}$/.test(b.digest)) return null;
  return { count: b.count, digest: b.digest };
}

/** One fact's share of the set digest. */
export function factHash(subject: string, s: FactStamp): Buffer {
  return createHash('sha256').update(`${subject}\n${s.version}\n${s.iat}\n${s.id}`).digest();
}

/** The order-free digest of a set of facts, kept by XOR (add and remove are the same operation). */
export class FactDigest {
  private readonly acc = Buffer.alloc(32);
  count = 0;

  add(subject: string, s: FactStamp): void {
    this.xor(factHash(subject, s));
    this.count++;
  }

  remove(subject: string, s: FactStamp): void {
    this.xor(factHash(subject, s));
    this.count--;
  }

  get hex(): string {
    return this.acc.toString('hex');
  }

  private xor(h: Buffer): void {
    for (let i = 0; i < 32; i++) this.acc[i]! ^= h[i]!;
  }
}

export interface SiteStatus {
  /** Facts held (tombstones included), of them in this door's scope, and their digest. */
  facts: number;
  in_scope: number;
  digest: string;
  /** The site's manifest as last received (null: none yet). */
  manifest: { count: number; digest: string; version: number; by: string; at: number } | null;
  /** Holds exactly the manifest's facts (null: no manifest yet). */
  complete: boolean | null;
  /** The threat level in force at each door (null: none set). */
  levels: { door: string; level: string | null; from: string | null; by: string | null; at: number | null; reason: string | null; mode: DoorMode | null }[];
  /** When the last fact was taken (unix ms). */
  last_change: number | null;
  refused: Partial<Record<string, number>>;
}

export const stampOf = (e: SiteEnvelope): FactStamp => ({ version: e.version!, iat: e.iat, id: e.id });

// ---------------------------------------------------------------------------------------------
// Threat levels

/** A level as configured: what it does at a door (a door's entry overrides the level's own). */
export interface LevelDefinition {
  name: string;
  /** The mode doors take while the level holds (none: their own mode stands). */
  mode?: DoorMode | undefined;
  /** Groups whose members are denied `threat_level` while it holds. */
  deny_groups: string[];
  /** Groups whose members pass a lockdown the level imposes. */
  override_groups: string[];
  /** Per door: another mode, or `none` (this door keeps its own). */
  doors: Record<string, { mode: DoorMode | 'none' }>;
}

/** A level in force at a door, and where it came from. */
export interface LevelInForce {
  name: string;
  /** Its rank: the position in the configured list (higher is more severe). */
  rank: number;
  /** `site` or the area whose level it is. */
  from: string;
  by: string;
  at: number;
  reason: string | null;
  definition: LevelDefinition;
}

/**
 * The level in force at a door: the most severe of the levels set for the site and for the areas
 * the door is in (a level the configuration does not name counts as the most severe one: an
 * unknown level never relaxes a door). Ties: the site's.
 */
export function levelAt(
  set: readonly { scope: string; level: string; by: string; at: number; reason: string | null }[],
  doorAreas: readonly string[],
  levels: readonly LevelDefinition[],
): LevelInForce | null {
  let best: LevelInForce | null = null;
  for (const s of set) {
    if (s.scope !== 'site' && !doorAreas.includes(s.scope)) continue;
    let rank = levels.findIndex((l) => l.name === s.level);
    const definition = rank >= 0 ? levels[rank]! : { name: s.level, mode: 'lockdown' as DoorMode, deny_groups: [], override_groups: [], doors: {} };
    if (rank < 0) rank = levels.length;
    if (!best || rank > best.rank || (rank === best.rank && s.scope === 'site')) best = { name: s.level, rank, from: s.scope, by: s.by, at: s.at, reason: s.reason, definition };
  }
  return best;
}

/**
 * The scheduled levels in force at `nowMs` (site.level_schedule), as levels set by `schedule`,
 * each stamped with its window's start (stable while it lasts). Pure: each door computes the same
 * from its own clock, so a wall clock stepped back or forth is simply read again.
 */
export function scheduledLevels(
  schedule: readonly { level: string; scope: string; days: readonly number[]; from: string; to: string }[],
  nowMs: number,
  zone: string,
): { scope: string; level: string; by: string; at: number; reason: string | null }[] {
  const lt = localTime(nowMs, zone);
  const minute = lt.minuteOfDay;
  const iso = (dow: number) => (dow === 0 ? 7 : dow);
  const today = iso(lt.dow);
  const yesterday = today === 1 ? 7 : today - 1;
  const hm = (v: string) => {
    const [h, m] = v.split(':').map(Number);
    return h! * 60 + m!;
  };
  const out: { scope: string; level: string; by: string; at: number; reason: string | null }[] = [];
  for (const e of schedule) {
    const from = hm(e.from);
    const to = hm(e.to);
    let since: number | null = null; // minutes since the window began
    if (from < to) since = minute >= from && minute < to && e.days.includes(today) ? minute - from : null;
    else if (minute >= from && e.days.includes(today)) since = minute - from;
    else if (minute < to && e.days.includes(yesterday)) since = minute + 1440 - from;
    if (since === null) continue;
    const at = Math.floor(nowMs / 60_000) * 60_000 - since * 60_000;
    out.push({ scope: e.scope, level: e.level, by: 'schedule', at, reason: `scheduled ${e.from}–${e.to}` });
  }
  return out;
}

/** The mode a level imposes on a door, or null (the door keeps its own). */
export function levelModeAt(l: LevelInForce | null, door: string): DoorMode | null {
  if (!l) return null;
  const own = l.definition.doors[door];
  if (own) return own.mode === 'none' ? null : own.mode;
  return l.definition.mode ?? null;
}

// ---------------------------------------------------------------------------------------------
// Site users and blocks as the directory sees them

/** A site user's record, in the shape of a local user (the same checks apply at the door). */
export function siteUserRecord(userid: string, u: SiteUserBody, at: number, by: string, compiled?: CompiledRule[]): UserRecord {
  const local: LocalFields = { cards_added: [], blocked: null, blocked_cards: {}, groups: u.groups, valid_from: u.valid_from, valid_until: u.valid_until, doors: u.doors, extended_unlock_ms: null, pin: u.pin_hash, note: null, updated_at: at, updated_by: by };
  if (u.max_uses != null) {
    local.max_uses = u.max_uses;
    local.uses_since = u.uses_since ?? 0;
  }
  if (u.sponsor) local.sponsor = u.sponsor;
  const rules = compiled ?? checkRules(u.rules);
  return { userid, user_type: u.user_type, name: u.name, openvid: null, key_id: null, cards: u.cards, rules, invalid_rules: [], source: 'site', fp_ver: null, fa_ver: null, local };
}

export function siteBlock(f: { until: number | null; reason: string | null }, at: number, by: string): Block {
  return { until: f.until, reason: f.reason, at, by };
}

