/**
 * Site facts at a door (issue 23): the newest signed version of each site fact, held in LevelDB
 * and in memory (store/site-layer.ts), applied within a message's delivery, and converging after
 * a partition of any length.
 *
 * Topics (under site.base_topic, B):
 *   B/fact/<subject>   retained: the newest envelope of the subject (a deletion is a tombstone,
 *                      body null, which stays retained so that a door away for a week hears of it)
 *   B/manifest         retained: the signed count and digest of every fact of the site
 *   B/door/<gateway>   retained: this door's report — facts held, digest, complete or not, levels
 *
 * Convergence: a door that (re)connects is sent every retained fact by the broker; it keeps what
 * is newer (version, then issue time, then id: the same winner on every door) and journals what is
 * older. A retained message older than what the door holds (two operators wrote at once and the
 * loser landed last on the broker) is repaired: the door publishes the newer envelope it holds,
 * which is signed, so any door may. When the digest still differs from the manifest's after the
 * retained flood, the door asks for the retained facts again (a broker may drop messages beyond a
 * client's queue), with a backoff, and reports itself incomplete until they agree.
 */
import type { Config } from '../config/schema.js';
import { monotonicMs } from '../domain/clock.js';
import type { DoorEvent } from '../domain/events.js';
import { signReport, type DoorReport } from '../domain/door-report.js';
import { doorKey, type DoorKey } from '../io/door-key.js';
import { groupMembers } from '../domain/door-policy.js';
import type { DoorLevel } from '../domain/policy.js';
import { randomBytes } from 'node:crypto';
import { canonicalJson, MAX_ENVELOPE_BYTES, signEnvelope, verifyEnvelope, type FactStamp, type SiteEnvelope, type SiteScope } from '../domain/site-envelope.js';
import { levelAt, levelModeAt, scheduledLevels, MANIFEST_SUBJECT, parseFact, parseManifest, stampOf, type LevelInForce, type Manifest, type SiteStatus } from '../domain/site-facts.js';
export type { SiteStatus } from '../domain/site-facts.js';
import type { DoorMode } from '../domain/types.js';
import type { Logger } from '../log.js';
import { appliesHere, type HeldFact } from '../store/site-layer.js';
import type { Store } from '../store/store.js';
import type { AccessPipeline } from './access.js';
import { SiteRefusals, SiteTrust } from './site-trust.js';

/** What the site unit needs of the broker link. */
export interface SiteLink {
  publishRetained(topic: string, payload: string): void;
  /** Publish now if connected (a repair): false when not sent. */
  publishNow(topic: string, payload: string, retain: boolean): boolean;
  /** Subscribe again: the broker sends its retained messages of the filter once more. */
  resubscribe(filter: string): void;
}


/** Facts a door holds at most (every size from outside has a limit): 100,000 ≈ 60 MB on disk. */
export const MAX_SITE_FACTS = 100_000;
const WRITE_BATCH_MS = 20;
const JOURNAL_MS = 1000;
const JOURNAL_NAMED = 5;
const REPORT_DEBOUNCE_MS = 250;
/** Ask again for the retained facts while incomplete: after 2 s of quiet, doubling to 60 s, 6 times. */
const RESYNC_FIRST_MS = 2000;
const RESYNC_MAX_MS = 60_000;
const RESYNC_TRIES = 6;
const REPAIR_EVERY_MS = 10_000;

export class SiteFacts {
  private readonly trust: SiteTrust;
  readonly refusals: SiteRefusals;
  private link: SiteLink | null = null;
  private manifest: { m: Manifest; stamp: FactStamp; sig: string; by: string; at: number; envelope: SiteEnvelope } | null = null;
  /** Threat levels and site door modes held in scope (small: looked through on every change of them). */
  private readonly levels = new Map<string, { scope: string; level: string; by: string; at: number; reason: string | null; doors: string[] | null }>();
  private readonly doorModes = new Map<string, { mode: DoorMode; by: string }>();
  /** What was applied per door (level and mode), so a re-delivery changes nothing. */
  private readonly applied = new Map<string, string>();
  private readonly inForce = new Map<string, { level: LevelInForce | null; mode: DoorMode | null; siteMode: DoorMode | null; fire?: boolean }>();
  private pendingWrites = new Map<string, SiteEnvelope>();
  private writeTimer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private changes: string[] = [];
  private changeCount = 0;
  private journalTimer: NodeJS.Timeout | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private reportInterval: NodeJS.Timeout | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  private resyncTries = 0;
  private lastFactMono = 0;
  private lastChange: number | null = null;
  private readonly repaired = new Map<string, number>();
  private inScope = 0;
  private stopped = false;
  private scheduleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly o: {
      config: Config;
      store: Store;
      pipeline: AccessPipeline;
      log: Logger;
      doorEvent: (e: DoorEvent) => void;
      now?: () => number;
      trust?: SiteTrust;
      refusals?: SiteRefusals;
      /** A level that releases for fire (`fire_release`, or the level named fire) began (true) or ended at a door. */
      fire?: (door: string, on: boolean, cause: string) => void;
      /** A door's alarm and fire release now, for the report. */
      doorNow?: (door: string) => { alarm: string | null; fire: boolean };
    },
  ) {
    this.trust = o.trust ?? new SiteTrust(o.config);
    this.refusals = o.refusals ?? new SiteRefusals(o);
  }

  private get base(): string {
    return this.o.config.site.base_topic;
  }
  get factFilter(): string {
    return `${this.base}/fact/#`;
  }
  get manifestTopic(): string {
    return `${this.base}/manifest`;
  }
  get reportTopic(): string {
    return `${this.base}/door/${this.o.config.gateway_id}`;
  }
  factTopic(subject: string): string {
    return `${this.base}/fact/${subject}`;
  }
  private now(): number {
    return (this.o.now ?? Date.now)();
  }
  private get layer() {
    return this.o.store.site;
  }

  /**
   * Take the facts held on disk into memory and apply them — before the pipeline decides, so a
   * site block holds from the first credential after a restart. A fact whose key is no longer
   * trusted for it is held (it counts for completeness) but not applied.
   */
  async load(): Promise<void> {
    let n = 0;
    for await (const e of this.o.store.siteFacts()) {
      n++;
      if (e.subject === MANIFEST_SUBJECT) {
        const m = parseManifest(e.body);
        const k = this.trust.allows(e.kid, 'manifest');
        if (m && k) this.manifest = { m, stamp: stampOf(e), sig: e.sig!, by: k.name, at: e.iat, envelope: e };
        continue;
      }
      const type = e.subject.slice(0, e.subject.indexOf('/'));
      const k = this.trust.allows(e.kid, type, e.body);
      const f = parseFact(e.subject, e.body);
      if (!f.ok) continue;
      this.hold(e, k?.name ?? `untrusted key ${e.kid}`, k ? this.doorsOf(e.scope) : [], f.fact);
    }
    this.applyEffects();
    // Scheduled levels begin and end on the minute: looked at every 10 s (only a change applies).
    if (this.o.config.site.level_schedule.length && !this.scheduleTimer) {
      this.scheduleTimer = setInterval(() => !this.stopped && this.applyEffects(), 10_000);
      this.scheduleTimer.unref();
    }
    this.o.log.info({ facts: n, in_scope: this.inScope }, 'site facts loaded');
  }

  /** Start talking to the site (the MQTT bridge calls this once its link exists). */
  attach(link: SiteLink): void {
    this.link = link;
    for (const [subject, text] of this.unsent) link.publishRetained(this.factTopic(subject), text);
    this.unsent.clear();
    this.report();
    this.reportInterval = setInterval(() => this.report(), this.o.config.site.report_interval_s * 1000);
    this.reportInterval.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.writeTimer, this.journalTimer, this.reportTimer, this.resyncTimer]) if (t) clearTimeout(t);
    if (this.reportInterval) clearInterval(this.reportInterval);
    if (this.scheduleTimer) clearInterval(this.scheduleTimer);
    this.flushJournal();
    await this.flushWrites();
  }

  /**
   * Raise a threat level from this door (a panic input through a linkage rule): a fact signed with
   * this door's key (site.door_keys may_raise lets every door believe it), taken here at once and
   * published retained for the rest of the site. Nothing is sent when the level is already set so.
   * Every door ranks it with the operators' versions of the subject: the newest version wins.
   */
  raiseLevel(level: string, scope: string, why: string): void {
    const subject = `threat_level/${scope}`;
    const held = this.layer.held.get(subject);
    if (held?.fact.type === 'threat_level' && held.fact.level === level) return;
    this.doorKey ??= doorKey(this.o.config.data_dir);
    const e = signEnvelope(
      { v: 1, kid: this.doorKey.kid, iat: this.now(), id: randomBytes(12).toString('base64url'), kind: 'fact', subject, scope: scope === 'site' ? { site: true } : { areas: [scope] }, version: (held?.stamp.version ?? 0) + 1, body: { level, reason: why } },
      this.doorKey.privateKey,
    );
    const text = JSON.stringify(e);
    this.o.log.warn({ level, scope, why }, 'raising the site threat level');
    this.onMessage(this.factTopic(subject), text, false);
    // Sent when the link is up (queued meanwhile; a copy older than this one on the broker is repaired on reconnect).
    if (this.link) this.link.publishRetained(this.factTopic(subject), text);
    else this.unsent.set(subject, text);
  }
  private readonly unsent = new Map<string, string>();

  /** A message on the site's fact or manifest topics. */
  onMessage(topic: string, payload: string, retained: boolean): void {
    if (payload.length === 0) return; // a cleared retained slot: nothing said
    const subject = topic === this.manifestTopic ? MANIFEST_SUBJECT : topic.slice(this.base.length + '/fact/'.length);
    // The same envelope again (every reconnect sends every retained fact): known by its
    // signature, without verifying it again. And a fact in another fact's slot is refused before
    // anything else: it would hide that one from doors that join later.
    let claimed: { sig?: unknown; id?: unknown; subject?: unknown } | null = null;
    try {
      const p: unknown = payload.length <= MAX_ENVELOPE_BYTES ? JSON.parse(payload) : null;
      if (typeof p === 'object' && p !== null) claimed = p;
    } catch {
      /* refused by verifyEnvelope below */
    }
    const held = subject === MANIFEST_SUBJECT ? this.manifest : this.layer.held.get(subject);
    if (held && claimed && claimed.sig === held.sig && claimed.id === held.stamp.id && claimed.subject === subject) return this.quietAgain();
    if (claimed && typeof claimed.subject === 'string' && claimed.subject !== subject) {
      this.repair(subject, retained);
      return this.refusals.refuse('malformed', `${topic} carries a fact of ${claimed.subject}`);
    }
    const r = verifyEnvelope(
      payload,
      this.trust.context({
        nowMs: this.now(),
        seen: () => false,
        versionOf: (s) => (s === MANIFEST_SUBJECT ? this.manifest?.stamp : this.layer.held.get(s)?.stamp),
        holdOutOfScope: true,
      }),
    );
    if (!r.ok) {
      if (r.reason === 'older_version') this.repair(subject, retained);
      return this.refusals.refuse(r.reason, r.detail);
    }
    const e = r.envelope;
    if (e.kind !== 'fact') return this.refusals.refuse('malformed', `a ${e.kind} on the fact topic ${topic}`);
    if (subject === MANIFEST_SUBJECT) {
      const m = parseManifest(e.body);
      if (!m) return this.refusals.refuse('malformed', 'a manifest without count and digest');
      this.manifest = { m, stamp: stampOf(e), sig: e.sig!, by: r.signer.name, at: e.iat, envelope: e };
      this.persist(e);
      this.checkComplete();
      return this.scheduleReport();
    }
    const f = parseFact(subject, e.body);
    if (!f.ok) return this.refusals.refuse('malformed', f.detail);
    const before = this.layer.held.get(subject);
    if (!before && this.layer.held.size >= MAX_SITE_FACTS) return this.refusals.refuse('too_large', `${subject}: this door holds ${MAX_SITE_FACTS} site facts already (the most it takes)`);
    this.hold(e, r.signer.name, r.inScope ? this.doorsOf(e.scope) : [], f.fact);
    this.persist(e);
    this.lastFactMono = monotonicMs();
    this.lastChange = this.now();
    if (f.fact.type === 'threat_level' || f.fact.type === 'door_mode' || before?.fact.type === 'threat_level' || before?.fact.type === 'door_mode') this.applyEffects();
    if (r.inScope) this.noteChange(`${subject} v${e.version}${f.fact.type === 'deleted' ? ' deleted' : ''} by ${r.signer.name}`);
    this.checkComplete();
    this.scheduleReport();
  }

  /** This gateway's doors a scope names: null all, [] none. */
  private doorsOf(scope: SiteScope): string[] | null {
    if ('site' in scope) return null;
    const mine = this.o.config.doors.map((d) => d.id);
    if ('doors' in scope) return scope.doors.includes(this.o.config.gateway_id) ? null : mine.filter((d) => scope.doors.includes(d));
    const doors = mine.filter((d) => this.trust.doorAreas.get(d)!.some((a) => scope.areas.includes(a)));
    return doors.length === mine.length ? null : doors;
  }

  /** A site user was deleted (their temporary credential's counts may go: site-uses.ts). */
  userGone: ((userid: string) => void) | null = null;

  private hold(e: SiteEnvelope, by: string, doors: string[] | null, fact: HeldFact['fact']): void {
    const prev = this.layer.held.get(e.subject);
    if (prev?.fact.type === 'user' && fact.type === 'deleted') this.userGone?.(prev.fact.userid);
    if (prev && appliesHere(prev.doors)) this.inScope--;
    if (appliesHere(doors)) this.inScope++;
    this.layer.set(e.subject, { stamp: stampOf(e), sig: e.sig!, kid: e.kid, by, scope: e.scope, doors, fact });
    this.levels.delete(e.subject);
    if (prev?.fact.type === 'door_mode') this.doorModes.delete(prev.fact.door);
    if (!appliesHere(doors)) return;
    if (fact.type === 'threat_level') this.levels.set(e.subject, { scope: fact.scope, level: fact.level, by, at: e.iat, reason: fact.reason, doors });
    if (fact.type === 'door_mode') this.doorModes.set(fact.door, { mode: fact.mode, by });
  }

  /** Levels and site door modes onto the doors (only what changed). */
  private applyEffects(): void {
    const c = this.o.config;
    for (const d of c.doors) {
      const set = [...this.levels.values()].filter((l) => l.doors === null || l.doors.includes(d.id));
      if (c.site.level_schedule.length) set.push(...scheduledLevels(c.site.level_schedule, this.now(), d.timezone ?? c.timezone).map((l) => ({ ...l, doors: null })));
      const level = levelAt(set, this.trust.doorAreas.get(d.id)!, c.site.levels);
      const mode = levelModeAt(level, d.id);
      const siteMode = this.doorModes.get(d.id);
      const key = canonicalJson([level?.name, level?.from, level?.by, level?.at, mode, siteMode?.mode, siteMode?.by]);
      if (this.applied.get(d.id) === key) continue;
      const first = !this.applied.has(d.id);
      const was = this.inForce.get(d.id);
      this.applied.set(d.id, key);
      this.inForce.set(d.id, { level, mode, siteMode: siteMode?.mode ?? null });
      const release = siteMode?.mode ?? this.o.pipeline.scheduledMode(d.id);
      const by = level ? `site:${level.by} (threat level ${level.name}${level.from === 'site' ? '' : ` in ${level.from}`})` : `site (threat level ended)`;
      // Fire first (the relay is held released over every mode), then the level's mode and rules.
      const fire = level !== null && this.firesAt(level.name);
      if (fire !== (was?.fire ?? false)) this.o.fire?.(d.id, fire, fire ? by : 'site fire level ended');
      this.inForce.get(d.id)!.fire = fire;
      this.o.pipeline.applyLevel(d.id, level ? this.doorLevel(level) : null, mode, by, release);
      if (mode === null && siteMode && this.o.pipeline.modeOf(d.id) !== siteMode.mode) this.o.pipeline.setMode(d.id, siteMode.mode, { by: `site:${siteMode.by}` });
      else if (mode === null && !siteMode && was?.siteMode && !was.mode) this.o.pipeline.setMode(d.id, this.o.pipeline.scheduledMode(d.id), { by: 'site (door mode cleared)', auto: true });
      if (!first || level) {
        if (was?.level?.name !== level?.name || was?.level?.by !== level?.by || first) {
          this.refusals.journal('threat_level', level ? `${level.name} (${level.from}) set by ${level.by}${level.reason ? `: ${level.reason}` : ''}${mode ? `; door ${mode}` : ''}` : 'no threat level in force', [d.id]);
          this.o.log.warn({ door: d.id, level: level?.name ?? null, from: level?.from ?? null, by: level?.by ?? null, mode }, 'threat level in force changed');
        }
      }
    }
  }

  /** Whether a level releases doors for fire: `fire_release` as configured, else the level named `fire` does. */
  private firesAt(level: string): boolean {
    const l = this.o.config.site.levels.find((x) => x.name === level);
    return l?.fire_release ?? level === 'fire';
  }

  /** A level's decision rules at a door: members of its groups from the configured group lists. */
  private doorLevel(l: LevelInForce): DoorLevel {
    const members = (names: readonly string[]) => groupMembers(this.o.config.groups, names);
    return { name: l.name, denyUsers: members(l.definition.deny_groups), denyGroups: new Set(l.definition.deny_groups), overrideUsers: members(l.definition.override_groups), overrideGroups: new Set(l.definition.override_groups) };
  }

  /** Persisted in batches (one synced write each): memory already holds the fact, the disk follows within WRITE_BATCH_MS plus the write. */
  private persist(e: SiteEnvelope): void {
    this.pendingWrites.set(e.subject, e);
    this.writeTimer ??= setTimeout(() => void this.flushWrites(), WRITE_BATCH_MS);
  }

  private flushWrites(): Promise<void> {
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    const batch = [...this.pendingWrites.values()];
    this.pendingWrites = new Map();
    if (batch.length === 0) return this.writing;
    this.writing = this.writing
      .then(() => this.o.store.putSiteFacts(batch))
      .catch((err: unknown) => this.o.log.error({ err: (err as Error).message, facts: batch.length }, 'site facts not written to disk (held in memory; the broker sends them again after a restart)'));
    return this.writing;
  }

  /** Directory facts are journaled summed up per second (10,000 facts at a late join are one entry, not 10,000). */
  private noteChange(what: string): void {
    this.changeCount++;
    if (this.changes.length < JOURNAL_NAMED) this.changes.push(what);
    this.journalTimer ??= setTimeout(() => this.flushJournal(), JOURNAL_MS);
  }

  private flushJournal(): void {
    if (this.journalTimer) clearTimeout(this.journalTimer);
    this.journalTimer = null;
    if (this.changeCount === 0) return;
    const more = this.changeCount - this.changes.length;
    this.refusals.journal('site_changed', `${this.changes.join('; ')}${more > 0 ? `; and ${more} more` : ''}`);
    this.o.log.info({ facts: this.changeCount }, 'site facts taken');
    this.changes = [];
    this.changeCount = 0;
  }

  /** An older (or misplaced) fact sits retained on the broker: publish the newer one this door holds. */
  private repair(subject: string, retained: boolean): void {
    if (!retained || !this.link || subject === MANIFEST_SUBJECT) return;
    const mono = monotonicMs();
    const last = this.repaired.get(subject);
    if (last !== undefined && mono - last < REPAIR_EVERY_MS) return;
    if (this.repaired.size > 10_000) this.repaired.clear();
    this.repaired.set(subject, mono);
    void this.o.store.siteFact(subject).then((e) => {
      if (e && this.link?.publishNow(this.factTopic(subject), JSON.stringify(e), true)) this.o.log.info({ subject, version: e.version }, 'site fact repaired on the broker (it held an older one)');
    });
  }

  get complete(): boolean | null {
    if (!this.manifest) return null;
    return this.manifest.m.digest === this.layer.digest.hex && this.manifest.m.count === this.layer.digest.count;
  }

  private quietAgain(): void {
    this.lastFactMono = monotonicMs();
  }

  /** Incomplete: wait for the retained flood to settle, then ask again (bounded). */
  private checkComplete(): void {
    if (this.complete !== false) {
      this.resyncTries = 0;
      if (this.resyncTimer) clearTimeout(this.resyncTimer);
      this.resyncTimer = null;
      return;
    }
    if (this.resyncTimer || this.resyncTries >= RESYNC_TRIES || this.stopped) return;
    const wait = Math.min(RESYNC_MAX_MS, RESYNC_FIRST_MS * 2 ** this.resyncTries);
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = null;
      if (this.complete !== false) return;
      if (monotonicMs() - this.lastFactMono < RESYNC_FIRST_MS / 2) return this.checkComplete(); // still arriving
      this.resyncTries++;
      this.o.log.warn({ held: this.layer.digest.count, manifest: this.manifest?.m.count, attempt: this.resyncTries }, 'site facts differ from the manifest: asking the broker for them again');
      this.link?.resubscribe(this.factFilter);
      this.checkComplete();
    }, wait);
    this.resyncTimer.unref();
  }

  /** Something a report shows changed (a mode, an alarm): report soon (debounced). */
  reportSoon(): void {
    this.scheduleReport();
  }

  private scheduleReport(): void {
    this.reportTimer ??= setTimeout(() => {
      this.reportTimer = null;
      this.report();
    }, REPORT_DEBOUNCE_MS);
  }

  /** This door's convergence report, retained and signed with the door's key (site status reads every door's). */
  private report(): void {
    if (!this.link || this.stopped) return;
    const s = this.status();
    const report: DoorReport = { gateway: this.o.config.gateway_id, doors: this.o.config.doors.map((d) => d.id), at: this.now(), facts: s.facts, in_scope: s.in_scope, digest: s.digest, complete: s.complete, manifest: s.manifest && { version: s.manifest.version, count: s.manifest.count, digest: s.manifest.digest }, levels: s.levels.map((l) => ({ door: l.door, level: l.level, by: l.by })), states: this.o.config.doors.map((d) => {
        const now = this.o.doorNow?.(d.id);
        return { door: d.id, mode: this.o.pipeline.modeOf(d.id) ?? null, alarm: now?.alarm ?? null, fire: now?.fire ?? false };
      }) };
    this.doorKey ??= doorKey(this.o.config.data_dir);
    this.link.publishRetained(this.reportTopic, JSON.stringify(signReport(report, this.doorKey.kid, this.doorKey.privateKey)));
  }

  private doorKey: DoorKey | null = null;

  status(): SiteStatus {
    const m = this.manifest;
    return {
      facts: this.layer.digest.count,
      in_scope: this.inScope,
      digest: this.layer.digest.hex,
      manifest: m && { count: m.m.count, digest: m.m.digest, version: m.stamp.version, by: m.by, at: m.at },
      complete: this.complete,
      levels: this.o.config.doors.map((d) => {
        const f = this.inForce.get(d.id);
        const l = f?.level ?? null;
        return { door: d.id, level: l?.name ?? null, from: l?.from ?? null, by: l?.by ?? null, at: l?.at ?? null, reason: l?.reason ?? null, mode: f?.mode ?? null };
      }),
      last_change: this.lastChange,
      refused: { ...this.refusals.counts },
    };
  }
}
