/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The console in a real browser (Debian's Chromium, headless, through puppeteer-core) against a
 * real gateway on a real Mosquitto. Screenshots go to test-artifacts/console/.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { hashPassword } from '../../src/domain/password.js';
import { keyIdOf, rawPublicKey } from '../../src/domain/site-envelope.js';
import { SiteTool } from '../../src/cli/site-tool.js';
import { ToolClient } from '../../src/io/mqtt/client.js';
import { createLogger } from '../../src/log.js';
import { Broker, client, USERS } from '../helpers/mosquitto.js';
import { cleanup, DEFAULT_DOORS, simRelay, startMqttGateway } from '../helpers/mqtt-gateway.js';
import { credentialEvent } from '../../src/domain/events.js';
import { emulatedOsdpBus } from '../helpers/osdp-bus.js';
import { makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!CHROMIUM) throw new Error('no Chromium: run `apt-get install -y chromium` (scripts/ensure-test-deps.sh does)');
const SHOTS = new URL('../../test-artifacts/console/', import.meta.url).pathname;
mkdirSync(SHOTS, { recursive: true });

const log = createLogger({ level: process.env.DOORGW_TEST_LOG ?? 'silent', pretty: true });
const broker = new Broker();
const key = makeKey();
let browser: Browser;
beforeAll(async () => {
  await broker.start();
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--lang=en-US', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await broker.stop();
});
const t = cleanup();

async function consoleGateway(doors?: unknown[], top: Record<string, unknown> = {}) {
  t.gw = await startMqttGateway(broker, { log, key, top: { web: { enabled: true, port: 0 }, ...top }, ...(doors ? { doors } : {}) });
  await t.gw.api.webUserPut({ name: 'guard', role: 'operator', hash: await hashPassword('guard-password-1') });
  const a = t.gw.web!.address!;
  return `http://127.0.0.1:${a.port}`;
}

async function logIn(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.waitForSelector('#login-form', { visible: true });
  await page.type('#login-user', 'guard');
  await page.type('#login-password', 'guard-password-1');
  await page.click('#login-submit');
  await page.waitForSelector('.door[data-door="lobby"]', { visible: true });
}

const text = (page: Page, sel: string): Promise<string> => page.$eval(sel, (el) => el.textContent ?? '');

describe('the console in Chromium', () => {
  it('logs in, shows a reader\'s credential live within a second, opens the door, changes a mode, searches the journal and downloads the CSV', async () => {
    // The lobby also has an OSDP reader (plaintext, emulated on a pty): its link is a badge on the door.
    const { pty, emu } = await emulatedOsdpBus(t.closers);
    emu.add({ address: 0, secureCapable: false });
    const url = await consoleGateway([
      { ...DEFAULT_DOORS[0]!, readers: [...DEFAULT_DOORS[0]!.readers, { id: 'lobby-osdp', type: 'osdp', path: pty.gateway, secure: false, baud_rate: 115200 }] },
      DEFAULT_DOORS[1]!,
    ]);
    await until(async () => (await t.gw!.api.status()).readers?.[0]?.state === 'online', 'OSDP reader online', 5000);
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    await logIn(page, url);
    expect(await text(page, '#who')).toBe('gw1 · guard (operator)');
    expect(await text(page, '.door[data-door="lobby"] .badges')).toBe('lockedno contactnormallobby-osdp: online');
    expect(await page.$eval('.door[data-door="lobby"] .badge.reader', (el) => [el.className, el.getAttribute('title')])).toEqual(['badge reader ok', 'plaintext (secure: false)']);
    // Nothing sticks out of its card.
    expect(await page.$$eval('.door', (cards) => cards.flatMap((c) => [...c.querySelectorAll('*')].filter((e) => e.getBoundingClientRect().right > c.getBoundingClientRect().right + 0.5).map((e) => e.className)))).toEqual([]);
    await page.screenshot({ path: join(SHOTS, 'dashboard.png') });

    // Live events: a card on the MQTT reader appears within a second.
    await page.click('nav button[data-tab="live"]');
    const reader = await client(broker, 'lobby-reader');
    t.closers.push(() => reader.c.endAsync());
    const sent = Date.now();
    await reader.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'card', value: 1001 }), { qos: 1 });
    await page.waitForFunction(() => document.querySelector('#live-list li.live-decision')?.textContent?.includes('alice'), { timeout: 1000 });
    const shown = Date.now() - sent;
    expect(shown).toBeLessThan(1000);
    expect(await text(page, '#live-list li.live-decision')).toMatch(/Granted · lobby · alice · allowed by default for their type · card/i);
    await page.screenshot({ path: join(SHOTS, 'live.png') });

    // Open from the dashboard: the relay pulses and the journal names the account.
    await page.click('nav button[data-tab="dashboard"]');
    await page.waitForSelector('.door[data-door="lobby"] button.open');
    const before = simRelay(t.gw!).pulses.length;
    await page.click('.door[data-door="lobby"] button.open');
    await until(() => simRelay(t.gw!).pulses.length === before + 1, 'relay pulse');
    await page.waitForFunction(() => document.querySelector('#flash')?.textContent === 'Door opened');
    await until(async () => (await t.gw!.store.recentDoorEvents(10)).some((e) => e.type === 'operator_action' && e.detail === 'web:guard: open (grant)'), 'journaled with the account');
    await until(async () => (await t.gw!.store.recentJournal(5)).some((e) => e.reason === 'operator_open'), 'the opening journaled');
    expect((await t.gw!.store.recentJournal(5)).find((e) => e.reason === 'operator_open')).toMatchObject({ decision: 'grant', detail: 'opened by web:guard' });

    // A mode for 15 minutes.
    await page.select('.door[data-door="lobby"] select.mode-select', 'passage');
    await page.select('.door[data-door="lobby"] select.mode-duration', '900');
    await page.click('.door[data-door="lobby"] button.mode-apply');
    await until(() => t.gw!.pipeline.modeOf('lobby') === 'passage', 'passage');
    expect(t.gw!.pipeline.modeUntil('lobby')! - Date.now()).toBeGreaterThan(890_000);
    await page.waitForFunction(() => document.querySelector('.door[data-door="lobby"] .badge.mode')?.textContent?.startsWith('passage'));

    // The journal: granted decisions at the lobby, then the CSV of the same search.
    await page.click('nav button[data-tab="journal"]');
    await page.select('#j-door', 'lobby');
    await page.select('#j-decision', 'grant');
    await page.click('#j-search');
    await page.waitForSelector('#j-results tbody tr');
    const rows = await page.$$eval('#j-results tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(rows.map((r) => [r[1], r[2], r[3]])).toEqual([['lobby', 'granted', '—'], ['lobby', 'granted', 'alice']]);
    await page.screenshot({ path: join(SHOTS, 'journal.png') });
    const downloads = tmpDir();
    const cdp = await page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
    await page.click('#j-csv');
    await until(() => readdirSync(downloads).find((f) => f.endsWith('.csv')), 'downloaded CSV', 5000);
    const csv = readFileSync(join(downloads, readdirSync(downloads).find((f) => f.endsWith('.csv'))!), 'utf8').trim().split('\r\n');
    expect(csv[0]).toBe('time_local,at_ms,seq,door,decision,reason,method,userid,user_type,reader,direction,detail');
    expect(csv.slice(1).map((l) => l.split(',').slice(3, 8).join(','))).toEqual(['lobby,grant,default_allow,card,alice', 'lobby,grant,operator_open,operator,']);

    // People: search, a person's rules in words, and a block by the operator (journaled by account).
    await t.gw!.api.usersAdd({ userid: 'li', name: 'Li Lei', cards: [7], rules: ['9:00-18:00 * * 1-5 *'] });
    await page.click('nav button[data-tab="users"]');
    await page.type('#u-query', 'li lei');
    await page.click('#u-search');
    await page.waitForSelector('#u-results li');
    expect(await text(page, '#u-results li')).toBe('Li Lei · li · local');
    await page.click('#u-results li');
    await page.waitForSelector('#u-detail dl');
    expect(await text(page, '#u-detail dl')).toContain('Mon–Fri 09:00–18:00 (9:00-18:00 * * 1-5 *)');
    await page.screenshot({ path: join(SHOTS, 'person.png') });
    await page.click('#u-detail button.danger');
    await until(() => t.gw!.store.localUser('li')?.local?.blocked?.by === 'web:guard', 'blocked by the account');
  }, 60_000);

  it('fits a phone, switches to Chinese, and a viewer cannot open doors', async () => {
    const url = await consoleGateway();
    await t.gw!.api.webUserPut({ name: 'watcher', role: 'viewer', hash: await hashPassword('watcher-password') });
    const page = await browser.newPage();
    await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    await logIn(page, url);
    expect(await page.evaluate(() => [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5).map((e) => `${e.tagName}.${e.className}#${e.id} ${Math.round(e.getBoundingClientRect().right)}`).slice(0, 8))).toEqual([]);
    const open = await page.$eval('.door[data-door="lobby"] button.open', (b) => b.getBoundingClientRect().height);
    expect(open).toBeGreaterThanOrEqual(44); // a thumb-sized button
    await page.screenshot({ path: join(SHOTS, 'phone-dashboard.png') });
    await page.select('#lang', 'zh');
    expect(await text(page, 'nav button[data-tab="dashboard"]')).toBe('门');
    // The door cards are rebuilt in the new language (asynchronously): wait for them.
    await page.waitForFunction(() => document.querySelector('.door[data-door="lobby"] button.open')?.textContent === '开门', { timeout: 5000 });
    await page.click('nav button[data-tab="journal"]');
    expect(await page.evaluate(() => [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5).map((e) => `${e.tagName}.${e.className}#${e.id} ${Math.round(e.getBoundingClientRect().right)}`).slice(0, 8))).toEqual([]);
    await page.screenshot({ path: join(SHOTS, 'phone-journal-zh.png') });

    // A viewer sees the doors with disabled buttons; the server refuses even a forged request.
    await page.click('#logout');
    await page.waitForSelector('#login-form', { visible: true });
    expect(await page.$eval('#logout', (b) => getComputedStyle(b).display)).toBe('none');
    await page.$eval('#login-user', (i) => ((i as HTMLInputElement).value = ''));
    await page.type('#login-user', 'watcher');
    await page.type('#login-password', 'watcher-password');
    await page.click('#login-submit');
    await page.waitForFunction(() => document.querySelector('#who')?.textContent?.includes('watcher'));
    await page.waitForSelector('.door[data-door="lobby"] button.open');
    expect(await page.$eval('.door[data-door="lobby"] button.open', (b) => (b).disabled)).toBe(true);
    const forged = await page.evaluate(async () => {
      const s = (await (await fetch('/api/session')).json()) as { csrf: string };
      const r = await fetch('/api/doors/lobby/open', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf }, body: '{}' });
      return r.status;
    });
    expect(forged).toBe(403);
    expect(simRelay(t.gw!).pulses).toHaveLength(0);
  }, 60_000);

  it('a fire release shows a banner over every tab; its reset is refused while the alarm is active, then ends it', async () => {
    const url = await consoleGateway();
    const page = await browser.newPage();
    await logIn(page, url);
    expect(await page.$eval('#fire-banner', (b) => (b as HTMLElement).hidden)).toBe(true);
    // The fire controller as an input drives it (the input side is tested in test/pipeline/fire-io.test.ts).
    const fire = t.gw!.io!.fire;
    fire.source('input:panel', ['lobby'], true, { latch: true, cause: 'fire input panel' });
    await page.waitForSelector('#fire-banner:not([hidden])', { timeout: 5000 });
    expect(await text(page, '#fire-doors')).toBe('lobby');
    await page.waitForSelector('.door[data-door="lobby"] .badge.fire', { timeout: 5000 });
    expect(await page.$('.door[data-door="back"] .badge.fire')).toBeNull();
    await page.click('nav button[data-tab="journal"]');
    expect(await page.$eval('#fire-banner', (b) => getComputedStyle(b).display)).not.toBe('none'); // on every tab
    await page.click('nav button[data-tab="dashboard"]');
    await page.click('#fire-reset');
    await page.waitForFunction(() => document.querySelector('#flash')?.textContent?.startsWith('not reset: the fire alarm is still active'), { timeout: 5000 });
    expect(simRelay(t.gw!).energised).toBe(true);
    fire.source('input:panel', ['lobby'], false, { latch: true, cause: 'fire input panel back to normal' });
    await page.waitForFunction(() => document.querySelector('#fire-doors')?.textContent?.includes('latched'), { timeout: 5000 });
    await page.screenshot({ path: join(SHOTS, 'fire-banner.png') });
    await page.click('#fire-reset');
    await page.waitForSelector('#fire-banner[hidden]', { timeout: 5000 });
    expect(simRelay(t.gw!).energised).toBe(false);
    await until(async () => (await t.gw!.store.recentDoorEvents(20)).some((e) => e.type === 'operator_action' && e.detail === 'web:guard: fire reset: reset lobby'), 'journaled with the account');
  }, 60_000);

  it('shows the site\'s threat level on the door card it holds, with who set it', async () => {
    const desk = generateKeyPairSync('ed25519');
    const site = { enabled: true, keys: [{ kid: keyIdOf(desk.publicKey), name: 'guard-desk', public_key: rawPublicKey(desk.publicKey), roles: ['guard'] }] };
    const url = await consoleGateway(undefined, { site });
    const page = await browser.newPage();
    await logIn(page, url);
    expect(await page.$('.door[data-door="lobby"] .badge.level')).toBeNull();
    // A signed level, as the guard desk's tool states it (its own broker account).
    const c = await ToolClient.connect({ url: broker.url, username: 'admin', password: USERS.admin, clientId: 'admin' });
    t.closers.push(() => c.end());
    const tool = new SiteTool(c, t.gw!.config, { privateKey: desk.privateKey, kid: keyIdOf(desk.publicKey) });
    await tool.state('threat_level/site', { site: true }, { level: 'elevated', reason: 'drill' });
    await until(() => t.gw!.site!.status().levels.some((l) => l.door === 'lobby' && l.level === 'elevated'), 'the level at the door');
    await page.click('nav button[data-tab="journal"]');
    await page.click('nav button[data-tab="dashboard"]'); // the dashboard read again
    await page.waitForSelector('.door[data-door="lobby"] .badge.level', { timeout: 5000 });
    expect(await text(page, '.door[data-door="lobby"] .badge.level')).toBe('threat level: elevated');
    expect(await page.$eval('.door[data-door="lobby"] .badge.level', (b) => b.getAttribute('title'))).toBe('guard-desk: drill');
  }, 60_000);

  it('the System tab shows the named outputs and a lift car\'s floors, with what holds each', async () => {
    const car = { id: 'car', lift: { floors: [{ floor: 'G', output: 'fg' }, { floor: '1', output: 'f1' }], everyone: ['G'], enable_s: 60 } };
    const url = await consoleGateway([...DEFAULT_DOORS, car], { io: { outputs: { fg: { driver: 'sim' }, f1: { driver: 'sim', name: 'Floor 1' }, siren: { driver: 'sim', name: 'Siren' } } } });
    const page = await browser.newPage();
    await logIn(page, url);
    expect(t.gw!.pipeline.handle(credentialEvent('car', 'car-reader', 'in', { type: 'card', value: '1001' }))).toMatchObject({ decision: 'grant', userid: 'alice' });
    await page.click('nav button[data-tab="system"]');
    await page.waitForSelector('#io-lift-car li', { timeout: 5000 });
    expect(await page.$$eval('#io-outputs li', (l) => l.map((x) => x.textContent))).toEqual(['fg: on', 'Floor 1: off', 'Siren: off']);
    expect(await page.$$eval('#io-lift-car li', (l) => l.map((x) => x.textContent))).toEqual(['G: on (grant)', '1: off']);
  }, 60_000);
});

