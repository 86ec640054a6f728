/**
 * The directory part of the GatewayApi: listing and showing people across both layers, and every
 * change of the local layer (local users, adjustments of cloud users, blocks). Validation lives in
 * domain/local-directory.ts; this module maps it onto the store and answers with error codes.
 */
import { localStamp } from '../domain/localtime.js';
import {
  applyLocalInput,
  blockActive,
  checkCard,
  checkCards,
  checkInstant,
  checkUserid,
  emptyLocalFields,
  localUserRecord,
  LocalInputError,
  MAX_LOCAL_USERS,
  type Block,
  type LocalContext,
  type LocalFields,
  type LocalUserInput,
} from '../domain/local-directory.js';
import { normalizeWecomUser, type UserRecord } from '../domain/user.js';
import { USER_TYPE_NAMES } from '../domain/types.js';
import type { Config } from '../config/schema.js';
import type { Store } from '../store/store.js';
import type { DirectoryConflict } from '../store/local-layer.js';
import { UsageError } from './errors.js';

export type Layer = 'cloud' | 'local';

/** Local fields as the API shows them: the PIN's hash never leaves the store. */
export type PublicLocalFields = Omit<LocalFields, 'pin'> & { pin_set: boolean };

/** A person as listed: their record (local adjustments applied), which layer they come from. */
export interface UserRow extends Omit<UserRecord, 'local'> {
  layer: Layer;
  local?: PublicLocalFields;
}

export interface UserDetail {
  record: UserRow;
  /** Which layer decides, in words (shown by `users show`). */
  decided_by: string;
  /** The cloud's own record when a local entry shadows or adjusts it. */
  cloud: Omit<UserRecord, 'local'> | null;
  templates: { kind: string; id: string; bytes: number }[];
  conflicts: DirectoryConflict[];
}

export interface ImportReport {
  layer: Layer;
  imported: number;
  rejected: { index: number; userid: string | null; error: string }[];
  warnings: string[];
  /** Cards or openvids the imported people now share with someone else (each such card is denied until resolved). */
  conflicts?: DirectoryConflict[];
}

/** A local-layer entry as exported and imported (JSON lines, or CSV columns of the same names). */
export interface LocalExportEntry {
  kind: 'local_user' | 'adjustment';
  userid: string;
  name?: string | null;
  user_type?: string;
  cards?: string[];
  add_cards?: string[];
  rules?: string[];
  groups: string[];
  valid_from: string | null;
  valid_until: string | null;
  doors: string[] | null;
  extended_unlock_s: number | null;
  note: string | null;
  /** A temporary credential's passages (a fresh count from the import), and who vouched. */
  max_uses?: number | null;
  sponsor?: string | null;
  blocked: { until: string | null; reason: string | null } | null;
  blocked_cards: Record<string, { until: string | null; reason: string | null }>;
}

export interface UsersApi {
  usersList(p: { after?: string; limit?: number; layer?: 'all' | Layer; query?: string }): Promise<{ users: UserRow[]; next: string | null }>;
  usersShow(p: { userid: string }): Promise<UserDetail | null>;
  usersImport(p: { records: unknown[]; layer?: Layer; by?: string }): Promise<ImportReport>;
  usersAdd(p: LocalUserInput & { by?: string }): Promise<{ user: UserRow; conflicts: DirectoryConflict[] }>;
  usersSet(p: LocalUserInput & { userid: string; add_cards?: unknown; remove_cards?: unknown; by?: string }): Promise<{ user: UserRow; conflicts: DirectoryConflict[] }>;
  usersBlock(p: { userid?: string; card?: unknown; until?: unknown; reason?: unknown; by?: string }): Promise<{ blocked: { userid: string; card: string | null; until: number | null }[] }>;
  usersUnblock(p: { userid?: string; card?: unknown; by?: string }): Promise<{ unblocked: { userid: string; card: string | null }[] }>;
  usersRemove(p: { userid: string; by?: string }): Promise<{ removed: 'local_user' | 'adjustment' }>;
  usersExport(p: Record<string, never>): Promise<LocalExportEntry[]>;
  usersConflicts(p: Record<string, never>): Promise<DirectoryConflict[]>;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function publicLocal(f: LocalFields): PublicLocalFields {
  const { pin, ...rest } = f;
  return { ...rest, pin_set: pin !== null };
}

export function toRow(r: UserRecord, layer: Layer): UserRow {
  const { local, ...rest } = r;
  return local ? { ...rest, layer, local: publicLocal(local) } : { ...rest, layer };
}

/** Domain validation errors are the caller's: answered as `invalid`. */
function validated<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LocalInputError) throw new UsageError(e.message, 'invalid');
    throw e;
  }
}

const isEmptyAdjustment = (f: LocalFields): boolean =>
  f.cards_added.length === 0 && f.blocked === null && Object.keys(f.blocked_cards).length === 0 && f.groups.length === 0 && f.valid_from === null && f.valid_until === null && f.doors === null && f.extended_unlock_ms === null && f.pin === null && f.note === null && f.max_uses == null && !f.sponsor;

export interface ActionLog {
  (by: string, what: string, door?: string): Promise<void>;
}

export function usersApi(store: Store, config: Config, journalAction: ActionLog): UsersApi {
  const ctx: LocalContext = { doors: config.doors.map((d) => d.id), groups: Object.keys(config.groups) };
  const byOf = (p: { by?: string }): string => p.by ?? 'api';
  const conflictsOf = (u: UserRecord): DirectoryConflict[] =>
    store.localConflicts().filter((c) => c.userids.includes(u.userid) || (c.kind === 'card' && u.cards.includes(c.value)));

  /** The person named by userid as the door sees them, and where they live. */
  const find = (userid: string): { layer: Layer; record: UserRecord } | null => {
    const l = store.localUser(userid);
    if (l) return { layer: 'local', record: l };
    const c = store.directory.user(userid);
    return c ? { layer: 'cloud', record: c } : null;
  };

  /** Change the local fields of a person of either layer, in one write. */
  const writeFields = async (userid: string, change: (f: LocalFields) => LocalFields, at: number, by: string): Promise<void> => {
    const l = store.localUser(userid);
    if (l) {
      await store.putLocal({ users: [{ record: { ...l, local: change(l.local ?? emptyLocalFields(at, by)) } }] });
      return;
    }
    const f = change(store.localAdjustment(userid) ?? emptyLocalFields(at, by));
    await store.putLocal({ adjustments: [[userid, isEmptyAdjustment(f) ? null : f]] });
  };

  /** Who holds a card (either layer): every owner when it is in conflict. */
  const cardOwners = (card: string): string[] => [...new Set([...store.cloudCardOwners(card), ...store.localCardOwners(card)])].filter((id) => find(id)?.record.cards.includes(card));

  return {
    async usersList(p) {
      if (p.limit !== undefined && (typeof p.limit !== 'number' || !Number.isInteger(p.limit) || p.limit < 1 || p.limit > 5000)) throw new UsageError('limit must be a whole number from 1 to 5000');
      if (p.after !== undefined && (typeof p.after !== 'string' || p.after.length === 0)) throw new UsageError('after must be a userid (the next of a previous page)');
      const limit = p.limit ?? 100;
      const layer = p.layer ?? 'all';
      if (!['all', 'cloud', 'local'].includes(layer)) throw new UsageError("layer must be all, cloud or local");
      const q = p.query?.toLowerCase();
      const match = (u: UserRecord): boolean => !q || u.userid.toLowerCase().includes(q) || (u.name ?? '').toLowerCase().includes(q) || u.cards.includes(q);
      const rows: UserRow[] = [];
      if (layer !== 'cloud') for (const u of store.localUsers(p.after)) if (match(u)) rows.push(toRow(u, 'local'));
      // The cloud is read in userid order from `after`; when the read stops early (a bounded scan, so
      // a search never holds the gateway), only rows up to the last cloud userid read are complete.
      let cloudUpTo: string | null = null;
      let lastRead: string | null = null;
      if (layer !== 'local') {
        let scanned = 0;
        let cloudRows = 0;
        for await (const u of store.users(p.after !== undefined ? { after: p.after } : {})) {
          if (++scanned > 20_000 || cloudRows >= limit) {
            cloudUpTo = u.userid;
            break;
          }
          lastRead = u.userid;
          if (store.localUser(u.userid)) continue; // shadowed: the local row stands for it
          const adj = store.localAdjustment(u.userid);
          const r = adj ? store.directory.user(u.userid)! : u;
          if (match(r)) {
            rows.push(toRow(r, 'cloud'));
            cloudRows++;
          }
        }
      }
      rows.sort((a, b) => (a.userid < b.userid ? -1 : a.userid > b.userid ? 1 : 0));
      // cloudUpTo is the first cloud userid not read: everything before it is known.
      const complete = cloudUpTo === null ? rows : rows.filter((r) => r.userid < cloudUpTo);
      const page = complete.slice(0, limit);
      const more = complete.length > limit || cloudUpTo !== null;
      // A page that found nothing in a bounded scan still moves on, past what it read.
      const next = !more ? null : page.length ? page[page.length - 1]!.userid : (lastRead ?? p.after ?? null);
      return { users: page, next };
    },

    async usersShow(p) {
      const userid = validated(() => checkUserid(p.userid));
      const f = find(userid);
      if (!f) return null;
      const cloud = store.cloudUser(userid) ?? null;
      const templates = (await store.templatesOf(userid)).map((t) => ({ kind: t.kind, id: t.id, bytes: Buffer.from(t.data, 'base64').length }));
      const decided_by =
        f.layer === 'local'
          ? cloud
            ? 'local user (shadows the cloud user of the same userid)'
            : 'local user'
          : f.record.local
            ? 'cloud user with local adjustments'
            : 'cloud user';
      const { local: _l, ...cloudRest } = cloud ?? ({} as UserRecord);
      return { record: toRow(f.record, f.layer), decided_by, cloud: cloud ? cloudRest : null, templates, conflicts: conflictsOf(f.record) };
    },

    async usersImport(p) {
      const layer = p.layer ?? 'local';
      if (layer !== 'local' && layer !== 'cloud') throw new UsageError('layer must be local or cloud');
      if (!Array.isArray(p.records)) throw new UsageError('records must be a list');
      const by = byOf(p);
      const at = Date.now();
      const rejected: ImportReport['rejected'] = [];
      const warnings: string[] = [];
      const seen = new Map<string, number>();
      const users: { record: UserRecord; key?: Buffer | null }[] = [];
      const adjustments: [string, LocalFields][] = [];
      const cloudUsers: Parameters<Store['upsertUsers']>[0][number][] = [];
      // Refused before anything is parsed: a 100,000-row file once parsed every row (663 ms of
      // blocked decisions, +200 MB) only to hit the cap. Counted on the userid field alone.
      if (layer === 'local') {
        if (p.records.length > MAX_LOCAL_USERS * 2) throw new UsageError(`${p.records.length} records: the local layer holds at most ${MAX_LOCAL_USERS} people`, 'conflict');
        const ids = new Set<string>();
        for (const raw of p.records) {
          const id = typeof raw === 'object' && raw !== null ? (raw as { userid?: unknown; kind?: unknown }) : null;
          if (id && typeof id.userid === 'string' && id.kind !== 'adjustment' && !store.localUser(id.userid)) ids.add(id.userid);
        }
        if (store.localCount.users + ids.size > MAX_LOCAL_USERS) throw new UsageError(`the local layer holds at most ${MAX_LOCAL_USERS} people (it holds ${store.localCount.users}; this import would add ${ids.size}): nothing was imported`, 'conflict');
      }
      for (const [index, raw] of p.records.entries()) {
        // Decisions run between rows: an import never holds the door for long.
        if (index % 200 === 199) await new Promise<void>((r) => setImmediate(r));
        importOne(raw, index);
      }
      function importOne(raw: unknown, index: number): void {
        const userid = typeof raw === 'object' && raw !== null && typeof (raw as { userid?: unknown }).userid === 'string' ? (raw as { userid: string }).userid : null;
        const dup = userid !== null ? seen.get(userid) : undefined;
        if (dup !== undefined) return void rejected.push({ index, userid, error: `user '${userid}': duplicate of record ${dup} in the same file` });
        try {
          const kind = (raw as { kind?: unknown }).kind;
          if (kind === 'local_user' || kind === 'adjustment') {
            if (layer !== 'local') throw new LocalInputError(`a ${kind} entry belongs to the local layer`);
            const e = raw as Record<string, unknown>;
            const input = fromExport(e);
            let f = applyLocalInput(emptyLocalFields(at, by), input, ctx, at, by);
            f = { ...f, blocked: importBlock(e.blocked, at, by), blocked_cards: importBlockedCards(e.blocked_cards, at, by) };
            if (kind === 'local_user') users.push({ record: localUserRecord(undefined, input, f) });
            else {
              const id = checkUserid(e.userid);
              f.cards_added = e.add_cards === undefined ? [] : checkCards(e.add_cards);
              adjustments.push([id, f]);
              if (!store.cloudUser(id)) warnings.push(`adjustment of '${id}': no such cloud user now (kept for when they appear)`);
            }
          } else {
            const r = normalizeWecomUser(raw, layer === 'local' ? 'local' : 'import');
            if (!r.ok) return void rejected.push({ index, userid: r.userid, error: r.error });
            warnings.push(...r.warnings);
            if (layer === 'cloud') cloudUsers.push(r.user);
            else {
              if (r.user.templates.length) warnings.push(`user '${r.user.record.userid}': templates are not kept in the local layer`);
              const prev = store.localUser(r.user.record.userid);
              users.push({ record: { ...r.user.record, key_id: null, ...(prev?.local ? { local: prev.local } : {}) }, key: r.user.key });
            }
          }
          if (userid !== null) seen.set(userid, index);
        } catch (e) {
          if (!(e instanceof LocalInputError)) throw e;
          rejected.push({ index, userid, error: `${userid !== null ? `user '${userid}': ` : ''}${e.message}` });
        }
      }
      if (layer === 'cloud') {
        await store.upsertUsers(cloudUsers);
        if (cloudUsers.length) warnings.push('written into the cloud layer: the next full sync from the cloud replaces it (use the local layer to keep people across syncs)');
        return { layer, imported: cloudUsers.length, rejected, warnings };
      }
      const newLocal = users.filter((u) => !store.localUser(u.record.userid)).length;
      if (store.localCount.users + newLocal > MAX_LOCAL_USERS) throw new UsageError(`the local layer holds at most ${MAX_LOCAL_USERS} people`, 'conflict');
      for (const u of users) if (store.cloudUser(u.record.userid)) warnings.push(`local user '${u.record.userid}' shadows the cloud user of the same userid`);
      await store.putLocal({ users, adjustments });
      const n = users.length + adjustments.length;
      if (n) await journalAction(by, `users import: ${n} local entr${n === 1 ? 'y' : 'ies'}`);
      // The conflicts this import takes part in (computed once: per person it was quadratic).
      const mine = new Set([...users.map((u) => u.record.userid), ...adjustments.map(([id]) => id)]);
      const conflicts = mine.size ? store.localConflicts().filter((c) => c.userids.some((id) => mine.has(id))) : [];
      return { layer, imported: n, rejected, warnings, conflicts };
    },

    async usersAdd(p) {
      const by = byOf(p);
      const at = Date.now();
      const userid = validated(() => checkUserid(p.userid));
      if (store.localUser(userid)) throw new UsageError(`local user '${userid}' exists (change it with users set)`, 'conflict');
      if (store.cloudUser(userid)) throw new UsageError(`'${userid}' is a cloud user: adjust them with users set or users block`, 'conflict');
      if (store.localCount.users >= MAX_LOCAL_USERS) throw new UsageError(`the local layer holds at most ${MAX_LOCAL_USERS} people`, 'conflict');
      const record = validated(() => localUserRecord(undefined, p, applyLocalInput(emptyLocalFields(at, by), p, ctx, at, by)));
      await store.putLocal({ users: [{ record }] });
      await journalAction(by, `users add ${userid}`);
      return { user: toRow(record, 'local'), conflicts: conflictsOf(record) };
    },

    async usersSet(p) {
      const by = byOf(p);
      const at = Date.now();
      const userid = validated(() => checkUserid(p.userid));
      const local = store.localUser(userid);
      const add = p.add_cards === undefined ? [] : validated(() => checkCards(p.add_cards));
      const remove = p.remove_cards === undefined ? [] : validated(() => checkCards(p.remove_cards));
      if (local) {
        const record = validated(() => localUserRecord(local, p, applyLocalInput(local.local ?? emptyLocalFields(at, by), p, ctx, at, by)));
        record.cards = [...record.cards.filter((c) => !remove.includes(c)), ...add.filter((c) => !record.cards.includes(c))];
        await store.putLocal({ users: [{ record }] });
        await journalAction(by, `users set ${userid}`);
        return { user: toRow(record, 'local'), conflicts: conflictsOf(record) };
      }
      const cloud = store.cloudUser(userid);
      if (!cloud) throw new UsageError(`no user '${userid}' in the cloud directory or the local layer`, 'not_found');
      const own = (['name', 'user_type', 'rules', 'cards'] as const).filter((k) => p[k] !== undefined);
      if (own.length) throw new UsageError(`${own.join(', ')} of a cloud user come${own.length === 1 ? 's' : ''} from the cloud; locally you may add_cards, remove_cards (added ones), block, and set pin, groups, valid_from, valid_until, doors, extended_unlock_s, note, max_uses, sponsor`);
      const fromCloud = remove.filter((c) => cloud.cards.includes(c));
      if (fromCloud.length) throw new UsageError(`card ${fromCloud.join(', ')} comes from the cloud: block it instead (users block --card)`);
      const prev = store.localAdjustment(userid) ?? emptyLocalFields(at, by);
      const f = validated(() => applyLocalInput(prev, p, ctx, at, by));
      f.cards_added = [...prev.cards_added.filter((c) => !remove.includes(c)), ...add.filter((c) => !prev.cards_added.includes(c) && !cloud.cards.includes(c))];
      await store.putLocal({ adjustments: [[userid, isEmptyAdjustment(f) ? null : f]] });
      await journalAction(by, `users set ${userid} (local adjustments of a cloud user)`);
      const now = store.directory.user(userid)!;
      return { user: toRow(now, 'cloud'), conflicts: conflictsOf(now) };
    },

    async usersBlock(p) {
      const by = byOf(p);
      const at = Date.now();
      const until = p.until === undefined ? null : validated(() => checkInstant('until', p.until));
      if (until !== null && until <= at) throw new UsageError('until is in the past');
      if (p.reason !== undefined && p.reason !== null && typeof p.reason !== 'string') throw new UsageError('reason must be text');
      const reason = typeof p.reason === 'string' ? p.reason.slice(0, 200) : null;
      const block: Block = { until, reason, at, by };
      const card = p.card === undefined ? null : validated(() => checkCard(p.card));
      if (card === null && p.userid === undefined) throw new UsageError('give a userid, a card, or both');
      const owners = p.userid !== undefined ? [validated(() => checkUserid(p.userid))] : cardOwners(card!);
      if (owners.length === 0) throw new UsageError(`card ${card} belongs to nobody in the directory`, 'not_found');
      for (const id of owners) {
        const f = find(id);
        if (!f) throw new UsageError(`no user '${id}' in the cloud directory or the local layer`, 'not_found');
        if (card !== null && !f.record.cards.includes(card)) throw new UsageError(`card ${card} is not one of ${id}'s cards`, 'not_found');
      }
      for (const id of owners) await writeFields(id, (f) => (card === null ? { ...f, blocked: block, updated_at: at, updated_by: by } : { ...f, blocked_cards: { ...f.blocked_cards, [card]: block }, updated_at: at, updated_by: by }), at, by);
      const what = (id: string): string => `users block ${card !== null ? `card ${card} of ` : ''}${id}${until !== null ? ` until ${localStamp(until, config.timezone)}` : ''}${reason ? ` (${reason})` : ''}`;
      for (const id of owners) await journalAction(by, what(id));
      return { blocked: owners.map((userid) => ({ userid, card, until })) };
    },

    async usersUnblock(p) {
      const by = byOf(p);
      const at = Date.now();
      const card = p.card === undefined ? null : validated(() => checkCard(p.card));
      if (card === null && p.userid === undefined) throw new UsageError('give a userid, a card, or both');
      const owners = p.userid !== undefined ? [validated(() => checkUserid(p.userid))] : cardOwners(card!);
      const done: { userid: string; card: string | null }[] = [];
      for (const id of owners) {
        const f = find(id)?.record.local;
        const has = card === null ? blockActive(f?.blocked, at) || !!f?.blocked : !!f?.blocked_cards[card];
        if (!has) continue;
        await writeFields(id, (x) => {
          const blocked_cards = { ...x.blocked_cards };
          if (card !== null) delete blocked_cards[card];
          return { ...x, ...(card === null ? { blocked: null } : { blocked_cards }), updated_at: at, updated_by: by };
        }, at, by);
        await journalAction(by, `users unblock ${card !== null ? `card ${card} of ` : ''}${id}`);
        done.push({ userid: id, card });
      }
      if (!done.length) throw new UsageError(`${card !== null ? `card ${card}` : `'${p.userid}'`} is not blocked`, 'not_found');
      return { unblocked: done };
    },

    async usersRemove(p) {
      const by = byOf(p);
      const userid = validated(() => checkUserid(p.userid));
      if (store.localUser(userid)) {
        await store.putLocal({ removeUsers: [userid] });
        await journalAction(by, `users remove ${userid} (local user)`);
        return { removed: 'local_user' };
      }
      if (store.localAdjustment(userid)) {
        await store.putLocal({ adjustments: [[userid, null]] });
        await journalAction(by, `users remove ${userid} (local adjustments; the cloud user stays)`);
        return { removed: 'adjustment' };
      }
      throw new UsageError(store.cloudUser(userid) ? `'${userid}' is a cloud user without local adjustments: remove them in the cloud` : `no user '${userid}' in the local layer`, 'not_found');
    },

    // eslint-disable-next-line @typescript-eslint/require-await
    async usersExport() {
      const common = (f: LocalFields): Omit<LocalExportEntry, 'kind' | 'userid'> => ({
        groups: f.groups,
        valid_from: iso(f.valid_from),
        valid_until: iso(f.valid_until),
        doors: f.doors,
        extended_unlock_s: f.extended_unlock_ms === null ? null : f.extended_unlock_ms / 1000,
        note: f.note,
        ...(f.max_uses != null ? { max_uses: f.max_uses } : {}),
        ...(f.sponsor ? { sponsor: f.sponsor } : {}),
        blocked: f.blocked ? { until: iso(f.blocked.until), reason: f.blocked.reason } : null,
        blocked_cards: Object.fromEntries(Object.entries(f.blocked_cards).map(([c, b]) => [c, { until: iso(b.until), reason: b.reason }])),
      });
      const out: LocalExportEntry[] = store.localUsers().map((u) => ({
        kind: 'local_user',
        userid: u.userid,
        name: u.name,
        user_type: USER_TYPE_NAMES[u.user_type],
        cards: u.cards,
        rules: u.rules.map((r) => r.source),
        ...common(u.local ?? emptyLocalFields(0, '')),
      }));
      for (const [userid, f] of store.localAdjustments()) out.push({ kind: 'adjustment', userid, add_cards: f.cards_added, ...common(f) });
      return out;
    },

    // eslint-disable-next-line @typescript-eslint/require-await
    async usersConflicts() {
      return store.localConflicts();
    },
  };
}

/** An exported entry back into the input the validators take. */
function fromExport(e: Record<string, unknown>): LocalUserInput {
  const input: LocalUserInput = {};
  for (const k of ['userid', 'name', 'user_type', 'cards', 'rules', 'groups', 'valid_from', 'valid_until', 'doors', 'extended_unlock_s', 'note', 'pin', 'max_uses', 'sponsor'] as const) {
    if (e[k] !== undefined) input[k] = e[k];
  }
  return input;
}

function importBlock(v: unknown, at: number, by: string): Block | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object') throw new LocalInputError('blocked must be an object {until, reason} or null');
  const b = v as { until?: unknown; reason?: unknown };
  return { until: b.until === undefined ? null : checkInstant('blocked.until', b.until), reason: typeof b.reason === 'string' ? b.reason.slice(0, 200) : null, at, by };
}

function importBlockedCards(v: unknown, at: number, by: string): Record<string, Block> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new LocalInputError('blocked_cards must be an object {card: {until, reason}}');
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([c, b]) => [checkCard(c), importBlock(b, at, by)!]));
}
