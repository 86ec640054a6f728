/**
 * The Feishu adapter: directory sync at start, periodically and on demand; permission groups
 * (rule_external) read with the admin-granted user token, kept on disk and decided at each door
 * offline. No record upload.
 */
import { BehaviorSubject } from 'rxjs';
import { decideGroups, type FeishuRule } from '../../domain/feishu-groups.js';
import type { CloudVerdict } from '../../domain/policy.js';
import type { UserRecord } from '../../domain/user.js';
import { initialState, type CloudAdapter, type CloudCallback, type CloudContext, type CloudState, type SyncReport } from '../adapter.js';
import { TokenBucket } from '../../domain/rate-limit.js';
import { FeishuClient, FeishuCredentialsError } from './client.js';
import { EventRefused, openEvent, updatedUserId, type OpenedEvent } from './events.js';
import { feishuUser, META_FEISHU_SYNC, syncFeishuDirectory } from './sync.js';
import { readUserToken, validUserToken } from './user-token.js';

/** The groups as last read: per door, the rules bound to its device (persisted: decisions use them offline). */
const META_GROUPS = 'feishu.groups';
type Groups = { at: number; doors: Record<string, FeishuRule[]> };

export class FeishuAdapter implements CloudAdapter {
  readonly state$ = new BehaviorSubject<CloudState>(initialState('feishu', 'connecting'));
  readonly uploadsRecords = false;
  readonly client: FeishuClient;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<SyncReport> | null = null;
  private readonly log: CloudContext['log'];
  private groups: Groups | null = null;
  private groupsTimer: NodeJS.Timeout | null = null;
  private warnedDepartments = false;
  private groupsRun: Promise<void> | null = null;
  private groupsAgain = false;
  /** Event ids taken (Feishu retries an event it thinks unanswered): the newest 4096. */
  private readonly seenEvents = new Set<string>();
  /** Users named by events, to be read again (bounded: past it, one full sync instead). */
  private readonly pendingUsers = new Set<string>();
  private draining: Promise<void> | null = null;
  private fullSyncWanted = false;
  private readonly refusedLog = new TokenBucket(1 / 60, 5);
  private stopped = false;

  constructor(private readonly ctx: CloudContext) {
    const cfg = ctx.config.cloud.feishu;
    if (!cfg) throw new Error('cloud.provider is feishu but cloud.feishu is missing');
    this.log = ctx.log.child({ module: 'feishu' });
    this.client = new FeishuClient({
      baseUrl: cfg.base_url.replace(/\/$/, ''),
      appId: cfg.app_id,
      appSecret: cfg.app_secret,
      log: this.log,
      timeoutMs: cfg.request_timeout_ms,
      maxRetries: cfg.max_retries,
      backoffMs: cfg.backoff_ms,
    });
  }

  private patch(p: Partial<CloudState>): void {
    const cur = this.state$.value;
    this.state$.next({ ...cur, ...p, since: p.link && p.link !== cur.link ? Date.now() : cur.since });
  }

  async start(): Promise<void> {
    this.patch({ last_full_sync: (await this.ctx.store.getMeta<number>(META_FEISHU_SYNC)) ?? null });
    const cfg = this.ctx.config.cloud.feishu!;
    this.timer = setInterval(() => void this.syncNow().catch(() => undefined), cfg.sync_interval_s * 1000);
    this.timer.unref();
    const pg = cfg.permission_groups;
    if (Object.keys(pg.devices).length) this.groups = (await this.ctx.store.getMeta<Groups>(META_GROUPS)) ?? null;
    void this.syncNow().catch(() => undefined); // the door decides from the cache meanwhile
    if (Object.keys(pg.devices).length) {
      this.groupsTimer = setInterval(() => void this.refreshGroups(), pg.refresh_s * 1000);
      this.groupsTimer.unref();
      void this.refreshGroups();
    } else this.log.warn('Feishu permission groups are not configured (cloud.feishu.permission_groups.devices): every listed person passes every door at any hour');
  }

  /** Read the groups now; one read at a time, and one more after it when asked meanwhile. */
  refreshGroups(): Promise<void> {
    if (this.groupsRun) {
      this.groupsAgain = true;
      return this.groupsRun;
    }
    this.groupsRun = (async () => {
      do {
        this.groupsAgain = false;
        await this.readGroups();
      } while (this.groupsAgain && !this.stopped);
    })().finally(() => {
      this.groupsRun = null;
    });
    return this.groupsRun;
  }

  /**
   * Read each door's groups (GET rule_external?device_id=) with the user token, refreshed when due.
   * Not authorised: today's behaviour, said at start and in status. A token that can no longer be
   * refreshed: the last groups stay in force, the gateway is unhealthy and says what to do.
   */
  async readGroups(): Promise<void> {
    const cfg = this.ctx.config.cloud.feishu!;
    const dir = this.ctx.config.data_dir;
    let token: ReturnType<typeof readUserToken>;
    try {
      token = readUserToken(dir);
    } catch (e) {
      return this.groupsProblem((e as Error).message);
    }
    if (!token) {
      this.patch({ permission_groups: 'not authorised: run doorgw feishu authorize (every listed person passes every door meanwhile)' });
      return void this.log.warn('Feishu permission groups configured but not authorised: run `doorgw feishu authorize`; every listed person passes every door meanwhile');
    }
    const doors: Record<string, FeishuRule[]> = {};
    try {
      for (const [door, device] of Object.entries(cfg.permission_groups.devices)) {
        const data = await this.client.get('/open-apis/acs/v1/rule_external', { device_id: device, user_id_type: cfg.user_id_type }, () => validUserToken(this.client, dir));
        const rules = Array.isArray(data.rules) ? (data.rules as FeishuRule[]).filter((r) => typeof r === 'object' && r !== null && typeof r.id === 'string') : [];
        doors[door] = rules.slice(0, 10_000);
        if (!this.warnedDepartments && rules.some((r) => r.users?.some((m) => m.user_type === 2))) {
          this.warnedDepartments = true;
          this.log.warn({ door }, 'a Feishu permission group names a department: departments cannot be resolved at the door, so its members are not admitted by it (name them, or use all employees)');
        }
      }
    } catch (e) {
      return this.groupsProblem(`the permission groups could not be read (${(e as Error).message})`);
    }
    const before = this.groupVisitors.join('\n');
    this.groups = { at: Date.now(), doors };
    // New or gone visitors: the directory follows at once (they are its records).
    if (this.groupVisitors.join('\n') !== before) void (this.running ?? Promise.resolve()).catch(() => undefined).then(() => this.syncNow()).catch(() => undefined);
    await this.ctx.store.putMeta(META_GROUPS, this.groups).catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'permission groups not written to disk (in force from memory)'));
    this.patch({ permission_groups: `in force: ${Object.values(doors).reduce((n, r) => n + r.length, 0)} groups for ${Object.keys(doors).length} doors`, credentials_problem: null });
    this.log.info({ doors: Object.keys(doors).length, groups: Object.values(doors).reduce((n, r) => n + r.length, 0) }, 'Feishu permission groups read');
  }

  private groupsProblem(why: string): void {
    const kept = this.groups ? `the groups read ${new Date(this.groups.at).toISOString()} stay in force` : 'no groups were ever read: every listed person passes every door';
    const msg = `Feishu permission groups: ${why}; ${kept}. Authorise again: doorgw feishu authorize`;
    this.log.error({ why }, 'Feishu permission groups not refreshed');
    this.patch({ permission_groups: msg, credentials_problem: msg });
  }

  /** A door's verdict from its groups (null: no groups in force at this door). */
  gate(door: string, user: UserRecord, nowMs: number, zone: string): CloudVerdict | null {
    const rules = this.groups?.doors[door];
    if (!rules) return null;
    const v = decideGroups(rules, user.userid, user.user_type === 1, nowMs, zone);
    return v.ok ? { allow: true, detail: `permission group ${v.rule.name ?? v.rule.id}` } : { allow: false, reason: v.reason, detail: v.detail };
  }

  /** The visitors the groups name (user_type 11): in the directory, so a face terminal's user id finds them; they pass only by their group. */
  get groupVisitors(): string[] {
    const ids = new Set<string>();
    for (const rules of Object.values(this.groups?.doors ?? {})) for (const r of rules) for (const m of [...(r.visitors ?? []), ...(r.users ?? [])]) if (m.user_type === 11 && m.user_id) ids.add(m.user_id);
    return [...ids].sort();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.groupsTimer) clearInterval(this.groupsTimer);
    await Promise.all([this.running?.catch(() => undefined), this.groupsRun, this.draining]);
  }

  /**
   * `POST /cloud/feishu/events`: authenticated (events.ts), answered at once (Feishu wants an
   * answer within 3 s), acted on after. Duplicates (Feishu retries) are answered and dropped.
   */
  callback(req: CloudCallback): Promise<{ status: number; body: Record<string, unknown> }> {
    return Promise.resolve(this.answer(req));
  }

  private answer(req: CloudCallback): { status: number; body: Record<string, unknown> } {
    const cfg = this.ctx.config.cloud.feishu!;
    if (req.name !== 'events' || !cfg.events) return { status: 404, body: { error: 'Feishu events are not configured here (cloud.feishu.events)' } };
    let opened: OpenedEvent;
    const counts = this.state$.value.events ?? { received: 0, refused: 0, last_type: null, last_at: null };
    try {
      opened = openEvent(req.body, req.headers, cfg.events);
    } catch (e) {
      if (!(e instanceof EventRefused)) throw e;
      this.patch({ events: { ...counts, refused: counts.refused + 1 } });
      if (this.refusedLog.take(performance.now())) this.log.warn({ why: e.message, refused: counts.refused + 1 }, 'Feishu event callback refused');
      return { status: e.status, body: { error: e.message } };
    }
    if (opened.kind === 'challenge') {
      this.log.info('Feishu checked the event callback URL');
      return { status: 200, body: { challenge: opened.challenge } };
    }
    if (this.seenEvents.has(opened.id)) return { status: 200, body: {} };
    this.seenEvents.add(opened.id);
    if (this.seenEvents.size > 4096) this.seenEvents.delete(this.seenEvents.values().next().value!);
    this.patch({ events: { ...counts, received: counts.received + 1, last_type: opened.type, last_at: Date.now() } });
    this.act(opened);
    return { status: 200, body: {} };
  }

  private act(e: Extract<OpenedEvent, { kind: 'event' }>): void {
    if (e.type !== 'acs.user.updated_v1') return void this.log.debug({ type: e.type }, 'Feishu event not used by the door');
    const cfg = this.ctx.config.cloud.feishu!;
    const userid = updatedUserId(e.event, cfg.user_id_type);
    this.log.info({ userid, event_id: e.id }, 'Feishu says a user changed: reading them again');
    if (userid) {
      if (this.pendingUsers.size < 1000) this.pendingUsers.add(userid);
      else this.fullSyncWanted = true;
      this.draining ??= this.drainUsers().finally(() => {
        this.draining = null;
      });
    }
    if (Object.keys(cfg.permission_groups.devices).length) void this.refreshGroups();
  }

  /** Read each named user again (GET acs/v1/users/:id), one at a time, never during a full sync. */
  private async drainUsers(): Promise<void> {
    const cfg = this.ctx.config.cloud.feishu!;
    while (!this.stopped && (this.pendingUsers.size || this.fullSyncWanted)) {
      await this.running?.catch(() => undefined);
      const userid = this.pendingUsers.values().next().value;
      if (userid === undefined || this.fullSyncWanted) {
        this.fullSyncWanted = false;
        this.pendingUsers.clear();
        await this.syncNow().catch(() => undefined);
        continue;
      }
      this.pendingUsers.delete(userid);
      try {
        const data = await this.client.get(`/open-apis/acs/v1/users/${encodeURIComponent(userid)}`, { user_id_type: cfg.user_id_type });
        const u = feishuUser(data.user, this.log);
        if (!u || u.record.userid !== userid) throw new Error('the answer does not name the user asked for');
        const held = this.ctx.store.directory.user(userid);
        if (held?.user_type === 1) continue; // a visitor of the groups: its record is theirs
        await this.ctx.store.applyChanges({ upsert: [u] });
        this.log.info({ userid, cards: u.record.cards.length }, 'Feishu user read again');
      } catch (err) {
        // Gone from access control, or unreadable: the full listing says which.
        this.log.warn({ userid, err: (err as Error).message }, 'a Feishu user named by an event could not be read; syncing the directory');
        this.fullSyncWanted = true;
      }
    }
  }

  /** One sync at a time; a request during a sync waits for it. */
  syncNow(): Promise<SyncReport> {
    this.running ??= this.sync().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async sync(): Promise<SyncReport> {
    const cfg = this.ctx.config.cloud.feishu!;
    const t0 = Date.now();
    try {
      const users = await syncFeishuDirectory(this.client, this.ctx.store, this.log, {
        pageSize: cfg.page_size,
        userIdType: cfg.user_id_type,
        visitors: this.groupVisitors,
        onProgress: (n) => this.patch({ sync_progress: n }),
      });
      this.patch({ link: 'online', last_full_sync: Date.now(), sync_progress: null, last_error: null, credentials_problem: null });
      return { users, version: null, seconds: (Date.now() - t0) / 1000 };
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'feishu sync failed; the cached directory stays in force');
      const refused = e instanceof FeishuCredentialsError ? `Feishu refused the app credentials (cloud.feishu.app_id/app_secret): ${(e as Error).message}` : null;
      this.patch({ link: 'offline', sync_progress: null, last_error: (e as Error).message, ...(refused ? { credentials_problem: refused } : {}) });
      throw e;
    }
  }

  outboxChanged(): void {
    // Feishu takes no pass records from a door.
  }
}
