/**
 * Feishu open-platform emulator for the access-control user list: tenant tokens that expire,
 * pagination with page tokens bound to a listing generation (invalidated on demand, answering
 * 1490018 like the real service), field validation, and per-request fault injection.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import type { FeishuRule } from '../../domain/feishu-groups.js';
import { JsonHttpServer, type JsonReply, type JsonRequest } from '../http-emulator.js';

export interface FeishuUser {
  user_id: string;
  feature: { card?: unknown; face_uploaded?: boolean };
}

export class FeishuEmulator {
  users: FeishuUser[] = [];
  appId = 'cli_emulator';
  appSecret = 'emulator-secret';
  tokenTtlS = 7200;
  readonly requests: { path: string; query: Record<string, string> }[] = [];
  /** Tests inject replies per request; undefined answers normally. */
  fault: (req: JsonRequest, n: number) => JsonReply | undefined = () => undefined;
  private readonly tokens = new Map<string, number>();
  /** Permission groups (rule_external), readable with a user token only. */
  rules: FeishuRule[] = [];
  userTokenTtlS = 7200;
  /** Refresh tokens stop working (the admin left, the grant was revoked). */
  refreshRevoked = false;
  private readonly authCodes = new Map<string, number>();
  private readonly userTokens = new Map<string, number>();
  private readonly refreshTokens = new Set<string>();
  /** Visitors created through the API (visitor_id → user). */
  readonly visitors = new Map<string, Record<string, unknown>>();
  /** Refresh grants answered (each refresh token works once). */
  refreshes = 0;
  /** Event subscription: the app's verification token, and its encrypt key (null: events in plaintext). */
  verificationToken = 'emulator-verification-token';
  encryptKey: string | null = null;

  /**
   * POST an event to the app's callback URL as Feishu does (schema 2.0; with an encrypt key,
   * encrypted and signed). `tamper` changes the sent body after signing, as a forger would.
   */
  async pushEvent(url: string, type: string, event: Record<string, unknown>, o: { eventId?: string; token?: string; tamper?: (body: string) => string; unsigned?: boolean } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
    const env = { schema: '2.0', header: { event_id: o.eventId ?? randomBytes(16).toString('hex'), event_type: type, create_time: String(Date.now()), token: o.token ?? this.verificationToken, app_id: this.appId, tenant_key: 'tenant-emulator' }, event };
    return this.postCallback(url, env, o);
  }

  /** The URL check Feishu makes when the admin saves the callback URL. */
  checkCallbackUrl(url: string, challenge: string): Promise<{ status: number; body: Record<string, unknown> }> {
    return this.postCallback(url, { challenge, token: this.verificationToken, type: 'url_verification' }, { unsigned: true });
  }

  private async postCallback(url: string, payload: unknown, o: { tamper?: (body: string) => string; unsigned?: boolean }): Promise<{ status: number; body: Record<string, unknown> }> {
    let body = JSON.stringify(payload);
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
    if (this.encryptKey) {
      const iv = randomBytes(16);
      const c = createCipheriv('aes-256-cbc', createHash('sha256').update(this.encryptKey).digest(), iv);
      body = JSON.stringify({ encrypt: Buffer.concat([iv, c.update(body, 'utf8'), c.final()]).toString('base64') });
      if (!o.unsigned) {
        const ts = String(Math.floor(Date.now() / 1000));
        const nonce = randomBytes(8).toString('hex');
        headers['x-lark-request-timestamp'] = ts;
        headers['x-lark-request-nonce'] = nonce;
        headers['x-lark-signature'] = createHash('sha256').update(ts + nonce + this.encryptKey + body).digest('hex');
      }
    }
    if (o.tamper) body = o.tamper(body);
    const res = await fetch(url, { method: 'POST', headers, body });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** A code as Feishu shows it after an admin's consent: valid 5 minutes, once. */
  issueAuthCode(): string {
    const c = `code-${randomBytes(6).toString('hex')}`;
    this.authCodes.set(c, Date.now() + 300_000);
    return c;
  }

  private userPair(): Record<string, unknown> {
    const access = `u-${randomBytes(12).toString('hex')}`;
    const refresh = `r-${randomBytes(12).toString('hex')}`;
    this.userTokens.set(access, Date.now() + this.userTokenTtlS * 1000);
    this.refreshTokens.add(refresh);
    return { code: 0, access_token: access, expires_in: this.userTokenTtlS, refresh_token: refresh, refresh_token_expires_in: 30 * 86_400, scope: 'acs:device:write acs:users offline_access', token_type: 'Bearer' };
  }
  private generation = 1;
  private count = 0;
  private readonly http = new JsonHttpServer((r) => this.handle(r));

  start(port = 0): Promise<string> {
    return this.http.start(port);
  }
  get url(): string {
    return this.http.url;
  }
  stop(): Promise<void> {
    return this.http.stop();
  }

  /** Every issued token stops working (as after expiry). */
  expireTokens(): void {
    for (const k of this.tokens.keys()) this.tokens.set(k, 0);
  }

  /** Page tokens handed out so far become invalid (the listing changed underneath). */
  invalidatePageTokens(): void {
    this.generation++;
  }

  get tokenRequests(): number {
    return this.requests.filter((r) => r.path.endsWith('/tenant_access_token/internal')).length;
  }

  private handle(req: JsonRequest): JsonReply {
    this.requests.push({ path: req.path, query: Object.fromEntries(req.query) });
    const fault = this.fault(req, ++this.count);
    if (fault) return fault;
    const err = (status: number, code: number, msg: string): JsonReply => ({ status, body: { code, msg } });
    if (req.method === 'POST' && req.path === '/open-apis/auth/v3/tenant_access_token/internal') {
      const b = req.body as { app_id?: unknown; app_secret?: unknown } | undefined;
      if (b?.app_id !== this.appId || b.app_secret !== this.appSecret) return { body: { code: 10014, msg: 'app secret invalid' } };
      const token = `t-${randomBytes(12).toString('hex')}`;
      this.tokens.set(token, Date.now() + this.tokenTtlS * 1000);
      return { body: { code: 0, msg: 'ok', tenant_access_token: token, expire: this.tokenTtlS } };
    }
    if (req.method === 'POST' && req.path === '/open-apis/authen/v2/oauth/token') {
      const b = (req.body ?? {}) as Record<string, unknown>;
      if (b.client_id !== this.appId || b.client_secret !== this.appSecret) return { status: 400, body: { code: 20002, error: 'invalid_client', error_description: 'client secret invalid' } };
      if (b.grant_type === 'authorization_code') {
        const exp = this.authCodes.get(String(b.code));
        this.authCodes.delete(String(b.code));
        if (exp === undefined || exp < Date.now()) return { status: 400, body: { code: 20003, error: 'invalid_grant', error_description: 'the code is invalid or used' } };
        return { body: this.userPair() };
      }
      if (b.grant_type === 'refresh_token') {
        const r = String(b.refresh_token);
        if (this.refreshRevoked || !this.refreshTokens.delete(r)) return { status: 400, body: { code: 20026, error: 'invalid_grant', error_description: 'the refresh token is invalid or used' } };
        this.refreshes++;
        return { body: this.userPair() };
      }
      return { status: 400, body: { code: 20001, error: 'unsupported_grant_type' } };
    }
    const visitorPath = /^\/open-apis\/acs\/v1\/visitors(?:\/([^/]+))?$/.exec(req.path);
    if (visitorPath && (req.method === 'POST' || req.method === 'DELETE')) {
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      const exp = auth ? this.userTokens.get(auth[1]!) : undefined;
      if (exp === undefined || exp < Date.now()) return err(400, 99991663, 'visitors take a valid user_access_token');
      if (req.method === 'POST' && !visitorPath[1]) {
        const u = ((req.body ?? {}) as { user?: { user_type?: unknown; user_name?: unknown } }).user;
        if (!u || typeof u.user_type !== 'number') return err(400, 99992402, 'field validation failed: user.user_type is required');
        const id = `vis_${randomBytes(6).toString('hex')}`;
        this.visitors.set(id, u);
        return { body: { code: 0, msg: 'success', data: { visitor_id: id } } };
      }
      if (req.method === 'DELETE' && visitorPath[1]) {
        if (!this.visitors.delete(visitorPath[1])) return err(400, 1490099, 'visitor not found');
        return { body: { code: 0, msg: 'success', data: {} } };
      }
    }
    if (req.method === 'GET' && req.path === '/open-apis/acs/v1/rule_external') {
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      const exp = auth ? this.userTokens.get(auth[1]!) : undefined;
      if (exp === undefined) return err(400, 99991663, 'Invalid access token for authorization: rule_external takes a user_access_token');
      if (exp < Date.now()) return err(400, 99991677, 'user access token expired');
      const device = req.query.get('device_id');
      const rules = device ? this.rules.filter((r) => r.devices?.some((d) => d.id === device)) : this.rules;
      return { body: { code: 0, msg: 'success', data: { rules } } };
    }
    const onePath = /^\/open-apis\/acs\/v1\/users\/([^/]+)$/.exec(req.path);
    if (req.method === 'GET' && onePath) {
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      const exp = auth ? this.tokens.get(auth[1]!) : undefined;
      if (exp === undefined || exp < Date.now()) return err(400, 99991663, 'Invalid access token for authorization');
      const u = this.users.find((x) => x.user_id === decodeURIComponent(onePath[1]!));
      if (!u) return err(400, 1490001, 'user not found');
      return { body: { code: 0, msg: 'success', data: { user: u } } };
    }
    if (req.method === 'GET' && req.path === '/open-apis/acs/v1/users') {
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!auth) return err(400, 99991661, 'Missing access token for authorization');
      const exp = this.tokens.get(auth[1]!);
      if (exp === undefined || exp < Date.now()) return err(400, 99991663, 'Invalid access token for authorization');
      const size = Number(req.query.get('page_size') ?? 20);
      if (!Number.isInteger(size) || size < 1 || size > 50) return err(400, 99992402, 'field validation failed: page_size max 50');
      const idType = req.query.get('user_id_type') ?? 'open_id';
      if (!['open_id', 'union_id', 'user_id'].includes(idType)) return err(400, 99992402, 'field validation failed: user_id_type');
      let offset = 0;
      const pt = req.query.get('page_token');
      if (pt) {
        const [gen, off] = Buffer.from(pt, 'base64').toString().split(':');
        if (Number(gen) !== this.generation || !/^\d+$/.test(off ?? '')) return err(400, 1490018, 'page token is invalid error');
        offset = Number(off);
      }
      const items = this.users.slice(offset, offset + size);
      const more = offset + size < this.users.length;
      const data: Record<string, unknown> = { items, has_more: more };
      if (more) data.page_token = Buffer.from(`${this.generation}:${offset + size}`).toString('base64');
      return { body: { code: 0, msg: 'success', data } };
    }
    return err(404, 404, `no route ${req.method} ${req.path}`);
  }
}

/** `n` Feishu users, every 5th without a card. */
export function feishuUsers(n: number, firstCard = 100_000): FeishuUser[] {
  return Array.from({ length: n }, (_, i) => ({
    user_id: `ou_${i.toString(16).padStart(8, '0')}`,
    feature: i % 5 === 4 ? { face_uploaded: true } : { card: firstCard + i, face_uploaded: false },
  }));
}
