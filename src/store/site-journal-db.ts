/**
 * The site journal in PostgreSQL (issue 24) — the only module that imports `pg` and PGlite. Every
 * door's records keyed by (gateway, seq), written with what they cover in one transaction, so a
 * kill -9 between the two never leaves the coverage claiming rows that are not there, and a record
 * delivered twice (a broker's redelivery, a range asked again) is written once.
 *
 * Layout:
 *   journal     (gateway, seq, at) primary key, partitioned by month of `at` (UTC), so retention
 *               drops whole months; indexes for the queries: (at), (userid, at), (door, at).
 *               `at` is in the key because a partitioned table's key must hold the partition
 *               column: a record's `at` never changes, so (gateway, seq) still names one row.
 *   gateways    per door: the sequence ranges held (or known empty), its newest number (head),
 *               its doors (from its signed report), when it was last heard.
 *
 * With no URL the database is PGlite (PostgreSQL compiled to WebAssembly) in a directory: one
 * command shows the collector working; production names a PostgreSQL server.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Interval } from '../domain/coverage.js';
import { cover } from '../domain/coverage.js';
import type { JournalRecord } from '../domain/journal-records.js';

interface Sql {
  query<T>(text: string, params?: unknown[]): Promise<T[]>;
  tx<T>(fn: (q: <R>(text: string, params?: unknown[]) => Promise<R[]>) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

async function pgSql(url: string): Promise<Sql> {
  const { default: pg } = await import('pg');
  // bigint as number: sequence numbers stay far below 2^53.
  pg.types.setTypeParser(20, (v: string) => Number(v));
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => undefined); // an idle client's failure: the next query reconnects
  const run = async <T>(c: { query: (t: string, p?: unknown[]) => Promise<{ rows: unknown[] }> }, text: string, params?: unknown[]): Promise<T[]> => (await c.query(text, params)).rows as T[];
  return {
    query: (text, params) => run(pool, text, params),
    async tx(fn) {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        const out = await fn((text, params) => run(c, text, params));
        await c.query('COMMIT');
        return out;
      } catch (e) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw e;
      } finally {
        c.release();
      }
    },
    close: () => pool.end(),
  };
}

/**
 * One process at a time in an embedded database (PGlite is not a server: two processes in one
 * directory would corrupt it). A lock file beside the directory names the process that holds it.
 */
function lockEmbedded(dir: string): () => void {
  const lock = `${dir}.lock`;
  mkdirSync(dirname(lock), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
      return () => rmSync(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(lock, 'utf8'));
      let alive = false;
      try {
        alive = Number.isInteger(pid) && pid > 0 && pid !== process.pid && (process.kill(pid, 0), true);
      } catch {
        alive = false;
      }
      if (alive) throw new EmbeddedBusyError(dir, pid);
      rmSync(lock, { force: true }); // its process is gone
    }
  }
  throw new EmbeddedBusyError(dir, null);
}

export class EmbeddedBusyError extends Error {
  constructor(dir: string, pid: number | null) {
    super(`the embedded database in ${dir} is open in ${pid ? `process ${pid} (the collector)` : 'another process'}: stop it to read the database here, or give the collector a PostgreSQL URL (database.url), which any number of processes can read`);
    this.name = 'EmbeddedBusyError';
  }
}

async function pgliteSql(dir: string): Promise<Sql> {
  const unlock = lockEmbedded(dir);
  const { PGlite } = await import('@electric-sql/pglite');
  let db: InstanceType<typeof PGlite>;
  try {
    db = await PGlite.create(dir);
  } catch (e) {
    unlock();
    throw e;
  }
  const run = async <T>(c: { query: (t: string, p?: unknown[]) => Promise<{ rows: unknown[] }> }, text: string, params?: unknown[]): Promise<T[]> => {
    const rows = (await c.query(text, params)).rows as Record<string, unknown>[];
    // PGlite returns int8 as BigInt: as number, like pg above.
    for (const r of rows) for (const k of Object.keys(r)) if (typeof r[k] === 'bigint') r[k] = Number(r[k]);
    return rows as T[];
  };
  return {
    query: (text, params) => run(db, text, params),
    tx: (fn) => db.transaction((tx) => fn((text, params) => run(tx, text, params))),
    close: async () => {
      await db.close();
      unlock();
    },
  };
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS journal (
     gateway text NOT NULL,
     seq bigint NOT NULL,
     at timestamptz NOT NULL,
     kind text NOT NULL,
     door text NOT NULL,
     decision text, reason text, userid text, user_type text, method text, direction text, reader text, type text, detail text,
     entry jsonb NOT NULL,
     received_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (gateway, seq, at)
   ) PARTITION BY RANGE (at)`,
  `CREATE INDEX IF NOT EXISTS journal_at ON journal (at)`,
  `CREATE INDEX IF NOT EXISTS journal_user_at ON journal (userid, at)`,
  `CREATE INDEX IF NOT EXISTS journal_door_at ON journal (door, at)`,
  `CREATE TABLE IF NOT EXISTS gateways (
     gateway text PRIMARY KEY,
     covered jsonb NOT NULL DEFAULT '[]',
     head bigint NOT NULL DEFAULT 0,
     doors jsonb,
     last_seen timestamptz
   )`,
  `ALTER TABLE gateways ADD COLUMN IF NOT EXISTS report jsonb`,
  // The site console's accounts (the door console's rules: roles, scrypt hashes made by the CLI).
  `CREATE TABLE IF NOT EXISTS web_accounts (name text PRIMARY KEY, role text NOT NULL, hash text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`,
  // Presence in site areas as the doors state it (signed; the newest of each person).
  `CREATE TABLE IF NOT EXISTS presence (area text NOT NULL, userid text NOT NULL, where_ text NOT NULL, at bigint NOT NULL, gateway text NOT NULL, door text NOT NULL, PRIMARY KEY (area, userid))`,
  // Safe marks of musters, with who marked.
  `CREATE TABLE IF NOT EXISTS muster_marks (area text NOT NULL, userid text NOT NULL, by_ text NOT NULL, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (area, userid, at))`,
];

export interface GatewayRow {
  gateway: string;
  covered: Interval[];
  head: number;
  doors: string[] | null;
  last_seen: Date | null;
}

export interface SiteJournalFilter {
  fromMs: number;
  toMs: number;
  gateway?: string;
  door?: string;
  userid?: string;
  kind?: 'decision' | 'event';
  decision?: string;
  reason?: string;
  method?: string;
  type?: string;
  /** Minutes of the day [start, end) in `zone`; wraps past midnight when end < start. */
  timeOfDay?: [number, number];
  zone: string;
}

export interface SiteJournalRow {
  gateway: string;
  seq: number;
  at: number;
  kind: 'decision' | 'event';
  door: string;
  decision: string | null;
  reason: string | null;
  userid: string | null;
  user_type: string | null;
  method: string | null;
  direction: string | null;
  reader: string | null;
  type: string | null;
  detail: string | null;
}

/** Months (UTC) as partition names and bounds: 2026-12 → journal_2026_12, [2026-12-01, 2027-01-01). */
function monthOf(ms: number): { name: string; from: string; to: string } {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const iso = (yy: number, mm: number) => `${String(yy).padStart(4, '0')}-${String(mm + 1).padStart(2, '0')}-01 00:00:00+00`;
  return { name: `journal_${String(y).padStart(4, '0')}_${String(m + 1).padStart(2, '0')}`, from: iso(y, m), to: m === 11 ? iso(y + 1, 0) : iso(y, m + 1) };
}

export class SiteJournalDb {
  private readonly months = new Set<string>();

  private constructor(private readonly sql: Sql) {}

  /** Open (and create or update the schema of) the site journal: a PostgreSQL URL, or a PGlite directory. */
  static async open(where: { url: string } | { dir: string }): Promise<SiteJournalDb> {
    const sql = 'url' in where ? await pgSql(where.url) : await pgliteSql(where.dir);
    const db = new SiteJournalDb(sql);
    try {
      for (const s of SCHEMA) await sql.query(s);
    } catch (e) {
      await sql.close().catch(() => undefined);
      throw e;
    }
    return db;
  }

  close(): Promise<void> {
    return this.sql.close();
  }

  async gateways(): Promise<GatewayRow[]> {
    return this.sql.query<GatewayRow>('SELECT gateway, covered, head, doors, last_seen FROM gateways ORDER BY gateway');
  }

  /** A door's signed report: its doors (the only ones its records may name), kept whole for the console. */
  async noteReport(gateway: string, doors: string[], report: unknown): Promise<void> {
    await this.sql.query(
      `INSERT INTO gateways (gateway, doors, report, last_seen) VALUES ($1, $2::jsonb, $3::jsonb, now())
       ON CONFLICT (gateway) DO UPDATE SET doors = EXCLUDED.doors, report = EXCLUDED.report, last_seen = now()`,
      [gateway, JSON.stringify(doors), JSON.stringify(report)],
    );
  }

  /** Every gateway with its last report and its newest record (the site console's door list). */
  async overview(): Promise<{ gateway: string; report: unknown; last_seen: Date | null; head: number; covered: Interval[]; last: SiteJournalRow | null }[]> {
    const gws = await this.sql.query<{ gateway: string; report: unknown; last_seen: Date | null; head: number; covered: Interval[] }>('SELECT gateway, report, last_seen, head, covered FROM gateways ORDER BY gateway');
    const out = [];
    for (const g of gws) {
      const [last] = await this.page({ fromMs: 0, toMs: 9_999_999_999_999, zone: 'UTC', gateway: g.gateway }, 1, null, 'desc');
      out.push({ ...g, last: last ?? null });
    }
    return out;
  }

  async webAccount(name: string): Promise<{ name: string; role: 'viewer' | 'operator' | 'admin'; hash: string } | null> {
    const [a] = await this.sql.query<{ name: string; role: 'viewer' | 'operator' | 'admin'; hash: string }>('SELECT name, role, hash FROM web_accounts WHERE name = $1', [name]);
    return a ?? null;
  }

  async putWebAccount(name: string, role: string, hash: string): Promise<void> {
    await this.sql.query('INSERT INTO web_accounts (name, role, hash) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, hash = EXCLUDED.hash, updated_at = now()', [name, role, hash]);
  }

  /** A verified presence transition: kept when newer than the one held (time, then gateway, then door). */
  async notePresence(p: { area: string; userid: string; where: string; at: number; gateway: string; door: string }): Promise<void> {
    await this.sql.query(
      `INSERT INTO presence (area, userid, where_, at, gateway, door) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (area, userid) DO UPDATE SET where_ = EXCLUDED.where_, at = EXCLUDED.at, gateway = EXCLUDED.gateway, door = EXCLUDED.door
       WHERE (EXCLUDED.at, EXCLUDED.gateway, EXCLUDED.door) > (presence.at, presence.gateway, presence.door)`,
      [p.area, p.userid, p.where, p.at, p.gateway, p.door],
    );
  }

  /** Who is in each area (or one) by the newest transitions, with their safe marks since `sinceMs`. */
  async inside(area: string | undefined, sinceMs: number): Promise<{ area: string; userid: string; at: number; gateway: string; door: string; safe_by: string | null; safe_at: number | null }[]> {
    return this.sql.query(
      `SELECT p.area, p.userid, p.at, p.gateway, p.door, m.by_ AS safe_by, (extract(epoch FROM m.at) * 1000)::bigint AS safe_at
       FROM presence p LEFT JOIN LATERAL (SELECT by_, at FROM muster_marks WHERE area = p.area AND userid = p.userid AND at >= to_timestamp($2 / 1000.0) ORDER BY at DESC LIMIT 1) m ON true
       WHERE p.where_ = 'in' ${area !== undefined ? 'AND p.area = $1' : 'AND ($1::text IS NULL OR true)'} ORDER BY p.area, p.at, p.userid`,
      [area ?? null, sinceMs],
    );
  }

  async markSafe(area: string, userid: string, by: string): Promise<void> {
    await this.sql.query('INSERT INTO muster_marks (area, userid, by_) VALUES ($1, $2, $3)', [area, userid, by]);
  }

  /**
   * Write a batch: its records (each once), the range it covers, the head — in one transaction.
   * Returns how many records were new, and the gateway's coverage after it.
   */
  async writeBatch(gateway: string, covers: Interval | null, head: number, records: readonly JournalRecord[]): Promise<{ inserted: number; covered: Interval[]; head: number }> {
    for (const r of records) await this.ensureMonth(r.entry.at);
    return this.sql.tx(async (q) => {
      let inserted = 0;
      if (records.length) {
        const rows = records.map((r) => {
          const e = r.entry as unknown as Record<string, unknown>;
          const s = (k: string): string | null => {
            const v = e[k];
            return v === undefined || v === null ? null : typeof v === 'string' ? v : JSON.stringify(v);
          };
          return { seq: r.seq, at: r.entry.at, kind: r.kind, door: r.entry.door, decision: s('decision'), reason: s('reason'), userid: s('userid'), user_type: s('user_type'), method: s('method'), direction: s('direction'), reader: s('reader'), type: s('type'), detail: s('detail'), entry: e };
        });
        const out = await q<{ seq: number }>(
          `INSERT INTO journal (gateway, seq, at, kind, door, decision, reason, userid, user_type, method, direction, reader, type, detail, entry)
           SELECT $1, r.seq, to_timestamp(r.at / 1000.0), r.kind, r.door, r.decision, r.reason, r.userid, r.user_type, r.method, r.direction, r.reader, r.type, r.detail, r.entry
           FROM jsonb_to_recordset($2::jsonb) AS r(seq bigint, at bigint, kind text, door text, decision text, reason text, userid text, user_type text, method text, direction text, reader text, type text, detail text, entry jsonb)
           ON CONFLICT DO NOTHING RETURNING seq`,
          [gateway, JSON.stringify(rows)],
        );
        inserted = out.length;
      }
      const [g] = await q<{ covered: Interval[]; head: number }>(
        `INSERT INTO gateways (gateway, last_seen) VALUES ($1, now())
         ON CONFLICT (gateway) DO UPDATE SET last_seen = now() RETURNING covered, head`,
        [gateway],
      );
      const covered = covers ? cover(g!.covered, covers[0], covers[1]) : g!.covered;
      const newHead = Math.max(g!.head, head);
      await q('UPDATE gateways SET covered = $2::jsonb, head = $3 WHERE gateway = $1', [gateway, JSON.stringify(covered), newHead]);
      return { inserted, covered, head: newHead };
    });
  }

  private async ensureMonth(ms: number): Promise<void> {
    const m = monthOf(ms);
    if (this.months.has(m.name)) return;
    // Concurrent creation by another collector is harmless (IF NOT EXISTS, and the bounds are the same).
    await this.sql.query(`CREATE TABLE IF NOT EXISTS ${m.name} PARTITION OF journal FOR VALUES FROM ('${m.from}') TO ('${m.to}')`);
    this.months.add(m.name);
  }

  /** Drop the months that ended before `beforeMs` (retention); returns the partitions dropped. */
  async dropMonthsBefore(beforeMs: number): Promise<string[]> {
    const limit = monthOf(beforeMs).name;
    const parts = await this.sql.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'journal' ORDER BY 1`,
    );
    const dropped: string[] = [];
    for (const { name } of parts) {
      if (!/^journal_\d{4}_\d{2}$/.test(name) || name >= limit) continue;
      await this.sql.query(`DROP TABLE ${name}`);
      this.months.delete(name);
      dropped.push(name);
    }
    return dropped;
  }

  /** How many rows, and how many distinct (gateway, seq): equal unless something was written twice. */
  async counts(gateway?: string): Promise<{ rows: number; distinct: number }> {
    const [r] = await this.sql.query<{ rows: number; distinct: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT (gateway, seq))::int AS distinct FROM journal ${gateway ? 'WHERE gateway = $1' : ''}`,
      gateway ? [gateway] : [],
    );
    return r!;
  }

  /**
   * One page of the site journal, oldest first, after the cursor `(at ms, gateway, seq)`; at most
   * `limit` rows. Keyset paging: a year streams page by page in bounded memory.
   */
  async page(f: SiteJournalFilter, limit: number, after: [number, string, number] | null, order: 'asc' | 'desc' = 'asc'): Promise<SiteJournalRow[]> {
    const where: string[] = ['at >= to_timestamp($1 / 1000.0)', 'at < to_timestamp($2 / 1000.0)'];
    const params: unknown[] = [f.fromMs, f.toMs];
    const eq = (col: string, v: string | undefined): void => {
      if (v === undefined) return;
      params.push(v);
      where.push(`${col} = $${params.length}`);
    };
    eq('gateway', f.gateway);
    eq('door', f.door);
    eq('userid', f.userid);
    eq('kind', f.kind);
    eq('decision', f.decision);
    eq('reason', f.reason);
    eq('method', f.method);
    eq('type', f.type);
    if (f.timeOfDay) {
      params.push(f.zone);
      const mins = `(extract(hour FROM at AT TIME ZONE $${params.length}) * 60 + extract(minute FROM at AT TIME ZONE $${params.length}))`;
      const [a, b] = f.timeOfDay;
      where.push(a <= b ? `${mins} >= ${a} AND ${mins} < ${b}` : `(${mins} >= ${a} OR ${mins} < ${b})`);
    }
    const cmp = order === 'asc' ? '>' : '<';
    if (after) {
      params.push(after[0], after[1], after[2]);
      const n = params.length;
      where.push(`(at, gateway, seq) ${cmp} (to_timestamp($${n - 2} / 1000.0), $${n - 1}, $${n})`);
    }
    params.push(limit);
    const dir = order === 'asc' ? 'ASC' : 'DESC';
    return this.sql.query<SiteJournalRow>(
      `SELECT gateway, seq, (extract(epoch FROM at) * 1000)::bigint AS at, kind, door, decision, reason, userid, user_type, method, direction, reader, type, detail
       FROM journal WHERE ${where.join(' AND ')} ORDER BY at ${dir}, gateway ${dir}, seq ${dir} LIMIT $${params.length}`,
      params,
    );
  }
}
