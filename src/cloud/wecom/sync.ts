/**
 * Directory sync over the WeCom device protocol (protocols.md §1 Directory sync). Full sync pages
 * into a fresh store generation and restarts when perm_version moves; increments are applied in
 * version order, each in one atomic write with its version; gaps catch up through the notify
 * history, else a full sync.
 */
import { normalizeWecomUser, type NormalizedUser } from '../../domain/user.js';
import type { Logger } from '../../log.js';
import type { Store } from '../../store/store.js';
import { WecomError } from './protocol.js';
import type { WecomSession } from './session.js';

/** A user with fingerprint templates in the directory, and the algorithm that made them. */
export interface FingerprintOwner {
  userid: string;
  algorithm: string | null;
}

export const META_PERM = 'wecom.perm_version';
export const META_VISITOR = 'wecom.visitor_version';
export const META_FULL_SYNC = 'wecom.last_full_sync';

export class VersionMovedError extends Error {}

export interface SyncOptions {
  pageSize: number;
  wantFp: boolean;
  wantFa: boolean;
  maxRestarts: number;
  onProgress?: (fetched: number) => void;
  /**
   * Users whose fingerprint templates arrived and users removed: the adapter hands them to the
   * module. Called after the change is stored; the templates are read from the store when their
   * turn comes (a full sync's would be tens of MB held for as long as a serial module takes).
   */
  onTemplates?: (loaded: FingerprintOwner[], removed: string[]) => void;
}

interface ChangeBody {
  perm_version: number;
  create_user: { userid: string; user_type: number }[];
  update_user: { userid: string; user_type: number }[];
  delete_user: { userid: string; user_type: number }[];
}

const fingerprintOwner = (u: NormalizedUser): FingerprintOwner => ({ userid: u.record.userid, algorithm: u.record.fp_algorithm ?? null });

const MAX_PAGES = 20_000; // 4 million users at 200: a listing that never ends is a fault

function intField(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`${name} is not a non-negative integer (${JSON.stringify(v)})`);
  return v;
}

function userItems(v: unknown, name: string): { userid: string; user_type: number }[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`${name} is not a list`);
  return v.map((x: unknown) => {
    const o = x as { userid?: unknown; user_type?: unknown };
    if (typeof o?.userid !== 'string' || o.userid === '') throw new Error(`${name} has an entry without userid`);
    return { userid: o.userid, user_type: typeof o.user_type === 'number' ? o.user_type : 0 };
  });
}

/** Validate a push_change_contact body (or a notify-history item). */
export function parseChange(body: Record<string, unknown>): ChangeBody {
  return {
    perm_version: intField(body.perm_version, 'perm_version'),
    create_user: userItems(body.create_user, 'create_user'),
    update_user: userItems(body.update_user, 'update_user'),
    delete_user: userItems(body.delete_user, 'delete_user'),
  };
}

export class DirectorySync {
  constructor(
    private readonly session: WecomSession,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly o: SyncOptions,
  ) {}

  localVersion(): Promise<number | undefined> {
    return this.store.getMeta<number>(META_PERM);
  }

  private normalizeAll(list: unknown, where: string): NormalizedUser[] {
    return [...this.normalizeEach(list, where)];
  }

  /** One record at a time, so a consumer that yields to the event loop interleaves the work. */
  private *normalizeEach(list: unknown, where: string): Generator<NormalizedUser> {
    if (!Array.isArray(list)) throw new Error(`${where}: userinfo is not a list`);
    for (const raw of list) {
      const r = normalizeWecomUser(raw, 'wecom');
      if (r.ok) {
        for (const w of r.warnings) this.log.warn(w);
        yield r.user;
      } else this.log.warn({ error: r.error }, `${where}: user record rejected`);
    }
  }

  /** Replace the directory with the cloud's; returns users written and the version. */
  async fullSync(): Promise<{ users: number; version: number }> {
    for (let attempt = 1; ; attempt++) {
      let version: number | null = null;
      let fetched = 0;
      const { session, o } = this;
      const normalizeEach = (list: unknown): Generator<NormalizedUser> => this.normalizeEach(list, 'get_userinfo_by_page');
      const withFp: FingerprintOwner[] = [];
      const keepFp = (u: NormalizedUser): void => {
        if (o.onTemplates && u.templates.some((t) => t.kind === 'fp')) withFp.push(fingerprintOwner(u));
      };
      async function* pages(): AsyncGenerator<NormalizedUser> {
        let offset = 0;
        for (let page = 0; page < MAX_PAGES; page++) {
          const body = await session.request('get_userinfo_by_page', {
            offset,
            limit: o.pageSize,
            is_req_fp_info: o.wantFp ? 1 : 0,
            is_req_fa_info: o.wantFa ? 1 : 0,
            is_req_public_key: 1,
          });
          const v = intField(body.perm_version, 'perm_version');
          if (version === null) version = v;
          else if (v !== version) throw new VersionMovedError(`perm_version moved from ${version} to ${v} at offset ${offset}`);
          const users = normalizeEach(body.userinfo);
          const n = Array.isArray(body.userinfo) ? body.userinfo.length : 0;
          fetched += n;
          o.onProgress?.(fetched);
          for (const u of users) {
            keepFp(u);
            yield u;
          }
          offset += n;
          if (body.is_last === true || n === 0) return;
        }
        throw new Error(`listing did not end after ${MAX_PAGES} pages`);
      }
      try {
        const t0 = Date.now();
        const users = await this.store.replaceDirectory(pages(), undefined, () => ({ [META_PERM]: version ?? 0, [META_FULL_SYNC]: Date.now() }));
        this.log.info({ users, perm_version: version, seconds: (Date.now() - t0) / 1000, attempt }, 'full sync complete');
        if (withFp.length) o.onTemplates?.(withFp, []);
        return { users, version: version ?? 0 };
      } catch (e) {
        if (e instanceof VersionMovedError && attempt < this.o.maxRestarts) {
          this.log.info({ reason: e.message, attempt }, 'directory changed during full sync; restarting from offset 0');
          continue;
        }
        throw e;
      }
    }
  }

  /** Fetch users by id (≤200 a call), employees and students by user_item, visitors by their own command. */
  private async fetchUsers(items: { userid: string; user_type: number }[]): Promise<NormalizedUser[]> {
    const out: NormalizedUser[] = [];
    const visitors = items.filter((i) => i.user_type === 1).map((i) => i.userid);
    const others = items.filter((i) => i.user_type !== 1);
    const fields = { is_req_fp_info: this.o.wantFp ? 1 : 0, is_req_fa_info: this.o.wantFa ? 1 : 0, is_req_public_key: 1 };
    for (let i = 0; i < others.length; i += 200) {
      const body = await this.session.request('get_userinfo_by_ids', { user_item: others.slice(i, i + 200), ...fields });
      out.push(...this.normalizeAll(body.userinfo, 'get_userinfo_by_ids'));
    }
    for (let i = 0; i < visitors.length; i += 200) {
      const body = await this.session.request('get_visitor_by_ids', { userids: visitors.slice(i, i + 200), is_req_public_key: 1 });
      out.push(...this.normalizeAll(body.userinfo, 'get_visitor_by_ids'));
    }
    return out;
  }

  /** Apply one change (its version must be local + 1), atomically with the new version. */
  async apply(change: ChangeBody): Promise<void> {
    const byId = new Map<string, { userid: string; user_type: number }>();
    for (const u of [...change.create_user, ...change.update_user]) byId.set(u.userid, u);
    const upsert = await this.fetchUsers([...byId.values()]);
    const fetched = new Set(upsert.map((u) => u.record.userid));
    // Created or updated users the cloud no longer returns were removed since: drop them too.
    const del = [...change.delete_user.map((d) => d.userid), ...[...byId.keys()].filter((id) => !fetched.has(id))];
    const r = await this.store.applyChanges({ upsert, delete: del.filter((id) => !fetched.has(id)), meta: { [META_PERM]: change.perm_version } });
    this.log.info({ perm_version: change.perm_version, upserted: upsert.length, removed: r.removed }, 'directory change applied');
    // Every changed user: one whose fingerprint slots were emptied in the cloud must leave the module too.
    const loaded = upsert.map(fingerprintOwner);
    if (loaded.length || del.length) this.o.onTemplates?.(loaded, del);
  }

  /**
   * React to a pushed change: apply it if it is the next version, ignore it if stale, catch up
   * through the history if versions were missed (falling back to a full sync).
   */
  async onChange(body: Record<string, unknown>): Promise<'applied' | 'ignored' | 'caught_up' | 'full_sync'> {
    const change = parseChange(body);
    const local = await this.localVersion();
    if (local === undefined) {
      await this.fullSync();
      return 'full_sync';
    }
    if (change.perm_version <= local) {
      this.log.debug({ pushed: change.perm_version, local }, 'stale or duplicate directory change ignored');
      return 'ignored';
    }
    if (change.perm_version === local + 1) {
      await this.apply(change);
      return 'applied';
    }
    this.log.warn({ pushed: change.perm_version, local }, 'directory changes were missed; catching up');
    return this.catchUp(local, change.perm_version);
  }

  /** Bring the directory from `local` to at least `target` (the cloud's version). */
  async catchUp(local: number, target: number): Promise<'caught_up' | 'full_sync'> {
    let changes: ChangeBody[] | null = null;
    try {
      changes = await this.history(local);
    } catch (e) {
      this.log.warn({ err: e instanceof WecomError ? e.message : e }, 'notify history unavailable; full sync');
    }
    const contiguous = changes !== null && changes.every((c, i) => c.perm_version === local + 1 + i) && (changes.at(-1)?.perm_version ?? local) >= target;
    if (!contiguous || changes === null) {
      if (changes !== null) this.log.warn({ local, target, got: changes.map((c) => c.perm_version) }, 'notify history has gaps; full sync');
      await this.fullSync();
      return 'full_sync';
    }
    for (const c of changes) await this.apply(c);
    return 'caught_up';
  }

  private async history(from: number): Promise<ChangeBody[]> {
    const out: ChangeBody[] = [];
    for (let offset = 0, page = 0; page < MAX_PAGES; page++) {
      const body = await this.session.request('get_notify_history', { perm_version: from, offset, limit: 100 });
      if (!Array.isArray(body.item)) throw new Error('get_notify_history: item is not a list');
      for (const it of body.item as { data?: unknown; perm_version?: unknown }[]) {
        const data: unknown = typeof it.data === 'string' ? JSON.parse(it.data) : it.data;
        if (typeof data !== 'object' || data === null) throw new Error('get_notify_history: item without data');
        out.push(parseChange({ perm_version: it.perm_version, ...(data as Record<string, unknown>) }));
      }
      offset += body.item.length;
      if (body.is_last === true || body.item.length === 0) break;
    }
    return out.sort((a, b) => a.perm_version - b.perm_version);
  }

  /** After (re)login: catch up if the cloud moved while we were away. */
  async onLogin(): Promise<'current' | 'caught_up' | 'full_sync'> {
    const { perm_version } = await this.session.request('get_perm_version');
    const remote = intField(perm_version, 'perm_version');
    const local = await this.localVersion();
    if (local === remote) return 'current';
    if (local === undefined || remote < local) {
      await this.fullSync();
      return 'full_sync';
    }
    return this.catchUp(local, remote);
  }
}
