/**
 * `doorgw collector` (issue 24): every door's journal from the site broker into PostgreSQL,
 * exactly once, with nothing lost to a crash, a broker restart or a door cut off for a day.
 *
 * - A batch is believed only when signed by its gateway's key (door_keys) and, once the door's
 *   signed report is known, names only that door's doors; a refused batch is counted and logged,
 *   never written.
 * - Each batch and the range it covers are written in one transaction before the broker is
 *   acknowledged (a persistent session): a kill -9 redelivers, the key (gateway, seq) keeps one row.
 * - The doors' journals are the source of truth: for every gateway the collector knows what it
 *   holds and the door's newest number, and asks the door (a signed `journal_range` command) for
 *   the oldest range it is missing, again after `gaps.retry_s` (doubling to 60 s) while the door
 *   is silent.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import type { CollectorConfig } from '../config/collector-schema.js';
import { contiguous, gaps, missing, type Interval } from '../domain/coverage.js';
import { checkBatch } from '../domain/door-journal.js';
import { checkReport } from '../domain/door-report.js';
import { checkPresence } from '../domain/site-presence.js';
import { signEnvelope } from '../domain/site-envelope.js';
import { DurableSubscriber, type MqttMessage } from '../io/mqtt/client.js';
import type { Logger } from '../log.js';
import type { SiteJournalDb } from '../store/site-journal-db.js';
import { CollectorRequests } from './requests.js';

const GAP_CHECK_MS = 500;
const RETRY_MAX_MS = 60_000;
const REQUEST_LIFE_MS = 30_000;
/** A broker keeps the collector's session a week while it is away. */
const SESSION_EXPIRY_S = 7 * 86_400;
const DB_RETRY_MS = 1000;

interface Door {
  covered: Interval[];
  head: number;
  doors: Set<string> | null;
  lastSeen: number | null;
  asked: { from: number; to: number; at: number; tries: number } | null;
}

export interface CollectorStatus {
  connected: boolean;
  gateways: { gateway: string; head: number; held_to: number; missing: number; last_seen: number | null; asking: [number, number] | null }[];
  refused: Record<string, number>;
  written: number;
  duplicates: number;
}

export class Collector {
  private sub: DurableSubscriber | null = null;
  private requests: CollectorRequests | null = null;
  private readonly gateways = new Map<string, Door>();
  private readonly doorKeys: Map<string, { kid: string; public_key: string }>;
  private timer: NodeJS.Timeout | null = null;
  private retention: NodeJS.Timeout | null = null;
  private stopped = false;
  readonly refused: Record<string, number> = {};
  written = 0;
  duplicates = 0;

  constructor(private readonly o: { config: CollectorConfig; signer: { privateKey: KeyObject; kid: string }; db: SiteJournalDb; log: Logger; now?: () => number }) {
    this.doorKeys = new Map(o.config.door_keys.map((k) => [k.gateway, k]));
  }

  private get base(): string {
    return this.o.config.site.base_topic;
  }
  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  async start(): Promise<void> {
    for (const g of await this.o.db.gateways()) this.gateways.set(g.gateway, { covered: g.covered, head: g.head, doors: g.doors ? new Set(g.doors) : null, lastSeen: g.last_seen ? g.last_seen.getTime() : null, asked: null });
    await this.applyRetention();
    const s = this.o.config.site;
    const requests = new CollectorRequests({ base: this.base, timezone: this.o.config.timezone, db: this.o.db, collector: this, log: this.o.log, reply: (topic, payload, cd) => this.sub?.publish(topic, payload, cd) ?? false });
    this.requests = requests;
    this.sub = DurableSubscriber.start({
      url: s.url,
      username: s.username,
      password: s.password,
      ca: s.ca,
      clientId: this.o.config.collector_id,
      subscriptions: [`${this.base}/journal/+`, `${this.base}/door/+`, `${this.base}/presence/+/+`, requests.filter],
      sessionExpiryS: SESSION_EXPIRY_S,
      log: this.o.log,
      handle: (m) => this.onMessage(m),
      subscribed: () => this.askPastHeads(),
    });
    this.timer = setInterval(() => this.askForGaps(), GAP_CHECK_MS);
    this.timer.unref();
    this.retention = setInterval(() => void this.applyRetention(), 6 * 3600_000);
    this.retention.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.retention) clearInterval(this.retention);
    await this.sub?.stop();
  }

  private refuse(reason: string, detail: string, gateway: string): void {
    const n = (this.refused[reason] = (this.refused[reason] ?? 0) + 1);
    if (n <= 10 || n % 100 === 0) this.o.log.warn({ reason, detail, gateway, count: n }, 'journal message refused');
  }

  /** One message from the broker; resolves when it is written (the broker is acknowledged then). */
  async onMessage(m: MqttMessage): Promise<void> {
    const [kind, gateway, slot] = m.topic.slice(this.base.length + 1).split('/');
    if (kind === 'collector' && gateway === 'request') return this.requests?.onMessage(m);
    if (!gateway || m.payload.length === 0) return;
    if (kind === 'presence') {
      if (!slot || slot.startsWith('~')) return; // heartbeats are the doors' business
      const r = checkPresence(m.payload, { area: gateway, person: slot }, { doorKeys: this.doorKeys, peers: null, nowMs: this.now(), skewMs: 30_000 });
      if (!r.ok) return this.refuse(`presence_${r.reason}`, r.detail, r.reason === 'malformed' ? '?' : gateway);
      await this.untilWritten(() => this.o.db.notePresence(r.p));
      return;
    }
    if (kind === 'door') {
      const r = checkReport(m.payload, gateway, this.doorKeys);
      if (!r.ok || !r.signed) return this.refuse('report', r.ok ? 'unsigned' : r.reason, gateway);
      const g = this.door(gateway);
      g.doors = new Set(r.report.doors);
      // The site's fire level at any door begins the site muster (the console's list of who is inside).
      const fire = r.report.levels.find((l) => l.level === 'fire');
      if (fire && !this.muster) this.startMuster('fire threat level', `reported by ${gateway}${fire.by ? ` (set by ${fire.by})` : ''}`);
      return this.untilWritten(() => this.o.db.noteReport(gateway, r.report.doors, r.report));
    }
    if (kind !== 'journal') return;
    const g = this.gateways.get(gateway);
    const r = checkBatch(m.payload, gateway, this.doorKeys, g?.doors ?? undefined);
    if (!r.ok) return this.refuse(r.reason, r.detail, gateway);
    const b = r.batch;
    const out = await this.untilWritten(() => this.o.db.writeBatch(gateway, b.covers, b.head, b.records));
    if (!out) return;
    this.o.log.debug({ gateway, covers: b.covers, head: b.head, records: b.records.length, inserted: out.inserted }, 'journal batch written');
    this.written += out.inserted;
    this.duplicates += b.records.length - out.inserted;
    const d = this.door(gateway);
    d.covered = out.covered;
    d.head = out.head;
    d.lastSeen = this.now();
  }

  private door(gateway: string): Door {
    let d = this.gateways.get(gateway);
    if (!d) this.gateways.set(gateway, (d = { covered: [], head: 0, doors: null, lastSeen: null, asked: null }));
    return d;
  }

  /** A write that fails (the database restarting) is tried again until it lands or the collector stops: the broker waits meanwhile. */
  private async untilWritten<T>(write: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await write();
      } catch (e) {
        if (this.stopped) throw e;
        if (attempt === 0 || attempt % 30 === 0) this.o.log.error({ err: (e as Error).message, attempt }, 'site journal not written: retrying (the broker keeps the message until it is)');
        await new Promise((r) => setTimeout(r, DB_RETRY_MS));
      }
    }
  }

  /** For each door the oldest range missing below its head: asked for, and again while unanswered. */
  private askForGaps(): void {
    if (!this.sub?.connected$.value) return;
    const now = this.now();
    for (const [gateway, d] of this.gateways) {
      if (!this.doorKeys.has(gateway)) continue;
      const first = gaps(d.covered, d.head)[0];
      if (!first) {
        d.asked = null;
        continue;
      }
      const from = first[0];
      const to = Math.min(first[1], from + this.o.config.gaps.max_records - 1);
      const a = d.asked;
      if (a && a.from === from) {
        const wait = Math.min(RETRY_MAX_MS, this.o.config.gaps.retry_s * 1000 * 2 ** (a.tries - 1));
        if (now - a.at < wait) continue;
      }
      const tries = a && a.from === from ? a.tries + 1 : 1;
      if (this.request(gateway, from, to)) d.asked = { from, to, at: now, tries };
    }
  }

  /**
   * On every (re)connect: each known door asked for what follows the newest number it told. A door
   * tells its head when it connects, but a broker that restarted may have had the doors back before
   * the collector, and that head went to nobody; without this the next one comes in HEAD_EVERY_MS.
   */
  private askPastHeads(): void {
    for (const [gateway, d] of this.gateways) {
      if (!this.doorKeys.has(gateway)) continue;
      this.request(gateway, d.head + 1, d.head + this.o.config.gaps.max_records);
    }
  }

  private request(gateway: string, from: number, to: number): boolean {
    const iat = this.now();
    const e = signEnvelope({ v: 1, kid: this.o.signer.kid, iat, id: randomUUID(), kind: 'command', subject: `journal_range/${gateway}`, scope: { doors: [gateway] }, exp: iat + REQUEST_LIFE_MS, body: { from, to } }, this.o.signer.privateKey);
    const sent = this.sub?.publish(`${this.base}/command`, JSON.stringify(e)) ?? false;
    if (sent) this.o.log.info({ gateway, from, to }, 'journal range asked');
    return sent;
  }

  private async applyRetention(): Promise<void> {
    const d = new Date(this.now());
    const before = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - this.o.config.retention_months, 1);
    try {
      const dropped = await this.o.db.dropMonthsBefore(before);
      if (dropped.length) this.o.log.info({ dropped }, 'site journal months past retention dropped');
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'retention not applied');
    }
  }

  /** The site muster: since when, and why (a fire level reported by a door, or an operator). */
  muster: { at: number; by: string; cause: string } | null = null;

  startMuster(by: string, cause: string): void {
    this.muster = { at: this.now(), by, cause };
    this.o.log.warn({ by, cause }, 'site muster started');
  }

  endMuster(by: string): boolean {
    if (!this.muster) return false;
    this.o.log.info({ by, since: this.muster.at }, 'site muster ended');
    this.muster = null;
    return true;
  }

  status(): CollectorStatus {
    return {
      connected: this.sub?.connected$.value ?? false,
      gateways: [...this.gateways].map(([gateway, d]) => ({
        gateway,
        head: d.head,
        held_to: contiguous(d.covered),
        missing: missing(d.covered, d.head),
        last_seen: d.lastSeen,
        asking: d.asked && [d.asked.from, d.asked.to],
      })),
      refused: { ...this.refused },
      written: this.written,
      duplicates: this.duplicates,
    };
  }
}
