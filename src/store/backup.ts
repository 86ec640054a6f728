/**
 * Backup and restore of a gateway's data directory as one file.
 *
 * Format (version 1): gzip of JSON lines —
 *   {"format":"doorgw-backup","version":1,"created":<ms>,"gateway_id":…,"doorgw":…}
 *   {"k":<key>,"v":<value>}          every database entry, raw, from one LevelDB snapshot
 *   {"file":<name>,"mode":<n>,"b64":…} the data directory's files that matter (the WeCom secret, OSDP reader keys,
 *                                       the Feishu user token, the door's site key)
 *   {"end":true,"entries":N,"files":M,"sha256":<hex of every byte before this line>}
 * The database holds the directory (both layers, keys, templates), journal, door events, outbox,
 * held records, replay memory, door modes and area presence: everything a door needs to resume.
 *
 * A backup is written to `<file>.partial` (mode 0600: it holds the device secret) and renamed when
 * complete. A restore reads the file twice: first to verify the checksum and version (nothing is
 * written for a bad file), then to write; a marker file makes an interrupted restore refuse to start.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, openSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { once } from 'node:events';
import { createGunzip, createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { rawEntryProblem } from './backup-check.js';
import { RESTORE_MARKER, Store } from './store.js';

export const BACKUP_FORMAT = 'doorgw-backup';
export const BACKUP_VERSION = 1;
/** Files of the data directory carried in a backup (besides the database). */
const DATA_FILES = ['wecom-secret.json', 'osdp-keys.json', 'feishu-user-token.json', 'site-door-key.pem'];
/** A line longer than this is not one we wrote. */
const MAX_LINE = 8 * 1024 * 1024;

export class BackupError extends Error {}

export interface BackupReport {
  file: string;
  bytes: number;
  entries: number;
  files: number;
  sha256: string;
  created: number;
}

/**
 * Why a backup may not be written to `file` (null: it may). Never into the data directory itself
 * (`doorgw backup <data_dir>/CURRENT` once replaced LevelDB's CURRENT, and the next start failed);
 * never over an existing file unless forced; with `onlyIn`, only inside that directory (null: not
 * configured, so nowhere).
 */
export function backupTargetProblem(file: string, o: { dataDir: string; force: boolean; onlyIn?: string | null | undefined }): string | null {
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const dir = real(dirname(resolve(file)));
  if (dir === real(o.dataDir)) return `${file} is inside the data directory ${o.dataDir}: write backups elsewhere (e.g. a backups/ directory)`;
  if (o.onlyIn !== undefined) {
    if (o.onlyIn === null) return 'backups over MQTT go only into backup.dir, and none is configured';
    const within = real(o.onlyIn);
    if (dir !== within && !dir.startsWith(`${within}/`)) return `backups over MQTT go only into ${o.onlyIn} (backup.dir)`;
  }
  if (existsSync(file) && !o.force) return `${file} exists: give another name${o.onlyIn === undefined ? ', or --force to replace it' : ''}`;
  return null;
}

export async function writeBackup(store: Store, dataDir: string, file: string, meta: { gateway_id: string; doorgw: string }): Promise<BackupReport> {
  const partial = `${file}.partial`;
  const hash = createHash('sha256');
  const gzip = createGzip();
  // Opened here, so a path the gateway cannot write fails at once with the system's reason.
  const out = createWriteStream(partial, { fd: openSync(partial, 'w', 0o600) });
  const done = pipeline(gzip, out);
  done.catch(() => undefined); // awaited below; a failure surfaces there
  const write = async (obj: unknown): Promise<void> => {
    const line = `${JSON.stringify(obj)}\n`;
    hash.update(line);
    if (!gzip.write(line)) await once(gzip, 'drain');
  };
  const created = Date.now();
  let entries = 0;
  let files = 0;
  try {
    await write({ format: BACKUP_FORMAT, version: BACKUP_VERSION, created, ...meta });
    for await (const [k, v] of store.rawEntries()) {
      await write({ k, v });
      entries++;
    }
    for (const name of DATA_FILES) {
      const p = join(dataDir, name);
      if (!existsSync(p)) continue;
      await write({ file: name, mode: statSync(p).mode & 0o777, b64: readFileSync(p).toString('base64') });
      files++;
    }
    const sha256 = hash.digest('hex');
    gzip.end(`${JSON.stringify({ end: true, entries, files, sha256 })}\n`);
    await done;
    renameSync(partial, file);
    return { file, bytes: statSync(file).size, entries, files, sha256, created };
  } catch (e) {
    gzip.destroy();
    await done.catch(() => undefined);
    rmSync(partial, { force: true });
    throw e;
  }
}

type Line = { format?: string; version?: number; created?: number; gateway_id?: string; k?: string; v?: string; file?: string; mode?: number; b64?: string; end?: boolean; entries?: number; files?: number; sha256?: string };

/**
 * The file's lines, each bounded while it is read: a line is never held beyond MAX_LINE bytes
 * (readline holds a whole line first: a 900 MB line from a 917 KB gzip file crashed `restore --check`).
 */
async function* lines(file: string): AsyncGenerator<{ raw: string; obj: Line }> {
  let parts: Buffer[] = [];
  let size = 0;
  const parse = (raw: string): { raw: string; obj: Line } => {
    let obj: Line;
    try {
      obj = JSON.parse(raw) as Line;
    } catch {
      throw new BackupError(`${file}: damaged (a line is not JSON)`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new BackupError(`${file}: damaged (a line is not a record)`);
    return { raw, obj };
  };
  const tooLong = (): BackupError => new BackupError(`${file}: a line longer than ${MAX_LINE} bytes: not a doorgw backup`);
  for await (const chunk of createReadStream(file).pipe(createGunzip()) as AsyncIterable<Buffer>) {
    let from = 0;
    for (let nl = chunk.indexOf(10, from); nl !== -1; nl = chunk.indexOf(10, from)) {
      if (size + nl - from > MAX_LINE) throw tooLong();
      parts.push(chunk.subarray(from, nl));
      yield parse(Buffer.concat(parts).toString('utf8'));
      parts = [];
      size = 0;
      from = nl + 1;
    }
    size += chunk.length - from;
    if (size > MAX_LINE) throw tooLong();
    if (from < chunk.length) parts.push(chunk.subarray(from));
  }
  if (size > 0) yield parse(Buffer.concat(parts).toString('utf8'));
}

export interface BackupInfo {
  created: number;
  gateway_id: string;
  entries: number;
  files: number;
  sha256: string;
}

/** Read the whole file and check its format, version, completeness and checksum. */
export async function verifyBackup(file: string): Promise<BackupInfo> {
  if (!existsSync(file)) throw new BackupError(`${file}: no such file`);
  const hash = createHash('sha256');
  let header: Line | null = null;
  let end: Line | null = null;
  let entries = 0;
  let files = 0;
  try {
    for await (const { raw, obj } of lines(file)) {
      if (end) throw new BackupError(`${file}: data after the end record`);
      if (!header) {
        if (obj.format !== BACKUP_FORMAT) throw new BackupError(`${file}: not a doorgw backup`);
        if (obj.version !== BACKUP_VERSION) throw new BackupError(`${file}: backup format version ${String(obj.version)}; this doorgw reads version ${BACKUP_VERSION}`);
        header = obj;
      } else if (obj.end === true) {
        end = obj;
        continue;
      } else if (typeof obj.k === 'string' && typeof obj.v === 'string') {
        const why = rawEntryProblem(obj.k, obj.v);
        if (why) throw new BackupError(`${file}: entry ${entries + 1} refused (${why}): nothing was written`);
        entries++;
      }
      else if (typeof obj.file === 'string' && typeof obj.b64 === 'string' && DATA_FILES.includes(obj.file)) files++;
      else throw new BackupError(`${file}: an unknown record`);
      hash.update(`${raw}\n`);
    }
  } catch (e) {
    if (e instanceof BackupError) throw e;
    throw new BackupError(`${file}: damaged or truncated (${(e as Error).message})`);
  }
  if (!header) throw new BackupError(`${file}: empty`);
  if (!end) throw new BackupError(`${file}: truncated (no end record): the backup did not finish`);
  const sha256 = hash.digest('hex');
  if (end.sha256 !== sha256 || end.entries !== entries || end.files !== files) throw new BackupError(`${file}: checksum mismatch: the file is damaged`);
  return { created: header.created ?? 0, gateway_id: header.gateway_id ?? '', entries, files, sha256 };
}

/** LevelDB's own files in a data directory (what a forced restore replaces). */
function databaseFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => /^(CURRENT|LOCK|LOG|LOG\.old|MANIFEST-\d+|\d+\.(ldb|log|sst))$/.test(f));
}

/**
 * Restore `file` into `dataDir`. Refuses a directory that holds a database unless `force` (the
 * caller has made sure no gateway runs on it: LevelDB's lock refuses otherwise).
 */
export async function restoreBackup(file: string, dataDir: string, o: { force?: boolean } = {}): Promise<BackupInfo> {
  const info = await verifyBackup(file);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const marker = join(dataDir, RESTORE_MARKER);
  if (Store.exists(dataDir) && !existsSync(marker)) {
    if (!o.force) throw new BackupError(`${dataDir} holds a gateway database: restore onto a fresh data directory, or give --force to replace it`);
    // Opening it proves no gateway holds it (LevelDB's lock), and closing releases it for us.
    const s = await Store.open(dataDir);
    await s.close();
  }
  writeFileSync(marker, `restore of ${basename(file)} started ${new Date().toISOString()}\n`);
  for (const f of databaseFiles(dataDir)) rmSync(join(dataDir, f), { force: true });
  async function* entries(): AsyncGenerator<[string, string]> {
    for await (const { obj } of lines(file)) if (typeof obj.k === 'string' && typeof obj.v === 'string') yield [obj.k, obj.v];
  }
  await Store.writeRaw(dataDir, entries());
  for await (const { obj } of lines(file)) {
    if (typeof obj.file !== 'string' || typeof obj.b64 !== 'string' || !DATA_FILES.includes(obj.file)) continue;
    const p = join(dataDir, obj.file);
    writeFileSync(`${p}.tmp`, Buffer.from(obj.b64, 'base64'), { mode: 0o600 });
    chmodSync(`${p}.tmp`, (obj.mode ?? 0o600) & 0o600);
    renameSync(`${p}.tmp`, p);
  }
  rmSync(marker);
  return info;
}
