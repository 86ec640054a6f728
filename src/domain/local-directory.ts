/**
 * The local directory layer: people the cloud does not know (contractors, cleaners, a guard's master
 * card) and local adjustments of cloud users (block a person or a lost card now, add a card). Kept
 * apart from the cloud generations, so a sync never touches it.
 *
 * Precedence (shown by `doorgw users show`):
 *   1. A local user with the same userid as a cloud user is the one that decides (the cloud user is
 *      shadowed; reported as a conflict).
 *   2. A cloud user with local adjustments: a block (whole person or one card) denies `blocked`;
 *      added cards identify them; validity and doors restrict them; groups add door-policy membership.
 *   3. A card (or openvid) claimed by more than one person across both layers is denied
 *      `credential_conflict` and listed by `doorgw users conflicts`.
 *   4. Then, as for everyone: door mode, door policy, the person's rules or their type's default.
 *
 * Pure: no I/O, no clock (times are passed in).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { localStamp } from './localtime.js';
import { parseRule, type CompiledRule } from './rules.js';
import { normalizeCard, type UserRecord } from './user.js';
import type { Credential, DenyReason, UserType } from './types.js';

/** A block on a person or a card: until a time (unix ms) or, with null, until lifted. */
export interface Block {
  until: number | null;
  reason: string | null;
  at: number;
  by: string;
}

/**
 * What the local layer adds to a person, local or cloud. For a local user `cards_added` stays empty
 * (their cards are their own record's); for a cloud user it lists cards the site added.
 */
export interface LocalFields {
  cards_added: string[];
  blocked: Block | null;
  blocked_cards: Record<string, Block>;
  /** Group names (config `groups`) this person belongs to, on top of the configured lists. */
  groups: string[];
  /** Unix ms; null = no bound. */
  valid_from: number | null;
  valid_until: number | null;
  /** Doors this person may pass (null = every door of the gateway). */
  doors: string[] | null;
  extended_unlock_ms: number | null;
  /** `salt:hmac` (hex), never the PIN itself. */
  pin: string | null;
  note: string | null;
  /** A temporary credential: at most this many passages (null or absent: no limit), counted from `uses_since`. */
  max_uses?: number | null;
  uses_since?: number | null;
  /** Who vouched for this person (a visitor's host): named in the journal of each passage. */
  sponsor?: string | null;
  updated_at: number;
  updated_by: string;
}

export const MAX_LOCAL_USERS = 20_000;
const MAX_CARDS = 32;
const MAX_TEXT = 200;

export function emptyLocalFields(at: number, by: string): LocalFields {
  return { cards_added: [], blocked: null, blocked_cards: {}, groups: [], valid_from: null, valid_until: null, doors: null, extended_unlock_ms: null, pin: null, note: null, updated_at: at, updated_by: by };
}

/** A cloud user as the door sees it with its local adjustments applied. */
export function withLocalFields(cloud: UserRecord, f: LocalFields): UserRecord {
  const cards = f.cards_added.length ? [...cloud.cards, ...f.cards_added.filter((c) => !cloud.cards.includes(c))] : cloud.cards;
  return { ...cloud, cards, local: f };
}

const active = (b: Block | null | undefined, nowMs: number): b is Block => !!b && (b.until === null || nowMs < b.until);

/**
 * Local restrictions of an identified person at a door now: the deny they lead to, or null.
 * Checked before door mode and rules: a blocked guard does not pass a lockdown either.
 */
export function localRestriction(user: UserRecord, cred: Credential, doorId: string, nowMs: number, requirePin: boolean, zone = 'UTC', used = 0): { reason: DenyReason; detail: string } | null {
  const f = user.local;
  if (f) {
    // Instants an operator reads are local to the door, with their offset.
    const until = (b: Block): string => (b.until === null ? 'until lifted' : `until ${localStamp(b.until, zone)}`) + (b.reason ? ` (${b.reason})` : '');
    if (active(f.blocked, nowMs)) return { reason: 'blocked', detail: `person blocked ${until(f.blocked)}` };
    if (cred.type === 'card' && active(f.blocked_cards[cred.value], nowMs)) return { reason: 'blocked', detail: `card blocked ${until(f.blocked_cards[cred.value]!)}` };
    if (f.valid_from !== null && nowMs < f.valid_from) return { reason: 'outside_validity', detail: `valid from ${localStamp(f.valid_from, zone)}` };
    if (f.valid_until !== null && nowMs >= f.valid_until) return { reason: 'outside_validity', detail: `valid until ${localStamp(f.valid_until, zone)}` };
    if (f.doors !== null && !f.doors.includes(doorId)) return { reason: 'door_not_allowed', detail: `may pass ${f.doors.join(', ') || 'no door'}` };
    if (f.max_uses != null && used >= f.max_uses) return { reason: 'uses_exhausted', detail: `used ${used} of ${f.max_uses} time${f.max_uses === 1 ? '' : 's'}${f.sponsor ? ` (sponsor ${f.sponsor})` : ''}` };
  }
  if (cred.type === 'card' && (cred.pin !== undefined || requirePin)) {
    if (cred.pin === undefined) return { reason: 'pin_required', detail: 'this door takes card and PIN' };
    if (!f?.pin) return { reason: 'pin_required', detail: 'no PIN is set for this person' };
    if (!pinMatches(f.pin, cred.pin)) return { reason: 'wrong_pin', detail: 'PIN does not match' };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// PINs. A 4-12 digit PIN has at most 10^12 values: no hash makes a stolen database safe against
// brute force, and a slow one would cost the door its sub-millisecond decision. So: a keyed hash
// with a per-person salt (nothing readable at a glance, nothing equal across people), in a data
// directory only the service user can read; PINs are never logged, exported or shown.

export function hashPin(pin: string, salt = randomBytes(16)): string {
  return `${salt.toString('hex')}:${createHmac('sha256', salt).update(pin).digest('hex')}`;
}

export function pinMatches(stored: string, pin: string): boolean {
  const [saltHex, macHex] = stored.split(':');
  if (!saltHex || !macHex) return false;
  const mac = createHmac('sha256', Buffer.from(saltHex, 'hex')).update(pin).digest();
  const want = Buffer.from(macHex, 'hex');
  return want.length === mac.length && timingSafeEqual(mac, want);
}

export function validPin(pin: string): boolean {
  return /^\d{4,12}$/.test(pin);
}

// ---------------------------------------------------------------------------------------------
// Validation of what operators send (CLI, control socket, MQTT): one place, clear messages.

export class LocalInputError extends Error {}

/** What the configuration lets a local entry refer to. */
export interface LocalContext {
  doors: readonly string[];
  groups: readonly string[];
}

/** The fields `users add` / `users set` may change (all optional for set). */
export interface LocalUserInput {
  userid?: unknown;
  name?: unknown;
  user_type?: unknown;
  cards?: unknown;
  pin?: unknown;
  groups?: unknown;
  valid_from?: unknown;
  valid_until?: unknown;
  doors?: unknown;
  rules?: unknown;
  extended_unlock_s?: unknown;
  note?: unknown;
  /** A temporary credential: at most this many passages from now (null: no limit). Setting it starts a fresh count. */
  max_uses?: unknown;
  sponsor?: unknown;
}

const fail = (m: string): never => {
  throw new LocalInputError(m);
};

export function checkUserid(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) fail('userid is required (a non-empty string)');
  const s = v as string;
  if (Buffer.byteLength(s) > 64) fail('userid longer than 64 bytes');
  if ([...s].some((ch) => ch.charCodeAt(0) < 0x20)) fail('userid contains control characters');
  return s;
}

function text(name: string, v: unknown): string | null {
  if (v === null || v === '') return null;
  if (typeof v !== 'string') fail(`${name} must be a string`);
  if ((v as string).length > MAX_TEXT) fail(`${name} longer than ${MAX_TEXT} characters`);
  return v as string;
}

export function checkCards(v: unknown): string[] {
  if (!Array.isArray(v)) fail('cards must be a list of card numbers');
  const arr = v as unknown[];
  if (arr.length > MAX_CARDS) fail(`more than ${MAX_CARDS} cards`);
  const out: string[] = [];
  for (const c of arr) {
    const n = normalizeCard(c);
    if (n === null) fail(`card ${JSON.stringify(c)} is not a non-negative whole number`);
    if (!out.includes(n!)) out.push(n!);
  }
  return out;
}

export function checkCard(v: unknown): string {
  return checkCards([v])[0]!;
}

function names(name: string, v: unknown, known: readonly string[], what: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail(`${name} must be a list of ${what} names`);
  const unknown = (v as string[]).filter((x) => !known.includes(x));
  if (unknown.length) fail(`no ${what} '${unknown.join("', '")}' (${what}s: ${known.join(', ') || 'none configured'})`);
  return [...new Set(v as string[])];
}

/** Unix ms from a number (ms) or an ISO-8601 string with an offset; null clears. */
export function checkInstant(name: string, v: unknown): number | null {
  if (v === null) return null;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && /(Z|[+-]\d{2}:?\d{2})$/i.test(v) && !Number.isNaN(Date.parse(v))) return Date.parse(v);
  return fail(`${name} must be unix milliseconds or an ISO-8601 time with an offset`);
}

export function checkRules(v: unknown): CompiledRule[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail('rules must be a list of rule strings (e.g. "8:00-18:00 * * 1-5 *")');
  if ((v as string[]).length > 16) fail('more than 16 rules');
  return (v as string[]).map((r, i) => {
    const p = parseRule(r, i, 0);
    if (!p.ok) fail(`rule ${i + 1} '${r}': ${p.error}`);
    return (p as { rule: CompiledRule }).rule;
  });
}

/** Apply `input` onto `f` (a copy is returned); `cardsField` is where cards go for this kind of entry. */
export function applyLocalInput(f: LocalFields, input: LocalUserInput, ctx: LocalContext, at: number, by: string): LocalFields {
  const out: LocalFields = { ...f, blocked_cards: { ...f.blocked_cards }, updated_at: at, updated_by: by };
  if (input.pin !== undefined) {
    if (input.pin === null || input.pin === '') out.pin = null;
    else if (typeof input.pin !== 'string' || !validPin(input.pin)) fail('pin must be 4 to 12 digits');
    else out.pin = hashPin(input.pin);
  }
  if (input.groups !== undefined) out.groups = names('groups', input.groups, ctx.groups, 'group');
  if (input.doors !== undefined) out.doors = input.doors === null ? null : names('doors', input.doors, ctx.doors, 'door');
  if (input.valid_from !== undefined) out.valid_from = checkInstant('valid_from', input.valid_from);
  if (input.valid_until !== undefined) out.valid_until = checkInstant('valid_until', input.valid_until);
  if (out.valid_from !== null && out.valid_until !== null && out.valid_until <= out.valid_from) fail('valid_until must be after valid_from');
  if (input.extended_unlock_s !== undefined) {
    const s = input.extended_unlock_s;
    if (s === null) out.extended_unlock_ms = null;
    else if (typeof s !== 'number' || !Number.isInteger(s) || s < 1 || s > 120) fail('extended_unlock_s must be 1 to 120 seconds');
    else out.extended_unlock_ms = s * 1000;
  }
  if (input.note !== undefined) out.note = text('note', input.note);
  if (input.max_uses !== undefined) {
    const n = input.max_uses;
    if (n === null) {
      out.max_uses = null;
      out.uses_since = null;
    } else if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 100_000) fail('max_uses must be 1 to 100000 passages');
    else {
      out.max_uses = n;
      out.uses_since = at; // a fresh count from now
    }
  }
  if (input.sponsor !== undefined) out.sponsor = text('sponsor', input.sponsor);
  return out;
}

/** A new or changed local user's own record (identity, cards, rules). */
export function localUserRecord(prev: UserRecord | undefined, input: LocalUserInput, f: LocalFields): UserRecord {
  const userid = prev?.userid ?? checkUserid(input.userid);
  let user_type: UserType = prev?.user_type ?? 0;
  if (input.user_type !== undefined) {
    const t = ({ employee: 0, visitor: 1, student: 2, 0: 0, 1: 1, 2: 2 } as Record<string, UserType>)[typeof input.user_type === 'string' || typeof input.user_type === 'number' ? String(input.user_type) : ''];
    if (t === undefined) fail("user_type must be employee, visitor or student");
    user_type = t!;
  }
  const name = input.name !== undefined ? text('name', input.name) : (prev?.name ?? null);
  const cards = input.cards !== undefined ? checkCards(input.cards) : (prev?.cards ?? []);
  const rules = input.rules !== undefined ? checkRules(input.rules) : (prev?.rules ?? []);
  return { userid, user_type, name, openvid: prev?.openvid ?? null, key_id: prev?.key_id ?? null, cards, rules, invalid_rules: prev?.invalid_rules ?? [], source: 'local', fp_ver: null, fa_ver: null, local: f };
}

/** Is the block still in force at nowMs? */
export function blockActive(b: Block | null | undefined, nowMs: number): boolean {
  return active(b, nowMs);
}
