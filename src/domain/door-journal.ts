/**
 * A door's journal on the site bus (issue 24): batches of its records by sequence, signed with the
 * door's own Ed25519 key, on `<base>/journal/<gateway>`. A batch says which sequence range it
 * covers — every record of the door in [from, to] is in it (the numbers without one were taken by
 * the outbox, or pruned) — and the door's newest number (`head`), so a reader of the bus (the
 * collector) knows exactly what it is missing and can ask the door for it. A batch is believed
 * only when signed by the key the site lists for the gateway of its topic: a door cannot speak for
 * another, and a broker account proves nothing.
 */
import { sign, verify, type KeyObject } from 'node:crypto';
import type { JournalRecord } from './journal-records.js';
import { canonicalJson, ed25519PublicKey } from './site-envelope.js';

export interface JournalBatch {
  gateway: string;
  /** Wall-clock ms at the door when sent (for display; never trusted for order). */
  at: number;
  /** The sequence range this batch covers completely; null: a batch that only tells the head. */
  covers: [number, number] | null;
  /** The door's newest sequence number when sent. */
  head: number;
  records: JournalRecord[];
}

export interface SignedBatch {
  batch: JournalBatch;
  kid: string;
  sig: string;
}

/** A batch's size on the wire: well under any broker's packet limit (Mosquitto 256 MB, EMQX 1 MB by default). */
export const MAX_BATCH_BYTES = 32 * 1024;
/** What a reader of the bus accepts: a little more than a door sends, never a flood. */
export const MAX_BATCH_ACCEPTED_BYTES = 256 * 1024;
export const MAX_BATCH_RECORDS = 2000;
const MAX_RECORD_BYTES = 16 * 1024;
const GATEWAY = /^[A-Za-z0-9_.:-]{1,64}$/;

export function signBatch(batch: JournalBatch, kid: string, privateKey: KeyObject): SignedBatch {
  return { batch, kid, sig: sign(null, Buffer.from(canonicalJson({ kid, batch })), privateKey).toString('base64') };
}

export type BatchCheck = { ok: true; batch: JournalBatch } | { ok: false; reason: 'malformed' | 'too_large' | 'unknown_key' | 'bad_signature' | 'wrong_gateway'; detail: string };

/**
 * A batch read from `<base>/journal/<topicGateway>`: its size, shape, gateway and signature, then
 * every record (sequence inside the range it covers, ascending, entry of its kind). `doors`, when
 * known (the gateway's signed report), are the only doors its records may name.
 */
export function checkBatch(payload: string, topicGateway: string, doorKeys: ReadonlyMap<string, { kid: string; public_key: string }>, doors?: ReadonlySet<string>): BatchCheck {
  const no = (reason: Exclude<BatchCheck, { ok: true }>['reason'], detail: string): BatchCheck => ({ ok: false, reason, detail });
  if (Buffer.byteLength(payload) > MAX_BATCH_ACCEPTED_BYTES) return no('too_large', `${Buffer.byteLength(payload)} bytes (at most ${MAX_BATCH_ACCEPTED_BYTES})`);
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return no('malformed', 'not JSON');
  }
  const o = v as Partial<SignedBatch> | null;
  if (typeof o !== 'object' || o === null || typeof o.kid !== 'string' || typeof o.sig !== 'string' || typeof o.batch !== 'object' || o.batch === null) return no('malformed', 'not a signed journal batch ({batch, kid, sig})');
  const b = o.batch;
  if (typeof b.gateway !== 'string' || !GATEWAY.test(b.gateway)) return no('malformed', 'no gateway');
  if (b.gateway !== topicGateway) return no('wrong_gateway', `a batch of gateway '${b.gateway}' on the topic of '${topicGateway}'`);
  const key = doorKeys.get(topicGateway);
  if (!key) return no('unknown_key', `no key for gateway '${topicGateway}' in door_keys`);
  if (key.kid !== o.kid) return no('bad_signature', `signed by key ${o.kid}, not ${topicGateway}'s (${key.kid})`);
  let good = false;
  try {
    good = verify(null, Buffer.from(canonicalJson({ kid: o.kid, batch: b })), ed25519PublicKey(key.public_key), Buffer.from(o.sig, 'base64'));
  } catch {
    good = false;
  }
  if (!good) return no('bad_signature', `a batch of '${topicGateway}' whose signature does not verify`);
  const seqOk = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 1;
  if (!seqOk(b.head) && b.head !== 0) return no('malformed', 'head is not a sequence number');
  if (typeof b.at !== 'number' || !Number.isFinite(b.at)) return no('malformed', 'no time');
  if (!Array.isArray(b.records) || b.records.length > MAX_BATCH_RECORDS) return no('malformed', `records: a list of at most ${MAX_BATCH_RECORDS}`);
  if (b.covers === null) {
    if (b.records.length) return no('malformed', 'records in a batch that covers nothing');
    return { ok: true, batch: b };
  }
  if (!Array.isArray(b.covers) || b.covers.length !== 2 || !seqOk(b.covers[0]) || !seqOk(b.covers[1]) || b.covers[0] > b.covers[1] || b.covers[1] > b.head) return no('malformed', 'covers: [from, to] within the head');
  let last = b.covers[0] - 1;
  for (const r of b.records as unknown[]) {
    const rec = r as Partial<JournalRecord> | null;
    if (typeof rec !== 'object' || rec === null || !seqOk(rec.seq) || rec.seq <= last || rec.seq > b.covers[1]) return no('malformed', `a record out of order or outside ${b.covers[0]}–${b.covers[1]}`);
    last = rec.seq;
    if (rec.kind !== 'decision' && rec.kind !== 'event') return no('malformed', `record ${rec.seq}: kind is decision or event`);
    const e = rec.entry as unknown as Record<string, unknown> | undefined;
    if (typeof e !== 'object' || e === null || e.seq !== rec.seq || typeof e.at !== 'number' || !Number.isSafeInteger(e.at) || typeof e.door !== 'string' || !GATEWAY.test(e.door)) return no('malformed', `record ${rec.seq}: an entry with its seq, at and door`);
    if (rec.kind === 'decision' ? typeof e.decision !== 'string' || typeof e.reason !== 'string' || typeof e.method !== 'string' : typeof e.type !== 'string') return no('malformed', `record ${rec.seq}: not a ${rec.kind}`);
    if (canonicalJson(e).length > MAX_RECORD_BYTES) return no('too_large', `record ${rec.seq} larger than ${MAX_RECORD_BYTES} bytes`);
    if (doors && !doors.has(e.door)) return no('wrong_gateway', `record ${rec.seq} names door '${e.door}', not one of ${topicGateway}'s`);
  }
  return { ok: true, batch: b };
}
