/**
 * A door's convergence report on the site bus, signed by the door's own Ed25519 key: what it holds
 * (facts, digest, manifest, levels). The broker account that published it proves nothing (a shared
 * account, or a direct connection, could publish any door's topic): the site tool believes a report
 * only when it is signed by the key the site lists for that gateway (`site.door_keys`).
 */
import { sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson, ed25519PublicKey } from './site-envelope.js';

export interface DoorReport {
  gateway: string;
  doors: string[];
  at: number;
  facts: number;
  in_scope: number;
  digest: string;
  complete: boolean | null;
  manifest: { version: number; count: number; digest: string } | null;
  levels: { door: string; level: string | null; by: string | null }[];
  /** Each door's mode, alarm and fire release now (the site console's door list); absent in older reports. */
  states?: { door: string; mode: string | null; alarm: string | null; fire: boolean }[];
}

export interface SignedReport {
  report: DoorReport;
  kid: string;
  sig: string;
}

/** Reports are small: a door's is a few hundred bytes; anything far larger is not one. */
export const MAX_REPORT_BYTES = 64 * 1024;

export function signReport(report: DoorReport, kid: string, privateKey: KeyObject): SignedReport {
  return { report, kid, sig: sign(null, Buffer.from(canonicalJson({ kid, report })), privateKey).toString('base64') };
}

export type ReportCheck = { ok: true; report: DoorReport; signed: boolean } | { ok: false; reason: string };

/**
 * A retained report from `<base>/door/<gateway>`. With door keys configured, only a report signed by
 * that gateway's key is believed; without any, an unsigned one is read but marked unsigned.
 */
export function checkReport(payload: string, topicGateway: string, doorKeys: ReadonlyMap<string, { kid: string; public_key: string }>): ReportCheck {
  if (payload.length > MAX_REPORT_BYTES) return { ok: false, reason: `too large (${payload.length} bytes)` };
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return { ok: false, reason: 'a door report that is not JSON' };
  }
  if (typeof v !== 'object' || v === null) return { ok: false, reason: 'a door report that is not an object' };
  const o = v as Partial<SignedReport> & Partial<DoorReport>;
  const signed = typeof o.sig === 'string' && typeof o.kid === 'string' && typeof o.report === 'object' && o.report !== null;
  const report = (signed ? o.report : o) as DoorReport;
  if (typeof report.gateway !== 'string' || report.gateway !== topicGateway) return { ok: false, reason: `a report for gateway '${String(report.gateway)}' on the topic of '${topicGateway}'` };
  if (!signed) return doorKeys.size ? { ok: false, reason: 'unsigned (site.door_keys lists the doors\' keys)' } : { ok: true, report, signed: false };
  const key = doorKeys.get(topicGateway);
  if (!key) return doorKeys.size ? { ok: false, reason: `no key for gateway '${topicGateway}' in site.door_keys` } : { ok: true, report, signed: false };
  if (key.kid !== o.kid) return { ok: false, reason: `signed by key ${o.kid}, not ${topicGateway}'s (${key.kid})` };
  let good = false;
  try {
    good = verify(null, Buffer.from(canonicalJson({ kid: o.kid, report })), ed25519PublicKey(key.public_key), Buffer.from(o.sig!, 'base64'));
  } catch {
    good = false;
  }
  return good ? { ok: true, report, signed: true } : { ok: false, reason: 'bad signature' };
}
