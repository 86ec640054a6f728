/**
 * What a backup may hold: every raw database entry is checked against the sublevel it names
 * before a restore writes anything. An unknown prefix, a key of the wrong form or a value that
 * does not parse as its kind is refused with its reason (a restored garbage user once crashed
 * `doorgw check`). The checks are of shape, not of meaning: a backup is ours, damaged or forged.
 */

type Check = (key: string, v: unknown) => string | null;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const strOrNull = (v: unknown): boolean => v === null || typeof v === 'string';
const strings = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');
const DIGITS = /^\d+$/;
const SEQ = /^\d{12}$/;
const TIMED = /^\d{13}!\d{12}$/;

function localFields(f: unknown): string | null {
  if (!isObj(f)) return 'local fields are not an object';
  if (!strings(f.cards_added) || !(f.cards_added as string[]).every((c) => DIGITS.test(c))) return 'cards_added is not a list of card numbers';
  if (!strings(f.groups)) return 'groups is not a list of names';
  if (f.doors !== null && !strings(f.doors)) return 'doors is not a list of door ids or null';
  for (const k of ['valid_from', 'valid_until', 'extended_unlock_ms'] as const) if (f[k] !== null && !num(f[k])) return `${k} is not a number or null`;
  if (!strOrNull(f.pin) || !strOrNull(f.note)) return 'pin or note is not a string or null';
  if (f.blocked !== null && !isObj(f.blocked)) return 'blocked is not an object or null';
  if (!isObj(f.blocked_cards)) return 'blocked_cards is not an object';
  if (!num(f.updated_at) || typeof f.updated_by !== 'string') return 'updated_at/updated_by missing';
  return null;
}

function userRecord(key: string, u: unknown): string | null {
  if (!isObj(u)) return 'a user record is not an object';
  if (u.userid !== key) return 'a user record under another userid';
  if (u.user_type !== 0 && u.user_type !== 1 && u.user_type !== 2) return 'user_type is not 0, 1 or 2';
  if (!strOrNull(u.name) || !strOrNull(u.openvid) || !strOrNull(u.key_id)) return 'name, openvid or key_id is not a string or null';
  if (!strings(u.cards) || !(u.cards as string[]).every((c) => DIGITS.test(c))) return 'cards is not a list of card numbers';
  if (!Array.isArray(u.rules) || !Array.isArray(u.invalid_rules)) return 'rules are not lists';
  if (typeof u.source !== 'string') return 'source is not a string';
  if (u.local !== undefined) return localFields(u.local);
  return null;
}

const KEY_MAX = 1024;

/** Checks by sublevel name; generation sublevels (g<N>u …) by their suffix. */
const CHECKS: Record<string, Check> = {
  meta: () => null,
  u: (k, v) => userRecord(k, v),
  lu: (k, v) => userRecord(k, v),
  la: (_k, v) => localFields(v),
  o: (_k, v) => (strings(v) ? null : 'an index entry is not a list of userids'),
  c: (k, v) => (!DIGITS.test(k) ? 'a card index key is not a card number' : strings(v) ? null : 'an index entry is not a list of userids'),
  k: (_k, v) => (typeof v === 'string' ? null : 'a key is not base64 text'),
  lk: (_k, v) => (typeof v === 'string' ? null : 'a key is not base64 text'),
  t: (_k, v) => (typeof v === 'string' ? null : 'a template is not text'),
  journal: (k, v) => (!TIMED.test(k) ? 'a journal key is not <ms>!<seq>' : isObj(v) && num(v.seq) && num(v.at) && typeof v.decision === 'string' ? null : 'a journal entry without seq, at and decision'),
  doorevents: (k, v) => (!TIMED.test(k) ? 'a door-event key is not <ms>!<seq>' : isObj(v) && num(v.seq) && num(v.at) && typeof v.type === 'string' ? null : 'a door event without seq, at and type'),
  jseq: (k, v) => (SEQ.test(k) && typeof v === 'string' && TIMED.test(v) ? null : 'a sequence index entry of the wrong form'),
  dseq: (k, v) => (SEQ.test(k) && typeof v === 'string' && TIMED.test(v) ? null : 'a sequence index entry of the wrong form'),
  outbox: (k, v) => (SEQ.test(k) && isObj(v) && num(v.seq) && num(v.timestamp) ? null : 'an outbox record without seq and timestamp'),
  held: (k, v) => (SEQ.test(k) && isObj(v) && num(v.seq) && num(v.timestamp) ? null : 'a held record without seq and timestamp'),
  replay: (_k, v) => (num(v) || (isObj(v) && num(v.until) && num(v.window_s) && num(v.mono_until) && typeof v.boot === 'string') ? null : 'a replay entry of the wrong form'),
  presence: (_k, v) => (isObj(v) && (v.where === 'in' || v.where === 'out') && num(v.at) ? null : 'a presence entry of the wrong form'),
  sf: (k, v) => (isObj(v) && v.v === 1 && v.kind === 'fact' && v.subject === k && typeof v.sig === 'string' && typeof v.kid === 'string' ? null : 'a site fact that is not a signed envelope of its subject'),
  webaccounts: (k, v) => (isObj(v) && v.name === k && (v.role === 'viewer' || v.role === 'operator' || v.role === 'admin') && typeof v.hash === 'string' && v.hash.startsWith('scrypt') ? null : 'a console account of the wrong form'),
};

/** Why this raw entry (key with its sublevel prefix, value as stored) may not be restored; null: it may. */
export function rawEntryProblem(rawKey: string, rawValue: string): string | null {
  const m = /^!([a-z0-9]+)!([\s\S]*)$/.exec(rawKey);
  if (!m) return 'a key outside every sublevel';
  const [, name, key] = m as unknown as [string, string, string];
  if (key.length === 0 || key.length > KEY_MAX) return `a key of ${key.length} characters in ${name}`;
  const gen = /^g\d+([uockt])$/.exec(name);
  const check = CHECKS[gen ? gen[1]! : name];
  if (!check || (!gen && name.length === 1)) return `an unknown sublevel '${name}'`;
  let v: unknown;
  try {
    v = JSON.parse(rawValue);
  } catch {
    return `a value in ${name} that is not JSON`;
  }
  const why = check(key, v);
  return why === null ? null : `${name}: ${why}`;
}
