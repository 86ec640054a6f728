/**
 * The Feishu access-control directory (GET /open-apis/acs/v1/users, protocols.md §5) as doorgw
 * users: each listed user (only members of an access group for this site are listed) is an
 * employee with no rules, so they pass unless local modes say otherwise; `feature.card` becomes a
 * card credential. Users without a card are kept (a face terminal may identify them by user id).
 */
import type { NormalizedUser } from '../../domain/user.js';
import type { Logger } from '../../log.js';
import type { Store } from '../../store/store.js';
import { FeishuError, type FeishuClient } from './client.js';

export const META_FEISHU_SYNC = 'feishu.last_sync';
const INVALID_PAGE_TOKEN = 1490018;
const MAX_PAGES = 100_000; // 5 million users at 50: a listing that never ends is a fault
const MAX_RESTARTS = 3;

class RestartListing extends Error {}

export interface FeishuSyncOptions {
  /** Visitors named by the permission groups (user_type 11), added as visitors. */
  visitors?: readonly string[];
  pageSize: number;
  userIdType: 'open_id' | 'union_id' | 'user_id';
  onProgress?: (n: number) => void;
}

/** One listed user, or why it cannot be used. */
export function feishuUser(item: unknown, log: Logger): NormalizedUser | null {
  const o = item as { user_id?: unknown; feature?: { card?: unknown } };
  if (typeof o?.user_id !== 'string' || o.user_id === '' || Buffer.byteLength(o.user_id) > 64) {
    log.warn({ user_id: o?.user_id }, 'feishu user without a usable user_id skipped');
    return null;
  }
  const cards: string[] = [];
  const card = o.feature?.card;
  if (card !== undefined && card !== null) {
    if (typeof card === 'number' && Number.isSafeInteger(card) && card >= 0) cards.push(String(card));
    else log.warn({ user_id: o.user_id, card }, 'feishu card is not a non-negative integer; user kept without a card');
  }
  return {
    record: { userid: o.user_id, user_type: 0, name: null, openvid: null, cards, rules: [], invalid_rules: [], source: 'feishu', fp_ver: null, fa_ver: null },
    key: null,
    templates: [],
  };
}

export async function syncFeishuDirectory(client: FeishuClient, store: Store, log: Logger, o: FeishuSyncOptions): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const cardOwners = new Map<string, string[]>();
    async function* users(): AsyncGenerator<NormalizedUser> {
      let token: string | undefined;
      let n = 0;
      for (let page = 0; page < MAX_PAGES; page++) {
        let data: Record<string, unknown>;
        try {
          data = await client.get('/open-apis/acs/v1/users', { page_size: o.pageSize, page_token: token, user_id_type: o.userIdType });
        } catch (e) {
          if (e instanceof FeishuError && e.code === INVALID_PAGE_TOKEN) throw new RestartListing('page token rejected (1490018)');
          throw e;
        }
        const items = data.items ?? [];
        if (!Array.isArray(items)) throw new FeishuError('acs/v1/users: items is not a list', 0, null);
        for (const item of items) {
          const u = feishuUser(item, log);
          if (!u) continue;
          for (const c of u.record.cards) cardOwners.set(c, [...(cardOwners.get(c) ?? []), u.record.userid]);
          n++;
          yield u;
        }
        o.onProgress?.(n);
        if (data.has_more !== true) {
          // The visitors the permission groups name (not in this list): known at the door by their
          // user id (a face terminal's), passing only by their group.
          const listed = new Set<string>();
          for (const v of o.visitors ?? []) {
            if (listed.has(v) || Buffer.byteLength(v) > 128) continue;
            listed.add(v);
            yield { record: { userid: v, user_type: 1, name: null, openvid: null, cards: [], rules: [], invalid_rules: [], source: 'feishu', fp_ver: null, fa_ver: null }, key: null, templates: [] };
          }
          return;
        }
        if (typeof data.page_token !== 'string' || data.page_token === '' || data.page_token === token) {
          throw new FeishuError('acs/v1/users: has_more without a new page_token', 0, null);
        }
        token = data.page_token;
      }
      throw new FeishuError(`acs/v1/users: listing did not end after ${MAX_PAGES} pages`, 0, null);
    }
    try {
      const n = await store.replaceDirectory(users(), undefined, () => ({ [META_FEISHU_SYNC]: Date.now() }));
      for (const [card, owners] of cardOwners) {
        if (owners.length > 1) log.warn({ card, users: owners }, 'card assigned to more than one Feishu user: it is denied at the door until fixed');
      }
      log.info({ users: n, attempt }, 'feishu directory synced');
      return n;
    } catch (e) {
      if (e instanceof RestartListing && attempt < MAX_RESTARTS) {
        log.warn({ attempt }, 'feishu page token invalid; restarting the listing from the first page');
        continue;
      }
      throw e;
    }
  }
}
