/**
 * The directory's LevelDB layout shared by the store and the generation builder (a worker thread
 * that writes a full replacement): sublevel types, one generation's sublevels, and the writer that
 * turns user changes into batch operations.
 */
import { keyId } from '../domain/qr.js';
import type { NormalizedUser, UserRecord } from '../domain/user.js';

export type Json = Record<string, unknown> | unknown[] | string | number | boolean | null;

export interface Range {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
  reverse?: boolean;
  limit?: number;
}
/** The part of a JSON sublevel this module uses, typed by its value. */
export interface Sub<V> {
  getSync(key: string): V | undefined;
  get(key: string): Promise<V | undefined>;
  getMany(keys: string[]): Promise<(V | undefined)[]>;
  put(key: string, value: V): Promise<void>;
  del(key: string): Promise<void>;
  clear(): Promise<void>;
  batch(ops: ({ type: 'put'; key: string; value: V } | { type: 'del'; key: string })[], opts?: { sync?: boolean }): Promise<void>;
  keys(range?: Range): AsyncIterable<string>;
  values(range?: Range): AsyncIterable<V>;
  iterator(range?: Range): AsyncIterable<[string, V]>;
}
/** A batch operation on the root database that targets a sublevel. */
export type Op = { type: 'put'; key: string; value: unknown; sublevel: Sub<never> } | { type: 'del'; key: string; sublevel: Sub<never> };

/** A put into a sublevel, its value checked against the sublevel's type (the one cast LevelDB's batch needs is here). */
export function putOp<V>(sublevel: Sub<V>, key: string, value: NoInfer<V>): Op {
  return { type: 'put', key, value, sublevel: sublevel as unknown as Sub<never> };
}

export function delOp(sublevel: Sub<unknown> | Sub<never>, key: string): Op {
  return { type: 'del', key, sublevel: sublevel as unknown as Sub<never> };
}

export interface Generation {
  n: number;
  users: Sub<UserRecord>;
  openvid: Sub<string[]>;
  card: Sub<string[]>;
  keys: Sub<string>;
  templates: Sub<string>;
}

export const SEP = '\u0000';

/**
 * How the store and its generation worker open the database: JSON values, and `multithreading` on
 * both sides (classic-level shares one LevelDB handle only between opens that both ask for it).
 */
export const LEVEL_OPTIONS = { valueEncoding: 'json', multithreading: true } as { valueEncoding: 'json' };

/** JSON sublevels of `db` by name, each made once (a database opened again needs a new one of these). */
export function jsonSublevels(db: { sublevel(name: string, o: { valueEncoding: 'json' }): unknown }): <V>(name: string) => Sub<V> {
  const made = new Map<string, Sub<unknown>>();
  return <V>(name: string): Sub<V> => {
    let s = made.get(name);
    if (!s) made.set(name, (s = db.sublevel(name, { valueEncoding: 'json' }) as Sub<unknown>));
    return s as Sub<V>;
  };
}

/** The sublevels of directory generation `n`, from `sub` (a JSON sublevel by name). */
export function generationOf(n: number, sub: <V>(name: string) => Sub<V>): Generation {
  return { n, users: sub(`g${n}u`), openvid: sub(`g${n}o`), card: sub(`g${n}c`), keys: sub(`g${n}k`), templates: sub(`g${n}t`) };
}

/**
 * Builds batch operations for user changes in one generation, tracking index entries touched by
 * earlier operations of the same batch (LevelDB reads do not see an unwritten batch).
 */
export class DirectoryWriter {
  readonly ops: Op[] = [];
  added = 0;
  removed = 0;
  private overlay = new Map<string, string[]>();
  private readonly users = new Map<string, UserRecord | null>();
  private readonly keysWritten = new Set<string>();

  constructor(private readonly g: Generation) {}

  resetOverlay(): void {
    this.overlay = new Map();
    this.users.clear();
    this.keysWritten.clear();
  }

  private current(id: string): UserRecord | undefined {
    const pending = this.users.get(id);
    if (pending !== undefined) return pending ?? undefined;
    return this.g.users.getSync(id);
  }

  private index(sub: Sub<string[]>, key: string, userid: string, add: boolean): void {
    const tag = `${sub === this.g.card ? 'c' : 'o'}${SEP}${key}`;
    const ids = [...(this.overlay.get(tag) ?? sub.getSync(key) ?? [])].filter((x) => x !== userid);
    if (add) ids.push(userid);
    this.overlay.set(tag, ids);
    this.ops.push(ids.length ? putOp(sub, key, ids) : delOp(sub, key));
  }

  private async dropTemplates(userid: string): Promise<void> {
    for await (const k of this.g.templates.keys({ gt: `${userid}${SEP}`, lt: `${userid}\u0001` })) {
      this.ops.push(delOp(this.g.templates, k));
    }
  }

  async put(u: NormalizedUser): Promise<void> {
    const id = u.record.userid;
    const old = this.current(id);
    const kid = u.key ? keyId(u.key) : null;
    const record: UserRecord = { ...u.record, key_id: kid };
    if (old) {
      if (old.openvid !== null && old.openvid !== record.openvid) this.index(this.g.openvid, old.openvid, id, false);
      for (const c of old.cards) if (!record.cards.includes(c)) this.index(this.g.card, c, id, false);
      await this.dropTemplates(id);
    } else {
      this.added++;
    }
    if (record.openvid !== null && old?.openvid !== record.openvid) this.index(this.g.openvid, record.openvid, id, true);
    for (const c of record.cards) if (!old?.cards.includes(c)) this.index(this.g.card, c, id, true);
    if (u.key && kid && !this.keysWritten.has(kid) && this.g.keys.getSync(kid) === undefined) {
      this.keysWritten.add(kid);
      this.ops.push(putOp(this.g.keys, kid, u.key.toString('base64')));
    }
    for (const t of u.templates) this.ops.push(putOp(this.g.templates, `${id}${SEP}${t.kind}${SEP}${t.id}`, t.data));
    this.ops.push(putOp(this.g.users, id, record));
    this.users.set(id, record);
  }

  async del(id: string): Promise<void> {
    const old = this.current(id);
    if (!old) return;
    if (old.openvid !== null) this.index(this.g.openvid, old.openvid, id, false);
    for (const c of old.cards) this.index(this.g.card, c, id, false);
    await this.dropTemplates(id);
    this.ops.push(delOp(this.g.users, id));
    this.users.set(id, null);
    this.removed++;
  }
}
