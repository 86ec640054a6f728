/**
 * Feishu event callbacks (issue 26, item 1; protocols.md §16) through the gateway's real web
 * server, sent by the emulator as Feishu sends them (schema 2.0, encrypted and signed with an
 * Encrypt Key, or plaintext with the verification token): the URL check; acs.user.updated_v1 reads
 * that one user again at once (a changed card works at the door without a full sync) and the
 * permission groups with it; duplicates; a user gone from Feishu; and every forgery refused
 * before anything in it is used.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { FeishuAdapter } from '../../src/cloud/feishu/adapter.js';
import { FeishuEmulator, feishuUsers } from '../../src/cloud/feishu/emulator.js';
import { decryptEvent, eventSignature, openEvent } from '../../src/cloud/feishu/events.js';
import { validateConfig } from '../../src/config/load.js';
import type { FeishuRule } from '../../src/domain/feishu-groups.js';
import { credentialEvent } from '../../src/domain/events.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { doorgwAsync } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: 'silent', pretty: false });
let emu: FeishuEmulator | null = null;
let gw: Gateway | null = null;
afterEach(async () => {
  await gw?.stop();
  await emu?.stop();
  gw = null;
  emu = null;
});

const KEY = 'encrypt-key-of-the-app';

async function start(o: { encrypt?: boolean; groups?: boolean } = {}) {
  emu = new FeishuEmulator();
  emu.users = feishuUsers(6);
  emu.encryptKey = o.encrypt === false ? null : KEY;
  emu.rules = [{ id: 'r1', name: 'warehouse staff', devices: [{ id: 'dev-wh' }], users: [{ user_type: 1, user_id: 'ou_00000001' }] }] as FeishuRule[];
  const base = await emu.start();
  const dataDir = join(tmpDir(), 'data');
  const feishu = {
    base_url: base,
    app_id: emu.appId,
    app_secret: emu.appSecret,
    backoff_ms: 20,
    user_id_type: 'user_id',
    events: { verification_token: emu.verificationToken, ...(emu.encryptKey ? { encrypt_key: emu.encryptKey } : {}) },
    ...(o.groups ? { permission_groups: { devices: { warehouse: 'dev-wh' } } } : {}),
  };
  const config = validateConfig({ data_dir: dataDir, policy: { debounce_ms: 0 }, doors: [{ id: 'front' }, { id: 'warehouse' }], web: { enabled: true, port: 0, bind: '127.0.0.1' }, cloud: { provider: 'feishu', feishu } }, 'test');
  if (o.groups) {
    const file = join(tmpDir(), 'doorgw.yaml');
    writeFileSync(file, JSON.stringify({ data_dir: dataDir, doors: [{ id: 'front' }, { id: 'warehouse' }], cloud: { provider: 'feishu', feishu } }));
    await doorgwAsync(['feishu', 'authorize', '--code', emu.issueAuthCode(), '-c', file]);
  }
  gw = await Gateway.start({ config, log, controlSocket: false });
  await until(async () => (await gw!.store.userCount()) === 6, 'users synced');
  const url = `http://127.0.0.1:${gw.web!.address!.port}/cloud/feishu/events`;
  return { emu, gw, adapter: gw.cloud as FeishuAdapter, url };
}
const card = (g: Gateway, door: string, n: number) => g.pipeline.handle(credentialEvent(door, 'reader', 'in', { type: 'card', value: String(n) }))!;
const userGets = (e: FeishuEmulator, id: string) => e.requests.filter((r) => r.path === `/open-apis/acs/v1/users/${id}`).length;
const listings = (e: FeishuEmulator) => e.requests.filter((r) => r.path === '/open-apis/acs/v1/users' && !r.query.page_token).length;
const updated = (id: string) => ({ user_id: { user_id: id, open_id: `ou_open_${id}`, union_id: `on_${id}` }, card: 0, face_uploaded: false });

describe('Feishu event callbacks', () => {
  it('answer the URL check; a changed card (acs.user.updated_v1) works at once, without a full sync; a duplicate is answered and dropped', async () => {
    const { emu: e, gw: g, adapter, url } = await start();
    expect(await e.checkCallbackUrl(url, 'challenge-123')).toEqual({ status: 200, body: { challenge: 'challenge-123' } });
    expect(card(g, 'front', 100_001).decision).toBe('grant');
    e.users[1]!.feature.card = 777_001; // the admin gave ou_00000001 a new card in Feishu
    const before = listings(e);
    const r = await e.pushEvent(url, 'acs.user.updated_v1', updated('ou_00000001'), { eventId: 'ev-1' });
    expect(r).toEqual({ status: 200, body: {} });
    await until(() => card(g, 'front', 777_001).decision === 'grant', 'the new card grants');
    expect(card(g, 'front', 100_001)).toMatchObject({ decision: 'deny', reason: 'unknown_user' });
    expect(listings(e)).toBe(before);
    expect(userGets(e, 'ou_00000001')).toBe(1);
    // Feishu retries what it thinks unanswered: the same event id is answered, and not acted on again.
    expect((await e.pushEvent(url, 'acs.user.updated_v1', updated('ou_00000001'), { eventId: 'ev-1' })).status).toBe(200);
    // A sentinel event after it: once it is acted on, the duplicate provably was not.
    await e.pushEvent(url, 'acs.user.updated_v1', updated('ou_00000002'), { eventId: 'ev-2' });
    await until(() => userGets(e, 'ou_00000002') === 1, 'the sentinel read');
    expect(userGets(e, 'ou_00000001')).toBe(1);
    expect(adapter.state$.value.events).toMatchObject({ received: 2, refused: 0, last_type: 'acs.user.updated_v1' });
    // Other event types are taken and ignored.
    expect((await e.pushEvent(url, 'acs.access_record.created_v1', { access_record_id: '1', device_id: 'd' })).status).toBe(200);
  });

  it('a user removed from Feishu access control: the event leads to a full sync, which removes them', async () => {
    const { emu: e, gw: g, url } = await start();
    expect(card(g, 'front', 100_003).decision).toBe('grant');
    const before = listings(e);
    e.users.splice(3, 1);
    await e.pushEvent(url, 'acs.user.updated_v1', updated('ou_00000003'));
    await until(() => listings(e) > before, 'a full listing');
    await until(async () => (await g.store.userCount()) === 5, 'the user removed');
    expect(card(g, 'front', 100_003)).toMatchObject({ decision: 'deny', reason: 'unknown_user' });
  });

  it('re-read the permission groups with the user', async () => {
    const { emu: e, gw: g, adapter, url } = await start({ groups: true });
    await until(() => adapter.state$.value.permission_groups?.startsWith('in force'), 'groups in force');
    expect(card(g, 'warehouse', 100_002).reason).toBe('no_permission_group');
    e.rules[0]!.users!.push({ user_type: 1, user_id: 'ou_00000002' });
    await e.pushEvent(url, 'acs.user.updated_v1', updated('ou_00000002'));
    await until(() => card(g, 'warehouse', 100_002).decision === 'grant', 'the new group member passes');
  });

  it('refuse forgeries before reading them: a changed body, a wrong token, plaintext where encryption is configured, no signature, a bad challenge', async () => {
    const { emu: e, gw: g, adapter, url } = await start();
    e.users[1]!.feature.card = 888_001;
    const ev = updated('ou_00000001');
    const tamper = (b: string) => JSON.stringify({ encrypt: (JSON.parse(b) as { encrypt: string }).encrypt.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) });
    expect(await e.pushEvent(url, 'acs.user.updated_v1', ev, { tamper })).toMatchObject({ status: 401, body: { error: expect.stringMatching(/X-Lark-Signature does not match/) } });
    expect((await e.pushEvent(url, 'acs.user.updated_v1', ev, { token: 'not-the-token' })).status).toBe(401);
    expect((await e.pushEvent(url, 'acs.user.updated_v1', ev, { unsigned: true })).body.error).toMatch(/without X-Lark-Signature/);
    const plain = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ schema: '2.0', header: { event_id: 'x', event_type: 'acs.user.updated_v1', token: e.verificationToken }, event: ev }) });
    expect(plain.status).toBe(400);
    const other = new FeishuEmulator();
    other.encryptKey = 'some-other-key';
    expect((await other.checkCallbackUrl(url, 'c')).body.error).toMatch(/does not decrypt/);
    expect((await fetch(url, { method: 'POST', body: 'x'.repeat(70_000) })).status).toBe(413);
    expect((await fetch(url, { method: 'POST', body: 'not json' })).status).toBe(400);
    expect(userGets(e, 'ou_00000001')).toBe(0);
    expect(card(g, 'front', 888_001).reason).toBe('unknown_user');
    expect(adapter.state$.value.events).toMatchObject({ received: 0, refused: 6 }) // the 413 never reached it;
    // The genuine one is taken.
    await e.pushEvent(url, 'acs.user.updated_v1', ev);
    await until(() => card(g, 'front', 888_001).decision === 'grant', 'the genuine event acted on');
  });

  it('plaintext events (no encrypt key) are authenticated by the verification token', async () => {
    const { emu: e, gw: g, url } = await start({ encrypt: false });
    e.users[1]!.feature.card = 999_001;
    expect((await e.pushEvent(url, 'acs.user.updated_v1', updated('ou_00000001'), { token: 'guess' })).status).toBe(401);
    expect((await fetch(url, { method: 'POST', body: JSON.stringify({ encrypt: 'AAAA' }) })).status).toBe(400);
    await e.pushEvent(url, 'acs.user.updated_v1', updated('ou_00000001'));
    await until(() => card(g, 'front', 999_001).decision === 'grant', 'the new card grants');
    expect(await e.checkCallbackUrl(url, 'ch')).toEqual({ status: 200, body: { challenge: 'ch' } });
  });

  it('opens the envelope as specified (a table of its checks)', () => {
    const cfg = { verification_token: 'vt', encrypt_key: 'k' };
    const sign = (b: Buffer) => ({ 'x-lark-request-timestamp': '1', 'x-lark-request-nonce': 'n', 'x-lark-signature': eventSignature('1', 'n', 'k', b) });
    expect(() => decryptEvent(Buffer.alloc(20).toString('base64'), 'k')).toThrow(/IV \+ whole AES blocks/);
    const body = Buffer.from(JSON.stringify({ schema: '2.0', header: { event_id: 'e', event_type: 't', token: 'vt' }, event: {} }));
    expect(() => openEvent(body, sign(body), cfg)).toThrow(/plaintext event, but an encrypt key is configured/);
    expect(openEvent(body, {}, { verification_token: 'vt' })).toMatchObject({ kind: 'event', id: 'e', type: 't', createdMs: null });
    const v1 = Buffer.from(JSON.stringify({ uuid: 'u', token: 'vt', event: {} }));
    expect(() => openEvent(v1, {}, { verification_token: 'vt' })).toThrow(/only schema 2.0/);
    const noId = Buffer.from(JSON.stringify({ schema: '2.0', header: { event_type: 't', token: 'vt' }, event: {} }));
    expect(() => openEvent(noId, {}, { verification_token: 'vt' })).toThrow(/without an event_id/);
  });
});
