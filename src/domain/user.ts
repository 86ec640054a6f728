/**
 * Directory records: the WeCom `userinfo` shape (quirks included) normalised into the compact
 * decision record the store keeps, plus the key and templates that are stored apart from it.
 */
import { parsePublicKeyPoint } from './qr.js';
import { parseRule, type CompiledRule } from './rules.js';
import { toUint64String } from './json.js';
import type { UserType } from './types.js';
import type { LocalFields } from './local-directory.js';

export type UserSource = 'wecom' | 'feishu' | 'import' | 'local' | 'site';

export interface InvalidRule {
  id: number | string;
  rule: string;
  error: string;
}

/** What a decision needs, and nothing more (templates live elsewhere). */
export interface UserRecord {
  userid: string;
  user_type: UserType;
  name: string | null;
  openvid: string | null;
  key_id: string | null;
  cards: string[];
  rules: CompiledRule[];
  invalid_rules: InvalidRule[];
  source: UserSource;
  fp_ver: number | null;
  fa_ver: number | null;
  /** The algorithm of the user's fingerprint templates, as the cloud names it (`fp_algorithm`, or the vendor's misspelled `fp_alogrithm`). */
  fp_algorithm?: string | null;
  /** Local directory layer: a local user's own fields, or a cloud user's local adjustments. */
  local?: LocalFields;
}

export interface Template {
  kind: 'fp' | 'fa';
  /** Slot id as sent (fp 0-9, fa 0-11) or `legacy` for the old single `fa` string. */
  id: string;
  data: string;
}

export interface NormalizedUser {
  record: Omit<UserRecord, 'key_id'>;
  /** Public key point bytes, stored once under its key id. */
  key: Buffer | null;
  templates: Template[];
}

export type NormalizeResult =
  | { ok: true; user: NormalizedUser; warnings: string[] }
  | { ok: false; userid: string | null; error: string };

const MAX_USERID_BYTES = 64;
const MAX_TEMPLATE_CHARS = 64 * 1024;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Card numbers are kept as canonical decimal strings (Feishu sends ints; readers send text). */
export function normalizeCard(v: unknown): string | null {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v);
  if (typeof v === 'string' && /^\d{1,20}$/.test(v.trim())) return BigInt(v.trim()).toString();
  return null;
}

/**
 * Normalise one WeCom userinfo record. Rejects records whose identity or structure is unusable;
 * keeps records with invalid rules (they never match) or an unusable key (QR denied as no_key),
 * reporting those as warnings.
 */
export function normalizeWecomUser(raw: unknown, source: UserSource = 'wecom'): NormalizeResult {
  if (!isObject(raw)) return { ok: false, userid: null, error: 'record is not an object' };
  const { userid } = raw;
  if (typeof userid !== 'string' || userid.length === 0) {
    return { ok: false, userid: null, error: 'userid missing or not a non-empty string' };
  }
  const reject = (error: string): NormalizeResult => ({ ok: false, userid, error: `user '${userid}': ${error}` });
  if (Buffer.byteLength(userid) > MAX_USERID_BYTES) return reject(`userid longer than ${MAX_USERID_BYTES} bytes`);
  if ([...userid].some((ch) => ch.charCodeAt(0) < 0x20)) return reject('userid contains control characters');

  const ut = raw.user_type ?? 0;
  if (ut !== 0 && ut !== 1 && ut !== 2) return reject(`user_type must be 0, 1 or 2 (got ${JSON.stringify(ut)})`);
  const warnings: string[] = [];
  const warn = (w: string): void => void warnings.push(`user '${userid}': ${w}`);

  let openvid: string | null = null;
  if (raw.openvid !== undefined && raw.openvid !== null) {
    const r = toUint64String(raw.openvid);
    if (!r.ok) return reject(`openvid ${r.error}`);
    openvid = r.value;
  }

  let key: Buffer | null = null;
  if (raw.public_key !== undefined && raw.public_key !== null && raw.public_key !== '') {
    if (typeof raw.public_key !== 'string') return reject('public_key must be a base64 string');
    const p = parsePublicKeyPoint(raw.public_key);
    if (p.ok) key = p.value;
    else warn(`public_key unusable, QR codes will be denied: ${p.detail}`);
  }

  const rules: CompiledRule[] = [];
  const invalid: InvalidRule[] = [];
  const list = raw.pass_rule_list ?? [];
  if (!Array.isArray(list)) return reject('pass_rule_list must be an array');
  list.forEach((entry: unknown, i) => {
    const id = isObject(entry) && (typeof entry.id === 'number' || typeof entry.id === 'string') ? entry.id : i;
    const text = isObject(entry) ? entry.rule : undefined;
    const eff = isObject(entry) ? (entry.effect_time ?? 0) : 0;
    const parsed = isObject(entry)
      ? parseRule(text, id, typeof eff === 'number' ? eff : Number.NaN)
      : { ok: false as const, error: 'rule entry is not an object' };
    if (parsed.ok) rules.push(parsed.rule);
    else {
      invalid.push({ id, rule: typeof text === 'string' ? text : JSON.stringify(text ?? null), error: parsed.error });
      warn(`rule ${id} invalid, it never matches: ${parsed.error}`);
    }
  });

  let name: string | null = null;
  if (typeof raw.name === 'string' && raw.name.length > 0) name = [...raw.name].slice(0, 64).join('');
  else if (raw.name !== undefined && raw.name !== null && raw.name !== '') warn('name is not a string; ignored');

  const cards: string[] = [];
  if (raw.cards !== undefined) {
    if (!Array.isArray(raw.cards)) return reject('cards must be an array of card numbers');
    for (const c of raw.cards) {
      const n = normalizeCard(c);
      if (n === null) return reject(`card ${JSON.stringify(c)} is not a non-negative integer`);
      if (!cards.includes(n)) cards.push(n);
    }
  }

  const templates: Template[] = [];
  const takeList = (kind: 'fp' | 'fa', field: string, maxId: number): void => {
    const v = raw[field];
    if (v === undefined || v === null) return;
    if (!Array.isArray(v)) return warn(`${field} is not an array; ignored`);
    for (const t of v) {
      const id: unknown = isObject(t) ? t.id : undefined;
      const idn = typeof id === 'string' ? Number(id) : id;
      if (!isObject(t) || typeof idn !== 'number' || !Number.isInteger(idn) || idn < 0 || idn > maxId) {
        warn(`${field} entry with id ${JSON.stringify(id)} outside 0-${maxId}; ignored`);
        continue;
      }
      if (t.data === '') continue; // an emptied slot: deleted (the user's templates are replaced as a whole)
      if (typeof t.data !== 'string' || t.data.length > MAX_TEMPLATE_CHARS) {
        warn(`${field} ${idn} has no usable data; ignored`);
        continue;
      }
      templates.push({ kind, id: String(idn), data: t.data });
    }
  };
  takeList('fp', 'fp', 9);
  takeList('fa', 'fa_list', 11);
  // Legacy single face template, ignored when fa_list is present (upload_userinfo says the same).
  if (typeof raw.fa === 'string' && raw.fa.length > 0 && !Array.isArray(raw.fa_list)) {
    if (raw.fa.length > MAX_TEMPLATE_CHARS) warn(`fa has ${raw.fa.length} characters, more than ${MAX_TEMPLATE_CHARS}; ignored`);
    else templates.push({ kind: 'fa', id: 'legacy', data: raw.fa });
  }

  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return {
    ok: true,
    warnings,
    user: {
      record: {
        userid,
        user_type: ut,
        name,
        openvid,
        cards,
        rules,
        invalid_rules: invalid,
        source,
        fp_ver: num(raw.fp_ver),
        fa_ver: num(raw.fa_ver),
        ...(typeof (raw.fp_algorithm ?? raw.fp_alogrithm) === 'string' ? { fp_algorithm: (raw.fp_algorithm ?? raw.fp_alogrithm) as string } : {}),
      },
      key,
      templates,
    },
  };
}
