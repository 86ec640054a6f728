/**
 * The site's facts in memory (issue 23): every fact this door holds — in its scope or not, since
 * completeness is counted over all of them — and what the ones in scope mean for decisions: site
 * users with their card index, blocked people and cards. Kept up to date one fact at a time, so a
 * decision only does map lookups; the Store persists the envelopes in the `sf` sublevel.
 */
import { emptyLocalFields, type Block } from '../domain/local-directory.js';
import type { FactStamp, SiteScope } from '../domain/site-envelope.js';
import { FactDigest, siteBlock, siteUserRecord, type SiteFact } from '../domain/site-facts.js';
import type { UserRecord } from '../domain/user.js';

export interface HeldFact {
  stamp: FactStamp;
  /** The signature as received: a re-delivery of the same envelope is known without verifying it again. */
  sig: string;
  kid: string;
  /** The signer's name (journaled as who set it). */
  by: string;
  scope: SiteScope;
  /** This gateway's doors it applies to: null all of them, [] none (out of scope: held, not applied). */
  doors: string[] | null;
  fact: SiteFact;
}

/** Does a fact held with these doors apply at this gateway (null: all its doors; []: none)? */
export const appliesHere = (doors: string[] | null): boolean => doors === null || doors.length > 0;

export class SiteLayer {
  readonly held = new Map<string, HeldFact>();
  readonly digest = new FactDigest();
  readonly users = new Map<string, UserRecord>();
  readonly blockedUsers = new Map<string, Block>();
  readonly blockedCards = new Map<string, Block>();
  private readonly cards = new Map<string, string[]>();

  /** Nothing here changes a decision. */
  get empty(): boolean {
    return this.users.size === 0 && this.blockedUsers.size === 0 && this.blockedCards.size === 0;
  }

  /** Replace what is held of a subject (the caller checked it is newer). */
  set(subject: string, h: HeldFact): void {
    const prev = this.held.get(subject);
    if (prev) {
      this.digest.remove(subject, prev.stamp);
      this.unapply(prev);
    }
    this.held.set(subject, h);
    this.digest.add(subject, h.stamp);
    this.apply(h);
  }

  private apply(h: HeldFact): void {
    if (!appliesHere(h.doors)) return;
    const f = h.fact;
    if (f.type === 'user') {
      const rec = siteUserRecord(f.userid, f.user, h.stamp.iat, h.by, f.rules);
      // A scope narrower than the gateway narrows the doors the person may pass here.
      if (h.doors !== null) rec.local!.doors = (f.user.doors ?? h.doors).filter((d) => h.doors!.includes(d));
      this.users.set(f.userid, rec);
      for (const c of rec.cards) {
        const l = this.cards.get(c);
        if (!l) this.cards.set(c, [f.userid]);
        else if (!l.includes(f.userid)) l.push(f.userid);
      }
    } else if (f.type === 'block') {
      // A block is the gateway's: a scope naming any of its doors blocks at all of them (the safe side).
      const b = siteBlock(f, h.stamp.iat, `site:${h.by}`);
      if ('card' in f.target) this.blockedCards.set(f.target.card, b);
      else this.blockedUsers.set(f.target.userid, b);
    }
  }

  private unapply(h: HeldFact): void {
    const f = h.fact;
    if (f.type === 'user') {
      const rec = this.users.get(f.userid);
      if (!rec) return;
      this.users.delete(f.userid);
      for (const c of rec.cards) {
        const l = this.cards.get(c)?.filter((id) => id !== f.userid);
        if (!l?.length) this.cards.delete(c);
        else this.cards.set(c, l);
      }
    } else if (f.type === 'block') {
      if ('card' in f.target) this.blockedCards.delete(f.target.card);
      else this.blockedUsers.delete(f.target.userid);
    }
  }

  /** Owners of a card: the cloud's (minus site users of the same userid, who decide) and the site's. */
  cardOwners(card: string, cloud: string[] | undefined): string[] | undefined {
    const site = this.cards.get(card);
    if (!site && this.users.size === 0) return cloud;
    const ids = (cloud ?? []).filter((id) => !this.users.has(id));
    for (const id of site ?? []) if (!ids.includes(id)) ids.push(id);
    return ids.length ? ids : undefined;
  }

  /** A person as the door decides on them: site blocks of them and of their cards applied. */
  adjust(u: UserRecord): UserRecord {
    const person = this.blockedUsers.get(u.userid);
    let cards: Record<string, Block> | null = null;
    if (this.blockedCards.size) {
      for (const c of u.cards) {
        const b = this.blockedCards.get(c);
        if (b) (cards ??= {})[c] = b;
      }
    }
    if (!person && !cards) return u;
    const f = u.local ?? emptyLocalFields(0, 'site');
    const blocked_cards = { ...f.blocked_cards };
    for (const [c, b] of Object.entries(cards ?? {})) blocked_cards[c] = longer(blocked_cards[c] ?? null, b)!;
    return { ...u, local: { ...f, blocked: longer(f.blocked, person ?? null), blocked_cards } };
  }
}

/** Of two blocks, the one that ends later (a local block that has ended never hides a site block). */
function longer(a: Block | null, b: Block | null): Block | null {
  if (!a || !b) return a ?? b;
  return (b.until ?? Infinity) > (a.until ?? Infinity) ? b : a;
}
