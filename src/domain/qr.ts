/**
 * WeCom offline QR codes (protocols.md §2): decode the scanned base64 text, verify ECDSA P-256
 * signatures (raw r‖s) and the employee code's validity window.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export type QrFailure = 'malformed' | 'unsupported_version' | 'unsupported_type' | 'bad_signature' | 'expired' | 'not_yet_valid';

interface QrCommon {
  version: 1;
  /** uint64 as a decimal string: never a JS number. */
  openvid: string;
  /** Bytes covered by the signature (everything before `sign`). */
  signed: Buffer;
  /** Raw 64-byte r‖s signature. */
  signature: Buffer;
}
export interface EmployeeQr extends QrCommon {
  type: 'employee';
  startTime: number;
  expiresIn: number;
}
export interface VisitorQr extends QrCommon {
  type: 'visitor';
  state: Buffer;
}
export type QrCode = EmployeeQr | VisitorQr;

export type Result<T, E> = { ok: true; value: T } | { ok: false; reason: E; detail: string };

const SIG_LEN = 64;
const EMPLOYEE_LEN = 1 + 1 + 8 + 4 + 2 + SIG_LEN; // 80
const VISITOR_MIN = 1 + 1 + 8 + 1 + SIG_LEN; // 75, plus state
const MAX_STATE = 16;
/** Longest valid text is a visitor code with 16 state bytes: 91 bytes = 124 base64 chars. */
export const MAX_QR_TEXT = 124;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function fail<E>(reason: E, detail: string): { ok: false; reason: E; detail: string } {
  return { ok: false, reason, detail };
}

/** Decode scanner text into a QR code structure. Never throws. */
export function decodeQr(text: string): Result<QrCode, 'malformed' | 'unsupported_version' | 'unsupported_type'> {
  const t = text.trim();
  if (t.length === 0) return fail('malformed', 'empty scan');
  if (t.length > MAX_QR_TEXT + 4) return fail('malformed', `scan too long (${t.length} chars; a WeCom code has at most ${MAX_QR_TEXT})`);
  if (!BASE64.test(t) || t.length % 4 === 1) return fail('malformed', 'not base64');
  const b = Buffer.from(t, 'base64');
  if (b.length < 2) return fail('malformed', `too short (${b.length} bytes)`);
  const version = b[0];
  if (version !== 0x01) return fail('unsupported_version', `version ${version}`);
  const type = b[1];
  if (type === 0) {
    if (b.length !== EMPLOYEE_LEN) return fail('malformed', `employee code must be ${EMPLOYEE_LEN} bytes (got ${b.length})`);
    return {
      ok: true,
      value: {
        type: 'employee',
        version: 1,
        openvid: b.readBigUInt64BE(2).toString(),
        startTime: b.readUInt32BE(10),
        expiresIn: b.readUInt16BE(14),
        signed: b.subarray(0, 16),
        signature: b.subarray(16),
      },
    };
  }
  if (type === 1) {
    if (b.length < VISITOR_MIN) return fail('malformed', `visitor code too short (${b.length} bytes)`);
    const stateLen = b[10]!;
    if (stateLen > MAX_STATE) return fail('malformed', `visitor state_len ${stateLen} exceeds ${MAX_STATE}`);
    if (b.length !== VISITOR_MIN + stateLen) {
      return fail('malformed', `visitor code with state_len ${stateLen} must be ${VISITOR_MIN + stateLen} bytes (got ${b.length})`);
    }
    const end = 11 + stateLen;
    return {
      ok: true,
      value: {
        type: 'visitor',
        version: 1,
        openvid: b.readBigUInt64BE(2).toString(),
        state: b.subarray(11, end),
        signed: b.subarray(0, end),
        signature: b.subarray(end),
      },
    };
  }
  return fail('unsupported_type', `type ${type}`);
}

/** Encode a QR code (used by tests, the demo and `doorgw qr sign`). */
export function encodeQrBody(
  q: { type: 'employee'; openvid: string; startTime: number; expiresIn: number } | { type: 'visitor'; openvid: string; state: Buffer },
): Buffer {
  if (q.type === 'employee') {
    const b = Buffer.alloc(16);
    b[0] = 1;
    b[1] = 0;
    b.writeBigUInt64BE(BigInt(q.openvid), 2);
    b.writeUInt32BE(q.startTime, 10);
    b.writeUInt16BE(q.expiresIn, 14);
    return b;
  }
  if (q.state.length > MAX_STATE) throw new RangeError(`state longer than ${MAX_STATE} bytes`);
  const b = Buffer.alloc(11 + q.state.length);
  b[0] = 1;
  b[1] = 1;
  b.writeBigUInt64BE(BigInt(q.openvid), 2);
  b[10] = q.state.length;
  q.state.copy(b, 11);
  return b;
}

/**
 * The scanner text of a code: `body` (from encodeQrBody) signed as WeCom signs it — ECDSA P-256
 * over SHA-256, raw r‖s — in base64. Doors never sign; the emulator, the demo and tests do.
 */
export function signQr(body: Buffer, key: KeyObject): string {
  return Buffer.concat([body, sign('sha256', body, { key, dsaEncoding: 'ieee-p1363' })]).toString('base64');
}

// ---------------------------------------------------------------------------------------------
// Public keys

/** DER prefixes of a SubjectPublicKeyInfo for id-ecPublicKey / prime256v1, by point length. */
const SPKI_PREFIX = {
  33: Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'),
  65: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'),
} as const;

/** Parse a base64 EC point (33-byte compressed or 65-byte uncompressed), or explain why not. */
export function parsePublicKeyPoint(b64: string): Result<Buffer, 'bad_key'> {
  const t = b64.trim();
  if (t.length > 200 || !BASE64.test(t)) return fail('bad_key', 'public key is not base64');
  const p = Buffer.from(t, 'base64');
  if (p.length === 33 && (p[0] === 0x02 || p[0] === 0x03)) return { ok: true, value: p };
  if (p.length === 65 && p[0] === 0x04) return { ok: true, value: p };
  return fail('bad_key', `public key must be a 33-byte compressed or 65-byte uncompressed P-256 point (got ${p.length} bytes, prefix 0x${(p[0] ?? 0).toString(16).padStart(2, '0')})`);
}

/** The 33-byte compressed point of a P-256 key, as WeCom sends `public_key` (base64 of this). */
export function compressedPoint(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  const y = Buffer.from(jwk.y ?? '', 'base64url');
  return Buffer.concat([Buffer.from([(y[31]! & 1) === 1 ? 3 : 2]), Buffer.from(jwk.x ?? '', 'base64url')]);
}

/** Stable id of a key point: many users share one key, so it is stored once under this id. */
export function keyId(point: Buffer): string {
  return createHash('sha256').update(point).digest('hex').slice(0, 32);
}

/** Import a point as a KeyObject. Throws if it is not on the curve. */
export function importPublicKey(point: Buffer): KeyObject {
  const prefix = point.length === 33 ? SPKI_PREFIX[33] : point.length === 65 ? SPKI_PREFIX[65] : undefined;
  if (!prefix) throw new RangeError('point must be 33 or 65 bytes');
  return createPublicKey({ key: Buffer.concat([prefix, point]), format: 'der', type: 'spki' });
}

/**
 * Imported keys by key id. Importing costs more than a verify, and a directory shares few keys
 * among many users, so the cache is small and bounded (oldest entry evicted first).
 */
export class KeyCache {
  private readonly keys = new Map<string, KeyObject | null>();
  constructor(private readonly limit = 1024) {}

  /** KeyObject for `id`, importing `load()`'s bytes on a miss; null when the bytes are no valid key. */
  get(id: string, load: () => Buffer | undefined): KeyObject | null | undefined {
    const hit = this.keys.get(id);
    if (hit !== undefined) return hit;
    const bytes = load();
    if (!bytes) return undefined;
    let key: KeyObject | null;
    try {
      key = importPublicKey(bytes);
    } catch {
      key = null;
    }
    if (this.keys.size >= this.limit) this.keys.delete(this.keys.keys().next().value!);
    this.keys.set(id, key);
    return key;
  }

  clear(): void {
    this.keys.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Verification

export interface VerifyOptions {
  /** Unix seconds. */
  now: number;
  /** Allowed clock skew in seconds on both ends of an employee code's window. */
  skewS: number;
}

/** Verify signature, then (for employee codes) the validity window. */
export function verifyQr(code: QrCode, key: KeyObject, opts: VerifyOptions): Result<QrCode, 'bad_signature' | 'expired' | 'not_yet_valid'> {
  let good = false;
  try {
    good = verify('sha256', code.signed, { key, dsaEncoding: 'ieee-p1363' }, code.signature);
  } catch {
    good = false;
  }
  if (!good) return fail('bad_signature', 'signature does not verify with the user\'s public key');
  if (code.type === 'employee') {
    if (opts.now < code.startTime - opts.skewS) return fail('not_yet_valid', `valid from ${code.startTime}, now ${opts.now}`);
    if (opts.now >= code.startTime + code.expiresIn + opts.skewS) {
      return fail('expired', `expired at ${code.startTime + code.expiresIn}, now ${opts.now}`);
    }
  }
  return { ok: true, value: code };
}

/** Seconds until which an accepted code must be remembered to refuse a replay (null: no window). */
export function replayUntil(code: QrCode, skewS: number): number | null {
  return code.type === 'employee' ? code.startTime + code.expiresIn + skewS : null;
}

/**
 * What identifies a code for replay protection: the bytes that were signed, never the signature.
 * An ECDSA signature has two valid forms (s and n−s), so keying on it lets a used code back in.
 */
export function qrReplayKey(code: QrCode): string {
  return code.signed.toString('base64');
}
