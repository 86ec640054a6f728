/**
 * The local directory layer in memory: local users and local adjustments of cloud users, with their
 * card and openvid indexes. Small by design (at most MAX_LOCAL_USERS people), so it is held whole in
 * memory and a decision only does map lookups; the Store persists it in its own sublevels (`lu`,
 * `la`, `lk`), which no cloud sync ever writes.
 */
import type { LocalFields } from '../domain/local-directory.js';
import type { UserRecord } from '../domain/user.js';

/** A card or openvid claimed by more than one person, or a userid in both layers. */
export interface DirectoryConflict {
  kind: 'card' | 'openvid' | 'userid' | 'orphan';
  value: string;
  userids: string[];
  detail: string;
}

export class LocalLayer {
  readonly users = new Map<string, UserRecord>();
  readonly adjustments = new Map<string, LocalFields>();
  /** Local users' public keys by key id (base64 point), like a generation's `k` sublevel. */
  readonly keys = new Map<string, string>();
  private cards = new Map<string, string[]>();
  private openvids = new Map<string, string[]>();

  /** Rebuild the indexes (after every change: the layer is small, and this keeps them exact). */
  reindex(): void {
    const cards = new Map<string, string[]>();
    const openvids = new Map<string, string[]>();
    const add = (m: Map<string, string[]>, k: string, id: string): void => {
      const l = m.get(k);
      if (!l) m.set(k, [id]);
      else if (!l.includes(id)) l.push(id);
    };
    for (const u of this.users.values()) {
      for (const c of u.cards) add(cards, c, u.userid);
      if (u.openvid !== null) add(openvids, u.openvid, u.userid);
    }
    for (const [id, f] of this.adjustments) if (!this.users.has(id)) for (const c of f.cards_added) add(cards, c, id);
    this.cards = cards;
    this.openvids = openvids;
  }

  get empty(): boolean {
    return this.users.size === 0 && this.adjustments.size === 0;
  }

  /**
   * Who a card (or openvid) names across both layers: cloud owners shadowed by a local user of the
   * same userid drop out (the local user decides); more than one person is a conflict (null).
   */
  owners(kind: 'card' | 'openvid', value: string, cloud: string[] | undefined): string[] {
    const local = (kind === 'card' ? this.cards : this.openvids).get(value);
    const ids = (cloud ?? []).filter((id) => !this.users.has(id));
    for (const id of local ?? []) if (!ids.includes(id)) ids.push(id);
    return ids;
  }

  localCardOwners(card: string): string[] | undefined {
    return this.cards.get(card);
  }

  /** Conflicts between the layers (and inside the local one), given the cloud's index readers. */
  conflicts(cloud: { cardOwners: (c: string) => string[] | undefined; openvidOwners: (o: string) => string[] | undefined; hasUser: (id: string) => boolean }): DirectoryConflict[] {
    const out: DirectoryConflict[] = [];
    for (const [card, ids] of this.cards) {
      const all = this.owners('card', card, cloud.cardOwners(card));
      if (all.length > 1) out.push({ kind: 'card', value: card, userids: all, detail: `card ${card} is claimed by ${all.join(', ')}: denied credential_conflict until one of them gives it up` });
      void ids;
    }
    for (const [ov] of this.openvids) {
      const all = this.owners('openvid', ov, cloud.openvidOwners(ov));
      if (all.length > 1) out.push({ kind: 'openvid', value: ov, userids: all, detail: `openvid ${ov} is claimed by ${all.join(', ')}` });
    }
    for (const id of this.users.keys()) {
      if (cloud.hasUser(id)) out.push({ kind: 'userid', value: id, userids: [id], detail: `local user '${id}' shadows the cloud user of the same userid (the local entry decides)` });
    }
    for (const id of this.adjustments.keys()) {
      if (!this.users.has(id) && !cloud.hasUser(id)) out.push({ kind: 'orphan', value: id, userids: [id], detail: `local adjustments of '${id}', whom the cloud directory no longer has (kept in case they return; remove with doorgw users remove)` });
    }
    return out;
  }
}
