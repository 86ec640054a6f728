/**
 * What the CLI can ask of a gateway's data. One implementation over the store, used directly when
 * the gateway is not running and through the control socket when it is (LevelDB admits one process).
 */
import type { ReaderStatus } from '../io/readers/reader.js';
import { compileDoorPolicy } from '../domain/door-policy.js';
import { parseSavedMode } from '../domain/modes.js';
import { decide, type DoorContext, type PolicyOptions } from '../domain/policy.js';
import { usersApi, type UsersApi } from './users-api.js';
import { journalQuery, type JournalPage, type JournalQuery } from './journal-api.js';
import { DOOR_MODES, type Credential, type Decision, type DoorMode } from '../domain/types.js';
import type { StorageState } from '../store/storage-guard.js';
import type { Config } from '../config/schema.js';
import type { MusterActions, MusterReport } from '../domain/muster.js';
import type { FireResetReport, IoStatus } from '../domain/io-status.js';
import type { SiteStatus } from '../domain/site-facts.js';

type WecomAppConfig = NonNullable<Config['cloud']['wecom_app']>;
import type { DoorEventRecord, HeldRecord, JournalEntry, PassRecord, Store } from '../store/store.js';
import type { BackupReport } from '../store/backup.js';
import type { CloudAdapter, CloudState, SyncReport } from '../cloud/adapter.js';
import type { ReconcileReport } from '../cloud/wecom-app/reconcile.js';
import { createLogger, type Logger } from '../log.js';
import { UsageError } from './errors.js';
import { PASSWORD_HASH, WEB_ROLES, type WebRole } from '../domain/password.js';

export interface CheckParams {
  qr?: string;
  card?: string;
  userid?: string;
  door?: string;
  /** Unix seconds; default now. */
  at?: number;
}

export type { ImportReport, UserDetail, UserRow } from './users-api.js';
export type { JournalPage, JournalQuery, JournalRow } from './journal-api.js';

export interface Status {
  gateway_id: string;
  version: string;
  running: boolean;
  /** People the door knows: the cloud directory plus local users. */
  users: number;
  local_users: number;
  /** Cloud users with local adjustments (blocks, added cards, …). */
  local_adjustments: number;
  generation: number;
  outbox_depth: number;
  /** Unix seconds of the oldest record waiting in the outbox; null when empty. */
  outbox_oldest: number | null;
  /**
   * How long the oldest record has waited (s), on the monotonic clock while the gateway runs (a
   * wall-clock step neither fakes nor hides a stalled outbox); null when empty or not running.
   */
  outbox_waiting_s?: number | null;
  held: number;
  /** Each door's mode now, and when a timed mode ends (unix ms). */
  doors: { id: string; name: string; mode: string; until: number | null; why?: string; lock?: 'locked' | 'unlocked'; contact?: string; alarm?: string | null }[];
  uptime_s: number | null;
  cloud: CloudState | null;
  /** The data directory's disk (running gateway only). */
  storage: StorageStatus | null;
  /** Why the web console is not serving although enabled. */
  web_error?: string | null;
  /** The door's fingerprint module (null: none). */
  fingerprint_module?: 'online' | 'offline' | null;
  /** Supervised readers (OSDP): their link, security, tamper and power (running gateway). */
  readers?: ReaderStatus[];
  /** The gateway's time zone (times in answers are shown in it). */
  timezone?: string;
  /** The broker link (running gateway with MQTT enabled): how long it has been down, and the MQTT readers that depend on it. */
  mqtt?: MqttStatus | null;
  /** The site (running gateway with site.enabled): facts held, complete or not, threat levels. */
  site?: SiteStatus | null;
  /** The gateway's named inputs and outputs, and fire release (null: not running). */
  io?: IoStatus | null;
}

export interface MqttStatus {
  connected: boolean;
  /** Seconds the link has been down (0 while connected), measured on the monotonic clock. */
  down_s: number;
  /** Readers that reach the gateway only through the broker. */
  readers: string[];
  /** Messages not sent because they were larger than the broker accepts. */
  oversized: number;
}

export { healthProblems, type HealthLimits } from './health.js';

export interface GatewayApi extends UsersApi {
  status(): Promise<Status>;
  check(p: CheckParams): Promise<Decision>;
  journal(p: { limit?: number }): Promise<JournalEntry[]>;
  /** Decisions or door events by time range, person, door, decision, reason, method; one page. */
  journalQuery(p: JournalQuery): Promise<JournalPage>;
  /** Open a door now, as an operator (running gateway only; denied in lockdown). */
  open(p: { door: string; by?: string }): Promise<Decision>;
  /** Re-lock a door now (ends a pulse in progress). */
  lock(p: { door: string; by?: string }): Promise<{ door: string }>;
  /** Console accounts (name, role, when; never the hash). */
  webUsers(p: Record<string, never>): Promise<{ name: string; role: string; created_at: number; updated_at: number }[]>;
  /** Add or change a console account; `hash` is scrypt (the CLI hashes: no password leaves it). */
  webUserPut(p: { name: string; role: string; hash?: string; by?: string }): Promise<{ name: string; role: string; created: boolean }>;
  webUserRemove(p: { name: string; by?: string }): Promise<{ removed: string }>;
  /** Give an OSDP reader a fresh random secure-channel key by KEYSET (running gateway; the reader must be answering). */
  osdpEnroll(p: { reader: string; by?: string }): Promise<ReaderStatus>;
  /** Drop an OSDP reader's key (a reader replaced or reset): it must be enrolled again. */
  osdpForget(p: { reader: string; by?: string }): Promise<{ reader: string; forgotten: boolean }>;
  /**
   * A consistent backup of the data directory into `file` (written by the gateway's user). Never
   * into the data directory itself; an existing file only with `force` (the CLI's --force); over
   * MQTT only into `backup.dir`.
   */
  backup(p: { file: string; by?: string; force?: boolean }): Promise<BackupReport>;
  /** Door contact changes and alarms, newest first. */
  doorEvents(p: { limit?: number }): Promise<(DoorEventRecord & { seq: number })[]>;
  /** A full directory sync from the cloud (gateway running with a cloud provider). */
  sync(): Promise<SyncReport>;
  outbox(p: { limit?: number }): Promise<{ queued: PassRecord[]; held: HeldRecord[] }>;
  /** Held records back into the outbox: all, or the given seqs (unknown seqs are an error, nothing moves). */
  requeue(p: { seqs?: number[]; by?: string }): Promise<{ requeued: number }>;
  /** Set a door's mode now, for `duration_s` or until changed (running gateway only). */
  setMode(p: { door: string; mode: DoorMode; duration_s?: number; by?: string }): Promise<{ door: string; mode: DoorMode; until: number | null }>;
  /** End a latched fire release (every released door, or one): refused per door while its fire alarm is still active. */
  fireReset(p: { door?: string; by?: string }): Promise<FireResetReport>;
  /** Forgive a person's area anti-passback (all areas, or one): their next passage is allowed either way. */
  forgive(p: { userid: string; area?: string }): Promise<{ forgiven: number }>;
  /** A door's static scan-to-open code for printing (WeCom gen_login_qrcode), the image bytes in base64. */
  staticScanCode(p: { door: string }): Promise<{ door: string; image_b64: string; bytes: number }>;
  /** Who is inside each area (or one) now, with the last door and time, and the muster's safe marks. */
  muster(p: { area?: string }): Promise<MusterReport>;
  /** Begin a muster of an area (a fire release begins one by itself); ends one with `end`. */
  musterStart(p: { area: string; end?: boolean; by?: string }): Promise<MusterReport>;
  /** Mark a person inside the area safe during its muster (journaled with who did). */
  musterSafe(p: { area: string; userid: string; by?: string }): Promise<{ marked: true; area: string; userid: string }>;
  /** Give up on held records the cloud will never take (the journal keeps the passes). */
  discard(p: { seqs?: number[]; reason?: string; by?: string }): Promise<{ discarded: number }>;
  /**
   * Compare the journal with WeCom's pass records for [since, until) (unix s). `app` and `zone`
   * are the caller's (the CLI's configuration), so a running gateway answers with them.
   */
  reconcile(p: { since: number; until: number; requeue?: boolean; app?: WecomAppConfig; zone?: string }): Promise<ReconcileReport>;
}



export function policyOf(config: Config): PolicyOptions {
  return { default_allow: config.policy.default_allow, replay_protection: config.policy.replay_protection, qr_skew_s: config.qr.clock_skew_s };
}

export function doorContext(config: Config, doorId: string): DoorContext {
  const d = config.doors.find((x) => x.id === doorId);
  if (!d) throw new UsageError(`no door '${doorId}' in the configuration (doors: ${config.doors.map((x) => x.id).join(', ')})`);
  return { id: d.id, mode: d.mode, timezone: d.timezone ?? config.timezone, policy: compileDoorPolicy(d.policy, config.groups, config.holidays) };
}

export interface RunningGateway {
  since: number;
  /** How long the outbox's head record (by seq) has waited, monotonic ms (see domain/clock.ts HeadAge). */
  outboxWaitingMs?: (seq: number | null, wallAgeMs: number) => number | null;
  /** The broker link (null: MQTT not enabled). */
  mqtt?: () => MqttStatus | null;
  cloud: () => CloudAdapter | null;
  /** Disk state and records held in memory; null before the guard starts. */
  storage?: () => StorageStatus | null;
  /** The door's mode now (set at run time over MQTT, persisted). */
  modeOf?: (door: string) => DoorMode | undefined;
  /** When the door's timed mode ends (unix ms), if it has one. */
  modeUntil?: (door: string) => number | null;
  /** Why the door is in its mode. */
  modeWhy?: (door: string) => string;
  forgive?: (userid: string, area?: string) => number;
  muster?: () => MusterActions | null;
  staticCode?: (door: string) => Promise<Buffer>;
  setMode?: (door: string, mode: DoorMode, o: { untilMs?: number; by?: string }) => boolean;
  /** Who holds the door in its mode (the site's threat level), or null. */
  heldBy?: (door: string) => string | null;
  /** The site's facts at this door (null: site off). */
  site?: () => SiteStatus | null;
  io?: () => IoStatus | null;
  fireReset?: (doors: string[] | undefined, by: string) => FireResetReport;
  /** A fire release holds this door released now. */
  fireHeld?: (door: string) => boolean;
  /** Open a door as an operator; the decision (denied in lockdown). */
  open?: (door: string, by: string) => Decision | null;
  /** End a pulse in progress now. */
  lock?: (door: string) => void;
  doorState?: (door: string) => { lock: 'locked' | 'unlocked'; contact: string; alarm: string | null };
  /** Why the web console is not serving, if it should be. */
  webError?: () => string | null;
  /** The fingerprint module answering (null: none). */
  fingerprintOnline?: () => boolean | null;
  /** Supervised readers' status. */
  readers?: () => ReaderStatus[];
  /** Enroll an OSDP reader (undefined: no such supervised reader). */
  enrollReader?: (reader: string) => Promise<ReaderStatus> | undefined;
  /** A console account changed or went: its sessions end. */
  accountChanged?: (name: string) => void;
}

export interface StorageStatus extends StorageState {
  /** Journal entries and pass records waiting in memory for the disk. */
  held_in_memory: number;
  /** Entries dropped at the memory bound during a disk outage. */
  dropped: number;
}

/**
 * A door's mode: the running gateway's, else the one it persisted, else the configured one — one
 * source of truth for status, check and the door itself.
 */
async function modeOf(store: Store, config: Config, running: RunningGateway | null, door: string): Promise<DoorMode> {
  const live = running?.modeOf?.(door);
  if (live) return live;
  return parseSavedMode(await store.getMeta(`door.${door}.mode`), Date.now())?.mode ?? config.doors.find((d) => d.id === door)?.mode ?? 'normal';
}

export function localApi(store: Store, config: Config, version: string, running: RunningGateway | null = null, log?: Logger): GatewayApi {
  /** Operator actions are door events (type operator_action), queryable like the rest of the journal. */
  /** The running gateway's musters, for an area that exists (or every area). */
  const musterOf = (area: string | undefined) => {
    const m = running?.muster?.();
    if (!m) throw new UsageError('the gateway is not running: the muster is the running gateway\'s (its presence is in memory)', 'unavailable');
    if (area !== undefined && !(area in config.areas)) throw new UsageError(`no area '${area}' (areas: ${Object.keys(config.areas).join(', ') || 'none'})`);
    if (Object.keys(config.areas).length === 0) throw new UsageError('no areas are configured (areas: a muster lists who is inside one)');
    return m;
  };
  const journalAction = async (by: string, what: string, door = 'gateway'): Promise<void> => {
    await store.appendDoorEvent({ type: 'operator_action', door, at: Date.now(), detail: `${by}: ${what}` }).catch((e: unknown) => log?.warn({ err: e, what }, 'operator action not journaled'));
  };
  const validBy = (by: unknown): string => (typeof by === 'string' && by.length > 0 ? by.slice(0, 100) : 'api');
  return {
    ...usersApi(store, config, journalAction),
    journalQuery: journalQuery(store, config),

    async open(p) {
      if (!running?.open) throw new UsageError('the gateway is not running: doors are opened by a running gateway', 'unavailable');
      if (typeof p.door !== 'string' || !config.doors.some((d) => d.id === p.door)) throw new UsageError(`no door '${String(p.door)}' (doors: ${config.doors.map((d) => d.id).join(', ')})`, 'not_found');
      const by = validBy(p.by);
      const d = running.open(p.door, by);
      if (!d) throw new UsageError(`door '${p.door}' did not take the command`, 'unavailable');
      await journalAction(by, `open (${d.decision}${d.decision === 'deny' ? `: ${d.reason}` : ''})`, p.door);
      return d;
    },

    async webUsers() {
      return (await store.webAccounts()).map(({ hash: _h, ...a }) => a);
    },

    async webUserPut(p) {
      if (typeof p.name !== 'string' || !/^[A-Za-z0-9_.-]{1,32}$/.test(p.name)) throw new UsageError('an account name is 1-32 letters, digits, _ . or -');
      if (!(WEB_ROLES as readonly string[]).includes(p.role)) throw new UsageError(`role must be ${WEB_ROLES.join(', ')}`);
      if (p.hash !== undefined && (typeof p.hash !== 'string' || !PASSWORD_HASH.test(p.hash))) throw new UsageError('hash must be a doorgw scrypt hash (the CLI makes it)');
      const prev = await store.webAccount(p.name);
      if (!prev && p.hash === undefined) throw new UsageError(`no account '${p.name}': a new account needs a password`, 'not_found');
      const now = Date.now();
      await store.putWebAccount({ name: p.name, role: p.role as WebRole, hash: p.hash ?? prev!.hash, created_at: prev?.created_at ?? now, updated_at: now });
      running?.accountChanged?.(p.name);
      await journalAction(validBy(p.by), `web user ${prev ? 'changed' : 'added'}: ${p.name} (${p.role})${p.hash !== undefined && prev ? ', new password' : ''}`);
      return { name: p.name, role: p.role, created: !prev };
    },

    async webUserRemove(p) {
      if (typeof p.name !== 'string' || !(await store.webAccount(p.name))) throw new UsageError(`no account '${String(p.name)}'`, 'not_found');
      await store.putWebAccount({ name: p.name, delete: true });
      running?.accountChanged?.(p.name);
      await journalAction(validBy(p.by), `web user removed: ${p.name}`);
      return { removed: p.name };
    },

    async osdpEnroll(p) {
      if (!running?.enrollReader) throw new UsageError('the gateway is not running: readers are enrolled by the running gateway that polls them', 'unavailable');
      if (typeof p.reader !== 'string') throw new UsageError('reader is required');
      const pending = running.enrollReader(p.reader);
      const osdp = config.doors.flatMap((d) => d.readers).filter((r) => r.type === 'osdp').map((r) => r.id);
      if (!pending) throw new UsageError(`no OSDP reader '${p.reader}' (OSDP readers: ${osdp.join(', ') || 'none'})`, 'not_found');
      let st: ReaderStatus;
      try {
        st = await pending;
      } catch (e) {
        throw new UsageError(`reader '${p.reader}' not enrolled: ${(e as Error).message}`, 'unavailable');
      }
      await journalAction(validBy(p.by), `enrolled OSDP reader ${p.reader} with a new key`, st.door);
      return st;
    },

    async osdpForget(p) {
      if (typeof p.reader !== 'string') throw new UsageError('reader is required');
      const { OsdpKeyFile } = await import('../io/osdp/keys.js');
      const file = new OsdpKeyFile(config.data_dir);
      const osdp = config.doors.flatMap((d) => d.readers.filter((r) => r.type === 'osdp').map((r) => ({ id: r.id, door: d.id })));
      const known = osdp.find((r) => r.id === p.reader);
      if (!known && !file.enrolled(p.reader).enrolled) throw new UsageError(`no OSDP reader '${p.reader}' (OSDP readers: ${osdp.map((r) => r.id).join(', ') || 'none'})`, 'not_found');
      const forgotten = file.forget(p.reader);
      if (forgotten) await journalAction(validBy(p.by), `dropped the key of OSDP reader ${p.reader}`, known?.door);
      return { reader: p.reader, forgotten };
    },

    async fireReset(p) {
      if (!running?.fireReset) throw new UsageError('the gateway is not running: a fire release is reset on the running gateway', 'unavailable');
      if (p.door !== undefined && (typeof p.door !== 'string' || !config.doors.some((d) => d.id === p.door))) throw new UsageError(`no door '${String(p.door)}' (doors: ${config.doors.map((d) => d.id).join(', ')})`, 'not_found');
      const by = validBy(p.by);
      const r = running.fireReset(p.door === undefined ? undefined : [p.door], by);
      if (r.reset.length || r.refused.length) await journalAction(by, `fire reset: ${r.reset.length ? `reset ${r.reset.join(', ')}` : 'nothing reset'}${r.refused.length ? `; refused ${r.refused.map((x) => x.door).join(', ')}: ${r.refused[0]!.reason}` : ''}`, p.door);
      return r;
    },

    async lock(p) {
      if (!running?.lock) throw new UsageError('the gateway is not running: doors are locked by a running gateway', 'unavailable');
      if (typeof p.door !== 'string' || !config.doors.some((d) => d.id === p.door)) throw new UsageError(`no door '${String(p.door)}' (doors: ${config.doors.map((d) => d.id).join(', ')})`, 'not_found');
      // Said, not silently ignored: the relay would not move, and the operator must know why.
      if (running.fireHeld?.(p.door)) throw new UsageError(`door '${p.door}' is released by a fire alarm: it stays released until the release ends (doorgw fire status, doorgw fire reset)`, 'conflict');
      running.lock(p.door);
      await journalAction(validBy(p.by), 'lock', p.door);
      return { door: p.door };
    },

    async backup(p) {
      if (typeof p.file !== 'string' || p.file.length === 0) throw new UsageError('file is required');
      const path = await import('node:path');
      if (!path.isAbsolute(p.file)) throw new UsageError('file must be an absolute path (it is written by the gateway process)');
      const { backupTargetProblem, writeBackup } = await import('../store/backup.js');
      const overMqtt = validBy(p.by).startsWith('mqtt');
      const problem = backupTargetProblem(p.file, { dataDir: config.data_dir, force: p.force === true && !overMqtt, onlyIn: overMqtt ? (config.backup.dir ?? null) : undefined });
      if (problem) throw new UsageError(problem, 'forbidden');
      let r: BackupReport;
      try {
        r = await writeBackup(store, config.data_dir, p.file, { gateway_id: config.gateway_id, doorgw: version });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EACCES' || code === 'ENOENT' || code === 'EROFS' || code === 'ENOSPC') throw new UsageError(`cannot write ${p.file} as the gateway's user: ${(e as Error).message}`, 'unavailable');
        throw e;
      }
      await journalAction(validBy(p.by), `backup to ${p.file} (${r.entries} entries)`);
      return r;
    },
    async status() {
      return {
        gateway_id: config.gateway_id,
        version,
        running: running !== null,
        users: (await store.userCount()) + store.localCount.users,
        local_users: store.localCount.users,
        local_adjustments: store.localCount.adjustments,
        generation: store.generationNumber,
        outbox_depth: await store.outboxDepth(),
        ...(await (async () => {
          const head = (await store.outboxPeek(1))[0];
          const waiting = running?.outboxWaitingMs?.(head ? head.seq : null, head ? Date.now() - head.timestamp * 1000 : 0);
          return { outbox_oldest: head?.timestamp ?? null, outbox_waiting_s: waiting === undefined || waiting === null ? null : Math.round(waiting / 1000) };
        })()),
        held: await store.heldCount(),
        doors: await Promise.all(config.doors.map(async (d) => ({ id: d.id, name: d.name ?? d.id, mode: await modeOf(store, config, running, d.id), until: running?.modeUntil?.(d.id) ?? null, ...(running?.modeWhy ? { why: running.modeWhy(d.id) } : {}), ...(running?.doorState?.(d.id) ?? {}) }))),
        uptime_s: running ? Math.round((Date.now() - running.since) / 1000) : null,
        cloud: running?.cloud()?.state$.value ?? null,
        storage: running?.storage?.() ?? null,
        web_error: running?.webError?.() ?? null,
        fingerprint_module: ((v) => (v === null || v === undefined ? null : v ? 'online' : 'offline'))(running?.fingerprintOnline?.()),
        readers: running?.readers?.() ?? [],
        timezone: config.timezone,
        mqtt: running?.mqtt?.() ?? null,
        site: running?.site?.() ?? null,
        io: running?.io?.() ?? null,
      };
    },

    sync() {
      const cloud = running?.cloud();
      if (!running) throw new UsageError('the gateway is not running: start it to sync from the cloud');
      if (!cloud) throw new UsageError('no cloud provider is configured (cloud.provider)');
      return cloud.syncNow();
    },

    async outbox(p) {
      return { queued: await store.outboxPeek(p.limit ?? 100), held: await store.heldRecords(p.limit ?? 100) };
    },

    async reconcile(p) {
      const app = p.app ?? config.cloud.wecom_app;
      const zone = p.zone ?? config.timezone;
      if (!app) throw new UsageError('reconciliation needs cloud.wecom_app (corpid, corpsecret) in the configuration');
      if (!(p.since < p.until)) throw new UsageError('--since must be before --until');
      const sn = app.device_sn ?? config.cloud.wecom?.sn ?? config.gateway_id;
      const { WecomAppClient } = await import('../cloud/wecom-app/client.js');
      const { fetchCloudPasses, localPasses, matchPasses } = await import('../cloud/wecom-app/reconcile.js');
      const client = new WecomAppClient({ baseUrl: app.base_url.replace(/\/$/, ''), corpid: app.corpid, corpsecret: app.corpsecret, timeoutMs: app.request_timeout_ms, log: log ?? createLogger({ level: 'silent', pretty: false }) });
      const cloud = await fetchCloudPasses(client, { sn, userTypes: app.user_types, since: p.since, until: p.until, zone, agentid: app.agentid });
      const local = localPasses(await store.journalBetween(p.since * 1000, p.until * 1000), config.cloud.wecom?.qr_pass_method ?? 2);
      const m = matchPasses(local, cloud.passes);
      let requeued = 0;
      if (p.requeue && m.missing_in_cloud.length) {
        // Skip passes still waiting in the outbox or held aside: they are not lost, only not yet sent.
        const pending = new Set([...(await store.outboxPeek(1_000_000)), ...(await store.heldRecords(1_000_000))].map((r) => `${r.userid}|${r.timestamp}|${r.method}`));
        const byseq = new Map(local.map((l) => [l.seq, l.entry]));
        const again = m.missing_in_cloud
          .map((x) => byseq.get(x.seq)!)
          .filter((e) => !pending.has(`${e.userid}|${Math.floor(e.at / 1000)}|${e.method}`))
          .map((e) => ({ userid: e.userid!, user_type: e.user_type ?? 0, timestamp: Math.floor(e.at / 1000), direction: (e.direction ?? 'unknown') as PassRecord['direction'], method: e.method, door: e.door }));
        requeued = (await store.outboxAppend(again)).length;
        running?.cloud()?.outboxChanged();
      }
      return { device_sn: sn, since: p.since, until: p.until, spans: cloud.spans, local: local.length, cloud: cloud.passes.length, ...m, requeued };
    },

    async requeue(p) {
      checkSeqs(p.seqs);
      await heldSeqsExist(store, p.seqs);
      const requeued = await store.requeueHeld(p.seqs);
      running?.cloud()?.outboxChanged();
      if (requeued) await journalAction(validBy(p.by), `outbox requeue ${p.seqs ? `#${p.seqs.join(', #')}` : 'all held'} (${requeued})`);
      return { requeued };
    },

    async setMode(p) {
      if (!running?.setMode) throw new UsageError('the gateway is not running: modes are set on a running gateway');
      if (!config.doors.some((d) => d.id === p.door)) throw new UsageError(`no door '${p.door}' (doors: ${config.doors.map((d) => d.id).join(', ')})`);
      if (!(DOOR_MODES as readonly string[]).includes(p.mode)) throw new UsageError(`mode '${String(p.mode)}': normal, passage or lockdown`);
      if (p.duration_s !== undefined && !(Number.isInteger(p.duration_s) && p.duration_s >= 1 && p.duration_s <= 30 * 86_400)) throw new UsageError('the duration must be 1 s to 30 days');
      const held = running.heldBy?.(p.door);
      if (held) throw new UsageError(`door '${p.door}' is held in its mode by the site's threat level (${held}): change the level, not the door`, 'conflict');
      const untilMs = p.duration_s !== undefined ? Date.now() + p.duration_s * 1000 : undefined;
      running.setMode(p.door, p.mode, { ...(untilMs !== undefined ? { untilMs } : {}), by: p.by ?? 'cli' });
      await journalAction(validBy(p.by), `mode ${p.mode}${untilMs !== undefined ? ` for ${p.duration_s} s` : ''}`, p.door);
      return { door: p.door, mode: p.mode, until: untilMs ?? null };
    },

    // eslint-disable-next-line @typescript-eslint/require-await
    async forgive(p) {
      if (!running?.forgive) throw new UsageError('the gateway is not running: anti-passback is forgiven on a running gateway');
      if (p.area !== undefined && !(p.area in config.areas)) throw new UsageError(`no area '${p.area}' (areas: ${Object.keys(config.areas).join(', ') || 'none'})`);
      return { forgiven: running.forgive(p.userid, p.area) };
    },

    async staticScanCode(p) {
      if (!config.doors.some((d) => d.id === p.door)) throw new UsageError(`no door '${p.door}' (doors: ${config.doors.map((d) => d.id).join(', ')})`);
      if (!running?.staticCode) throw new UsageError('the static scan code comes from the running gateway logged in to WeCom', 'unavailable');
      const img = await running.staticCode(p.door).catch((e: unknown) => {
        throw new UsageError(`no static code: ${(e as Error).message}`, 'unavailable');
      });
      return { door: p.door, image_b64: img.toString('base64'), bytes: img.length };
    },

    // eslint-disable-next-line @typescript-eslint/require-await
    async muster(p) {
      const m = musterOf(p.area);
      return m.report(p.area);
    },

    // eslint-disable-next-line @typescript-eslint/require-await
    async musterStart(p) {
      const m = musterOf(p.area);
      const by = validBy(p.by);
      if (p.end) {
        if (!m.end(p.area, by)) throw new UsageError(`no muster of area '${p.area}' is on`, 'conflict');
      } else m.start(p.area, by);
      return m.report(p.area);
    },

    // eslint-disable-next-line @typescript-eslint/require-await
    async musterSafe(p) {
      if (typeof p.userid !== 'string' || !p.userid) throw new UsageError('userid is required');
      const r = musterOf(p.area).markSafe(p.area, p.userid, validBy(p.by));
      if (!r.marked) throw new UsageError(r.reason!, 'conflict');
      return { marked: true as const, area: p.area, userid: p.userid };
    },

    async discard(p) {
      checkSeqs(p.seqs);
      if (typeof p.reason !== 'string' || p.reason.trim().length < 3) throw new UsageError('give a reason (journaled with the discard)');
      await heldSeqsExist(store, p.seqs);
      const discarded = await store.discardHeld(p.seqs);
      if (discarded) await journalAction(validBy(p.by), `outbox discard ${p.seqs ? `#${p.seqs.join(', #')}` : 'all held'} (${discarded}): ${p.reason.trim().slice(0, 200)}`);
      return { discarded };
    },

    // A dry run: no relay, no journal, no replay memory; in the door's current mode.
    async check(p) {
      const given = [p.qr, p.card, p.userid].filter((x) => x !== undefined);
      if (given.length !== 1) throw new UsageError('give exactly one of --qr, --card, --userid');
      const credential: Credential =
        p.qr !== undefined ? { type: 'qr', text: p.qr } : p.card !== undefined ? { type: 'card', value: p.card } : { type: 'userid', value: p.userid! };
      const door = doorContext(config, p.door ?? config.doors[0]!.id);
      door.mode = await modeOf(store, config, running, door.id);
      const nowMs = p.at !== undefined ? p.at * 1000 : Date.now();
      return decide({ credential, door, nowMs, directory: store.directory, policy: policyOf(config) });
    },

    journal(p) {
      return store.recentJournal(p.limit ?? 50);
    },

    doorEvents(p) {
      return store.recentDoorEvents(p.limit ?? 50);
    },
  };
}

function checkSeqs(seqs: unknown): void {
  if (seqs === undefined) return;
  if (!Array.isArray(seqs) || seqs.length === 0 || seqs.some((x) => !Number.isSafeInteger(x) || (x as number) < 1)) throw new UsageError('seqs must be a non-empty list of record numbers');
}

/** Refuse seqs that name no held record: "requeued 0" for a typo is no answer. */
async function heldSeqsExist(store: Store, seqs: readonly number[] | undefined): Promise<void> {
  if (!seqs) return;
  const held = new Set((await store.heldRecords(1_000_000)).map((h) => h.seq));
  const unknown = seqs.filter((s) => !held.has(s));
  if (unknown.length) throw new UsageError(`no held record #${unknown.join(', #')} (doorgw outbox lists them)`);
}
