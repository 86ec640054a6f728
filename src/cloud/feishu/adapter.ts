/** The Feishu adapter: directory sync at start, periodically and on demand. No record upload. */
import { BehaviorSubject } from 'rxjs';
import { initialState, type CloudAdapter, type CloudContext, type CloudState, type SyncReport } from '../adapter.js';
import { FeishuClient, FeishuCredentialsError } from './client.js';
import { META_FEISHU_SYNC, syncFeishuDirectory } from './sync.js';

export class FeishuAdapter implements CloudAdapter {
  readonly state$ = new BehaviorSubject<CloudState>(initialState('feishu', 'connecting'));
  readonly uploadsRecords = false;
  readonly client: FeishuClient;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<SyncReport> | null = null;
  private readonly log: CloudContext['log'];

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
    void this.syncNow().catch(() => undefined); // the door decides from the cache meanwhile
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
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
