/**
 * What a gateway trusts and is on the site bus: the site's keys with their roles, the areas its
 * doors are in, and the refusals it journals — shared by site commands and site facts.
 */
import type { Config } from '../config/schema.js';
import { monotonicMs } from '../domain/clock.js';
import type { DoorEvent } from '../domain/events.js';
import { ed25519PublicKey, type Refusal, type TrustedKey, type VerifyContext } from '../domain/site-envelope.js';
import type { Logger } from '../log.js';

const JOURNALED_PER_MINUTE = 10;

export class SiteTrust {
  readonly keys: Map<string, TrustedKey>;
  /** Areas of the whole gateway (site.areas), and per door (its anti-passback areas too). */
  readonly areas: string[];
  readonly doorAreas: Map<string, string[]>;

  constructor(readonly config: Config) {
    const site = config.site;
    this.keys = new Map(site.keys.map((k) => [k.kid, { key: ed25519PublicKey(k.public_key), name: k.name, roles: new Set(k.roles) }]));
    // Doors that may raise levels by their inputs (a panic button): those levels, nothing else.
    for (const k of site.door_keys) if (k.may_raise.length && !this.keys.has(k.kid)) this.keys.set(k.kid, { key: ed25519PublicKey(k.public_key), name: `door:${k.gateway}`, roles: new Set(), levels: new Set(k.may_raise) });
    this.doorAreas = new Map(config.doors.map((d) => [d.id, [...site.areas, ...Object.entries(config.areas).filter(([, a]) => a.doors.includes(d.id)).map(([n]) => n)]]));
    this.areas = [...new Set([...this.doorAreas.values()].flat())];
  }

  /** The verification context of this gateway now. */
  context(o: Pick<VerifyContext, 'nowMs' | 'seen' | 'versionOf'> & { holdOutOfScope?: boolean }): VerifyContext {
    const c = this.config;
    return { gateway: c.gateway_id, doors: c.doors.map((d) => d.id), areas: this.areas, keys: this.keys, permissions: c.site.permissions, skewMs: c.site.clock_skew_s * 1000, ...o };
  }

  /** May this key (still) state this subject type? (Facts held on disk are checked again at start.) */
  allows(kid: string, type: string, body?: unknown): TrustedKey | null {
    const k = this.keys.get(kid);
    if (k?.levels) return type === 'threat_level' && k.levels.has(String((body as { level?: unknown } | null)?.level)) ? k : null;
    const allowed = this.config.site.permissions[type] ?? [];
    return k && [...k.roles].some((r) => allowed.includes(r)) ? k : null;
  }
}

/**
 * Refusals, logged and journaled on every door of the gateway — at most JOURNALED_PER_MINUTE a
 * minute per reason, the rest counted into one summary: a flood of bad envelopes fills nothing.
 */
export class SiteRefusals {
  private readonly windows = new Map<Refusal, { window: number; journaled: number; more: number }>();
  /** Refusals since start, by reason (status). */
  readonly counts: Partial<Record<Refusal, number>> = {};

  constructor(private readonly o: { config: Config; log: Logger; doorEvent: (e: DoorEvent) => void; now?: () => number }) {}

  refuse(reason: Refusal, detail: string): void {
    this.counts[reason] = (this.counts[reason] ?? 0) + 1;
    const mono = monotonicMs();
    let r = this.windows.get(reason);
    if (!r || mono - r.window >= 60_000) {
      if (r?.more) this.journal('site_refused', `${r.more} more ${reason} in the minute before (not journaled one by one)`);
      r = { window: mono, journaled: 0, more: 0 };
      this.windows.set(reason, r);
    }
    if (r.journaled >= JOURNALED_PER_MINUTE) return void r.more++;
    r.journaled++;
    this.o.log.warn({ reason, detail }, 'site message refused');
    this.journal('site_refused', `${reason}: ${detail}`);
  }

  journal(type: 'site_refused' | 'site_changed' | 'threat_level', detail: string, doors: readonly string[] = this.o.config.doors.map((d) => d.id)): void {
    const at = (this.o.now ?? Date.now)();
    for (const door of doors) this.o.doorEvent({ type, door, at, detail });
  }
}
