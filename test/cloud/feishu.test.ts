import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FeishuEmulator, feishuUsers } from '../../src/cloud/feishu/emulator.js';
import type { FeishuAdapter } from '../../src/cloud/feishu/adapter.js';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import type { SimRelay } from '../../src/io/relay.js';
import { credentialEvent } from '../../src/domain/events.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: process.env.DOORGW_TEST_LOG ?? 'silent', pretty: true });
let emu: FeishuEmulator | null = null;
let gw: Gateway | null = null;
afterEach(async () => {
  await gw?.stop();
  await emu?.stop();
  gw = null;
  emu = null;
});

async function start(users = feishuUsers(120), feishu: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<{ emu: FeishuEmulator; gw: Gateway; adapter: FeishuAdapter }> {
  emu = new FeishuEmulator();
  emu.users = users;
  const url = await emu.start();
  const config = validateConfig(
    {
      data_dir: join(tmpDir(), 'data'),
      policy: { debounce_ms: 0 },
      doors: [{ id: 'front' }],
      cloud: { provider: 'feishu', feishu: { base_url: url, app_id: emu.appId, app_secret: emu.appSecret, backoff_ms: 20, ...feishu } },
      ...extra,
    },
    'test',
  );
  gw = await Gateway.start({ config, log, controlSocket: false });
  return { emu, gw, adapter: gw.cloud as FeishuAdapter };
}

const card = (g: Gateway, n: string) => g.pipeline.handle(credentialEvent('front', 'reader', 'in', { type: 'card', value: n }));

describe('Feishu adapter', () => {
  it('lists the access-control users 50 a page and opens for their cards', async () => {
    const { emu, gw, adapter } = await start(feishuUsers(120), { user_id_type: 'user_id' });
    await until(() => adapter.state$.value.link === 'online', 'sync');
    expect(await gw.store.userCount()).toBe(120); // users without a card are kept
    const lists = emu.requests.filter((r) => r.path === '/open-apis/acs/v1/users');
    expect(lists.map((r) => [r.query.page_size, r.query.user_id_type, r.query.page_token !== undefined])).toEqual([['50', 'user_id', false], ['50', 'user_id', true], ['50', 'user_id', true]]);
    expect(card(gw, '100001')).toMatchObject({ decision: 'grant', reason: 'default_allow', userid: 'ou_00000001', method: 'card' });
    expect(card(gw, '100004')).toMatchObject({ decision: 'deny', reason: 'unknown_user' }); // that user has no card
    expect(gw.pipeline.handle(credentialEvent('front', 'face-terminal', 'in', { type: 'userid', value: 'ou_00000004', method: 'face' }))?.decision).toBe('grant');
    expect((gw.relays.get('front') as SimRelay).pulses).toHaveLength(2);
    expect(await gw.store.outboxDepth()).toBe(0); // Feishu takes no records: journal only
  });

  it('replaces the cached directory atomically on re-sync, and caches the token', async () => {
    const { emu, gw, adapter } = await start(feishuUsers(60));
    await until(() => adapter.state$.value.link === 'online', 'sync');
    emu.users = feishuUsers(10, 500_000);
    const r = await adapter.syncNow();
    expect(r.users).toBe(10);
    expect(card(gw, '100001')?.reason).toBe('unknown_user');
    expect(card(gw, '500003')?.decision).toBe('grant');
    expect(emu.tokenRequests).toBe(1);
  });

  it('refreshes the token after an auth error and restarts the listing on an invalid page token', async () => {
    const { emu, adapter, gw } = await start(feishuUsers(10));
    await until(() => adapter.state$.value.link === 'online', 'sync');
    emu.users = feishuUsers(130);
    emu.expireTokens();
    let invalidated = false;
    emu.fault = (req) => {
      if (req.path === '/open-apis/acs/v1/users' && req.query.get('page_token') && !invalidated) {
        invalidated = true;
        emu.invalidatePageTokens(); // the listing changed under us
      }
      return undefined;
    };
    expect((await adapter.syncNow()).users).toBe(130);
    expect(emu.tokenRequests).toBe(2);
    const firstPages = emu.requests.filter((r) => r.path === '/open-apis/acs/v1/users' && r.query.page_token === undefined);
    expect(firstPages.length).toBe(4); // initial sync, after the expired token, after 1490018 … and its successful restart
    expect(await gw.store.userCount()).toBe(130);
  });

  it('backs off on rate limits and 5xx, and keeps the cached directory when the cloud fails', async () => {
    const { emu, adapter, gw } = await start(feishuUsers(30), { max_retries: 2 });
    await until(() => adapter.state$.value.link === 'online', 'sync');
    let n = 0;
    emu.fault = (req) => (req.path === '/open-apis/acs/v1/users' && n++ < 2 ? { status: 429, body: { code: 99991400, msg: 'request trigger frequency limit' } } : undefined);
    expect((await adapter.syncNow()).users).toBe(30);
    emu.fault = () => ({ status: 502, text: '<html>bad gateway</html>' });
    await expect(adapter.syncNow()).rejects.toThrow(/non-JSON body/);
    expect(adapter.state$.value).toMatchObject({ link: 'offline', last_error: expect.stringContaining('non-JSON') });
    expect(await gw.store.userCount()).toBe(30);
    expect(card(gw, '100000')?.decision).toBe('grant');
  });

  it('denies a card claimed by two users, keeps users with bad cards, and refuses a listing that never ends', async () => {
    const users = [
      { user_id: 'ou_a', feature: { card: 42 } },
      { user_id: 'ou_b', feature: { card: 42 } },
      { user_id: 'ou_c', feature: { card: '12ab' } },
      { user_id: 'ou_d', feature: { card: 1.5 } },
      { user_id: '', feature: { card: 7 } },
      { feature: {} },
    ];
    const { emu, adapter, gw } = await start(users as never);
    await until(() => adapter.state$.value.link === 'online', 'sync');
    expect(await gw.store.userCount()).toBe(4);
    expect(card(gw, '42')).toMatchObject({ decision: 'deny', reason: 'credential_conflict' });
    expect(gw.store.directory.user('ou_c')?.cards).toEqual([]);
    emu.fault = (req) => (req.path === '/open-apis/acs/v1/users' ? { body: { code: 0, data: { items: [], has_more: true, page_token: req.query.get('page_token') ?? 'same' } } } : undefined);
    await expect(adapter.syncNow()).rejects.toThrow(/has_more without a new page_token/);
    expect(await gw.store.userCount()).toBe(4);
  });

  it('refuses a feishu provider without credentials, naming the key', () => {
    expect(() => validateConfig({ doors: [{ id: 'a' }], cloud: { provider: 'feishu' } }, 't')).toThrow(/cloud\.feishu: provider 'feishu' needs/);
    expect(() => validateConfig({ doors: [{ id: 'a' }], cloud: { provider: 'feishu', feishu: { app_id: 'x' } } }, 't')).toThrow(/cloud\.feishu\.app_secret/);
  });
});
