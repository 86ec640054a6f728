/** The console's HTTP surface: authentication, roles, CSRF, throttling, expiry, validation, TLS. */
import { execFileSync } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { localApi } from '../../src/control/api.js';
import { hashPassword } from '../../src/domain/password.js';
import { Store } from '../../src/store/store.js';
import { WebServer } from '../../src/web/server.js';
import { capturedLog } from '../helpers/log.js';
import { tmpDir } from '../helpers/tmp.js';

const { log, lines: logged } = capturedLog();
const PASSWORDS = { ada: 'ada-viewer-pw', otto: 'otto-operator-pw', root: 'root-admin-pw-1' } as const;
let hashes: Record<string, string>;
beforeAll(async () => {
  hashes = Object.fromEntries(await Promise.all(Object.entries(PASSWORDS).map(async ([n, p]) => [n, await hashPassword(p)] as const)));
});

const open: { web: WebServer; store: Store }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.web.stop();
    await o.store.close();
  }
});

async function console_(web: Record<string, unknown> = {}, clock?: { now: number }) {
  const dir = tmpDir();
  const config = validateConfig({ gateway_id: 'g', data_dir: join(dir, 'data'), doors: [{ id: 'front' }], web: { enabled: true, port: 0, ...web } }, 't');
  const store = await Store.open(config.data_dir);
  const api = localApi(store, config, 't');
  await api.webUserPut({ name: 'ada', role: 'viewer', hash: hashes.ada! });
  await api.webUserPut({ name: 'otto', role: 'operator', hash: hashes.otto! });
  await api.webUserPut({ name: 'root', role: 'admin', hash: hashes.root! });
  const w = new WebServer({ config, api, store, metrics: null, log, version: 't', ...(clock ? { now: () => clock.now } : {}) });
  const { url } = await w.start();
  open.push({ web: w, store });
  return { url, store, web: w };
}

interface Reply {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Headers;
}
async function req(url: string, path: string, o: { method?: string; body?: unknown; raw?: string; cookie?: string; csrf?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.cookie) headers.cookie = o.cookie;
  if (o.csrf) headers['x-csrf-token'] = o.csrf;
  if (o.body !== undefined) headers['content-type'] ??= 'application/json';
  const body = o.raw ?? (o.body !== undefined ? JSON.stringify(o.body) : null);
  const res = await fetch(url + path, { method: o.method ?? (body !== null ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

async function login(url: string, user: keyof typeof PASSWORDS): Promise<{ cookie: string; csrf: string }> {
  const r = await req(url, '/api/login', { body: { user, password: PASSWORDS[user] } });
  expect(r.status).toBe(200);
  return { cookie: r.headers.get('set-cookie')!.split(';')[0]!, csrf: r.body.csrf as string };
}

describe('console HTTP', () => {
  it('answers nothing but the page, /healthz and /metrics without a session', async () => {
    const { url } = await console_();
    const page = await req(url, '/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'; script-src 'self'/);
    expect([page.headers.get('x-frame-options'), page.headers.get('x-content-type-options')]).toEqual(['DENY', 'nosniff']);
    expect((await req(url, '/healthz')).body).toEqual({ healthy: true });
    for (const p of ['/api/status', '/api/journal', '/api/users', '/api/events', '/api/config', '/api/outbox']) expect((await req(url, p)).status, p).toBe(401);
    expect((await req(url, '/api/doors/front/open', { body: {} })).status).toBe(401);
    expect((await req(url, '/nowhere')).status).toBe(404);
    expect((await req(url, '/api/status', { method: 'PUT' })).status).toBe(405);
  });

  it('logs in with a session cookie (HttpOnly, SameSite=Strict), logs out, and refuses a wrong password', async () => {
    const { url } = await console_();
    const r = await req(url, '/api/login', { body: { user: 'root', password: PASSWORDS.root } });
    expect(r.headers.get('set-cookie')).toMatch(/^doorgw_sid=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
    expect(r.body).toMatchObject({ user: 'root', role: 'admin', csrf: expect.any(String) });
    expect(JSON.stringify(r.body)).not.toContain('scrypt');
    const s = await login(url, 'root');
    expect((await req(url, '/api/session', { cookie: s.cookie })).body).toMatchObject({ user: 'root' });
    expect((await req(url, '/api/logout', { body: {}, ...s })).status).toBe(200);
    expect((await req(url, '/api/session', { cookie: s.cookie })).status).toBe(401);
    expect(await req(url, '/api/login', { body: { user: 'root', password: 'nope' } })).toMatchObject({ status: 401, body: { error: 'wrong user or password' } });
    expect(await req(url, '/api/login', { body: { user: 'ghost', password: 'nope' } })).toMatchObject({ status: 401, body: { error: 'wrong user or password' } });
    expect((await req(url, '/api/login', { body: { user: 'root' } })).status).toBe(400);
    expect((await req(url, '/api/login', { raw: 'user=root&password=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status).toBe(415);
  });

  it('throttles failed logins per (account, client) with backoff: the attacker waits, the admin elsewhere logs in', async () => {
    const clock = { now: 1_000_000 };
    const { url } = await console_({ login_max_failures: 3, login_lockout_s: 60, trusted_proxies: ['127.0.0.1'] }, clock);
    const from = (ip: string) => ({ 'x-forwarded-for': `10.9.9.9, ${ip}` }); // the left entry is the client's own claim
    const attempt = (ip: string, password: string) => req(url, '/api/login', { body: { user: 'otto', password }, headers: from(ip) });
    for (let i = 0; i < 3; i++) expect((await attempt('203.0.113.9', 'guess')).status).toBe(401);
    const locked = await attempt('203.0.113.9', PASSWORDS.otto);
    expect(locked).toMatchObject({ status: 429, body: { code: 'locked_out' } });
    expect(locked.headers.get('retry-after')).toBe('1');
    // The account is not locked for everyone: the right password from another client goes in.
    expect((await attempt('198.51.100.7', PASSWORDS.otto)).status).toBe(200);
    // The attacker's waits double with each failure, up to the lockout.
    const waits: string[] = [];
    for (let i = 0; i < 8; i++) {
      clock.now += Math.min(2 ** i * 1000 + 1, 60_001);
      expect((await attempt('203.0.113.9', 'guess')).status).toBe(401);
      waits.push((await attempt('203.0.113.9', 'guess')).headers.get('retry-after') ?? '');
    }
    expect(waits).toEqual(['2', '4', '8', '16', '32', '60', '60', '60']);
    clock.now += 60_001;
    expect((await attempt('203.0.113.9', PASSWORDS.otto)).status).toBe(200);
  });

  it("refuses an Origin that is not a URL (`null`, garbage) with 403, never a 500, and logs no unknown user name (often a typed password)", async () => {
    const { url } = await console_();
    for (const origin of ['null', 'not a url']) {
      expect(await req(url, '/api/login', { body: { user: 'root', password: PASSWORDS.root }, headers: { origin } })).toMatchObject({ status: 403, body: { code: 'forbidden' } });
    }
    expect(await req(url, '/api/login', { body: { user: 'hunter2-secret', password: 'x' } })).toMatchObject({ status: 401 });
    await expect.poll(() => logged.some((l) => l.includes('console login failed'))).toBe(true);
    expect(logged.join('')).not.toContain('hunter2-secret');
  });

  it('takes X-Forwarded-For only from a trusted proxy: a client cannot dodge its throttle by naming another address', async () => {
    const clock = { now: 1_000_000 };
    const { url } = await console_({ login_max_failures: 3, login_lockout_s: 60 }, clock);
    for (let i = 0; i < 3; i++) expect((await req(url, '/api/login', { body: { user: 'otto', password: 'guess' }, headers: { 'x-forwarded-for': `192.0.2.${i}` } })).status).toBe(401);
    expect((await req(url, '/api/login', { body: { user: 'otto', password: PASSWORDS.otto }, headers: { 'x-forwarded-for': '192.0.2.77' } })).status).toBe(429);
  });
  it('ends sessions when idle too long or too old, and when the account changes', async () => {
    const clock = { now: Date.now() };
    const { url, web } = await console_({ session_idle_min: 30, session_max_h: 1 }, clock);
    const s = await login(url, 'ada');
    clock.now += 29 * 60_000;
    expect((await req(url, '/api/status', s)).status).toBe(200); // touched: idle again from here
    clock.now += 29 * 60_000;
    expect((await req(url, '/api/status', s)).status).toBe(200);
    clock.now += 3 * 60_000; // 61 minutes old
    expect((await req(url, '/api/status', s)).status).toBe(401);
    const t = await login(url, 'ada');
    clock.now += 31 * 60_000;
    expect((await req(url, '/api/status', t)).status).toBe(401);
    const u = await login(url, 'ada');
    web.accountChanged('ada');
    expect((await req(url, '/api/status', u)).status).toBe(401);
  });

  it('requires the CSRF token, a same-origin Origin and a JSON body on every change', async () => {
    const { url } = await console_();
    const s = await login(url, 'root');
    expect(await req(url, '/api/users/block', { body: { userid: 'x' }, cookie: s.cookie })).toMatchObject({ status: 403, body: { error: 'missing or wrong CSRF token (reload the page)' } });
    expect((await req(url, '/api/users/block', { body: { userid: 'x' }, cookie: s.cookie, csrf: 'wrong' })).status).toBe(403);
    expect(await req(url, '/api/users/block', { body: { userid: 'x' }, ...s, headers: { origin: 'https://evil.example' } })).toMatchObject({ status: 403, body: { error: 'cross-origin request refused' } });
    expect((await req(url, '/api/users/block', { raw: 'userid=x', ...s, headers: { 'content-type': 'text/plain' } })).status).toBe(415);
    expect((await req(url, '/api/users/block', { raw: JSON.stringify({ userid: 'x'.repeat(70_000) }), ...s, headers: { 'content-type': 'application/json' } })).status).toBe(413);
    expect(await req(url, '/api/users/block', { body: { userid: 'x' }, ...s })).toMatchObject({ status: 404, body: { code: 'not_found', error: "no user 'x' in the cloud directory or the local layer" } });
  });

  it('gives each role what it may do, and changes nothing on a refusal', async () => {
    const { url, store } = await console_();
    await localApi(store, validateConfig({ data_dir: '/x', doors: [{ id: 'front' }] }, 't'), 't').usersAdd({ userid: 'li', cards: [1] });
    const viewer = await login(url, 'ada');
    const operator = await login(url, 'otto');
    const admin = await login(url, 'root');
    expect((await req(url, '/api/users/block', { body: { userid: 'li' }, ...viewer })).status).toBe(403);
    expect(store.localUser('li')?.local?.blocked ?? null).toBeNull();
    expect((await req(url, '/api/doors/front/open', { body: {}, ...viewer })).body).toMatchObject({ code: 'forbidden', error: 'this needs the operator role (you are viewer)' });
    expect((await req(url, '/api/config', viewer)).status).toBe(403);
    expect((await req(url, '/api/users/block', { body: { userid: 'li', reason: 'lost badge' }, ...operator })).status).toBe(200);
    expect((await req(url, '/api/users/unblock', { body: { userid: 'li' }, ...operator })).status).toBe(403);
    expect((await req(url, '/api/outbox/requeue', { body: {}, ...operator })).status).toBe(403);
    expect((await req(url, '/api/users/unblock', { body: { userid: 'li' }, ...admin })).status).toBe(200);
    const actions = ((await req(url, '/api/journal?kind=door_events&type=operator_action&order=asc', viewer)).body.entries as { detail: string }[]).map((e) => e.detail);
    expect(actions).toEqual(expect.arrayContaining(['web:otto: users block li (lost badge)', 'web:root: users unblock li']));
    // The configuration for admins, secrets redacted.
    expect((await req(url, '/api/config', admin)).body).toMatchObject({ gateway_id: 'g' });
    // Doors need the running gateway: a clear 503 from the stand-alone console.
    expect((await req(url, '/api/doors/front/open', { body: {}, ...operator })).body).toMatchObject({ code: 'unavailable' });
  });

  it('validates every query and body: a 4xx with the reason', async () => {
    const { url } = await console_();
    const s = await login(url, 'root');
    expect(await req(url, '/api/journal?from=yesterday', s)).toMatchObject({ status: 400, body: { error: expect.stringContaining("from 'yesterday'") } });
    expect(await req(url, '/api/journal?limit=0', s)).toMatchObject({ status: 400, body: { error: 'limit must be 1 to 5000' } });
    expect(await req(url, '/api/journal.csv?door=garage', s)).toMatchObject({ status: 400, body: { error: expect.stringContaining("no door 'garage'") } });
    expect(await req(url, '/api/users?layer=moon', s)).toMatchObject({ status: 400 });
    expect(await req(url, '/api/users/nobody', s)).toMatchObject({ status: 404 });
    expect(await req(url, '/api/users/%E0%A4%A', s)).toMatchObject({ status: 400, body: { error: 'a malformed %-escape in the path' } });
    expect(await req(url, '/api/outbox/discard', { body: { seqs: [1] }, ...s })).toMatchObject({ status: 400, body: { error: 'give a reason (journaled with the discard)' } });
    expect(await req(url, '/api/users/block', { raw: '[1,2]', ...s, headers: { 'content-type': 'application/json' } })).toMatchObject({ status: 400, body: { error: 'the body must be a JSON object' } });
    expect(await req(url, '/api/users/block', { raw: '{bad', ...s, headers: { 'content-type': 'application/json' } })).toMatchObject({ status: 400, body: { error: 'the body is not JSON' } });
    const csv = await req(url, '/api/journal.csv', s);
    expect([csv.status, csv.headers.get('content-type'), String(csv.body).split('\r\n')[0]]).toEqual([200, 'text/csv; charset=utf-8', 'time_local,at_ms,seq,door,decision,reason,method,userid,user_type,reader,direction,detail']);
  });

  it('refuses unsafe configurations with a clear message', () => {
    const bad = (web: Record<string, unknown>) => () => validateConfig({ data_dir: '/x', doors: [{ id: 'front' }], web: { enabled: true, ...web } }, 't');
    expect(bad({ bind: '0.0.0.0' })).toThrow(/serving the console on 0\.0\.0\.0 without TLS would send passwords and session cookies in clear/);
    expect(bad({ bind: '0.0.0.0', allow_insecure_remote: true })).toThrow(/metrics on 0\.0\.0\.0 need web\.metrics\.token/);
    expect(bad({ bind: '0.0.0.0', allow_insecure_remote: true, metrics: { token: 'prom-token-123' } })).not.toThrow();
    expect(bad({ bind: '127.0.0.1' })).not.toThrow();
  });

  it('serves HTTPS with Secure cookies and HSTS when given a certificate', async () => {
    const dir = tmpDir();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    const { url } = await console_({ tls: { cert: join(dir, 'c.pem'), key: join(dir, 'k.pem') } });
    expect(url).toMatch(/^https:\/\//);
    const res = await new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
      const r = httpsRequest(`${url}/api/login`, { method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } }, (m) => {
        m.resume();
        resolve({ status: m.statusCode!, headers: m.headers });
      });
      r.on('error', reject);
      r.end(JSON.stringify({ user: 'root', password: PASSWORDS.root }));
    });
    expect(res.status).toBe(200);
    expect(String(res.headers['set-cookie'])).toMatch(/; Secure;/);
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
    // A modern profile: a TLS 1.2 client offering only CBC/SHA-1 or CCM8 suites gets no handshake; GCM does.
    const { connect } = await import('node:tls');
    const u = new URL(url);
    const handshake = (ciphers: string) =>
      new Promise<string>((resolve) => {
        const s = connect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false, maxVersion: 'TLSv1.2', ciphers }, () => {
          const c = s.getCipher().name;
          s.end();
          resolve(c);
        });
        s.on('error', () => resolve('refused'));
      });
    expect(await handshake('ECDHE-ECDSA-AES128-SHA')).toBe('refused');
    expect(await handshake('ECDHE-ECDSA-AES128-CCM8')).toBe('refused');
    expect(await handshake('ECDHE-ECDSA-AES128-GCM-SHA256')).toBe('ECDHE-ECDSA-AES128-GCM-SHA256');
  });
});

describe('console connections', () => {
  it('closes idle sockets, caps connections per client (logged), and keeps answering /healthz', async () => {
    const { url } = await console_({ idle_timeout_s: 1, max_connections_per_client: 8 });
    const { connect } = await import('node:net');
    const u = new URL(url);
    const sockets = Array.from({ length: 12 }, () => connect(Number(u.port), u.hostname));
    const closedAt: number[] = [];
    const t0 = performance.now();
    await Promise.all(sockets.map((s) => new Promise<void>((r) => s.once('close', () => (closedAt.push(performance.now() - t0), r())))));
    closedAt.sort((a, b) => a - b);
    // Four beyond the cap at once; the eight idle ones after the idle timeout.
    expect(closedAt.slice(0, 4).every((ms) => ms < 900)).toBe(true);
    expect(closedAt.slice(4).every((ms) => ms >= 900 && ms < 5000)).toBe(true);
    expect(logged.some((l) => l.includes('console connection refused: connection cap reached'))).toBe(true);
    expect((await req(url, '/healthz')).body).toEqual({ healthy: true });
  });
});
