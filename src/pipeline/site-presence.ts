/**
 * Anti-passback across gateways at a door (issue 24; domain/site-presence.ts has the wire format):
 * this door's transitions in site areas go out signed and retained per person; every other door's
 * come in, are verified, and the newest of each person is applied to the area's presence that the
 * pipeline decides from — synchronously, from memory, never waiting on the network.
 *
 * - Converging: the broker sends every retained transition on (re)connect. Transitions this door
 *   made while off the site are sent a moment after it is back (once the retained flood has told it
 *   what is newer); a retained one older than the one this door holds is repaired with that one
 *   (it is signed by its own door: any door may carry it).
 * - Partitions: each door says it is on the site (a signed heartbeat per area, every third of
 *   site.presence_stale_s); a door that has heard no peer of an area for presence_stale_s decides
 *   that area soft and flags every decision there, until it hears one again.
 */
import type { Config } from '../config/schema.js';
import { monotonicMs } from '../domain/clock.js';
import { checkHeartbeat, checkPresence, newerPresence, personTopic, signHeartbeat, signPresence, type PresenceStatement, type SignedPresence } from '../domain/site-presence.js';
import { doorKey, type DoorKey } from '../io/door-key.js';
import type { Logger } from '../log.js';
import type { AccessPipeline, SitePresenceChange } from './access.js';
import type { SiteLink } from './site-facts.js';

const SEND_PENDING_AFTER_MS = 1000;
const REPAIR_EVERY_MS = 10_000;
/** Persons per area this door holds transitions of at most (every size from outside has a limit). */
export const MAX_PRESENCE_PER_AREA = 200_000;

type Held = { p: PresenceStatement; signed: SignedPresence | null };

export class SitePresence {
  private link: SiteLink | null = null;
  private readonly areas: Map<string, { peers: Set<string> | null; lastHeard: number }>;
  private readonly held = new Map<string, Map<string, Held>>();
  /** Local transitions not yet sent (made while off the site). */
  private pending = new Map<string, SignedPresence>();
  private readonly doorKeys: Map<string, { kid: string; public_key: string }>;
  private key: DoorKey | null = null;
  private hbTimer: NodeJS.Timeout | null = null;
  private pendingTimer: NodeJS.Timeout | null = null;
  private readonly repaired = new Map<string, number>();
  private unsub: (() => void) | null = null;
  readonly refused: Record<string, number> = {};

  constructor(private readonly o: { config: Config; pipeline: AccessPipeline; log: Logger; now?: () => number; mono?: () => number }) {
    const c = o.config;
    this.doorKeys = new Map(c.site.door_keys.map((k) => [k.gateway, k]));
    const start = this.mono();
    this.areas = new Map(Object.entries(c.areas).filter(([, a]) => a.site).map(([name, a]) => [name, { peers: a.peers ? new Set(a.peers) : null, lastHeard: start }]));
    o.pipeline.presenceStaleness = (area) => this.staleness(area);
    const sub = o.pipeline.sitePresence$.subscribe((ch) => this.local(ch));
    this.unsub = () => sub.unsubscribe();
  }

  private get base(): string {
    return `${this.o.config.site.base_topic}/presence`;
  }
  get filter(): string {
    return `${this.base}/#`;
  }
  private now(): number {
    return (this.o.now ?? Date.now)();
  }
  private mono(): number {
    return (this.o.mono ?? monotonicMs)();
  }
  private get me(): string {
    return this.o.config.gateway_id;
  }
  private signer(): DoorKey {
    return (this.key ??= doorKey(this.o.config.data_dir));
  }

  attach(link: SiteLink): void {
    this.link = link;
    const every = Math.max(1000, (this.o.config.site.presence_stale_s * 1000) / 3);
    this.hbTimer = setInterval(() => this.heartbeat(), every);
    this.hbTimer.unref();
  }

  /** The link (re)connected: say so, and send what was made meanwhile once the retained flood is in. */
  connected(): void {
    this.heartbeat();
    if (this.pendingTimer) clearTimeout(this.pendingTimer);
    this.pendingTimer = setTimeout(() => this.sendPending(), SEND_PENDING_AFTER_MS);
    this.pendingTimer.unref();
  }

  stop(): void {
    this.unsub?.();
    if (this.hbTimer) clearInterval(this.hbTimer);
    if (this.pendingTimer) clearTimeout(this.pendingTimer);
  }

  /** Seconds since any peer of the area was heard, when more than presence_stale_s; null otherwise. */
  staleness(area: string): number | null {
    const a = this.areas.get(area);
    if (!a) return null;
    const peers = [...(a.peers ?? this.doorKeys.keys())].filter((g) => g !== this.me);
    if (peers.length === 0) return null; // alone in the area: nothing to be behind on
    const s = (this.mono() - a.lastHeard) / 1000;
    return s > this.o.config.site.presence_stale_s ? Math.round(s) : null;
  }

  private heartbeat(): void {
    if (!this.link) return;
    const k = this.signer();
    for (const area of this.areas.keys()) this.link.publishNow(`${this.base}/${area}/~${this.me}`, JSON.stringify(signHeartbeat({ area, gateway: this.me, at: this.now() }, k.kid, k.privateKey)), false);
  }

  private heldOf(area: string): Map<string, Held> {
    let m = this.held.get(area);
    if (!m) this.held.set(area, (m = new Map<string, Held>()));
    return m;
  }

  private local(ch: SitePresenceChange): void {
    const k = this.signer();
    const p: PresenceStatement = { area: ch.area, userid: ch.userid, where: ch.where, at: ch.at, gateway: this.me, door: ch.door ?? '-' };
    const signed = signPresence(p, k.kid, k.privateKey);
    this.heldOf(ch.area).set(ch.userid, { p, signed });
    const topic = `${this.base}/${ch.area}/${personTopic(ch.userid)}`;
    if (!this.link?.publishNow(topic, JSON.stringify(signed), true)) this.pending.set(topic, signed);
  }

  private sendPending(): void {
    const pending = this.pending;
    this.pending = new Map();
    for (const [topic, s] of pending) {
      // Something newer arrived meanwhile (another door, after the partition): this one is history.
      const h = this.held.get(s.p.area)?.get(s.p.userid);
      if (h && h.signed !== s && newerPresence(h.p, s.p)) continue;
      if (!this.link?.publishNow(topic, JSON.stringify(s), true)) this.pending.set(topic, s);
    }
  }

  /** A message under `<base>/presence/`. */
  onMessage(topic: string, payload: string, retained: boolean): void {
    if (payload.length === 0) return;
    const [area, slot] = topic.slice(this.base.length + 1).split('/');
    const a = area ? this.areas.get(area) : undefined;
    if (!a || !slot) return; // an area this gateway is not in
    if (slot.startsWith('~')) {
      const gateway = slot.slice(1);
      if (gateway === this.me) return;
      if (checkHeartbeat(payload, { area: area!, gateway }, this.doorKeys) && (!a.peers || a.peers.has(gateway))) a.lastHeard = this.mono();
      else this.refuse('heartbeat', `a heartbeat of ${area}/${gateway} that is not signed by its door`);
      return;
    }
    const r = checkPresence(payload, { area: area!, person: slot }, { doorKeys: this.doorKeys, peers: a.peers, nowMs: this.now(), skewMs: this.o.config.site.clock_skew_s * 1000 });
    if (!r.ok) return this.refuse(r.reason, r.detail);
    const p = r.p;
    if (p.gateway !== this.me) a.lastHeard = this.mono();
    const held = this.heldOf(area!);
    const h = held.get(p.userid) ?? this.fromPipeline(area!, p.userid);
    if (h && !newerPresence(p, h.p)) {
      if (newerPresence(h.p, p) && retained) this.repair(topic, h);
      return;
    }
    if (!h && held.size >= MAX_PRESENCE_PER_AREA) return this.refuse('too_large', `area ${area} holds ${MAX_PRESENCE_PER_AREA} persons already`);
    held.set(p.userid, { p, signed: r.signed });
    if (p.gateway !== this.me) this.o.pipeline.applySitePresence(area!, p.userid, p.where, p.at, p.door, p.gateway);
  }

  /** What the pipeline holds from before this start (LevelDB): unsigned, but its time orders it. */
  private fromPipeline(area: string, userid: string): Held | undefined {
    const pr = this.o.pipeline.presenceOf(area, userid);
    return pr ? { p: { area, userid, where: pr.where, at: pr.at, gateway: '', door: '' }, signed: null } : undefined;
  }

  private repair(topic: string, h: Held): void {
    if (!h.signed || !this.link) return;
    const last = this.repaired.get(topic);
    const mono = this.mono();
    if (last !== undefined && mono - last < REPAIR_EVERY_MS) return;
    if (this.repaired.size > 10_000) this.repaired.clear();
    this.repaired.set(topic, mono);
    this.link.publishNow(topic, JSON.stringify(h.signed), true);
  }

  private refuse(reason: string, detail: string): void {
    const n = (this.refused[reason] = (this.refused[reason] ?? 0) + 1);
    if (n <= 10 || n % 100 === 0) this.o.log.warn({ reason, detail, count: n }, 'site presence refused');
  }

  status(): { area: string; persons: number; stale_s: number | null }[] {
    return [...this.areas.keys()].map((area) => ({ area, persons: this.held.get(area)?.size ?? 0, stale_s: this.staleness(area) }));
  }
}
