/**
 * The WeCom device-protocol adapter: login on every connection, keepalive, directory sync (one
 * serial queue so changes apply in order), pushes (contact changes, renames, visitors, remote open,
 * enrolment), pass-record upload, and the return to provisioning when the corp unbinds the device.
 */
import { BehaviorSubject } from 'rxjs';
import type { Subscription } from 'rxjs';
import { initialState, type CloudAdapter, type CloudContext, type CloudState, type SyncReport } from '../adapter.js';
import { VERSION } from '../../version.js';
import { randomInt } from 'node:crypto';
import type { DoorEvent } from '../../domain/events.js';
import { RECENT_LOG, scrub } from '../../log.js';
import { dynamicLoginUrl, ERR, UNBOUND_CODES, WecomError, type Frame } from './protocol.js';
import { deleteSecret, readSecret, type DeviceSecret } from './secret.js';
import { WecomSession } from './session.js';
import { DirectorySync, META_FULL_SYNC, META_PERM, META_VISITOR, type FingerprintOwner } from './sync.js';
import { CheckinUploader } from './uploader.js';

/** The cloud refuses a login code 1800 s after it was made; doors make a new one every 15 min (protocols.md §10.1). */
const CODE_LIFE_S = 1800;
const CODE_REFRESH_MS = 15 * 60_000;
/** upload_log: the cloud takes at most 2 MiB (protocols.md §11). */
const MAX_LOG_BYTES = 2 * 1024 * 1024 - 1024;
/** The gateway's own faults, reported with error_report (each door and kind at most once in FAULT_EVERY_MS, FAULT_BURST in all). */
const FAULTS = new Set(['storage_failure', 'disk_low', 'reader_offline', 'reader_tamper', 'reader_power_failure', 'reader_secure_channel_failure', 'io_alarm']);
const FAULT_EVERY_MS = 10 * 60_000;
const FAULT_BURST = 10;

export type WecomConfig = NonNullable<CloudContext['config']['cloud']['wecom']>;

const ENROL_TIMEOUT_MS = 55_000; // the cloud wants the result within a minute

export class WecomAdapter implements CloudAdapter {
  readonly state$: BehaviorSubject<CloudState>;
  readonly uploadsRecords = true;
  readonly session: WecomSession;
  readonly sync: DirectorySync;
  readonly uploader: CheckinUploader;
  private readonly cfg: WecomConfig;
  private readonly subs: Subscription[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private loggedIn = false;
  /** The device's SecretNo (it signs the login codes): asked for at login, kept in memory only. */
  private secretNo: string | null = null;
  private readonly codes = new Map<string, { text: string; made_at: number; expires_at: number }>();
  private codeTimer: NodeJS.Timeout | null = null;
  private clockTimer: NodeJS.Timeout | null = null;
  private provisionTimer: NodeJS.Timeout | null = null;
  private readonly enrolments = new Map<string, AbortController>();

  constructor(private readonly ctx: CloudContext) {
    const cfg = ctx.config.cloud.wecom;
    if (!cfg) throw new Error('cloud.provider is wecom but cloud.wecom is missing');
    this.cfg = cfg;
    const log = ctx.log;
    this.log = log.child({ module: 'wecom' });
    this.state$ = new BehaviorSubject(initialState('wecom', this.secret() ? 'connecting' : 'unprovisioned'));
    this.session = new WecomSession({ url: cfg.url, log: log.child({ module: 'wecom.link' }), requestTimeoutMs: cfg.request_timeout_ms, backoffMs: [cfg.backoff_min_ms, cfg.backoff_max_ms] });
    this.sync = new DirectorySync(this.session, ctx.store, log.child({ module: 'wecom.sync' }), {
      pageSize: cfg.page_size,
      wantFp: ctx.fingerprint !== null,
      wantFa: false, // no face module in this version
      maxRestarts: cfg.max_sync_restarts,
      onTemplates: (loaded, removed) => this.templatesToModule(loaded, removed),
      onProgress: (n) => {
        const before = this.state$.value.sync_progress ?? 0;
        this.patch({ sync_progress: n });
        if (Math.floor(n / 10_000) > Math.floor(before / 10_000)) this.log.info({ fetched: n }, 'full sync in progress');
      },
    });
    this.uploader = new CheckinUploader(this.session, ctx.store, log.child({ module: 'wecom.checkin' }), {
      batch: cfg.upload_batch,
      maxAttempts: cfg.upload_max_attempts,
      qrPassMethod: cfg.qr_pass_method,
    }, () => this.loggedIn && this.session.isOpen);
  }

  private moduleQueue: Promise<void> = Promise.resolve();
  private stopping = false;

  /**
   * Synced fingerprint templates into the door's module, one user at a time in the background (a
   * serial module takes ~0.1 s a template; the sync never waits for it). Templates made by another
   * algorithm are refused with a clear line: a module cannot match them.
   */
  private templatesToModule(loaded: FingerprintOwner[], removed: string[]): void {
    const fp = this.ctx.fingerprint;
    if (!fp) return;
    const foreign = loaded.filter((u) => u.algorithm !== null && u.algorithm !== fp.algorithm);
    if (foreign.length) {
      const algs = [...new Set(foreign.map((u) => u.algorithm))].join(', ');
      this.log.warn({ users: foreign.length, their_algorithm: algs, module_algorithm: fp.algorithm, example: foreign[0]!.userid }, `fingerprint templates of ${foreign.length} user(s) were made by ${algs}; this module (${fp.algorithm}) cannot use them: they enrol again at this door`);
    }
    const usable = loaded.filter((u) => u.algorithm === null || u.algorithm === fp.algorithm);
    this.moduleQueue = this.moduleQueue.then(async () => {
      for (const id of removed) {
        if (this.stopping) return;
        await fp.delete(id).catch((e: unknown) => this.log.warn({ err: (e as Error).message, userid: id }, 'fingerprint template not deleted from the module'));
      }
      for (const u of usable) {
        if (this.stopping) return;
        try {
          // Read now, not when the sync ended: a later change may have replaced or removed them.
          const fps = (await this.ctx.store.templatesOf(u.userid)).filter((t) => t.kind === 'fp');
          if (!fps.length) {
            await fp.delete(u.userid); // no slot left (emptied in the cloud): nothing of theirs stays in the module
            continue;
          }
          await fp.load(u.userid, fps.map((t) => ({ slot: Number(t.id), template: Buffer.from(t.data, 'base64') })));
        } catch (e) {
          this.log.warn({ err: (e as Error).message, userid: u.userid }, 'fingerprint templates not loaded into the module');
        }
      }
    });
  }

  private patch(p: Partial<CloudState>): void {
    const cur = this.state$.value;
    const next = { ...cur, ...p };
    if (p.link && p.link !== cur.link) next.since = Date.now();
    this.state$.next(next);
  }

  private readonly log: CloudContext['log'];

  async start(): Promise<void> {
    this.patch({
      directory_version: (await this.ctx.store.getMeta<number>(META_PERM)) ?? null,
      last_full_sync: (await this.ctx.store.getMeta<number>(META_FULL_SYNC)) ?? null,
    });
    this.subs.push(
      this.session.opened$.subscribe(() => void this.login()),
      this.session.pushes$.subscribe((f) => this.onPush(f)),
      ...(this.ctx.doorEvents ? [this.ctx.doorEvents.subscribe((e) => this.fault(e))] : []),
      this.session.link$.subscribe((l) => {
        if (l === 'closed') {
          this.loggedIn = false;
          if (this.state$.value.link !== 'unprovisioned') this.patch({ link: 'offline' });
        }
      }),
    );
    this.uploader.start();
    this.session.start();
  }

  async stop(): Promise<void> {
    // The module's queue stops at its next user. Not awaited: a module that does not answer must
    // not hold up the stop; what it is doing fails, and is logged, when the module closes.
    this.stopping = true;
    if (this.provisionTimer) clearInterval(this.provisionTimer);
    if (this.codeTimer) clearInterval(this.codeTimer);
    if (this.clockTimer) clearInterval(this.clockTimer);
    for (const c of this.enrolments.values()) c.abort();
    for (const s of this.subs) s.unsubscribe();
    await this.uploader.stop();
    await this.session.stop();
    await this.queue.catch(() => undefined);
  }

  /** Serialise directory work: a change is applied only after the ones before it. */
  private enqueue<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch((e: unknown) => {
      if (e instanceof WecomError && UNBOUND_CODES.has(e.errcode)) return this.unbound(e);
      // A sync that failed halfway (the link dropped, the cloud died) changed nothing: generations
      // switch atomically. Its progress goes, and status says which directory is in force.
      const inForce = this.state$.value.directory_version;
      this.log.error({ err: (e as Error).message, what, directory_in_force: inForce }, 'directory sync step failed; the previous complete directory stays in force');
      this.patch({ sync_progress: null, last_error: `${what}: ${(e as Error).message} (the previous complete directory${inForce !== null ? `, version ${inForce},` : ''} stays in force)` });
    });
    return run;
  }

  /** The device secret; null when not activated or unreadable (the problem goes into the state). */
  private secret(): DeviceSecret | null {
    try {
      const s = readSecret(this.ctx.config.data_dir);
      if (this.state$?.value.credentials_problem) this.patch({ credentials_problem: null });
      return s;
    } catch (e) {
      if (this.state$?.value.credentials_problem !== (e as Error).message) {
        this.log?.error({ err: (e as Error).message }, 'device secret unusable');
        if (this.state$) this.patch({ credentials_problem: (e as Error).message, last_error: (e as Error).message });
      }
      return null;
    }
  }

  private async login(): Promise<void> {
    const secret = this.secret();
    if (!secret) {
      this.patch({ link: 'unprovisioned' });
      if (!this.state$.value.credentials_problem) this.log.warn('device not activated: run `doorgw wecom activate`; checking again every 5 s');
      this.provisionTimer ??= setInterval(() => {
        if (this.secret() && this.session.isOpen) {
          clearInterval(this.provisionTimer!);
          this.provisionTimer = null;
          void this.login();
        }
      }, 5000);
      this.provisionTimer.unref();
      return;
    }
    try {
      await this.session.request('subscribe_corp', {
        secret: secret.secret,
        firmware_version: this.cfg.firmware_version ?? VERSION,
        ext_args: { fp_algorithm: this.ctx.fingerprint ? [this.ctx.fingerprint.algorithm] : [], fa_algorithm: [] },
      });
    } catch (e) {
      if (e instanceof WecomError && UNBOUND_CODES.has(e.errcode)) return this.unbound(e);
      // "Already subscribed" is a login (protocols.md §9.4).
      if (e instanceof WecomError && (e.errcode === ERR.SUBSCRIBED_ALREADY || e.errcode === ERR.ALREADY_SUBSCRIBED)) return this.loggedInAs(secret);
      this.log.error({ err: (e as Error).message }, 'login failed');
      this.patch({ last_error: `login: ${(e as Error).message}` });
      this.session.drop('login failed');
      return;
    }
    return this.loggedInAs(secret);
  }

  private async loggedInAs(secret: DeviceSecret): Promise<void> {
    this.loggedIn = true;
    this.patch({ link: 'online', last_error: null });
    this.log.info({ sn: secret.sn }, 'logged in to WeCom');
    this.session.startPing(this.cfg.ping_interval_s * 1000, 5000);
    await this.checkClock();
    // The cloud's time again every 12 h (protocols.md §9.6): the clock-skew health check, and the codes' clock.
    if (this.clockTimer) clearInterval(this.clockTimer);
    this.clockTimer = setInterval(() => void this.checkClock(), 12 * 3600_000);
    this.clockTimer.unref();
    if (this.cfg.scan_to_open) await this.startCodes(secret.sn);
    // May members enrol themselves at the door (fingerprint, face)? Shown in status; pushed on change.
    this.session.request('get_open_self_input').then(
      (b) => this.patch({ self_enrolment: { fp: b.open_self_input_fp === true, fa: b.open_self_input_fa === true } }),
      (e: unknown) => this.log.debug({ err: (e as Error).message }, 'self-enrolment setting unavailable'),
    );
    this.session.request('get_corp_info').then(
      (b) => typeof b.corp_name === 'string' && this.patch({ corp_name: b.corp_name }),
      (e: unknown) => this.log.debug({ err: (e as Error).message }, 'corp info unavailable'),
    );
    void this.enqueue('catch-up after login', async () => {
      const r = await this.sync.onLogin();
      await this.refreshVersion();
      if (r !== 'current') this.log.info({ result: r }, 'directory caught up after login');
      await this.checkVisitors(false);
    });
    this.uploader.wake();
  }

  private async checkClock(): Promise<void> {
    try {
      const { timestamp } = await this.session.request('get_timestamp');
      if (typeof timestamp !== 'number') return;
      const skew = timestamp - Math.floor(Date.now() / 1000); // both in whole seconds
      const before = this.state$.value.clock_skew_s;
      this.patch({ clock_skew_s: skew });
      // The codes are made on the cloud's clock: a skew that moved by 5 s or more makes them again.
      if (before !== null && Math.abs(skew - before) >= 5 && this.codes.size && this.secretNo) void this.startCodes(readSecret(this.ctx.config.data_dir)?.sn ?? '');
      if (Math.abs(skew) > this.ctx.config.qr.clock_skew_s) {
        this.log.warn({ clock_skew_s: skew }, 'local clock differs from the cloud: QR validity windows will be wrong; check NTP');
      } else this.log.info({ clock_skew_s: skew }, 'clock checked against the cloud');
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'server time unavailable');
    }
  }

  private async refreshVersion(): Promise<void> {
    this.patch({
      directory_version: (await this.ctx.store.getMeta<number>(META_PERM)) ?? null,
      last_full_sync: (await this.ctx.store.getMeta<number>(META_FULL_SYNC)) ?? null,
      sync_progress: null,
    });
  }

  /**
   * Visitors: the push and get_visitor_version carry only a version, not the visitors that changed,
   * so a newer visitor version is followed by a full sync (which lists visitors too).
   */
  private async checkVisitors(force: boolean, pushed?: number): Promise<void> {
    const remote = pushed ?? Number((await this.session.request('get_visitor_version')).visitor_version);
    const local = await this.ctx.store.getMeta<number>(META_VISITOR);
    if (!Number.isSafeInteger(remote)) return;
    if (local === undefined && !force) return void (await this.ctx.store.putMeta(META_VISITOR, remote));
    if (local !== undefined && remote <= local) return;
    this.log.info({ local, remote }, 'visitor list changed; full sync');
    await this.sync.fullSync();
    await this.ctx.store.putMeta(META_VISITOR, remote);
    await this.refreshVersion();
  }

  /** The corp unbound the device or no longer authorises it: forget everyone, deny everything. */
  private async unbound(e: WecomError): Promise<void> {
    this.log.error({ errcode: e.errcode, errmsg: e.errmsg }, 'device unbound or corp not authorised: erasing users, keys and templates; back to provisioning');
    this.loggedIn = false;
    await this.ctx.store.eraseDirectory([META_PERM, META_VISITOR, META_FULL_SYNC]);
    deleteSecret(this.ctx.config.data_dir);
    this.patch({ link: 'unprovisioned', directory_version: null, last_full_sync: null, last_error: `unbound: ${e.errcode} ${e.errmsg}` });
    await this.login(); // reports unprovisioned and waits for a new secret
  }

  syncNow(): Promise<SyncReport> {
    return this.enqueue('full sync on demand', async () => {
      if (!this.loggedIn) throw new Error('not logged in to WeCom');
      const t0 = Date.now();
      const r = await this.sync.fullSync();
      await this.refreshVersion();
      return { users: r.users, version: r.version, seconds: (Date.now() - t0) / 1000 };
    });
  }

  outboxChanged(): void {
    this.uploader.wake();
  }

  // ---------------------------------------------------------------------------------------------
  // Pushes

  private onPush(f: Frame): void {
    const body = f.body ?? {};
    const ack = (errcode = 0, errmsg = 'ok'): void => this.session.reply(f, errcode, errmsg);
    switch (f.cmd) {
      case 'push_change_contact':
        void this.enqueue('push_change_contact', async () => {
          try {
            const r = await this.sync.onChange(body);
            await this.refreshVersion();
            ack();
            return r;
          } catch (e) {
            ack(1, (e as Error).message);
            throw e;
          }
        });
        return;
      case 'push_change_userid': {
        const from = body.old_userid ?? body.userid;
        const to = body.new_userid;
        if (typeof from !== 'string' || typeof to !== 'string' || !from || !to) return ack(1, 'old_userid and new_userid are required');
        void this.enqueue('push_change_userid', async () => {
          const renamed = await this.ctx.store.renameUser(from, to);
          this.log.info({ from, to, renamed }, 'user renamed');
          ack();
        });
        return;
      }
      case 'push_visitor_list_change': {
        const v = body.visitor_version;
        if (typeof v !== 'number') return ack(1, 'visitor_version is required');
        void this.enqueue('push_visitor_list_change', async () => {
          await this.checkVisitors(true, v);
          ack();
        });
        return;
      }
      case 'push_remote_open_door':
        return this.onRemoteOpen(f, body);
      case 'push_user_scan':
        return this.onUserScan(f, body);
      case 'push_open_self_input':
        this.patch({ self_enrolment: { fp: body.open_self_input_fp === true, fa: body.open_self_input_fa === true } });
        return this.session.reply(f);
      case 'push_fetch_log':
        this.session.reply(f);
        return void this.uploadLog(typeof body.hint === 'string' ? body.hint : '');
      case 'push_restart_device':
        this.session.reply(f);
        this.log.warn('the cloud asked for a restart: stopping cleanly (the doors stay locked); the service manager starts the gateway again');
        return void setTimeout(() => this.ctx.restart?.('WeCom push_restart_device'), 100).unref();
      case 'push_update_firmware':
        this.session.reply(f);
        return void this.firmwareOffered();
      case 'push_enter_page':
        ack();
        void this.onEnterPage(body);
        return;
      case 'push_exit_page': {
        const c = this.enrolments.get(String(body.oper_id));
        c?.abort();
        return ack(c ? 0 : 1, c ? 'ok' : 'no enrolment in progress with that oper_id');
      }
      default:
        this.log.warn({ cmd: f.cmd }, 'unknown push from the cloud');
        return ack(1, `unknown push ${f.cmd}`);
    }
  }

  /**
   * The log the cloud asks for (push_fetch_log): this process's recent lines, of the hint's kind —
   * `op_logs` warnings and errors, `wechat` this link's own, anything else every line — newest
   * first to fit 2 MiB, already scrubbed of secrets (and of the device's, once more).
   */
  private async uploadLog(hint: string): Promise<void> {
    const keep = hint === 'op_logs' ? (e: { level?: number }) => (e.level ?? 0) >= 40 : hint === 'wechat' ? (e: { module?: string }) => (e.module ?? '').startsWith('wecom') : () => true;
    const secrets = [readSecret(this.ctx.config.data_dir)?.secret, this.secretNo].filter((x): x is string => !!x);
    const text = scrub(RECENT_LOG.newest(keep, MAX_LOG_BYTES).join('\n'), secrets);
    try {
      await this.session.requestBinary('upload_log', Buffer.from(text, 'utf8'), 30_000);
      this.log.info({ hint, bytes: Buffer.byteLength(text) }, 'log uploaded to the cloud');
    } catch (e) {
      this.log.warn({ err: (e as Error).message, hint }, 'log upload failed');
    }
  }

  /** An admin pressed "upgrade": what is offered goes into the status and the log; doorgw installs nothing a cloud pushes (updates come through the Ansible role). */
  private async firmwareOffered(): Promise<void> {
    try {
      const b = await this.session.request('get_firmware_info');
      const version = typeof b.firmware_version === 'string' ? b.firmware_version : '?';
      this.patch({ firmware_offered: { version, size: typeof b.size === 'number' ? b.size : null, md5sum: typeof b.md5sum === 'string' ? b.md5sum : null, at: Date.now() } });
      this.log.warn({ offered: version, running: VERSION }, 'the cloud offers a firmware update: doorgw does not install software from a cloud; update through the deployment (Ansible role)');
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'firmware info unavailable');
    }
  }

  private readonly faultSeen = new Map<string, number>();
  private faultWindow: number[] = [];
  /** Rate-limited error_report of the gateway's own faults. */
  private fault(e: DoorEvent): void {
    if (!FAULTS.has(e.type) || !this.loggedIn) return;
    const now = Date.now();
    const key = `${e.type}\u0000${e.door}\u0000${e.reader ?? ''}`;
    if (now - (this.faultSeen.get(key) ?? -Infinity) < FAULT_EVERY_MS) return;
    this.faultWindow = this.faultWindow.filter((t) => now - t < FAULT_EVERY_MS);
    if (this.faultWindow.length >= FAULT_BURST) return;
    this.faultWindow.push(now);
    if (this.faultSeen.size > 1000) this.faultSeen.clear();
    this.faultSeen.set(key, now);
    const errmsg = `${e.type} at ${e.door}${e.reader ? ` (${e.reader})` : ''}${e.detail ? `: ${e.detail}` : ''}`.slice(0, 200);
    this.session.request('error_report', { errcode: -1, errmsg }).catch((err: unknown) => this.log.debug({ err: (err as Error).message }, 'error report not delivered'));
  }

  /**
   * Scan to open: each door's dynamic login code (state `door:<id>`), made on the cloud's clock (the
   * local clock plus the measured skew: a door whose clock is off still shows a code the cloud
   * takes) and made again every 15 min and after every clock check.
   */
  private async startCodes(sn: string): Promise<void> {
    try {
      if (!this.secretNo) {
        const { secret_no } = await this.session.request('get_secret_no', { sn });
        if (typeof secret_no !== 'string' || !secret_no) throw new Error('get_secret_no returned no secret_no');
        this.secretNo = secret_no;
      }
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'scan to open unavailable: no SecretNo for the login codes');
      return;
    }
    const make = (): void => {
      const nowS = Math.floor(Date.now() / 1000) + (this.state$.value.clock_skew_s ?? 0);
      for (const d of this.ctx.config.doors) {
        const text = dynamicLoginUrl(sn, this.secretNo!, nowS, String(randomInt(100_000, 1_000_000)), `door:${d.id}`);
        this.codes.set(d.id, { text, made_at: nowS * 1000, expires_at: (nowS + CODE_LIFE_S) * 1000 });
      }
      this.log.info({ doors: this.ctx.config.doors.length }, 'scan-to-open codes made');
    };
    make();
    if (this.codeTimer) clearInterval(this.codeTimer);
    this.codeTimer = setInterval(make, CODE_REFRESH_MS);
    this.codeTimer.unref();
  }

  /** The static login code of a door for printing (gen_login_qrcode; the image bytes as the cloud sends them). */
  async staticCode(door: string): Promise<Buffer> {
    if (!this.loggedIn) throw new Error('not logged in to WeCom');
    const b = await this.session.request('gen_login_qrcode', { state: `door:${door}`, format_version: 1 });
    if (typeof b.data_b64 !== 'string') throw new Error('gen_login_qrcode answered without the binary code');
    return Buffer.from(b.data_b64, 'base64');
  }

  loginCode(door: string): { text: string; made_at: number; expires_at: number } | null {
    return this.loggedIn ? (this.codes.get(door) ?? null) : null;
  }

  private onUserScan(f: Frame, body: Record<string, unknown>): void {
    const { userid, oper_id, state, op_type } = body;
    if (typeof userid !== 'string' || typeof oper_id !== 'string' || !userid || !oper_id) return void this.session.reply(f, 1, 'userid and oper_id are required');
    this.session.reply(f);
    const door = typeof state === 'string' && state.startsWith('door:') ? state.slice(5) : null;
    const known = door !== null && this.ctx.config.doors.some((d) => d.id === door);
    // Not a door's code (another state, another op_type): nothing opens, and the cloud is told so.
    const d = op_type === 'scan_qrcode_open' && known && this.cfg.scan_to_open ? this.ctx.scanOpen({ door: door, userid }) : null;
    const status = d?.decision === 'grant' ? 0 : 1;
    if (!d) this.log.warn({ op_type, state, oper_id }, 'scan not for a door of this gateway: refused');
    this.session
      .request('report_remote_open_door', { type: 'scan_qrcode_open', oper_id, status }, 2500)
      .then(
        () => this.log.info({ oper_id, door, status, reason: d?.reason }, 'scan to open reported'),
        (e: unknown) => this.log.warn({ err: (e as Error).message, oper_id }, 'scan to open report failed'),
      );
  }

  private onRemoteOpen(f: Frame, body: Record<string, unknown>): void {
    const { userid, oper_id } = body;
    if (typeof userid !== 'string' || typeof oper_id !== 'string' || !userid || !oper_id) {
      this.session.reply(f, 1, 'userid and oper_id are required');
      return;
    }
    const door = this.cfg.remote_open_door ?? this.ctx.config.doors[0]!.id;
    const d = this.ctx.remoteOpen({ door, userid, oper_id });
    const status = d?.decision === 'grant' ? 0 : 1;
    this.session.reply(f);
    // The cloud wants the result within 3 s; the decision above was synchronous.
    this.session
      .request('report_remote_open_door', { type: 'remote_open_door', oper_id, status }, 2500)
      .then(
        () => this.log.info({ oper_id, door, status, reason: d?.reason }, 'remote open reported'),
        (e: unknown) => this.log.warn({ err: (e as Error).message, oper_id }, 'remote open report failed'),
      );
  }

  private async onEnterPage(body: Record<string, unknown>): Promise<void> {
    const { page_type, oper_id, userid } = body;
    const user_type = typeof body.user_type === 'number' ? body.user_type : 0;
    const report = (errcode: number, errmsg: string, userinfo: unknown[] = []): Promise<unknown> =>
      this.session.request('upload_userinfo', { oper_id, errcode, errmsg, userinfo }).catch((e: unknown) => this.log.warn({ err: (e as Error).message, oper_id }, 'enrolment result not delivered'));
    if (typeof oper_id !== 'string' || typeof userid !== 'string') return void (await report(1, '参数错误 (oper_id and userid are required)'));
    const fp = this.ctx.fingerprint;
    if (page_type !== 'fp' || !fp) {
      this.log.warn({ page_type, userid }, 'enrolment requested for a device this door does not have');
      return void (await report(2, page_type === 'fp' ? '此门禁没有指纹模块 (this door has no fingerprint module)' : '此门禁不支持人脸录入 (this door has no face module)'));
    }
    const ctl = new AbortController();
    this.enrolments.get(oper_id)?.abort();
    this.enrolments.set(oper_id, ctl);
    const timer = setTimeout(() => ctl.abort(), ENROL_TIMEOUT_MS);
    try {
      this.log.info({ userid, oper_id }, 'fingerprint enrolment started');
      const r = await fp.enroll(userid, ctl.signal);
      const data = r.template.toString('base64');
      if (this.ctx.store.directory.user(userid)) await this.ctx.store.putTemplates(userid, [{ kind: 'fp', id: String(r.slot), data }]);
      await report(0, 'ok', [{ userid, user_type, fp_algorithm: fp.algorithm, fp: [{ id: r.slot, data }] }]);
      this.log.info({ userid, oper_id, slot: r.slot }, 'fingerprint enrolled');
    } catch (e) {
      const cancelled = ctl.signal.aborted;
      this.log.warn({ userid, oper_id, err: (e as Error).message, cancelled }, 'fingerprint enrolment failed');
      await report(cancelled ? 3 : 4, cancelled ? '录入已取消或超时 (enrolment cancelled or timed out)' : `录入失败：${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
      if (this.enrolments.get(oper_id) === ctl) this.enrolments.delete(oper_id);
    }
  }
}
