/**
 * Feishu open-platform HTTP client (protocols.md §5) with Node's fetch: tenant_access_token cached
 * and refreshed ahead of expiry and after an auth error; rate limits and 5xx answers back off;
 * non-JSON bodies and unexpected codes are clear errors. The app secret is never logged.
 */
import { backoffDelay } from '../../domain/backoff.js';
import type { Logger } from '../../log.js';

export class FeishuError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly httpStatus: number | null,
  ) {
    super(message);
    this.name = 'FeishuError';
  }
}

/** The app's credentials were refused: retrying will not help until app_id/app_secret are fixed. */
export class FeishuCredentialsError extends FeishuError {}

export interface FeishuClientOptions {
  baseUrl: string;
  appId: string;
  appSecret: string;
  log: Logger;
  timeoutMs: number;
  maxRetries: number;
  /** Backoff base for rate limits and 5xx (ms). */
  backoffMs?: number;
}

/** Feishu codes for a missing, invalid or expired tenant token. */
const AUTH_CODES = new Set([99991661, 99991663, 99991664, 99991665, 99991668]);
const RATE_LIMIT_CODE = 99991400;
/** Refresh when less than this remains of the token's life. */
const REFRESH_AHEAD_S = 300;

export class FeishuClient {
  private token: { value: string; expiresAt: number } | null = null;

  constructor(private readonly o: FeishuClientOptions) {}

  private async fetchJson(url: string, init: RequestInit): Promise<{ status: number; json: Record<string, unknown> }> {
    let res: Response;
    try {
      res = await fetch(url, { ...init, signal: AbortSignal.timeout(this.o.timeoutMs) });
    } catch (e) {
      throw new FeishuError(`request to ${new URL(url).pathname} failed: ${(e as Error).message}`, null, null);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new FeishuError(`${new URL(url).pathname} answered HTTP ${res.status} with a non-JSON body (${text.slice(0, 60)})`, null, res.status);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FeishuError(`${new URL(url).pathname} answered a JSON non-object`, null, res.status);
    return { status: res.status, json: json as Record<string, unknown> };
  }

  /** A valid tenant_access_token, fetched or refreshed when needed. */
  async tenantToken(force = false): Promise<string> {
    const now = Date.now() / 1000;
    if (!force && this.token && this.token.expiresAt - REFRESH_AHEAD_S > now) return this.token.value;
    const { status, json } = await this.fetchJson(`${this.o.baseUrl}/open-apis/auth/v3/tenant_access_token/internal`, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ app_id: this.o.appId, app_secret: this.o.appSecret }),
    });
    if (json.code !== 0 || typeof json.tenant_access_token !== 'string') {
      throw new FeishuCredentialsError(`tenant_access_token refused: code ${String(json.code)} ${(typeof json.msg === 'string' ? json.msg : '')}`, typeof json.code === 'number' ? json.code : null, status);
    }
    const expire = typeof json.expire === 'number' && json.expire > 0 ? json.expire : 7200;
    this.token = { value: json.tenant_access_token, expiresAt: now + expire };
    this.o.log.info({ expires_in_s: expire }, 'feishu tenant token obtained');
    return this.token.value;
  }

  /**
   * The OAuth token endpoint (protocols.md §15.1): an authorisation code, or a refresh token (each
   * works once; the answer carries the next). Returns the tokens and their lifetimes.
   */
  async oauthToken(grant: { code: string; redirectUri: string } | { refreshToken: string }): Promise<{ access_token: string; expires_in: number; refresh_token: string; refresh_token_expires_in: number; scope: string }> {
    const body = 'code' in grant ? { grant_type: 'authorization_code', client_id: this.o.appId, client_secret: this.o.appSecret, code: grant.code, redirect_uri: grant.redirectUri } : { grant_type: 'refresh_token', client_id: this.o.appId, client_secret: this.o.appSecret, refresh_token: grant.refreshToken };
    const { status, json } = await this.fetchJson(`${this.o.baseUrl}/open-apis/authen/v2/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(body) });
    if (json.code !== 0 || typeof json.access_token !== 'string' || typeof json.refresh_token !== 'string') {
      const why = typeof json.error_description === 'string' ? json.error_description : typeof json.msg === 'string' ? json.msg : '';
      throw new FeishuError(`the user token was refused: code ${String(json.code)} ${why}`.trim(), typeof json.code === 'number' ? json.code : null, status);
    }
    const n = (v: unknown, d: number): number => (typeof v === 'number' && v > 0 ? v : d);
    return { access_token: json.access_token, expires_in: n(json.expires_in, 7200), refresh_token: json.refresh_token, refresh_token_expires_in: n(json.refresh_token_expires_in, 30 * 86_400), scope: typeof json.scope === 'string' ? json.scope : '' };
  }

  /** POST or DELETE with a user token (visitors): `data` of the answer; a refusal is a FeishuError with its code. */
  async send(method: 'POST' | 'DELETE', path: string, query: Record<string, string>, body: unknown, userToken: () => Promise<string>): Promise<Record<string, unknown>> {
    const url = `${this.o.baseUrl}${path}?${new URLSearchParams(query).toString()}`;
    const { status, json } = await this.fetchJson(url, { method, headers: { authorization: `Bearer ${await userToken()}`, 'content-type': 'application/json; charset=utf-8' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    if (json.code !== 0 || status >= 300) throw new FeishuError(`${path}: HTTP ${status} code ${String(json.code)} ${typeof json.msg === 'string' ? json.msg : ''}`.trim(), typeof json.code === 'number' ? json.code : null, status);
    return (typeof json.data === 'object' && json.data !== null ? json.data : {}) as Record<string, unknown>;
  }

  /** GET an open-api path; returns `data`. Retries auth errors once and rate limits / 5xx with backoff. */
  async get(path: string, query: Record<string, string | number | undefined>, userToken?: () => Promise<string>): Promise<Record<string, unknown>> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') qs.set(k, String(v));
    const url = `${this.o.baseUrl}${path}?${qs.toString()}`;
    let authRetried = false;
    for (let attempt = 0; ; attempt++) {
      const token = userToken ? await userToken() : await this.tenantToken();
      const { status, json } = await this.fetchJson(url, { headers: { authorization: `Bearer ${token}` } });
      const code = typeof json.code === 'number' ? json.code : null;
      if (code === 0 && status < 300) {
        const data = json.data;
        if (typeof data !== 'object' || data === null) throw new FeishuError(`${path}: answer without data`, 0, status);
        return data as Record<string, unknown>;
      }
      if ((status === 401 || (code !== null && AUTH_CODES.has(code))) && !authRetried && !userToken) {
        authRetried = true;
        this.o.log.info({ code, status }, 'feishu token rejected; refreshing');
        await this.tenantToken(true);
        continue;
      }
      const transient = status === 429 || status >= 500 || code === RATE_LIMIT_CODE;
      if (transient && attempt < this.o.maxRetries) {
        const delay = backoffDelay(attempt, { initialMs: this.o.backoffMs ?? 500, maxMs: 60_000 });
        this.o.log.warn({ path, status, code, retry_in_ms: delay }, 'feishu busy or failing; backing off');
        await new Promise((r) => setTimeout(r, delay));
        continue;
      }
      throw new FeishuError(`${path}: HTTP ${status} code ${String(code)} ${(typeof json.msg === 'string' ? json.msg : '')}`, code, status);
    }
  }
}
