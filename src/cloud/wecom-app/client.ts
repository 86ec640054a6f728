/**
 * WeCom server API client for a self-built app (qyapi): access token from corpid/corpsecret via
 * gettoken, cached, refreshed before expiry and on errcodes 40014/42001. The secret is never logged.
 */
import type { Logger } from '../../log.js';

export class WecomAppError extends Error {
  constructor(
    message: string,
    readonly errcode: number | null,
  ) {
    super(message);
    this.name = 'WecomAppError';
  }
}

const TOKEN_INVALID = new Set([40014, 42001]);

export class WecomAppClient {
  private token: { value: string; expiresAt: number } | null = null;

  constructor(
    private readonly o: { baseUrl: string; corpid: string; corpsecret: string; timeoutMs: number; log: Logger },
  ) {}

  private async json(url: string, init?: RequestInit): Promise<Record<string, unknown>> {
    let res: Response;
    try {
      res = await fetch(url, { ...init, signal: AbortSignal.timeout(this.o.timeoutMs) });
    } catch (e) {
      throw new WecomAppError(`${new URL(url).pathname}: ${(e as Error).message}`, null);
    }
    const text = await res.text();
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new WecomAppError(`${new URL(url).pathname} answered HTTP ${res.status} with a non-JSON body`, null);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new WecomAppError(`${new URL(url).pathname} answered a JSON non-object`, null);
    return v as Record<string, unknown>;
  }

  async accessToken(force = false): Promise<string> {
    const now = Date.now() / 1000;
    if (!force && this.token && this.token.expiresAt - 300 > now) return this.token.value;
    const qs = new URLSearchParams({ corpid: this.o.corpid, corpsecret: this.o.corpsecret });
    const r = await this.json(`${this.o.baseUrl}/cgi-bin/gettoken?${qs.toString()}`);
    if (r.errcode !== 0 || typeof r.access_token !== 'string') throw new WecomAppError(`gettoken refused: errcode ${String(r.errcode)} ${(typeof r.errmsg === 'string' ? r.errmsg : '')}`, typeof r.errcode === 'number' ? r.errcode : null);
    const ttl = typeof r.expires_in === 'number' && r.expires_in > 0 ? r.expires_in : 7200;
    this.token = { value: r.access_token, expiresAt: now + ttl };
    return this.token.value;
  }

  /** POST a /cgi-bin API; retries once with a fresh token on 40014/42001. */
  async post(path: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.accessToken(attempt > 0);
      const r = await this.json(`${this.o.baseUrl}${path}?access_token=${encodeURIComponent(token)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const code = typeof r.errcode === 'number' ? r.errcode : null;
      if (code === 0) return r;
      if (code !== null && TOKEN_INVALID.has(code) && attempt === 0) {
        this.o.log.info({ errcode: code }, 'wecom access token rejected; refreshing');
        continue;
      }
      throw new WecomAppError(`${path}: errcode ${String(r.errcode)} ${(typeof r.errmsg === 'string' ? r.errmsg : '')}`, code);
    }
  }
}
