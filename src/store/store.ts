/**
 * The gateway's LevelDB cache — with its generation worker, the only modules that import `level`.
 *
 * Layout (sublevels):
 *   meta/<key>                       versions, counters, generation pointer
 *   g<N>u/<userid>                   decision record (UserRecord) of directory generation N
 *   g<N>o/<openvid>, g<N>c/<card>    index → [userid, …] (more than one = conflict, denied)
 *   g<N>k/<key id>                   public key point (base64), stored once for all its users
 *   g<N>t/<userid>\0<fp|fa>\0<id>    templates, apart so decisions never read them
 *   journal/<ts ms>!<seq>            every decision (bounded by seq)
 *   outbox/<seq>                     pass records awaiting upload
 *   held/<seq>                       pass records set aside (kept failing, or no cloud code)
 *   doorevents/<ts ms>!<seq>         door contact changes and alarms
 *   jseq/<seq>, dseq/<seq>           → the journal / door-event key of each sequence number:
 *                                    "newest" follows the sequence, not the wall clock, which
 *                                    steps (entries stamped during a step forward stay "newest"
 *                                    by time long after the clock is put right)
 *   replay/<signed body>             accepted QR codes still inside their validity (never keyed
 *                                    on the signature: ECDSA signatures are malleable)
 *   lu/<userid>                      local directory: local users (never touched by a sync)
 *   la/<userid>                      local directory: adjustments of cloud users (blocks, cards…)
 *   lk/<key id>                      local directory: local users' public keys
 *   sf/<subject>                     site facts: the newest signed envelope of each subject held
 *   uses/<userid>                    passages of a temporary credential: {since, count}, written
 *                                    with the journal entry of the passage (the same synced write)
 *   webaccounts/<name>               console accounts (role, scrypt hash)
 *
 * A full replacement writes generation N+1 and flips `meta/generation` in one batch, so a crash
 * leaves the previous complete directory in force. Reads on the decision path are synchronous.
 *
 * This file is the database (open, reopen, the write guard, sequence numbers), the directory and
 * the journal; the other repositories have a file each behind this facade, on its sublevels and
 * guarded writes (db.ts): outbox.ts, web-accounts.ts, presence.ts, replay-memory.ts, site-facts.ts.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Level } from 'level';
import { keyId, KeyCache } from '../domain/qr.js';
import { delOp, DirectoryWriter, generationOf, putOp, jsonSublevels, LEVEL_OPTIONS, SEP, type Generation, type Json, type Op, type Range, type Sub } from './directory-writer.js';
import type { Directory } from '../domain/policy.js';
import type { NormalizedUser, Template, UserRecord } from '../domain/user.js';
import { withLocalFields, type LocalFields } from '../domain/local-directory.js';
import { LocalLayer, type DirectoryConflict } from './local-layer.js';
import { SiteLayer } from './site-layer.js';
import type { SiteEnvelope } from '../domain/site-envelope.js';
import { GenerationBuilder, WorkerLostError } from './generation-builder.js';
import type { UseCount } from '../domain/types.js';
import type { DoorEventRecord, JournalEntry, JournalRecord } from '../domain/journal-records.js';
import type { ReplayEntry } from '../domain/replay.js';
import type { KeyObject } from 'node:crypto';
import { deleteKeys, pad, type StoreDb } from './db.js';
import { Outbox, type HeldRecord, type PassRecord } from './outbox.js';
import { PresenceRepo, type Presence } from './presence.js';
import { ReplayMemory, type StoredReplay } from './replay-memory.js';
import { SiteFactsRepo } from './site-facts.js';
import { WebAccounts, type WebAccount } from './web-accounts.js';


/** Each time-keyed sublevel and its sequence index (see the layout). */
const SEQ_INDEX = { journal: 'jseq', doorevents: 'dseq' } as const;
type Timed = keyof typeof SEQ_INDEX;
/** `<ts ms>!<seq>` → the sequence part (the index's key). */
const seqPart = (timedKey: string): string => timedKey.slice(timedKey.indexOf('!') + 1);

/** A write refused because an earlier write failed (disk full, I/O error) and the store awaits reopen(). */
export class StoreUnwritableError extends Error {
  constructor(readonly failure: Error) {
    super(`the database is not being written since a write failed (${failure.message}); records are kept in memory until it recovers`);
    this.name = 'StoreUnwritableError';
  }
}

/** A landed write that took the sequence numbers from..to, with the journal records among them. */
export type SequencedListener = (from: number, to: number, records: readonly JournalRecord[]) => void;

/** Present in a data directory while a restore writes it (see backup.ts). */
export const RESTORE_MARKER = 'RESTORE-INCOMPLETE';

export class StoreLockedError extends Error {
  constructor(dir: string) {
    super(`the database in ${dir} is in use by another process (is the gateway running?)`);
    this.name = 'StoreLockedError';
  }
}

export type { PassRecord, HeldRecord } from './outbox.js';
export type { WebAccount } from './web-accounts.js';

/** One decision to append: its journal entry, its pass record, the replay memory it adds. */
export interface JournalAppend {
  decision: Omit<JournalEntry, 'seq'>;
  pass?: Omit<PassRecord, 'seq'>;
  replay?: ReplayEntry;
  use?: UseCount;
}

export type { StoredReplay } from './replay-memory.js';

export type { DoorEventRecord, JournalEntry, JournalRecord } from '../domain/journal-records.js';

/** Users per write batch of a full replacement (in the generation worker, or here when it is not used). */
const CHUNK = 100;
/** A chunk for the generation worker also ends at this much template data (its heap is bounded). */
const CHUNK_TEMPLATE_BYTES = 4 << 20;
/** No single user larger than this goes to the generation worker. */
const WORKER_RECORD_MAX_BYTES = 8 << 20;
/** A full replacement gives the event loop a turn this often, so a decision never waits on a sync. */
const YIELD_EVERY = 20;
/** Databases this process has open (resolved paths). */
const openInThisProcess = new Set<string>();
function trackOpen(db: Level<string, Json>, where: string): void {
  openInThisProcess.add(where);
  db.once('closed', () => openInThisProcess.delete(where));
}
const yieldToEventLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

export class Store {
  private gen: Generation;
  private seq: number;
  private readonly keyCache = new KeyCache();
  /** JSON sublevels by name, of the database as now opened. */
  private sub: <V>(name: string) => Sub<V>;
  readonly directory: Directory;
  /** The local directory layer, whole in memory (see local-layer.ts). */
  private readonly local = new LocalLayer();
  /** The site's facts, whole in memory (see site-layer.ts); filled by the site unit before decisions start. */
  readonly site = new SiteLayer();

  /** The first write that failed; every later write is refused until reopen() (see guarded). */
  private writeFailure: Error | null = null;
  private writeChain: Promise<unknown> = Promise.resolve();
  /** Generation workers running (a full sync); closed before the database is closed or reopened. */
  private readonly builders = new Set<GenerationBuilder>();
  private reopening: Promise<void> | null = null;
  /** The repositories, each in its own file, on this store's sublevels and guarded writes. */
  private readonly db_: StoreDb = { sub: (name) => this.sub(name), batch: (ops, sync) => this.batch(ops, sync) };
  private readonly outboxRepo = new Outbox(this.db_);
  private readonly accounts = new WebAccounts(this.db_);
  private readonly presence = new PresenceRepo(this.db_);
  private readonly replayRepo = new ReplayMemory(this.db_);
  private readonly facts = new SiteFactsRepo(this.db_);
  /** Told once when a write fails and the store stops writing. */
  onWriteFailure: ((e: Error) => void) | null = null;

  private constructor(
    private db: Level<string, Json>,
    readonly path: string,
    gen: number,
    seq: number,
  ) {
    this.sub = jsonSublevels(db);
    this.gen = this.generation(gen);
    this.seq = seq;
    // Precedence: a local user, then a site user, then the cloud's (with local adjustments); site
    // blocks apply to whoever it is. Each layer costs nothing while it is empty.
    const base = (id: string): UserRecord | undefined => {
      const l = this.local.users.get(id);
      if (l) return l;
      const s = this.site.users.get(id);
      if (s) return s;
      const c = this.gen.users.getSync(id);
      const a = c && this.local.adjustments.get(id);
      return a ? withLocalFields(c, a) : c;
    };
    const cards = (card: string): string[] | undefined => {
      const cloud = this.site.empty ? this.gen.card.getSync(card) : this.site.cardOwners(card, this.gen.card.getSync(card));
      return this.local.empty ? cloud : this.local.owners('card', card, cloud);
    };
    this.directory = {
      user: (id) => {
        const u = base(id);
        return u && !this.site.empty ? this.site.adjust(u) : u;
      },
      useridByOpenvid: (ov) => (this.local.empty ? single(this.gen.openvid.getSync(ov)) : single(this.local.owners('openvid', ov, this.gen.openvid.getSync(ov)))),
      useridByCard: (card) => single(cards(card)),
      usesOf: (userid, since) => {
        const u = this.uses.get(userid);
        return u && u.since === since ? u.count : 0;
      },
      siteUsesOf: (userid, since) => this.siteUses?.(userid, since) ?? 0,
      publicKey: (id): KeyObject | null | undefined =>
        this.keyCache.get(id, () => {
          const b64 = this.local.keys.get(id) ?? this.gen.keys.getSync(id);
          return b64 === undefined ? undefined : Buffer.from(b64, 'base64');
        }),
    };
  }

  /** One atomic write across sublevels; `sync` waits for the disk (classic-level supports it). */
  private async batch(ops: Op[], sync = false): Promise<void> {
    if (ops.length === 0) return;
    await this.guarded(() => this.write(ops, sync));
  }

  /** The raw LevelDB batch: only ever called inside guarded(). */
  private write(ops: Op[], sync: boolean): Promise<void> {
    return (this.db.batch as (o: unknown, opts: unknown) => Promise<void>).call(this.db, ops, { sync });
  }

  /**
   * Every write goes through here, one at a time. After a failed write (ENOSPC, I/O error) LevelDB's
   * log may end in a partial record, and a record appended after it is dropped when the database is
   * next opened — even though its write "succeeded". So the first failure stops all writing until
   * reopen() has recovered the log; until then writes fail fast and callers keep their data.
   */
  private guarded<T>(fn: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.writeFailure) throw new StoreUnwritableError(this.writeFailure);
      try {
        return await fn();
      } catch (e) {
        // A generation worker that died is not a failed write: the log it writes through is intact.
        if (this.db.status === 'open' && !this.writeFailure && !(e instanceof WorkerLostError)) {
          this.writeFailure = e as Error;
          this.onWriteFailure?.(e as Error);
        }
        throw e;
      }
    };
    const p = this.writeChain.then(run, run);
    this.writeChain = p.catch(() => undefined);
    return p;
  }

  /** False after a failed write, until reopen(). */
  get writable(): boolean {
    return this.writeFailure === null;
  }
  get writeError(): string | null {
    return this.writeFailure?.message ?? null;
  }
  /** A reopen in progress (directory reads fail meanwhile). */
  get reopenInProgress(): Promise<void> | null {
    return this.reopening;
  }
  get isOpen(): boolean {
    return this.db.status === 'open';
  }

  /**
   * Close and open the database again after a failed write: LevelDB's recovery drops the partial
   * record and keeps everything written before it. Needs free space (the recovered log becomes a
   * table). If opening fails it is retried until it succeeds or the store is closed for good.
   */
  reopen(retryMs = 1000): Promise<void> {
    this.reopening ??= (async () => {
      await this.writeChain;
      await this.closeBuilders();
      await this.db.close();
      for (;;) {
        const db = new Level<string, Json>(this.path, LEVEL_OPTIONS);
        try {
          await db.open();
          trackOpen(db, resolve(this.path));
          this.db = db;
          break;
        } catch (e) {
          if (this.closedForGood) throw e;
          this.onReopenError?.(e as Error);
          await new Promise((r) => setTimeout(r, retryMs));
        }
      }
      this.sub = jsonSublevels(this.db);
      this.gen = this.generation(this.gen.n);
      this.writeFailure = null;
    })().finally(() => {
      this.reopening = null;
    });
    return this.reopening;
  }
  /** Told when a full sync runs on this thread because its generation worker could not start (or died before). */
  onWorkerUnavailable: ((e: Error) => void) | null = null;
  private workerLost: WorkerLostError | null = null;
  /** Told of each failed attempt to open again. */
  onReopenError: ((e: Error) => void) | null = null;
  private closedForGood = false;

  /** Is there a database in `path` (without creating one)? */
  static exists(path: string): boolean {
    return existsSync(join(path, 'CURRENT'));
  }

  static async open(path: string): Promise<Store> {
    if (existsSync(join(path, RESTORE_MARKER))) throw new Error(`a restore into ${path} did not finish: run doorgw restore again with --force (the directory holds part of a backup)`);
    // LevelDB's lock keeps other processes out; with `multithreading` a second open in this
    // process would share the handle instead, so the store keeps its own list.
    const where = resolve(path);
    if (openInThisProcess.has(where)) throw new StoreLockedError(path);
    // The directory holds card numbers, keys and console password hashes: the gateway's alone
    // (LevelDB would create it 0755 outside systemd's StateDirectory).
    mkdirSync(path, { recursive: true, mode: 0o700 });
    const db = new Level<string, Json>(path, LEVEL_OPTIONS);
    try {
      await db.open();
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') throw new StoreLockedError(path);
      throw e;
    }
    trackOpen(db, where);
    const meta = db.sublevel('meta', { valueEncoding: 'json' }) as unknown as Sub<Json>;
    const gen = (await meta.get('generation')) as number | undefined;
    const seq = ((await meta.get('seq')) as number | undefined) ?? 0;
    const store = new Store(db, path, gen ?? 1, seq);
    await store.outboxRepo.load();
    await store.loadLocalLayer();
    for await (const [k, v] of store.sub<{ since: number; count: number }>('uses').iterator()) store.uses.set(k, v);
    if (gen === undefined) await meta.put('generation', 1);
    await store.recoverInterruptedWork();
    await store.buildSequenceIndexes();
    return store;
  }

  /** Once, for a database written before the sequence indexes existed: index what is there. */
  private async buildSequenceIndexes(): Promise<void> {
    if ((await this.meta.get('seq_index')) === 1) return;
    for (const [which, index] of Object.entries(SEQ_INDEX) as [Timed, string][]) {
      const ops: Op[] = [];
      for await (const k of this.sub<unknown>(which).keys()) {
        ops.push(putOp(this.sub<string>(index), seqPart(k), k));
        if (ops.length >= 1000) await this.write(ops.splice(0), false);
      }
      if (ops.length) await this.write(ops, false);
    }
    await this.write([putOp(this.meta, 'seq_index', 1)], true);
  }

  /**
   * Every key and value of the database as stored (sublevel prefixes included), read from one
   * LevelDB snapshot: a consistent picture however long the caller takes (backup).
   */
  async *rawEntries(): AsyncGenerator<[string, string]> {
    const it = (this.db as unknown as { iterator(o: object): AsyncIterable<[string, string]> }).iterator({ keyEncoding: 'utf8', valueEncoding: 'utf8' });
    for await (const kv of it) yield kv;
  }

  /**
   * Write raw entries (from rawEntries) into a database at `path` that must not exist yet, in
   * batches; the caller marks the directory as restoring until this resolves.
   */
  static async writeRaw(path: string, entries: AsyncIterable<[string, string]>): Promise<number> {
    const db = new Level<string, string>(path, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    await db.open();
    let n = 0;
    try {
      let ops: { type: 'put'; key: string; value: string }[] = [];
      for await (const [key, value] of entries) {
        ops.push({ type: 'put', key, value });
        n++;
        if (ops.length >= 1000) {
          await db.batch(ops);
          ops = [];
        }
      }
      await db.batch(ops, { sync: true });
    } finally {
      await db.close();
    }
    return n;
  }

  async close(): Promise<void> {
    this.closedForGood = true;
    await this.reopening?.catch(() => undefined);
    await this.closeBuilders();
    await this.writeChain;
    await this.db.close();
  }

  private async closeBuilders(): Promise<void> {
    await Promise.all([...this.builders].map((b) => b.close()));
  }

  private get meta(): Sub<Json> {
    return this.sub<Json>('meta');
  }
  private get journal(): Sub<JournalEntry> {
    return this.sub<JournalEntry>('journal');
  }

  private generation(n: number): Generation {
    return generationOf(n, (name) => this.sub(name));
  }

  private async clearGeneration(n: number): Promise<void> {
    const g = this.generation(n);
    for (const s of [g.users, g.openvid, g.card, g.keys, g.templates]) await this.guarded(() => s.clear());
  }

  /** Finish what a crash interrupted: drop a half-built or a retired generation. */
  private async recoverInterruptedWork(): Promise<void> {
    for (const k of ['building', 'retired']) {
      const n = (await this.meta.get(k)) as number | undefined;
      if (n !== undefined && n !== this.gen.n) await this.clearGeneration(n);
      if (n !== undefined) await this.batch([delOp(this.meta, k)]);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Directory

  get generationNumber(): number {
    return this.gen.n;
  }

  async userCount(): Promise<number> {
    return ((await this.meta.get(`count.g${this.gen.n}`)) as number | undefined) ?? 0;
  }

  async *users(opts: { after?: string; limit?: number } = {}): AsyncGenerator<UserRecord> {
    const range = opts.after === undefined ? {} : { gt: opts.after };
    for await (const v of this.gen.users.values({ ...range, limit: opts.limit ?? -1 })) yield v;
  }

  async templatesOf(userid: string): Promise<Template[]> {
    const out: Template[] = [];
    for await (const [k, data] of this.gen.templates.iterator({ gt: `${userid}${SEP}`, lt: `${userid}\u0001` })) {
      const [, kind, id] = k.split(SEP);
      out.push({ kind: kind as Template['kind'], id: id!, data: data });
    }
    return out;
  }

  /** Insert or update users in one atomic batch. */
  async upsertUsers(users: readonly NormalizedUser[]): Promise<void> {
    await this.applyChanges({ upsert: users });
  }

  /** Delete users (records, index entries, templates) in one atomic batch; returns how many existed. */
  async deleteUsers(userids: readonly string[]): Promise<number> {
    return (await this.applyChanges({ delete: userids })).removed;
  }

  /**
   * One atomic change of the current directory: upserts, deletions and meta values (e.g. the
   * directory version the change brings us to) land together or not at all.
   */
  async applyChanges(c: { upsert?: readonly NormalizedUser[]; delete?: readonly string[]; meta?: Record<string, Json> }): Promise<{ added: number; removed: number }> {
    const w = new DirectoryWriter(this.gen);
    for (const id of c.delete ?? []) await w.del(id);
    for (const u of c.upsert ?? []) await w.put(u);
    const count = (await this.userCount()) + w.added - w.removed;
    const meta = Object.entries(c.meta ?? {}).map(([key, value]): Op => (putOp(this.meta, key, value)));
    await this.batch([...w.ops, ...meta, putOp(this.meta, `count.g${this.gen.n}`, count)]);
    return { added: w.added, removed: w.removed };
  }

  /** Add or replace templates of an existing user (local enrolment). */
  async putTemplates(userid: string, templates: readonly Template[]): Promise<void> {
    await this.batch(templates.map((t): Op => (putOp(this.gen.templates, `${userid}${SEP}${t.kind}${SEP}${t.id}`, t.data))));
  }

  /** Rename a user, keeping rules, key, cards and templates (WeCom push_change_userid). */
  async renameUser(from: string, to: string, meta: Record<string, Json> = {}): Promise<boolean> {
    const record = this.gen.users.getSync(from);
    if (!record) return false;
    const templates = await this.templatesOf(from);
    const key = record.key_id ? this.gen.keys.getSync(record.key_id) : undefined;
    const { key_id: _k, ...rest } = record;
    await this.applyChanges({
      delete: [from],
      upsert: [{ record: { ...rest, userid: to }, key: key === undefined ? null : Buffer.from(key, 'base64'), templates }],
      meta,
    });
    return true;
  }

  /** Erase the directory (users, keys, templates) and the given meta keys, atomically. */
  async eraseDirectory(metaKeys: readonly string[] = []): Promise<void> {
    await this.replaceDirectory([], undefined, {});
    await this.batch(metaKeys.map((key): Op => (delOp(this.meta, key))));
  }

  /**
   * Replace the whole directory: written into a fresh generation, switched to in one batch.
   * Until the switch, decisions use the previous complete directory.
   */
  async replaceDirectory(
    users: AsyncIterable<NormalizedUser> | Iterable<NormalizedUser>,
    onProgress?: (written: number) => void,
    meta: Record<string, Json> | (() => Record<string, Json>) = {},
  ): Promise<number> {
    const old = this.gen.n;
    const next = this.generation(old + 1);
    await this.putMeta('building', next.n);
    await this.clearGeneration(next.n);
    const added = Symbol.asyncIterator in users ? await this.buildInWorker(next, users, onProgress) : await this.buildHere(next, users, onProgress);
    await this.batch([
      putOp(this.meta, 'generation', next.n),
      putOp(this.meta, `count.g${next.n}`, added),
      putOp(this.meta, 'retired', old),
      delOp(this.meta, `count.g${old}`),
      delOp(this.meta, 'building'),
      ...Object.entries(typeof meta === 'function' ? meta() : meta).map(([key, value]): Op => (putOp(this.meta, key, value))),
    ]);
    this.gen = next;
    this.keyCache.clear();
    await this.warmKeys();
    await this.clearGeneration(old);
    await this.batch([delOp(this.meta, 'retired')]);
    return added;
  }

  /** A small or in-memory replacement (an erase, tests), or a listing when no worker could start: on this thread. */
  private async buildHere(g: Generation, users: AsyncIterable<NormalizedUser> | Iterable<NormalizedUser>, onProgress?: (written: number) => void): Promise<number> {
    const w = new DirectoryWriter(g);
    let written = 0;
    const flush = async (): Promise<void> => {
      await this.batch(w.ops.splice(0));
      w.resetOverlay();
      onProgress?.(written);
    };
    for await (const u of users) {
      await w.put(u);
      if (++written % CHUNK === 0) await flush();
      else if (written % YIELD_EVERY === 0) await yieldToEventLoop();
    }
    await flush();
    return w.added;
  }

  /**
   * A replacement streamed from a cloud listing: a worker thread reads, encodes and writes it (see
   * generation-builder.ts) while this thread keeps collecting the next chunk. Each write still
   * goes through guarded(), in turn with the journal's.
   */
  private async buildInWorker(g: Generation, users: AsyncIterable<NormalizedUser>, onProgress?: (written: number) => void): Promise<number> {
    let builder: GenerationBuilder;
    try {
      // A worker that died in an earlier sync (its heap is bounded; a record can be bigger) would
      // die again on the same listing: until a restart, full syncs are written here.
      if (this.workerLost) throw this.workerLost;
      builder = await GenerationBuilder.start(this.path, g.n);
    } catch (e) {
      // No thread to be had (memory, a broken install): the directory must still update.
      this.onWorkerUnavailable?.(e as Error);
      return this.buildHere(g, users, onProgress);
    }
    this.builders.add(builder);
    let inFlight: Promise<void> | null = null as Promise<void> | null;
    try {
      let written = 0;
      const send = (chunk: NormalizedUser[], upTo: number): Promise<void> => {
        const p = (async () => {
          await builder.prepare(chunk);
          await this.guarded(() => builder.write());
          onProgress?.(upTo);
        })();
        p.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
        return p;
      };
      let chunk: NormalizedUser[] = [];
      let chunkBytes = 0;
      for await (const u of users) {
        let bytes = 0;
        for (const t of u.templates) bytes += t.data.length;
        // The clouds' normalisers bound templates far below this; a record that is not bounded
        // must not reach a heap-capped worker (see generation-builder.ts). This sync fails, and the
        // next ones are written here.
        if (bytes > WORKER_RECORD_MAX_BYTES) throw new WorkerLostError(`user ${u.record.userid} has ${bytes} bytes of templates, too many for the generation worker`);
        chunk.push(u);
        chunkBytes += bytes;
        if (++written % CHUNK === 0 || chunkBytes >= CHUNK_TEMPLATE_BYTES) {
          await inFlight;
          inFlight = send(chunk, written);
          chunk = [];
          chunkBytes = 0;
        } else if (written % YIELD_EVERY === 0) {
          // Normalising a page runs in the listing's generator, on this thread: give turns.
          await yieldToEventLoop();
        }
      }
      await inFlight;
      if (chunk.length) await send(chunk, written);
      return builder.added;
    } catch (e) {
      // The listing failed (or a write did): let the chunk in flight finish before the worker
      // closes, so its write is not cut in half.
      await inFlight?.catch(() => undefined);
      if (e instanceof WorkerLostError) this.workerLost = e;
      throw e;
    } finally {
      await builder.close();
      this.builders.delete(builder);
    }
  }

  /**
   * Import up to `limit` stored keys into the key cache, so the first person at the door after a
   * start or a full sync does not pay for the import (a directory shares few corp keys).
   */
  async warmKeys(limit = 256): Promise<number> {
    let n = 0;
    for await (const id of this.gen.keys.keys({ limit })) {
      this.directory.publicKey(id);
      n++;
    }
    return n;
  }

  // -------------------------------------------------------------------------------------------
  // Local directory layer

  private async loadLocalLayer(): Promise<void> {
    for await (const [id, r] of this.sub<UserRecord>('lu').iterator()) this.local.users.set(id, r);
    for await (const [id, f] of this.sub<LocalFields>('la').iterator()) this.local.adjustments.set(id, f);
    for await (const [kid, b64] of this.sub<string>('lk').iterator()) this.local.keys.set(kid, b64);
    this.local.reindex();
  }

  /** A cloud user's own record (no local adjustments applied), from the directory in force. */
  cloudUser(userid: string): UserRecord | undefined {
    return this.gen.users.getSync(userid);
  }
  localUser(userid: string): UserRecord | undefined {
    return this.local.users.get(userid);
  }
  localAdjustment(userid: string): LocalFields | undefined {
    return this.local.adjustments.get(userid);
  }
  get localCount(): { users: number; adjustments: number } {
    return { users: this.local.users.size, adjustments: this.local.adjustments.size };
  }
  /** Local users sorted by userid (paging by `after`). */
  localUsers(after?: string): UserRecord[] {
    return [...this.local.users.keys()].filter((id) => after === undefined || id > after).sort().map((id) => this.local.users.get(id)!);
  }
  localAdjustments(): [string, LocalFields][] {
    return [...this.local.adjustments].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
  /** Who holds a card in the local layer (local users, cards added to cloud users). */
  localCardOwners(card: string): string[] {
    return this.local.localCardOwners(card) ?? [];
  }
  cloudCardOwners(card: string): string[] {
    return this.gen.card.getSync(card) ?? [];
  }

  /**
   * Write local users (with their public keys) and adjustments in one atomic batch; then the
   * in-memory layer follows. `null` removes an entry.
   */
  async putLocal(c: { users?: { record: UserRecord; key?: Buffer | null }[]; removeUsers?: string[]; adjustments?: [string, LocalFields | null][] }): Promise<void> {
    const lu = this.sub<UserRecord>('lu');
    const la = this.sub<LocalFields>('la');
    const lk = this.sub<string>('lk');
    const ops: Op[] = [];
    const keys = new Map<string, string>();
    const users = (c.users ?? []).map(({ record, key }) => {
      const kid = key ? keyId(key) : (key === null ? null : record.key_id);
      if (key && kid) keys.set(kid, key.toString('base64'));
      return { ...record, key_id: kid };
    });
    for (const u of users) ops.push(putOp(lu, u.userid, u));
    for (const id of c.removeUsers ?? []) ops.push(delOp(lu, id));
    for (const [id, f] of c.adjustments ?? []) ops.push(f ? putOp(la, id, f) : delOp(la, id));
    for (const [kid, b64] of keys) if (!this.local.keys.has(kid)) ops.push(putOp(lk, kid, b64));
    await this.batch(ops, true);
    for (const u of users) this.local.users.set(u.userid, u);
    for (const id of c.removeUsers ?? []) this.local.users.delete(id);
    for (const [id, f] of c.adjustments ?? []) {
      if (f) this.local.adjustments.set(id, f);
      else this.local.adjustments.delete(id);
    }
    for (const [kid, b64] of keys) this.local.keys.set(kid, b64);
    this.local.reindex();
  }

  // -------------------------------------------------------------------------------------------
  // Site facts (envelopes as verified when received; the site unit keeps SiteLayer in step)

  siteFacts(): AsyncGenerator<SiteEnvelope> {
    return this.facts.all();
  }
  /** Write facts (the newest envelope of each subject) in one synced batch. */
  putSiteFacts(facts: readonly SiteEnvelope[]): Promise<void> {
    return this.facts.put(facts);
  }
  siteFact(subject: string): Promise<SiteEnvelope | undefined> {
    return this.facts.get(subject);
  }

  /** Cards and openvids claimed twice, userids in both layers, adjustments of users gone from the cloud. */
  localConflicts(): DirectoryConflict[] {
    return this.local.conflicts({
      cardOwners: (c) => this.gen.card.getSync(c),
      openvidOwners: (o) => this.gen.openvid.getSync(o),
      hasUser: (id) => this.gen.users.getSync(id) !== undefined,
    });
  }

  // -------------------------------------------------------------------------------------------
  // Console accounts (hashes only)

  webAccounts(): Promise<WebAccount[]> {
    return this.accounts.all();
  }
  webAccount(name: string): Promise<WebAccount | undefined> {
    return this.accounts.get(name);
  }
  putWebAccount(a: WebAccount | { name: string; delete: true }): Promise<void> {
    return this.accounts.put(a);
  }

  // -------------------------------------------------------------------------------------------
  // Meta

  async getMeta<T extends Json>(key: string): Promise<T | undefined> {
    return (await this.meta.get(key)) as T | undefined;
  }
  /** Null deletes the key (LevelDB's JSON encoding cannot hold a null value: a put would fail as a write error). */
  async putMeta(key: string, value: Json): Promise<void> {
    await this.batch([value === null ? delOp(this.meta, key) : putOp(this.meta, key, value)]);
  }

  // -------------------------------------------------------------------------------------------
  // Journal and outbox

  /**
   * Append decisions to the journal and pass records to the outbox in one synced batch (a power
   * cut after this resolves loses nothing). Sequence numbers are assigned here.
   */
  async append(entries: readonly JournalAppend[]): Promise<JournalEntry[]> {
    if (entries.length === 0) return [];
    let out: JournalEntry[] = [];
    await this.sequenced((next) => {
      out = [];
      const ops: Op[] = [];
      for (const e of entries) {
        const seq = next();
        const j = { ...e.decision, seq };
        out.push(j);
        ops.push(...this.timedPut('journal', j.at, seq, j));
        if (e.pass) ops.push(this.outboxRepo.putOp({ ...e.pass, seq }));
        if (e.replay) ops.push(this.replayRepo.putOp(e.replay));
        if (e.use) ops.push(putOp(this.sub<unknown>('uses'), e.use.userid, { since: e.use.since, count: e.use.count }));
      }
      return ops;
    }, () => out.map((entry) => ({ seq: entry.seq, kind: 'decision' as const, entry })));
    this.outboxRepo.added(entries.filter((e) => e.pass).length);
    return out;
  }

  /**
   * Told of every landed write that took sequence numbers, in order: the range it took and the
   * journal records among them (an outbox requeue takes numbers and journals nothing). The site
   * journal publishes from this, so the numbers it has not seen are exactly the ones it missed.
   */
  onSequenced(listener: SequencedListener): () => void {
    this.sequencedListeners.push(listener);
    return () => {
      this.sequencedListeners = this.sequencedListeners.filter((l) => l !== listener);
    };
  }
  private sequencedListeners: SequencedListener[] = [];

  /**
   * A synced batch that takes sequence numbers: numbered when it runs (writes run one at a time),
   * and the counter moves only when it lands, so a failed write wastes no numbers.
   */
  private async sequenced(build: (next: () => number) => Op[], records: () => JournalRecord[] = () => []): Promise<void> {
    await this.guarded(async () => {
      const from = this.seq + 1;
      let seq = this.seq;
      const ops = build(() => ++seq);
      ops.push(putOp(this.meta, 'seq', seq));
      await this.write(ops, true);
      this.seq = seq;
      if (seq < from) return;
      const rs = records();
      for (const l of this.sequencedListeners) {
        try {
          l(from, seq, rs);
        } catch {
          /* a listener's failure is its own; the write has landed */
        }
      }
    });
  }

  /** The site's other doors' passages of a site user's temporary credential (set by the site's use counts). */
  siteUses: ((userid: string, since: number) => number) | null = null;

  /** Temporary credentials' passages, in memory for decisions (the disk follows with the journal). */
  private readonly uses = new Map<string, { since: number; count: number }>();

  /** A passage of a temporary credential happened: counted now (the next decision sees it), written with its journal entry. */
  noteUse(u: UseCount): void {
    const cur = this.uses.get(u.userid);
    const count = cur && cur.since === u.since ? Math.max(cur.count, u.count) : u.count;
    this.uses.set(u.userid, { since: u.since, count });
  }

  /** The last sequence number taken (journal, door events and outbox share it). */
  get lastSeq(): number {
    return this.seq;
  }

  /**
   * The journal records (decisions and door events) with from ≤ seq ≤ to, oldest first, at most
   * `limit`; `to` in the answer is how far it looked (every record up to it is in `records`: the
   * numbers without one were pruned, or taken by the outbox).
   */
  async journalRecords(from: number, to: number, limit: number): Promise<{ records: JournalRecord[]; to: number }> {
    const read = async <T>(which: Timed): Promise<{ seq: number; value: T }[]> => {
      const refs: [string, string][] = [];
      for await (const kv of this.sub<string>(SEQ_INDEX[which]).iterator({ gte: pad(from, 12), lte: pad(to, 12), limit })) refs.push(kv);
      const values = await this.sub<T>(which).getMany(refs.map(([, ref]) => ref));
      return refs.flatMap(([k], i) => (values[i] === undefined ? [] : [{ seq: Number(k), value: values[i] }]));
    };
    const [decisions, events] = await Promise.all([read<JournalEntry>('journal'), read<DoorEventRecord & { seq: number }>('doorevents')]);
    const all: JournalRecord[] = [...decisions.map((d) => ({ seq: d.seq, kind: 'decision' as const, entry: d.value })), ...events.map((e) => ({ seq: e.seq, kind: 'event' as const, entry: e.value }))].sort((a, b) => a.seq - b.seq);
    if (all.length <= limit) return { records: all, to };
    const records = all.slice(0, limit);
    return { records, to: records[records.length - 1]!.seq };
  }

  /** An entry of a time-keyed sublevel and its sequence index, in one batch. */
  private timedPut(which: Timed, at: number, seq: number, value: Json): Op[] {
    const key = `${pad(at, 13)}!${pad(seq, 12)}`;
    return [
      putOp(this.sub<unknown>(which), key, value),
      putOp(this.sub<string>(SEQ_INDEX[which]), pad(seq, 12), key),
    ];
  }

  /** The newest journal entries by sequence (not by wall time: see the layout). */
  async recentJournal(limit = 50): Promise<JournalEntry[]> {
    return (await this.pageBySeq<JournalEntry>('journal', { limit, reverse: true }, () => true)).entries;
  }

  /** Door events (contact, alarms), kept like the journal. */
  async appendDoorEvent(e: DoorEventRecord): Promise<void> {
    let stored: (DoorEventRecord & { seq: number }) | null = null;
    await this.sequenced((next) => {
      const seq = next();
      stored = { ...e, seq };
      return this.timedPut('doorevents', e.at, seq, { ...e, seq });
    }, () => (stored ? [{ seq: stored.seq, kind: 'event', entry: stored }] : []));
  }

  async recentDoorEvents(limit = 50): Promise<(DoorEventRecord & { seq: number })[]> {
    return (await this.pageBySeq<DoorEventRecord & { seq: number }>('doorevents', { limit, reverse: true }, () => true)).entries;
  }

  /** Journal entries with fromMs ≤ at < toMs, oldest first. */
  async journalBetween(fromMs: number, toMs: number): Promise<JournalEntry[]> {
    const out: JournalEntry[] = [];
    for await (const v of this.journal.values({ gt: `${pad(fromMs, 13)}!`, lt: `${pad(toMs, 13)}!` })) out.push(v);
    return out;
  }

  /**
   * One page of the journal (or door events) with fromMs ≤ at < toMs, oldest first (newest first
   * with `reverse`), entries passing `keep`. Stops after `limit` matches or `scanLimit` entries read,
   * whichever comes first, so a rare filter over a year never holds the caller long; `next` is the
   * cursor to continue from (null: the range is done). Memory is bounded by the page.
   */
  async journalPage<T>(
    which: Timed,
    q: { fromMs: number; toMs: number; after?: string | null; limit: number; scanLimit?: number; reverse?: boolean; bySeq?: boolean },
    keep: (e: T) => boolean,
  ): Promise<{ entries: T[]; next: string | null }> {
    if (q.bySeq) return this.pageBySeq(which, q, keep);
    const lo = `${pad(Math.max(0, q.fromMs), 13)}!`;
    const hi = `${pad(Math.min(q.toMs, 9_999_999_999_999), 13)}!`;
    const range: Range = q.reverse ? { gte: lo, lt: q.after ?? hi, reverse: true } : { gt: q.after ?? lo, lt: hi };
    const entries: T[] = [];
    let scanned = 0;
    let last: string | null = null;
    const scanLimit = q.scanLimit ?? 50_000;
    for await (const [k, v] of this.sub<T>(which).iterator(range)) {
      last = k;
      scanned++;
      if (keep(v)) entries.push(v);
      if (entries.length >= q.limit || scanned >= scanLimit) return { entries, next: last };
    }
    return { entries, next: null };
  }

  /** journalPage in sequence order (no time range): the cursor is a sequence number. */
  private async pageBySeq<T>(which: Timed, q: { after?: string | null; limit: number; scanLimit?: number; reverse?: boolean }, keep: (e: T) => boolean): Promise<{ entries: T[]; next: string | null }> {
    const index = this.sub<string>(SEQ_INDEX[which]);
    const sub = this.sub<T>(which);
    const range: Range = q.reverse ? { ...(q.after ? { lt: q.after } : {}), reverse: true } : q.after ? { gt: q.after } : {};
    const entries: T[] = [];
    let scanned = 0;
    let chunk: [string, string][] = [];
    const scanLimit = q.scanLimit ?? 50_000;
    const take = async (): Promise<string | null> => {
      const values = await sub.getMany(chunk.map(([, ref]) => ref));
      for (let i = 0; i < chunk.length; i++) {
        scanned++;
        const v = values[i];
        if (v !== undefined && keep(v)) entries.push(v);
        if (entries.length >= q.limit || scanned >= scanLimit) return chunk[i]![0];
      }
      chunk = [];
      return null;
    };
    for await (const kv of index.iterator(range)) {
      chunk.push(kv);
      if (chunk.length >= Math.min(500, q.limit)) {
        const stop = await take();
        if (stop !== null) return { entries, next: stop };
      }
    }
    if (chunk.length) {
      const stop = await take();
      if (stop !== null) return { entries, next: stop };
    }
    return { entries, next: null };
  }

  /** Delete journal entries and door events older than `beforeMs` (and their sequence index); returns how many. */
  async pruneByAge(beforeMs: number): Promise<number> {
    let deleted = 0;
    for (const [name, index] of Object.entries(SEQ_INDEX) as [Timed, string][]) {
      const sub = this.sub<unknown>(name);
      const keys: string[] = [];
      deleted += await deleteKeys(this.db_, sub, (async function* () {
        for await (const k of sub.keys({ lt: `${pad(beforeMs, 13)}!` })) {
          keys.push(seqPart(k));
          yield k;
        }
      })());
      await deleteKeys(this.db_, this.sub<string>(index), keys);
    }
    return deleted;
  }

  /** Add pass records to the outbox with fresh sequence numbers (reconciliation requeue). */
  async outboxAppend(records: readonly Omit<PassRecord, 'seq'>[]): Promise<number[]> {
    let seqs: number[] = [];
    await this.sequenced((next) => {
      seqs = [];
      return records.map((r): Op => {
        const seq = next();
        seqs.push(seq);
        return this.outboxRepo.putOp({ ...r, seq });
      });
    });
    this.outboxRepo.added(seqs.length);
    return seqs;
  }

  /** Keep the newest `maxEntries` journal entries, by sequence; returns how many were deleted. */
  async pruneJournal(maxEntries: number): Promise<number> {
    const floor = this.seq - maxEntries;
    if (floor <= 0) return 0;
    const index = this.sub<string>(SEQ_INDEX.journal);
    const seqs: string[] = [];
    const refs = (async function* () {
      for await (const [k, ref] of index.iterator({ lte: pad(floor, 12) })) {
        seqs.push(k);
        yield ref;
      }
    })();
    const n = await deleteKeys(this.db_, this.journal, refs);
    await deleteKeys(this.db_, index, seqs);
    return n;
  }

  outboxPeek(limit = 200): Promise<PassRecord[]> {
    return this.outboxRepo.peek(limit);
  }
  outboxDepth(): Promise<number> {
    return Promise.resolve(this.outboxRepo.depth);
  }
  outboxRemove(seqs: readonly number[]): Promise<void> {
    return this.outboxRepo.remove(seqs);
  }
  /** Move outbox records aside (they keep failing, or the cloud has no code for them). */
  outboxHold(records: readonly PassRecord[], reason: string): Promise<void> {
    return this.outboxRepo.hold(records, reason);
  }
  heldRecords(limit = 1000): Promise<HeldRecord[]> {
    return this.outboxRepo.heldRecords(limit);
  }
  heldCount(): Promise<number> {
    return this.outboxRepo.heldCount();
  }
  /** Delete held records (all, or the given seqs): the journal keeps the passes; returns how many. */
  discardHeld(seqs?: readonly number[]): Promise<number> {
    return this.outboxRepo.discardHeld(seqs);
  }
  /** Put held records back into the outbox (all, or the given seqs); returns how many. */
  requeueHeld(seqs?: readonly number[]): Promise<number> {
    return this.outboxRepo.requeueHeld(seqs);
  }

  // -------------------------------------------------------------------------------------------
  // Area presence (anti-passback)

  /** Record (or, with null, forget) a person's presence in an area. */
  putPresence(area: string, userid: string, p: Presence | null): Promise<void> {
    return this.presence.put(area, userid, p);
  }
  /** Every recorded presence, by area. */
  loadPresence(): Promise<Map<string, Map<string, Presence>>> {
    return this.presence.load();
  }

  // -------------------------------------------------------------------------------------------
  // Replay memory

  /**
   * Delete replay entries (those the guard let go: ended on both clocks, or evicted). Which have
   * ended is the guard's to say: the wall clock alone cannot (see domain/replay.ts).
   */
  deleteReplay(keys: readonly string[]): Promise<number> {
    return this.replayRepo.delete(keys);
  }
  /** Every persisted replay entry (a bare number: `until`, as stored by versions before 2026-12). */
  loadReplay(): Promise<[string, StoredReplay][]> {
    return this.replayRepo.load();
  }
}

function single(ids: string[] | undefined): string | null | undefined {
  if (ids === undefined || ids.length === 0) return undefined;
  return ids.length === 1 ? ids[0]! : null;
}
