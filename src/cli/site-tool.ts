/**
 * The operator's side of the site bus (doorgw site level / block / users / open / status): read
 * what the site broker holds, state a new version of a fact signed with the operator's key, and
 * the manifest that lets every door tell it holds the whole site.
 *
 * A change is: read every retained fact (verified with the doors' own trust, so the manifest counts
 * exactly what doors accept), publish the fact retained with the next version, publish the
 * manifest, then read again — if another operator wrote meanwhile, the manifest is made again from
 * what the broker holds now, so concurrent changes end with one manifest that counts both.
 */
import { createPrivateKey, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { UsageError } from '../control/errors.js';
import { keyIdOf, newerFact, signEnvelope, verifyEnvelope, type SiteEnvelope, type SiteScope } from '../domain/site-envelope.js';
import { FactDigest, MANIFEST_SUBJECT, parseFact, parseManifest, stampOf } from '../domain/site-facts.js';
import { checkReport, type DoorReport } from '../domain/door-report.js';
import type { ToolClient } from '../io/mqtt/client.js';
import { SiteTrust } from '../pipeline/site-trust.js';

export interface Signer {
  privateKey: KeyObject;
  kid: string;
}

/** The operator's private key (PEM, as `doorgw site key new` wrote it); a file others can read is refused. */
export function readSigner(file: string): Signer {
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    throw new UsageError(`cannot read the signing key ${file}: ${(e as Error).message}`);
  }
  if ((st.mode & 0o077) !== 0) throw new UsageError(`${file} can be read by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it first`);
  const privateKey = createPrivateKey(readFileSync(file));
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new UsageError(`${file} is not an Ed25519 key (doorgw site key new makes one)`);
  return { privateKey, kid: keyIdOf(createPublicKey(privateKey)) };
}

export type { DoorReport } from '../domain/door-report.js';

export interface SiteSnapshot {
  /** Facts the doors accept, by subject (tombstones included). */
  facts: Map<string, SiteEnvelope>;
  manifest: SiteEnvelope | null;
  /** Door reports; `signed`: by the gateway's key in site.door_keys. */
  reports: (DoorReport & { signed: boolean })[];
  /** Retained messages the doors refuse (and why). */
  refused: { topic: string; reason: string }[];
}

export function scopeOf(o: { area?: string[] | undefined; door?: string[] | undefined }): SiteScope {
  if (o.area?.length && o.door?.length) throw new UsageError('give --area or --door, not both');
  if (o.area?.length) return { areas: o.area };
  if (o.door?.length) return { doors: o.door };
  return { site: true };
}

export class SiteTool {
  private readonly trust: SiteTrust;

  constructor(
    private readonly client: ToolClient,
    private readonly config: Config,
    private readonly signer: Signer | null,
    private readonly now: () => number = Date.now,
  ) {
    this.trust = new SiteTrust(config);
  }

  private get base(): string {
    return this.config.site.base_topic;
  }

  async snapshot(): Promise<SiteSnapshot> {
    const msgs = await this.client.retained([`${this.base}/fact/#`, `${this.base}/manifest`, `${this.base}/door/+`], `${this.base}/tool/${randomUUID()}`);
    const facts = new Map<string, SiteEnvelope>();
    const refused: SiteSnapshot['refused'] = [];
    let manifest: SiteEnvelope | null = null;
    const reports: (DoorReport & { signed: boolean })[] = [];
    const doorKeys = new Map(this.config.site.door_keys.map((k) => [k.gateway, k]));
    for (const m of msgs) {
      if (m.topic.startsWith(`${this.base}/door/`)) {
        const r = checkReport(m.payload, m.topic.slice(`${this.base}/door/`.length), doorKeys);
        if (r.ok) reports.push({ ...r.report, signed: r.signed });
        else refused.push({ topic: m.topic, reason: `door report refused: ${r.reason}` });
        continue;
      }
      const r = verifyEnvelope(m.payload, this.trust.context({ nowMs: this.now(), seen: () => false, versionOf: () => undefined, holdOutOfScope: true }));
      if (!r.ok) {
        refused.push({ topic: m.topic, reason: `${r.reason}: ${r.detail}` });
        continue;
      }
      const e = r.envelope;
      if (m.topic === `${this.base}/manifest`) {
        if (e.subject === MANIFEST_SUBJECT) manifest = e;
        continue;
      }
      if (m.topic !== `${this.base}/fact/${e.subject}` || !parseFact(e.subject, e.body).ok) {
        refused.push({ topic: m.topic, reason: 'malformed: not a fact of its topic' });
        continue;
      }
      const held = facts.get(e.subject);
      if (!held || newerFact(stampOf(e), stampOf(held))) facts.set(e.subject, e);
    }
    reports.sort((a, b) => (a.gateway < b.gateway ? -1 : 1));
    return { facts, manifest, reports, refused };
  }

  static digestOf(facts: Iterable<SiteEnvelope>): { count: number; digest: string } {
    const d = new FactDigest();
    for (const e of facts) d.add(e.subject, stampOf(e));
    return { count: d.count, digest: d.hex };
  }

  private sign(e: Omit<SiteEnvelope, 'sig' | 'v' | 'kid' | 'iat' | 'id'>): SiteEnvelope {
    if (!this.signer) throw new UsageError('a signing key is needed: --key <file> (doorgw site key new)');
    return signEnvelope({ v: 1, kid: this.signer.kid, iat: this.now(), id: randomUUID(), ...e }, this.signer.privateKey);
  }

  /** State a fact (body null: delete it), then the manifest; returns what was published. */
  async state(subject: string, scope: SiteScope, body: unknown): Promise<{ fact: SiteEnvelope; manifest: SiteEnvelope }> {
    const p = parseFact(subject, body);
    if (!p.ok) throw new UsageError(p.detail);
    const type = subject.slice(0, subject.indexOf('/'));
    if (this.signer && !this.trust.allows(this.signer.kid, type)) throw new UsageError(`the doors do not trust key ${this.signer.kid} to state ${type} (site.keys and site.permissions)`, 'forbidden');
    const snap = await this.snapshot();
    const held = snap.facts.get(subject);
    if (body === null && (!held || held.body === null)) throw new UsageError(`${subject} is not set: nothing to delete`, 'not_found');
    const fact = this.sign({ kind: 'fact', subject, scope, version: (held?.version ?? 0) + 1, body });
    await this.client.publish(`${this.base}/fact/${subject}`, JSON.stringify(fact), true);
    snap.facts.set(subject, fact);
    let manifest = await this.publishManifest(snap);
    // Another operator may have written meanwhile: then count what the broker holds now.
    const again = await this.snapshot();
    const now = SiteTool.digestOf(again.facts.values());
    if (now.digest !== (manifest.body as { digest: string }).digest) manifest = await this.publishManifest(again);
    return { fact, manifest };
  }

  /** The manifest of a snapshot's facts, as the next version. */
  async publishManifest(snap: Pick<SiteSnapshot, 'facts' | 'manifest'>): Promise<SiteEnvelope> {
    const m = this.sign({ kind: 'fact', subject: MANIFEST_SUBJECT, scope: { site: true }, version: (snap.manifest?.version ?? 0) + 1, body: SiteTool.digestOf(snap.facts.values()) });
    await this.client.publish(`${this.base}/manifest`, JSON.stringify(m), true);
    snap.manifest = m;
    return m;
  }

  /** A command with a life of seconds. */
  async command(subject: string, scope: SiteScope, body: unknown, lifeS = 10): Promise<SiteEnvelope> {
    const now = this.now();
    const e = this.sign({ kind: 'command', subject, scope, exp: now + lifeS * 1000, body });
    await this.client.publish(`${this.base}/command`, JSON.stringify(e), false);
    return e;
  }

  /** The convergence view: the manifest, and for each door that reported what it holds. */
  async status(): Promise<{ manifest: { version: number; count: number; digest: string } | null; facts: number; doors: (DoorReport & { signed: boolean; age_s: number; confirmed: boolean })[]; unconfirmed: string[]; refused: SiteSnapshot['refused']; levels: { subject: string; level: string; by: string; version: number }[] }> {
    const snap = await this.snapshot();
    const m = snap.manifest ? parseManifest(snap.manifest.body) : null;
    const now = this.now();
    const doors = snap.reports.map((r) => ({ ...r, age_s: Math.round((now - r.at) / 1000), confirmed: m !== null && r.digest === m.digest && r.facts === m.count }));
    // A door whose key is listed but whose report is missing or was refused (forged, unsigned) is not confirmed either.
    const missing = this.config.site.door_keys.map((k) => k.gateway).filter((g) => !doors.some((r) => r.gateway === g));
    const levels = [...snap.facts.values()]
      .filter((e) => e.subject.startsWith('threat_level/') && e.body !== null)
      .map((e) => ({ subject: e.subject, level: (e.body as { level: string }).level, by: this.trust.keys.get(e.kid)?.name ?? e.kid, version: e.version! }));
    return { manifest: m && snap.manifest ? { version: snap.manifest.version!, ...m } : null, facts: snap.facts.size, doors, unconfirmed: [...doors.filter((d) => !d.confirmed).map((d) => d.gateway), ...missing], refused: snap.refused, levels };
  }
}
