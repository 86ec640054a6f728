/// <reference lib="dom" />
/**
 * The site console (issue 24) in a real browser (Debian's Chromium through puppeteer-core),
 * served by the collector on a real PostgreSQL, with two gateways on a real Mosquitto: every
 * door, the site journal searched and exported, presence and the muster with "mark safe"; a
 * phone's width, Chinese, a viewer's limits, and the door console's session and CSRF rules.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Collector } from '../../src/collector/collector.js';
import { SiteConsole } from '../../src/collector/console.js';
import { collectorConfigSchema } from '../../src/config/collector-schema.js';
import { credentialEvent } from '../../src/domain/events.js';
import { hashPassword } from '../../src/domain/password.js';
import { keyIdOf, rawPublicKey } from '../../src/domain/site-envelope.js';
import type { Gateway } from '../../src/gateway.js';
import { doorKey } from '../../src/io/door-key.js';
import { createLogger } from '../../src/log.js';
import { SiteJournalDb } from '../../src/store/site-journal-db.js';
import { siteBroker } from '../helpers/mosquitto.js';
import { startMqttGateway } from '../helpers/mqtt-gateway.js';
import { Postgres } from '../helpers/postgres.js';
import { makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!CHROMIUM) throw new Error('no Chromium: run `apt-get install -y chromium` (scripts/ensure-test-deps.sh does)');
const SHOTS = new URL('../../test-artifacts/site-console/', import.meta.url).pathname;
mkdirSync(SHOTS, { recursive: true });

const log = createLogger({ level: 'silent', pretty: false });
const qrKey = makeKey();
const ACCOUNTS = { gw1: 'b1', gw2: 'b2', collector: 'c1' } as const;
const pg = new Postgres();
const broker = siteBroker(ACCOUNTS);
let browser: Browser;
const closers: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  await Promise.all([pg.start(), broker.start()]);
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--lang=en-US', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await broker.stop();
  await pg.stop();
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const collectorKey = generateKeyPairSync('ed25519');

async function site(): Promise<{ url: string; g1: Gateway; g2: Gateway; db: SiteJournalDb; c: Collector }> {
  const ids = ['gw1', 'gw2'] as const;
  const dirs = new Map(ids.map((id) => [id, join(tmpDir(), id)]));
  const door_keys = ids.map((id) => ({ gateway: id, kid: doorKey(dirs.get(id)!).kid, public_key: doorKey(dirs.get(id)!).publicKey }));
  const siteCfg = { enabled: true, door_keys, report_interval_s: 5, keys: [{ kid: keyIdOf(collectorKey.publicKey), name: 'collector', public_key: rawPublicKey(collectorKey.publicKey), roles: ['collector'] }] };
  const start = async (id: (typeof ids)[number]) => {
    const g = await startMqttGateway(broker, { log, key: qrKey, dataDir: dirs.get(id)!, extra: { username: id, password: ACCOUNTS[id] }, top: { gateway_id: id, site: siteCfg, areas: { hq: { doors: ['lobby', 'back'], site: true } } } });
    closers.push(() => g.stop());
    return g;
  };
  const [g1, g2] = [await start('gw1'), await start('gw2')];
  const config = collectorConfigSchema.parse({ site: { url: broker.url, username: 'collector', password: ACCOUNTS.collector }, key_file: '/unused', door_keys, database: { url: await pg.database() }, timezone: 'Asia/Shanghai', web: { enabled: true, port: 0 } });
  const db = await SiteJournalDb.open({ url: config.database.url! });
  const c = new Collector({ config, signer: { privateKey: collectorKey.privateKey, kid: keyIdOf(collectorKey.publicKey) }, db, log });
  await c.start();
  const web = new SiteConsole({ config, db, collector: c, log, version: 'test' });
  await web.start();
  closers.push(async () => {
    await web.stop();
    await c.stop();
    await db.close();
  });
  await db.putWebAccount('guard', 'operator', await hashPassword('guard-password-1'));
  await db.putWebAccount('watch', 'viewer', await hashPassword('watch-password-1'));
  return { url: `http://127.0.0.1:${web.address!.port}`, g1, g2, db, c };
}

async function logIn(page: Page, url: string, user = 'guard', password = 'guard-password-1'): Promise<void> {
  await page.goto(url);
  await page.waitForSelector('#login-form', { visible: true });
  await page.type('#login-user', user);
  await page.type('#login-password', password);
  await page.click('#login-submit');
  await page.waitForSelector('#app', { visible: true });
}
const text = (page: Page, sel: string): Promise<string> => page.$eval(sel, (el) => el.textContent ?? '');
const pass = (g: Gateway, card: string, door: 'lobby' | 'back' = 'lobby') => g.pipeline.handle(credentialEvent(door, door === 'lobby' ? 'lobby-reader' : 'other-reader', door === 'lobby' ? 'in' : 'out', { type: 'card', value: card }))!;

describe('the site console in Chromium', () => {
  it('shows every door, searches the site journal and downloads its CSV, and runs a muster with mark safe', async () => {
    const { url, g1, g2, db } = await site();
    expect(pass(g1, '1001').decision).toBe('grant'); // alice in at gw1
    expect(pass(g2, '9999').reason).toBe('unknown_user');
    await until(async () => (await db.counts()).rows >= 2 && (await db.gateways()).filter((g) => g.doors).length === 2 && (await db.inside('hq', 0)).length === 1, 'the site journal, both reports and alice inside', 15_000);
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    await logIn(page, url);
    expect(await text(page, '#who')).toBe('collector · guard (operator)');
    expect(await page.$eval('#login-form', (f) => getComputedStyle(f).display)).toBe('none'); // gone once logged in
    await page.waitForSelector('.gateway[data-gateway="gw2"]');
    expect(await page.$$eval('.gateway', (gs) => gs.map((g) => [g.getAttribute('data-gateway'), g.querySelector('.badge')!.textContent, [...g.querySelectorAll('li')].map((l) => l.getAttribute('data-door'))]))).toEqual([
      ['gw1', 'online', ['lobby', 'back']],
      ['gw2', 'online', ['lobby', 'back']],
    ]);
    expect(await text(page, '.gateway[data-gateway="gw2"] .muted')).toMatch(/lobby deny/);
    // Each door's mode (and alarm, fire release) from its signed report: a lockdown at gw2's back door shows.
    expect(g2.pipeline.setMode('back', 'lockdown', { by: 'test' })).toBe(true);
    await until(async () => {
      await page.click('.tab[data-tab="doors"]');
      return (await page.$$eval('.gateway[data-gateway="gw2"] li[data-door="back"] .badge.mode', (b) => b.map((x) => x.textContent))).join() === 'lockdown';
    }, 'the lockdown on the console', 10_000);
    expect(await page.$$eval('.gateway[data-gateway="gw1"] li[data-door="lobby"] .badge.mode', (b) => b.map((x) => x.textContent))).toEqual(['normal']);
    expect(g2.pipeline.setMode('back', 'normal', { by: 'test' })).toBe(true);
    await page.screenshot({ path: join(SHOTS, 'doors.png') });

    // The journal across doors: denials only, then the CSV of the same search.
    await page.click('.tab[data-tab="journal"]');
    await page.waitForSelector('#journal-table tbody tr');
    await page.select('#q-decision', 'deny');
    await page.click('#q-search');
    await until(async () => (await page.$$eval('#journal-table tbody tr', (rs) => rs.map((r) => r.textContent))).join('|').match(/^[^|]*gw2\/lobbydenyunknown_user$/), 'one denial');
    const downloads = tmpDir();
    const cdp = await page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
    await page.click('#q-csv');
    await until(() => readdirSync(downloads).find((f) => f.endsWith('.csv')), 'downloaded CSV', 5000);
    const csv = readFileSync(join(downloads, readdirSync(downloads).find((f) => f.endsWith('.csv'))!), 'utf8').trim().split('\r\n');
    expect(csv[0]).toBe('time_local,at_ms,gateway,seq,door,kind,decision,reason,method,userid,user_type,reader,direction,type,detail');
    expect(csv.slice(1).map((l) => l.split(',').slice(2, 8).join(',')).map((l) => l.replace(/,\d+,/, ',#,'))).toEqual(['gw2,#,lobby,decision,deny,unknown_user']);
    // A bad search is told, not a crash.
    await page.type('#q-from', 'yesterday');
    await page.click('#q-search');
    await until(async () => /from 'yesterday'/.test(await text(page, '#journal-error')), 'the error shown');

    // Muster: alice inside (from gw1's signed presence); start it, mark her safe.
    await page.click('.tab[data-tab="muster"]');
    await page.waitForSelector('#muster-table tr[data-person="alice"]');
    expect(await text(page, '#muster-table tr[data-person="alice"] td:nth-child(4)')).toBe('gw1/lobby');
    expect(await page.$$eval('.panel', (ps) => ps.filter((p) => getComputedStyle(p).display !== 'none').map((p) => p.id))).toEqual(['muster']); // one tab at a time
    await page.click('#muster-start');
    await page.waitForSelector('#muster-banner', { visible: true });
    expect(await text(page, '#muster-summary')).toBe('1 inside · 0 marked safe · 1 unaccounted');
    await page.click('#muster-table tr[data-person="alice"] .mark-safe');
    await until(async () => (await text(page, '#muster-table tr[data-person="alice"] td:nth-child(5)')) === '✓ web:guard', 'marked safe by the guard');
    expect(await text(page, '#muster-summary')).toBe('1 inside · 1 marked safe · 0 unaccounted');
    await page.screenshot({ path: join(SHOTS, 'muster.png') });
    // Out at gw2 (the area spans both): no longer inside.
    expect(pass(g2, '1001', 'back').decision).toBe('grant');
    await until(async () => (await db.inside('hq', 0)).length === 0, 'alice out in the site journal');
    await page.click('.tab[data-tab="muster"]');
    await until(async () => (await text(page, '#muster-summary')).startsWith('0 inside'), 'the list empty');
  }, 60_000);

  it('fits a phone, speaks Chinese, keeps a viewer from marking anyone, and refuses a change without the CSRF token', async () => {
    const { url, g1, db, c } = await site();
    expect(pass(g1, '1001').decision).toBe('grant');
    await until(async () => (await db.inside('hq', 0)).length === 1, 'alice inside');
    c.startMuster('test', 'drill');
    const page = await browser.newPage();
    await page.setViewport({ width: 390, height: 844, isMobile: true });
    await logIn(page, url, 'watch', 'watch-password-1');
    await page.click('#lang');
    expect(await text(page, '.tab[data-tab="muster"]')).toBe('集合点名');
    await page.click('.tab[data-tab="muster"]');
    await page.waitForSelector('#muster-table tr[data-person="alice"]');
    expect(await page.$('#muster-table .mark-safe')).toBeNull();
    expect(await page.$eval('#muster-start', (b) => (b as HTMLButtonElement).hidden)).toBe(true);
    expect(await text(page, '#muster-banner')).toMatch(/^点名进行中: .* — drill$/);
    for (const tab of ['doors', 'journal', 'muster']) {
      await page.click(`.tab[data-tab="${tab}"]`);
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), tab).toBe(true);
    }
    await page.screenshot({ path: join(SHOTS, 'phone-zh.png') });
    // The viewer's session may not mark; and no session may change anything without its token.
    const asViewer = await page.evaluate(async () => (await fetch('/api/muster/safe', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': 'wrong' }, body: '{"area":"hq","userid":"alice"}' })).status);
    expect(asViewer).toBe(403);
    const anonymous = await fetch(`${url}/api/muster`);
    expect(anonymous.status).toBe(401);
    const cross = await fetch(`${url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json', Origin: 'http://evil.example' }, body: JSON.stringify({ user: 'guard', password: 'guard-password-1' }) });
    expect(cross.status).toBe(403);
    expect((await db.inside('hq', 0))[0]!.safe_by).toBeNull();
  }, 60_000);
});
