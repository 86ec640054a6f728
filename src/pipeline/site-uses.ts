/**
 * Site users' temporary credentials counted across the site (domain/site-uses.ts has the wire
 * format and the merge): each passage this door lets through goes out as this door's new count,
 * signed and retained in its own slot; the other doors' counts come in, are verified and merged,
 * and the decision reads their sum from memory (Store.siteUses), never waiting on the network.
 *
 * A count made while off the site is sent when the link is back; this door's own retained slot,
 * when the broker holds an older count than this door's (a publish lost with the broker), is
 * written again.
 */
import type { Subscription } from 'rxjs';
import type { Config } from '../config/schema.js';
import type { DecisionEvent } from '../domain/events.js';
import { personTopic } from '../domain/site-presence.js';
import { checkUse, newerUse, signUse, SiteUseCounts, type SignedUse } from '../domain/site-uses.js';
import { doorKey, type DoorKey } from '../io/door-key.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { AccessPipeline } from './access.js';
import type { SiteLink } from './site-facts.js';

export class SiteUses {
  private link: SiteLink | null = null;
  private readonly counts = new SiteUseCounts();
  /** This door's newest statement per person (what its slot should hold). */
  private readonly mine = new Map<string, SignedUse>();
  private pending = new Set<string>();
  private readonly doorKeys: Map<string, { kid: string; public_key: string }>;
  private key: DoorKey | null = null;
  private readonly sub: Subscription;
  readonly refused: Record<string, number> = {};

  constructor(private readonly o: { config: Config; pipeline: AccessPipeline; store: Store; log: Logger; now?: () => number }) {
    this.doorKeys = new Map(o.config.site.door_keys.map((k) => [k.gateway, k]));
    o.store.siteUses = (userid, since) => this.counts.total(userid, since, this.me);
    this.sub = o.pipeline.decisions$.subscribe((d) => this.local(d));
  }

  private get base(): string {
    return `${this.o.config.site.base_topic}/uses`;
  }
  get filter(): string {
    return `${this.base}/#`;
  }
  private get me(): string {
    return this.o.config.gateway_id;
  }
  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  attach(link: SiteLink): void {
    this.link = link;
  }

  connected(): void {
    const pending = this.pending;
    this.pending = new Set();
    for (const userid of pending) this.send(userid);
    const clears = this.clears;
    this.clears = new Set();
    for (const userid of clears) this.clear(userid);
  }

  /**
   * The person is no longer a site user: this door's slot of their count is cleared on the broker
   * (each slot is its own door's to write), so counts of deleted people do not stay retained.
   */
  forget(userid: string): void {
    this.mine.delete(userid);
    this.pending.delete(userid);
    this.clear(userid);
  }
  private clears = new Set<string>();
  private clear(userid: string): void {
    if (!this.link?.publishNow(`${this.base}/${personTopic(userid)}/${this.me}`, '', true)) this.clears.add(userid);
  }

  stop(): void {
    this.sub.unsubscribe();
    this.o.store.siteUses = null;
  }

  private local(d: DecisionEvent): void {
    if (d.decision !== 'grant' || !d.use || this.o.store.directory.user(d.use.userid)?.source !== 'site') return;
    const k = (this.key ??= doorKey(this.o.config.data_dir));
    this.mine.set(d.use.userid, signUse({ userid: d.use.userid, since: d.use.since, count: d.use.count, gateway: this.me, at: this.now() }, k.kid, k.privateKey));
    this.send(d.use.userid);
  }

  private send(userid: string): void {
    const s = this.mine.get(userid);
    if (!s) return;
    if (!this.link?.publishNow(`${this.base}/${personTopic(userid)}/${this.me}`, JSON.stringify(s), true)) this.pending.add(userid);
  }

  /** A message under `<base>/uses/`. */
  onMessage(topic: string, payload: string, retained: boolean): void {
    if (payload.length === 0) return;
    const [person, gateway] = topic.slice(this.base.length + 1).split('/');
    if (!person || !gateway) return;
    const r = checkUse(payload, { person, gateway }, { doorKeys: this.doorKeys, nowMs: this.now(), skewMs: this.o.config.site.clock_skew_s * 1000 });
    if (!r.ok) return this.refuse(r.reason, r.detail);
    if (gateway === this.me) {
      // Our own slot as the broker keeps it: after a restart, this is how this door learns what it said.
      const held = this.mine.get(r.u.userid);
      if (held && newerUse(held.u, r.u) && retained) return this.send(r.u.userid);
      const own = this.o.store.directory.usesOf?.(r.u.userid, r.u.since) ?? 0;
      if (!held && retained && own > r.u.count) {
        const k = (this.key ??= doorKey(this.o.config.data_dir));
        this.mine.set(r.u.userid, signUse({ ...r.u, count: own, at: this.now() }, k.kid, k.privateKey));
        this.send(r.u.userid);
      }
      return;
    }
    this.counts.merge(r.u);
  }

  private refuse(reason: string, detail: string): void {
    const n = (this.refused[reason] = (this.refused[reason] ?? 0) + 1);
    if (n <= 10 || n % 100 === 0) this.o.log.warn({ reason, detail, count: n }, 'site use count refused');
  }

  /** A person's passages at the other doors (status, tests). */
  others(userid: string, since: number): number {
    return this.counts.total(userid, since, this.me);
  }
}
