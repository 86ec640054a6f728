/**
 * Signed site commands (issue 23, first piece): `open/<door>`, `lock/<door>`, `mode/<door>`
 * (`{mode, duration_s?}`) and `fire_reset/<door>` from the site bus, verified before anything is believed
 * (domain/site-envelope.ts) and carried out through the API like every other transport, journaled
 * with the signer's name — never with a broker account. A refusal is journaled with its reason on
 * every door of the gateway; a flood of bad envelopes is bounded: at most 10 refusals a minute per
 * reason are journaled, the rest counted into one summary, and the replay memory is bounded too.
 */
import type { Config } from '../config/schema.js';
import type { GatewayApi } from '../control/api.js';
import { monotonicMs } from '../domain/clock.js';
import type { DoorEvent } from '../domain/events.js';
import { MAX_COMMAND_LIFE_MS, verifyEnvelope } from '../domain/site-envelope.js';
import type { DoorMode } from '../domain/types.js';
import type { Logger } from '../log.js';
import { SiteRefusals, SiteTrust } from './site-trust.js';

const SEEN_MAX = 10_000;

export class SiteCommands {
  /** Envelope ids seen, with when (monotonic ms) they may be forgotten: after a command's whole life. */
  private readonly seen = new Map<string, number>();
  private readonly trust: SiteTrust;
  readonly refusals: SiteRefusals;

  constructor(
    private readonly o: {
      config: Config;
      api: GatewayApi;
      log: Logger;
      doorEvent: (e: DoorEvent) => void;
      now?: () => number;
      trust?: SiteTrust;
      refusals?: SiteRefusals;
      /** A verified request for a range of this door's journal (the site journal answers it). */
      journalRange?: (from: number, to: number) => void;
    },
  ) {
    this.trust = o.trust ?? new SiteTrust(o.config);
    this.refusals = o.refusals ?? new SiteRefusals(o);
  }

  /** The command topic this gateway subscribes to. */
  get topic(): string {
    return `${this.o.config.site.base_topic}/command`;
  }

  async onMessage(payload: string, retained: boolean): Promise<void> {
    if (retained) return this.refusals.refuse('replayed', 'a retained site command (the past, replayed by the broker)');
    // A journal range is asked of one gateway on the shared command topic: the others let it
    // pass unremarked (it is not theirs, and not a refusal worth a journal entry).
    const ours = `"journal_range/${this.o.config.gateway_id}"`;
    if (payload.includes('"journal_range/') && !payload.includes(ours)) return;
    const now = (this.o.now ?? Date.now)();
    const mono = monotonicMs();
    for (const [id, until] of this.seen) {
      if (until > mono) break; // insertion order is age order
      this.seen.delete(id);
    }
    const c = this.o.config;
    const r = verifyEnvelope(payload, this.trust.context({ nowMs: now, seen: (id) => this.seen.has(id), versionOf: () => undefined }));
    if (!r.ok) return this.refusals.refuse(r.reason, r.detail);
    const e = r.envelope;
    if (e.kind !== 'command') return this.refusals.refuse('malformed', `a ${e.kind} on the command topic`);
    // Remembered for longer than it could be accepted (its life plus the skew), bounded.
    if (this.seen.size >= SEEN_MAX) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(e.id, mono + MAX_COMMAND_LIFE_MS + 2 * c.site.clock_skew_s * 1000);
    const [type, door] = [e.subject.slice(0, e.subject.indexOf('/')), e.subject.slice(e.subject.indexOf('/') + 1)];
    if (type === 'journal_range') {
      const b = (e.body ?? {}) as { from?: unknown; to?: unknown };
      const seq = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 1;
      if (door !== c.gateway_id) return; // not ours (a subject that only mentioned our name)
      if (!seq(b.from) || !seq(b.to) || b.to < b.from) return this.refusals.refuse('malformed', `${e.subject}: body {from, to}, sequence numbers`);
      if (!this.o.journalRange) return this.o.log.info({ by: r.signer.name }, 'journal range asked, but this door does not publish its journal (site.publish_journal)');
      this.o.log.info({ from: b.from, to: b.to, by: r.signer.name }, 'site journal range asked');
      return this.o.journalRange(b.from, b.to);
    }
    if (!c.doors.some((d) => d.id === door)) return this.refusals.refuse('out_of_scope', `${e.subject}: no door '${door}' at this gateway`);
    const by = `site:${r.signer.name}`;
    try {
      if (type === 'open') {
        const d = await this.o.api.open({ door, by });
        this.o.log.info({ door, by, decision: d.decision, reason: d.reason, envelope: e.id }, 'site command: open');
      } else if (type === 'lock') await this.o.api.lock({ door, by });
      else if (type === 'mode') {
        const b = (e.body ?? {}) as { mode?: unknown; duration_s?: unknown };
        await this.o.api.setMode({ door, mode: String(b.mode) as DoorMode, ...(typeof b.duration_s === 'number' ? { duration_s: b.duration_s } : {}), by });
      } else if (type === 'fire_reset') {
        const r = await this.o.api.fireReset({ door, by });
        this.o.log.warn({ door, by, reset: r.reset, refused: r.refused, envelope: e.id }, 'site command: fire reset');
      } else return this.refusals.refuse('malformed', `unknown command ${type}`);
    } catch (err) {
      this.o.log.warn({ door, by, err: (err as Error).message, envelope: e.id }, 'site command refused by the door');
    }
  }
}
