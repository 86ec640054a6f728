/**
 * Signed site envelopes (issue 23, the site's first piece): every message on the site bus is an
 * Ed25519-signed statement — who signed (key id), when, a unique id, its scope (site, areas or
 * doors), its subject, and for facts a version, for commands an expiry of seconds. A door verifies
 * before it parses the body and acts, and refuses with a named reason. Trust is the key's, with its
 * roles from the door's configuration: a broker account proves nothing.
 *
 * What is signed is the canonical JSON of the envelope without `sig` (keys sorted, no spaces), so a
 * re-serialisation on the way cannot make a valid statement invalid, and nothing unsigned rides along.
 * Pure: clocks, the replay memory and the versions held are the caller's.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export type SiteScope = { site: true } | { areas: string[] } | { doors: string[] };

export interface SiteEnvelope {
  v: 1;
  /** Key id of the signer (see keyIdOf). */
  kid: string;
  /** Issued at, unix ms. */
  iat: number;
  /** Unique id: a replayed envelope is refused by it. */
  id: string;
  kind: 'fact' | 'command';
  /** What it is about: `<type>/<name>` (e.g. `threat_level/site`, `block/card:1234`, `open/lobby`). */
  subject: string;
  scope: SiteScope;
  /** Facts: newer versions replace older ones, the same way on every door. */
  version?: number;
  /** Commands: no use after this (unix ms); a delayed delivery never opens a door later. */
  exp?: number;
  body: unknown;
  /** Ed25519 signature (base64) of the canonical JSON of everything else. */
  sig?: string;
}

export type Refusal = 'malformed' | 'too_large' | 'no_signature' | 'unknown_key' | 'bad_signature' | 'role_not_allowed' | 'out_of_scope' | 'expired' | 'not_yet_valid' | 'replayed' | 'older_version';

export interface TrustedKey {
  key: KeyObject;
  /** Who holds it (journaled as the signer). */
  name: string;
  roles: ReadonlySet<string>;
  /** A door's key (site.door_keys may_raise): it may state only these threat levels, only as facts. */
  levels?: ReadonlySet<string>;
}

export interface VerifyContext {
  nowMs: number;
  /** This door's gateway id, doors and areas: what a scope must name to include it. */
  gateway: string;
  doors: readonly string[];
  areas: readonly string[];
  keys: ReadonlyMap<string, TrustedKey>;
  /** Which roles may state which subject types (`threat_level` → [guard, admin]). */
  permissions: Readonly<Record<string, readonly string[]>>;
  /** Ids seen within their life (the caller's bounded memory). */
  seen: (id: string) => boolean;
  /** Where the fact held of this subject stands (undefined: none held). */
  versionOf: (subject: string) => FactStamp | undefined;
  /** Accepted clock difference between signer and door (ms). */
  skewMs?: number;
  /**
   * Facts: hold one whose scope leaves this door out instead of refusing it (a door counts every
   * site fact for completeness; it applies only those in its scope).
   */
  holdOutOfScope?: boolean;
}

/** An envelope larger than this is refused before it is parsed. */
export const MAX_ENVELOPE_BYTES = 64 * 1024;
/** Commands live seconds: one valid for longer than this is refused as malformed. */
export const MAX_COMMAND_LIFE_MS = 60_000;

/** Deterministic JSON: object keys sorted, no whitespace. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

/** A key's id: the first 16 bytes of the SHA-256 of its raw public key, hex (as `doorgw site key new` prints it). */
export function keyIdOf(publicKey: KeyObject): string {
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return createHash('sha256').update(raw).digest('hex').slice(0, 32);
}

/**
 * Where a fact stands: newer means a higher version, then (two operators who made the same version
 * at once) the later issue time, then the greater id — a total order, so every door keeps the same
 * one whatever order the two arrive in.
 */
export interface FactStamp {
  version: number;
  iat: number;
  id: string;
}

export function newerFact(a: FactStamp, b: FactStamp): boolean {
  return a.version !== b.version ? a.version > b.version : a.iat !== b.iat ? a.iat > b.iat : a.id > b.id;
}

export function signEnvelope(e: Omit<SiteEnvelope, 'sig'>, privateKey: KeyObject): SiteEnvelope {
  const sig = sign(null, Buffer.from(canonicalJson(e)), privateKey).toString('base64');
  return { ...e, sig };
}

/** Public key from its raw 32 bytes (base64), as configured for a door. */
/** An Ed25519 public key as configurations carry it: its 32 raw bytes, base64 (the inverse of ed25519PublicKey). */
export function rawPublicKey(k: KeyObject): string {
  return k.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
}

export function ed25519PublicKey(rawB64: string): KeyObject {
  const raw = Buffer.from(rawB64, 'base64');
  if (raw.length !== 32) throw new Error('an Ed25519 public key is 32 bytes (base64)');
  return createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
}

const ID = /^[A-Za-z0-9_-]{8,64}$/;
const SUBJECT = /^[a-z_]+\/[^\s/][^\s]{0,199}$/;
const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

function shape(v: unknown): SiteEnvelope | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const e = v as Record<string, unknown>;
  if (e.v !== 1 || typeof e.kid !== 'string' || !/^[0-9a-f]{32}$/.test(e.kid)) return null;
  if (typeof e.iat !== 'number' || !Number.isSafeInteger(e.iat) || typeof e.id !== 'string' || !ID.test(e.id)) return null;
  if (e.kind !== 'fact' && e.kind !== 'command') return null;
  if (typeof e.subject !== 'string' || !SUBJECT.test(e.subject)) return null;
  const s = e.scope as Record<string, unknown> | null;
  if (typeof s !== 'object' || s === null) return null;
  const keys = Object.keys(s);
  if (keys.length !== 1) return null;
  if (keys[0] === 'site' ? s.site !== true : !(keys[0] === 'areas' || keys[0] === 'doors') || !Array.isArray(s[keys[0]]) || !(s[keys[0]] as unknown[]).every((x) => typeof x === 'string' && NAME.test(x))) return null;
  if (e.kind === 'fact' && (typeof e.version !== 'number' || !Number.isSafeInteger(e.version) || e.version < 0 || e.exp !== undefined)) return null;
  if (e.kind === 'command' && (typeof e.exp !== 'number' || !Number.isSafeInteger(e.exp) || e.version !== undefined || e.exp - e.iat > MAX_COMMAND_LIFE_MS || e.exp < e.iat)) return null;
  if (e.sig !== undefined && typeof e.sig !== 'string') return null;
  return e as unknown as SiteEnvelope;
}

/**
 * Verify an envelope as received (text). Order: size, shape, signature (before anything is
 * believed), role, scope, time, replay, version. Returns the envelope with its signer, or the
 * first reason it is refused.
 */
export function verifyEnvelope(text: string, ctx: VerifyContext): { ok: true; envelope: SiteEnvelope; signer: TrustedKey; inScope: boolean } | { ok: false; reason: Refusal; detail: string } {
  const no = (reason: Refusal, detail: string) => ({ ok: false as const, reason, detail });
  if (Buffer.byteLength(text) > MAX_ENVELOPE_BYTES) return no('too_large', `${Buffer.byteLength(text)} bytes (at most ${MAX_ENVELOPE_BYTES})`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return no('malformed', 'not JSON');
  }
  const e = shape(parsed);
  if (!e) return no('malformed', 'not a site envelope (v 1: kid, iat, id, kind, subject, scope, version or exp, body, sig)');
  if (e.sig === undefined) return no('no_signature', `from key ${e.kid}`);
  const signer = ctx.keys.get(e.kid);
  if (!signer) return no('unknown_key', `key ${e.kid} is not trusted by this door`);
  const { sig, ...signed } = e;
  let good = false;
  try {
    good = verify(null, Buffer.from(canonicalJson(signed)), signer.key, Buffer.from(sig, 'base64'));
  } catch {
    good = false;
  }
  if (!good) return no('bad_signature', `claims key ${e.kid} (${signer.name})`);
  const type = e.subject.slice(0, e.subject.indexOf('/'));
  const allowed = ctx.permissions[type] ?? [];
  if (signer.levels) {
    const level = (e.body as { level?: unknown } | null)?.level;
    if (type !== 'threat_level' || e.kind !== 'fact' || typeof level !== 'string' || !signer.levels.has(level)) return no('role_not_allowed', `${signer.name} may only raise ${[...signer.levels].join(', ')} (site.door_keys may_raise), not state ${e.subject}${typeof level === 'string' ? ` = ${level}` : ''}`);
  } else if (![...signer.roles].some((r) => allowed.includes(r))) return no('role_not_allowed', `${signer.name} (${[...signer.roles].join(', ') || 'no role'}) may not state ${type} (needs ${allowed.join(' or ') || 'a role no key has'})`);
  const sc = e.scope;
  const inScope = 'site' in sc || ('doors' in sc && sc.doors.some((d) => ctx.doors.includes(d) || d === ctx.gateway)) || ('areas' in sc && sc.areas.some((a) => ctx.areas.includes(a)));
  if (!inScope && !(ctx.holdOutOfScope && e.kind === 'fact')) return no('out_of_scope', `scope ${canonicalJson(sc)} does not include this door`);
  const skew = ctx.skewMs ?? 30_000;
  if (e.iat > ctx.nowMs + skew) return no('not_yet_valid', `issued ${e.iat - ctx.nowMs} ms in the future`);
  if (e.kind === 'command' && ctx.nowMs > e.exp! + skew) return no('expired', `expired ${ctx.nowMs - e.exp!} ms ago`);
  if (ctx.seen(e.id)) return no('replayed', `envelope ${e.id} was seen before`);
  if (e.kind === 'fact') {
    const held = ctx.versionOf(e.subject);
    if (held !== undefined && !newerFact({ version: e.version!, iat: e.iat, id: e.id }, held)) return no('older_version', `version ${e.version} of ${e.subject}; this door holds ${held.version} (issued ${held.iat}, ${held.id})`);
  }
  return { ok: true, envelope: e, signer, inScope };
}
