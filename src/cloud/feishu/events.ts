/**
 * Feishu event callbacks ("send events to developer server", protocols.md §16): the request is
 * authenticated before anything in it is read — with an Encrypt Key, by the X-Lark-Signature over
 * timestamp, nonce, key and body and by the AES-256-CBC envelope; otherwise by the verification
 * token in the event's header. The URL check (`url_verification`) is answered with its challenge.
 *
 * An event is only a hint: the door re-reads what it names from the API, so a replayed or forged
 * event (past these checks) can cost a request, never change a decision.
 */
import { createDecipheriv, createHash, timingSafeEqual } from 'node:crypto';

export interface FeishuEventsConfig {
  verification_token: string;
  encrypt_key?: string | undefined;
}

export type OpenedEvent =
  | { kind: 'challenge'; challenge: string }
  | { kind: 'event'; id: string; type: string; createdMs: number | null; event: Record<string, unknown> };

/** Refused: the HTTP status to answer and why (logged; the caller learns nothing more). */
export class EventRefused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Feishu's request signature: hex SHA-256 of timestamp + nonce + encrypt key + raw body. */
export function eventSignature(timestamp: string, nonce: string, key: string, body: Buffer): string {
  return createHash('sha256').update(timestamp + nonce + key).update(body).digest('hex');
}

/** The `encrypt` field: base64 of IV (16 B) · AES-256-CBC ciphertext, key = SHA-256(encrypt key), PKCS#7. */
export function decryptEvent(encrypt: string, key: string): string {
  const raw = Buffer.from(encrypt, 'base64');
  if (raw.length < 32 || raw.length % 16 !== 0) throw new EventRefused(400, 'the encrypted event is not IV + whole AES blocks');
  try {
    const d = createDecipheriv('aes-256-cbc', createHash('sha256').update(key).digest(), raw.subarray(0, 16));
    return Buffer.concat([d.update(raw.subarray(16)), d.final()]).toString('utf8');
  } catch {
    throw new EventRefused(400, 'the encrypted event does not decrypt with the configured encrypt key');
  }
}

function parseObject(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new EventRefused(400, `${what} is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new EventRefused(400, `${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

/** Authenticate and open one callback request. Throws EventRefused. */
export function openEvent(body: Buffer, headers: Record<string, string | string[] | undefined>, cfg: FeishuEventsConfig): OpenedEvent {
  const h = (k: string): string | undefined => {
    const v = headers[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const outer = parseObject(body.toString('utf8'), 'the callback body');
  const key = cfg.encrypt_key;
  let signed = false;
  if (key) {
    const ts = h('x-lark-request-timestamp');
    const nonce = h('x-lark-request-nonce');
    const sig = h('x-lark-signature');
    if (ts !== undefined && nonce !== undefined && sig !== undefined) {
      if (!same(eventSignature(ts, nonce, key, body), sig.toLowerCase())) throw new EventRefused(401, 'X-Lark-Signature does not match (wrong encrypt key, or the body was changed)');
      signed = true;
    }
  }
  let inner = outer;
  if (typeof outer.encrypt === 'string') {
    if (!key) throw new EventRefused(400, 'an encrypted event, but cloud.feishu.events.encrypt_key is not set');
    inner = parseObject(decryptEvent(outer.encrypt, key), 'the decrypted event');
  } else if (key) throw new EventRefused(400, 'a plaintext event, but an encrypt key is configured: Feishu encrypts every event then');
  const tokenOk = (t: unknown): boolean => typeof t === 'string' && same(t, cfg.verification_token);
  if (inner.type === 'url_verification') {
    if (!tokenOk(inner.token)) throw new EventRefused(401, 'url_verification with a wrong verification token');
    if (typeof inner.challenge !== 'string' || inner.challenge.length > 256) throw new EventRefused(400, 'url_verification without a challenge');
    return { kind: 'challenge', challenge: inner.challenge };
  }
  // Events carry signature headers (the URL check may not): with a key, an unsigned event is refused.
  if (key && !signed) throw new EventRefused(401, 'an event without X-Lark-Signature headers');
  if (inner.schema !== '2.0') throw new EventRefused(400, 'only schema 2.0 events are taken');
  const header = inner.header as Record<string, unknown> | undefined;
  if (typeof header !== 'object' || header === null) throw new EventRefused(400, 'an event without a header');
  if (!tokenOk(header.token)) throw new EventRefused(401, 'an event with a wrong verification token');
  if (typeof header.event_id !== 'string' || header.event_id === '' || header.event_id.length > 128) throw new EventRefused(400, 'an event without an event_id');
  if (typeof header.event_type !== 'string' || header.event_type.length > 128) throw new EventRefused(400, 'an event without an event_type');
  const event = inner.event;
  if (typeof event !== 'object' || event === null || Array.isArray(event)) throw new EventRefused(400, 'an event without a body');
  const created = Number(header.create_time);
  return { kind: 'event', id: header.event_id, type: header.event_type, createdMs: Number.isFinite(created) ? created : null, event: event as Record<string, unknown> };
}

/** The user id an acs.user.updated_v1 names, in the id type the gateway keys users by; null if absent. */
export function updatedUserId(event: Record<string, unknown>, idType: 'open_id' | 'union_id' | 'user_id'): string | null {
  const ids = event.user_id as Record<string, unknown> | undefined;
  const v = typeof ids === 'object' && ids !== null ? ids[idType] : undefined;
  return typeof v === 'string' && v !== '' && Buffer.byteLength(v) <= 64 ? v : null;
}
