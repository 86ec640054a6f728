import { afterEach, describe, expect, it } from 'vitest';
import { createPublicKey } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, RECENT_LOG } from '../../src/log.js';
import { loadEmulatorState, recordReceived, saveEmulatorState } from '../../src/cloud/wecom/emulator-state.js';
import { generateDirectory, signQrFor, WecomEmulator, type CloudUser } from '../../src/cloud/wecom/emulator.js';
import { decodeQr, verifyQr } from '../../src/domain/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { readSecret, writeSecret } from '../../src/cloud/wecom/secret.js';
import { SimFingerprint } from '../../src/io/fingerprint.js';
import type { SimRelay } from '../../src/io/relay.js';
import { credentialEvent } from '../../src/domain/events.js';
import { SN, startRig, synced, type Rig } from '../helpers/wecom.js';
import { until } from '../helpers/wait.js';

let rig: Rig | null = null;
afterEach(async () => {
  await rig?.stop();
  rig = null;
});

const user = (id: string, extra: Partial<CloudUser> = {}): CloudUser => ({ userid: id, openvid: String(900_000 + id.length * 1000 + id.charCodeAt(id.length - 1)), user_type: 0, name: id, ...extra });

describe('WeCom: login and full sync', () => {
  it('logs in, pages the whole directory with public keys, and records the version', async () => {
    rig = await startRig({ users: 450 });
    await synced(rig);
    expect(await rig.gw.store.userCount()).toBe(450);
    const pages = rig.emu.requests.filter(([c]) => c === 'get_userinfo_by_page');
    expect(pages.map(([, b]) => b.offset)).toEqual([0, 200, 400]);
    expect(pages.every(([, b]) => b.limit === 200 && b.is_req_public_key === 1 && b.is_req_fp_info === 0)).toBe(true);
    const login = rig.emu.requests.find(([c]) => c === 'subscribe_corp')![1];
    expect(login).toMatchObject({ firmware_version: expect.any(String), ext_args: { fp_algorithm: [], fa_algorithm: [] } });
    expect(rig.gw.store.directory.useridByOpenvid('10000000000000000007')).toBe('u7'); // uint64 above 2^53, exact
    expect(rig.adapter.state$.value).toMatchObject({ link: 'online', directory_version: rig.emu.permVersion, clock_skew_s: 0 });
  });

  it('a full sync cut off halfway leaves no progress in status, and status says the previous directory stays in force', async () => {
    rig = await startRig({ users: 450 });
    await synced(rig);
    const version = rig.adapter.state$.value.directory_version;
    let cut = false;
    rig.emu.onPage = (offset) => {
      if (offset === 200 && !cut) {
        cut = true;
        rig!.emu.dropConnections();
      }
    };
    void rig.gw.api.sync().catch(() => undefined);
    await until(() => cut && rig!.adapter.state$.value.last_error !== null, 'the sync failed');
    expect(rig.adapter.state$.value).toMatchObject({ sync_progress: null, directory_version: version, last_error: expect.stringContaining(`the previous complete directory, version ${version}, stays in force`) });
    expect(await rig.gw.store.userCount()).toBe(450);
  });

  it('restarts from offset 0 when the version changes mid-sync and never serves a half directory', async () => {
    rig = await startRig({ users: 10, provisioned: false });
    let changed = false;
    rig.emu.seed(generateDirectory(500, { prefix: 'p' }).users);
    rig.emu.onPage = (offset) => {
      if (offset === 200 && !changed) {
        changed = true;
        // the directory the gateway holds must stay complete while this happens
        rig!.emu.upsertUsers([user('late-joiner')], { push: false });
      }
    };
    writeSecret(rig.dataDir, { sn: SN, secret: rig.emu.provision(SN) });
    await rig.restart(); // now provisioned: login and sync
    await synced(rig);
    const offsets = rig.emu.requests.filter(([c]) => c === 'get_userinfo_by_page').map(([, b]) => b.offset);
    expect(offsets).toEqual([0, 200, 0, 200, 400]);
    expect(await rig.gw.store.userCount()).toBe(511);
    expect(rig.gw.store.directory.user('late-joiner')).toBeDefined();
  });

  it('stops cleanly while synced templates are still going into the module (read from the store, which closes)', async () => {
    rig = await startRig({ users: 0, doors: [{ id: 'front', fingerprint: { driver: 'sim' } }] });
    const template = (i: number) => [{ id: 0, data: Buffer.alloc(512, i).toString('base64') }];
    rig.emu.upsertUsers(Array.from({ length: 400 }, (_, i) => user(`f${i}`, { openvid: String(5_000_000 + i), fp: template(i), fp_algorithm: 'doorgw-sim-1' })), { push: false });
    await synced(rig);
    const fp = rig.gw.fingerprint as SimFingerprint;
    await rig.gw.stop();
    await new Promise((r) => setTimeout(r, 300)); // a read failing after the close would surface here
    // Whatever the module got before the stop is what the store held for those users.
    expect(fp.templates.size).toBeLessThanOrEqual(400);
    for (const [id, t] of fp.templates) expect(t[0]!.template).toEqual(Buffer.alloc(512, Number(id.slice(1))));
  });

  it('takes a user\'s fingerprints out of the module when the cloud empties their slots', async () => {
    rig = await startRig({ users: 0, doors: [{ id: 'front', fingerprint: { driver: 'sim' } }] });
    const fp = rig.gw.fingerprint as SimFingerprint;
    rig.emu.upsertUsers([user('f1', { openvid: '6000001', fp: [{ id: 0, data: Buffer.alloc(512, 1).toString('base64') }], fp_algorithm: 'doorgw-sim-1' })], { push: false });
    await synced(rig);
    await until(() => fp.templates.has('f1'), 'the template in the module');
    rig.emu.upsertUsers([user('f1', { openvid: '6000001', fp: [{ id: 0, data: '' }], fp_algorithm: 'doorgw-sim-1' })]);
    await until(() => !fp.templates.has('f1'), 'gone from the module');
    expect(await rig.gw.store.templatesOf('f1')).toEqual([]);
    fp.touch('f1'); // a finger that matched before matches nothing now
    expect((rig.gw.relays.get('front') as SimRelay).pulses).toHaveLength(0);
  });

  it('requests fingerprint templates only when the door has a fingerprint module', async () => {
    rig = await startRig({ users: 5, doors: [{ id: 'front', fingerprint: { driver: 'sim' } }] });
    await synced(rig);
    expect(rig.emu.requests.find(([c]) => c === 'get_userinfo_by_page')![1]).toMatchObject({ is_req_fp_info: 1, is_req_fa_info: 0 });
  });
});

describe('WeCom: incremental sync', () => {
  it('applies creates, updates and deletes in version order and ignores stale pushes', async () => {
    rig = await startRig({ users: 20 });
    await synced(rig);
    rig.emu.upsertUsers([user('new-a'), user('new-b')]);
    rig.emu.upsertUsers([{ ...rig.emu.users.get('u3')!, pass_rule_list: [{ id: 0, rule: '9:00-10:00 * * 1-5 *', effect_time: 0 }] }]);
    rig.emu.deleteUsers(['u4']);
    await synced(rig);
    expect(rig.gw.store.directory.user('new-b')).toBeDefined();
    expect(rig.gw.store.directory.user('u3')!.rules).toHaveLength(1);
    expect(rig.gw.store.directory.user('u4')).toBeUndefined();
    expect(await rig.gw.store.userCount()).toBe(21);
    const byIds = rig.emu.requests.filter(([c]) => c === 'get_userinfo_by_ids').map(([, b]) => b.user_item);
    expect(byIds[0]).toEqual([{ userid: 'new-a', user_type: 0 }, { userid: 'new-b', user_type: 0 }]);

    // A duplicate of an applied change is acknowledged and ignored (no fetch).
    const before = rig.emu.requests.length;
    rig.emu.pushAll('push_change_contact', { perm_version: rig.emu.permVersion - 1, create_user: [{ userid: 'ghost', user_type: 0 }], update_user: [], delete_user: [] });
    // A sentinel: a real change pushed after it on the same connection, fetched once taken (pushes are handled in order).
    rig.emu.upsertUsers([user('late')]);
    await synced(rig);
    expect(rig.gw.store.directory.user('late')).toBeDefined();
    expect(rig.emu.requests.slice(before).filter(([c]) => c === 'get_userinfo_by_ids').map(([, b]) => b.user_item)).toEqual([[{ userid: 'late', user_type: 0 }]]);
    expect(rig.gw.store.directory.user('ghost')).toBeUndefined();
  });

  it('fetches visitors with get_visitor_by_ids, verbatim userids', async () => {
    rig = await startRig({ users: 5 });
    await synced(rig);
    rig.emu.upsertUsers([user('A/10001', { user_type: 1 })]);
    await synced(rig);
    expect(rig.gw.store.directory.user('A/10001')?.user_type).toBe(1);
    expect(rig.emu.requests.find(([c]) => c === 'get_visitor_by_ids')![1]).toMatchObject({ userids: ['A/10001'] });
  });

  it('catches up missed versions through the notify history', async () => {
    rig = await startRig({ users: 5 });
    await synced(rig);
    rig.emu.upsertUsers([user('m1')], { push: false });
    rig.emu.deleteUsers(['u1'], { push: false });
    rig.emu.upsertUsers([user('m3')]); // pushed: version local+3
    await synced(rig);
    expect(rig.emu.requests.some(([c]) => c === 'get_notify_history')).toBe(true);
    expect(rig.emu.requests.filter(([c]) => c === 'get_userinfo_by_page')).toHaveLength(1); // no second full sync
    expect(rig.gw.store.directory.user('m1')).toBeDefined();
    expect(rig.gw.store.directory.user('u1')).toBeUndefined();
    expect(rig.gw.store.directory.user('m3')).toBeDefined();
  });

  it('falls back to a full sync when the history no longer reaches back', async () => {
    rig = await startRig({ users: 5, emulator: { historyLimit: 1 } });
    await synced(rig);
    rig.emu.upsertUsers([user('h1')], { push: false });
    rig.emu.upsertUsers([user('h2')], { push: false });
    rig.emu.upsertUsers([user('h3')]);
    await synced(rig);
    expect(rig.emu.requests.filter(([c]) => c === 'get_userinfo_by_page')).toHaveLength(2);
    expect(['h1', 'h2', 'h3'].every((id) => rig!.gw.store.directory.user(id))).toBe(true);
  });

  it('catches up on re-login after an outage', async () => {
    rig = await startRig({ users: 5 });
    await synced(rig);
    rig.emu.fault = () => 'drop'; // the network is cut
    rig.emu.dropConnections();
    await until(() => rig!.adapter.state$.value.link === 'offline', 'offline');
    rig.emu.upsertUsers([user('while-away')]); // nobody to push to
    rig.emu.fault = () => undefined;
    await synced(rig);
    expect(rig.gw.store.directory.user('while-away')).toBeDefined();
    expect(rig.emu.requests.filter(([c]) => c === 'get_perm_version').length).toBeGreaterThanOrEqual(2);
  });

  it('renames a user, keeping key and rules', async () => {
    rig = await startRig({ users: 8 });
    await synced(rig);
    const before = rig.gw.store.directory.user('u4')!;
    rig.emu.renameUser('u4', 'u4-renamed');
    await until(() => rig!.gw.store.directory.user('u4-renamed'), 'rename');
    const after = rig.gw.store.directory.user('u4-renamed')!;
    expect({ ...after, userid: 'u4' }).toEqual(before);
    expect(rig.gw.store.directory.user('u4')).toBeUndefined();
    expect(rig.gw.store.directory.useridByOpenvid(before.openvid!)).toBe('u4-renamed');
  });

  it('resyncs when the visitor list changes', async () => {
    rig = await startRig({ users: 5 });
    await synced(rig);
    rig.emu.seed([user('V/1', { user_type: 1 })]);
    rig.emu.bumpVisitors();
    await until(async () => (await rig!.gw.store.getMeta('wecom.visitor_version')) === rig!.emu.visitorVersion, 'visitor version stored');
    expect(rig.gw.store.directory.user('V/1')).toBeDefined();
  });
});

describe('WeCom: unbinding', () => {
  it('erases users, keys and templates, denies everyone, and returns to provisioning', async () => {
    rig = await startRig({ users: 30 });
    await synced(rig);
    expect(rig.gw.pipeline.handle(credentialEvent('front', 't', 'in', { type: 'userid', value: 'u1' }))?.decision).toBe('grant');
    rig.emu.unbind(SN);
    rig.emu.dropConnections();
    await until(() => rig!.adapter.state$.value.link === 'unprovisioned', 'unprovisioned');
    expect(await rig.gw.store.userCount()).toBe(0);
    expect(rig.gw.store.directory.user('u1')).toBeUndefined();
    expect(readSecret(rig.dataDir)).toBeNull();
    expect(rig.gw.pipeline.handle(credentialEvent('front', 't', 'in', { type: 'userid', value: 'u2' }))).toMatchObject({ decision: 'deny', reason: 'unknown_user' });
  });
});

describe('WeCom: remote open', () => {
  it('pulses the relay, reports within 3 s, then uploads a checkin with pass_method 3', async () => {
    rig = await startRig({ users: 5 });
    await synced(rig);
    const { report, ms } = await rig.emu.remoteOpen('u2', 'op-1');
    expect(report).toEqual({ type: 'remote_open_door', oper_id: 'op-1', status: 0 });
    expect(ms).toBeLessThan(3000);
    expect((rig.gw.relays.get('front') as SimRelay).pulses).toHaveLength(1);
    await until(() => rig!.emu.checkins.length === 1, 'checkin');
    expect(rig.emu.checkins[0]).toMatchObject({ userid: 'u2', pass_method: 3, pass_type: 1 });
  });

  it('reports failure and leaves the door locked when the door is in lockdown', async () => {
    rig = await startRig({ users: 5, doors: [{ id: 'front', mode: 'lockdown' }] });
    await synced(rig);
    const { report } = await rig.emu.remoteOpen('u2', 'op-2');
    expect(report).toMatchObject({ oper_id: 'op-2', status: 1 });
    expect((rig.gw.relays.get('front') as SimRelay).pulses).toHaveLength(0);
  });
});

describe('WeCom: scan to open', () => {
  it('a scan of the door\'s code opens for a person whose rules allow, reports within 3 s, and uploads pass_method 5; refused otherwise', async () => {
    rig = await startRig({ users: 5, doors: [{ id: 'front' }, { id: 'side', name: 'Side <gate>' }], top: { web: { enabled: true, port: 0 } } });
    await synced(rig);
    const code = await until(() => rig!.adapter.loginCode('side'), 'the side door\'s code');
    // The kiosk page for a screen at the door: no login, the door's name (escaped) and its code as an SVG.
    const base = `http://127.0.0.1:${rig.gw.web!.address!.port}`;
    const page = await fetch(`${base}/kiosk/side`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<h1>Side &#60;gate&#62;</h1>');
    expect(html).not.toMatch(/front|u2|csrf/i);
    const svg = await fetch(`${base}/kiosk/side/code.svg`);
    expect([svg.status, svg.headers.get('content-type')]).toEqual([200, 'image/svg+xml']);
    expect(await svg.text()).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg".*<path/s);
    expect((await fetch(`${base}/kiosk/nope/code.svg`)).status).toBe(404);
    expect((await fetch(`${base}/api/status`)).status).toBe(401); // the rest of the console still needs a session
    expect(code.text).toMatch(/^https:\/\/open\.work\.weixin\.qq\.com\/connect\/hardware\?sn=.*&type=dynamic_login&state=door%3Aside$/);
    expect(code.expires_at - code.made_at).toBe(1_800_000);
    const r = await rig.emu.scan(code.text, 'u2');
    if ('refused' in r) throw new Error(r.refused);
    expect(r.report).toEqual({ type: 'scan_qrcode_open', oper_id: expect.any(String), status: 0 });
    expect(r.ms).toBeLessThan(3000);
    expect((rig.gw.relays.get('side') as SimRelay).pulses).toHaveLength(1);
    expect((rig.gw.relays.get('front') as SimRelay).pulses).toHaveLength(0);
    await until(() => rig!.emu.checkins.length === 1, 'checkin');
    expect(rig.emu.checkins[0]).toMatchObject({ userid: 'u2', pass_method: 5, pass_type: 1 });
    const journal = await rig.gw.api.journal({ limit: 1 });
    expect(journal[0]).toMatchObject({ door: 'side', userid: 'u2', method: 'scan', decision: 'grant' });
    // Decided as the person: rules not yet in force, an unknown member — refused, reported failed.
    rig.emu.upsertUsers([{ userid: 'later', openvid: '42', user_type: 0, name: 'Later', public_key: null, fp_ver: 0, fa_ver: 0, pass_rule_list: [{ id: 0, rule: '0:00-23:59 * * * *', effect_time: 4_000_000_000 }] } as never]);
    await until(() => rig!.gw.store.directory.user('later'), 'later synced');
    for (const who of ['later', 'nobody']) {
      const no = await rig.emu.scan(code.text, who);
      if ('refused' in no) throw new Error(no.refused);
      expect(no.report).toMatchObject({ type: 'scan_qrcode_open', status: 1 });
    }
    expect((rig.gw.relays.get('side') as SimRelay).pulses).toHaveLength(1);
    // The static code for printing: asked of the cloud, a binary frame back.
    const img = Buffer.from((await rig.gw.api.staticScanCode({ door: 'side' })).image_b64, 'base64');
    expect(img.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect(img.toString('latin1')).toContain('state=door:side');
    await expect(rig.gw.api.staticScanCode({ door: 'nope' })).rejects.toThrow(/no door 'nope'/);
    // The cloud refuses a code older than 1800 s (the door makes a new one every 15 min).
    expect(await rig.emu.scan(code.text, 'u2', { laterS: 1801 })).toEqual({ refused: 'expired (older than 1800 s)' });
  });
});

describe('WeCom: device operations', () => {
  it('uploads its log as the binary frame the cloud asks for (of the hint\'s kind, secrets scrubbed), reports faults rate-limited, restarts cleanly, reports offered firmware and the corp', async () => {
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    rig = await startRig({ users: 5, log: createLogger({ level: 'info', pretty: false, destination: sink }) });
    await synced(rig);
    await until(() => rig!.adapter.state$.value.corp_name === 'Emulated Corp', 'the corp name');
    // A line that would leak the device secret (a bug elsewhere): scrubbed before it leaves.
    const secret = readSecret(rig.dataDir)!.secret;
    RECENT_LOG.push(JSON.stringify({ level: 50, module: 'test', msg: `oops ${secret}` }));
    RECENT_LOG.push(JSON.stringify({ level: 30, module: 'test', msg: 'an info line' }));
    const ops = (await rig.emu.fetchLog('op_logs')).toString('utf8');
    const opsLines = ops.split('\n').map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(opsLines.every((l) => l.level >= 40)).toBe(true);
    expect(opsLines.some((l) => /^oops \[redacted\]$/.test(l.msg))).toBe(true);
    expect(ops).not.toContain(secret);
    const wechat = (await rig.emu.fetchLog('wechat')).toString('utf8').split('\n').map((l) => JSON.parse(l) as { module?: string });
    expect(wechat.length).toBeGreaterThan(0);
    expect(wechat.every((l) => l.module?.startsWith('wecom'))).toBe(true);
    const all = await rig.emu.fetchLog('main');
    expect(all.length).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(all.toString()).toContain('an info line');

    // Faults: each (kind, door, reader) once per 10 min, ten in all; the rest not sent.
    const at = Date.now();
    for (let i = 0; i < 3; i++) rig.gw.pipeline.doorEvents$.next({ type: 'reader_offline', door: 'front', reader: 'r1', at });
    for (let i = 0; i < 15; i++) rig.gw.pipeline.doorEvents$.next({ type: 'reader_tamper', door: 'front', reader: `r${i}`, at });
    rig.gw.pipeline.doorEvents$.next({ type: 'forced_open', door: 'front', at }); // a door alarm, not the device's fault
    await until(() => rig!.emu.errorReports.length === 10, 'ten error reports');
    expect(rig.emu.errorReports[0]).toEqual({ errcode: -1, errmsg: 'reader_offline at front (r1)' });
    expect(rig.emu.errorReports.filter((r) => String(r.errmsg).startsWith('reader_offline'))).toHaveLength(1);

    // Firmware offered: reported, never installed.
    rig.emu.pushAll('push_update_firmware', {});
    await until(() => rig!.adapter.state$.value.firmware_offered?.version === '9.9.9', 'the offer in the state');
    // A restart asked for: the gateway is told (the CLI stops it; systemd starts it again); the door stays locked.
    const asked = new Promise<string>((r) => rig!.gw.restartRequested$.subscribe(r));
    rig.emu.pushAll('push_restart_device', {});
    expect(await asked).toBe('WeCom push_restart_device');
    expect((rig.gw.relays.get('front') as SimRelay).pulses).toHaveLength(0);
  });
});

describe('WeCom: session-level errors and settings', () => {
  it('logs in again after an error frame without headers (session lost), takes "already subscribed" as a login, and follows the self-enrolment setting', async () => {
    rig = await startRig({ users: 5 });
    await synced(rig);
    expect(rig.adapter.state$.value.self_enrolment).toEqual({ fp: true, fa: false });
    rig.emu.pushAll('push_open_self_input', { open_self_input_fp: false, open_self_input_fa: true });
    await until(() => rig!.adapter.state$.value.self_enrolment?.fa === true, 'the pushed setting');
    const logins = () => rig!.emu.requests.filter(([cmd]) => cmd === 'subscribe_corp').length;
    const before = logins();
    rig.emu.sendRaw(JSON.stringify({ errcode: 600020, errmsg: 'device not logged in' }));
    await until(() => logins() === before + 1 && rig!.adapter.state$.value.link === 'online', 'logged in again on a new connection');
    // A cloud that answers subscribe_corp "already subscribed" (600045): logged in all the same.
    rig.emu.fault = (cmd) => (cmd === 'subscribe_corp' ? { errcode: 600045, errmsg: 'already subscribed' } : undefined);
    rig.emu.dropConnections();
    await until(() => logins() === before + 2, 'the next login');
    await until(() => rig!.adapter.state$.value.link === 'online', 'online'); // (the emulated cloud itself then refuses what follows: it never saw a login)
  });
});

describe('WeCom: enrolment', () => {
  it('enrols a fingerprint and uploads the template with upload_userinfo', async () => {
    rig = await startRig({ users: 5, doors: [{ id: 'front', fingerprint: { driver: 'sim' } }] });
    await synced(rig);
    const body = await rig.emu.enterPage('u1', 'fp', 'op-e1');
    expect(body).toMatchObject({ oper_id: 'op-e1', errcode: 0, errmsg: 'ok', userinfo: [{ userid: 'u1', fp_algorithm: 'doorgw-sim-1', fp: [{ id: 0, data: expect.any(String) }] }] });
    expect((await rig.gw.store.templatesOf('u1')).map((t) => `${t.kind}/${t.id}`)).toEqual(['fp/0']);
    // the enrolled finger now opens the door
    (rig.gw.fingerprint as SimFingerprint).touch('u1');
    await until(() => (rig!.gw.relays.get('front') as SimRelay).pulses.length === 1, 'fingerprint pass');
  });

  it('answers with a non-zero errcode when enrolment fails, is cancelled, or the door has no module', async () => {
    rig = await startRig({ users: 5, doors: [{ id: 'front', fingerprint: { driver: 'sim' } }] });
    await synced(rig);
    const fp = rig.gw.fingerprint as SimFingerprint;
    fp.next = 'fail';
    expect(await rig.emu.enterPage('u1', 'fp', 'op-f')).toMatchObject({ oper_id: 'op-f', errcode: 4, errmsg: expect.stringContaining('录入失败') });
    fp.next = 'succeed';
    fp.enrolMs = 5000;
    const pending = rig.emu.enterPage('u1', 'fp', 'op-c');
    await new Promise((r) => setTimeout(r, 100));
    rig.emu.exitPage('op-c');
    expect(await pending).toMatchObject({ oper_id: 'op-c', errcode: 3 });
    expect(await rig.emu.enterPage('u1', 'fa', 'op-fa')).toMatchObject({ errcode: 2, errmsg: expect.stringContaining('face') });
  });

  it('refuses enrolment at a door without a fingerprint module', async () => {
    rig = await startRig({ users: 5 });
    await synced(rig);
    expect(await rig.emu.enterPage('u1', 'fp', 'op-n')).toMatchObject({ errcode: 2, errmsg: expect.stringContaining('no fingerprint module') });
  });
});

describe('WeCom: pass records', () => {
  const grant = (r: Rig, userid: string) => r.gw.pipeline.handle(credentialEvent('front', 't', 'in', { type: 'userid', value: userid, method: 'face' }));

  it('uploads accepted records, retries fail_list entries, and holds those that keep failing', async () => {
    rig = await startRig({ users: 10, wecom: { upload_max_attempts: 2 } });
    await synced(rig);
    rig.emu.failUserids.add('u2');
    grant(rig, 'u1');
    grant(rig, 'u2');
    grant(rig, 'u3');
    await until(() => rig!.emu.checkins.length === 2, 'accepted records');
    expect(rig.emu.checkins.map((c) => [c.userid, c.pass_method, c.pass_type])).toEqual([['u1', 1, 1], ['u3', 1, 1]]);
    // u2 is retried with backoff (2 s after the first refusal), then held aside, not dropped.
    await until(async () => (await rig!.gw.store.heldCount()) === 1, 'held record', 10_000);
    await until(async () => (await rig!.gw.api.status()).outbox_depth === 0, 'accepted records removed');
    expect(await rig.gw.api.status()).toMatchObject({ outbox_depth: 0, held: 1 });
    const { held } = await rig.gw.api.outbox({});
    expect(held[0]).toMatchObject({ userid: 'u2', held_reason: expect.stringContaining('refused it 2 times') });
    // Once the cloud accepts it, a requeue delivers it.
    rig.emu.failUserids.clear();
    expect(await rig.gw.api.requeue({})).toEqual({ requeued: 1 });
    await until(() => rig!.emu.checkins.length === 3, 'requeued record');
  });

  it('holds records WeCom has no code for (cards) instead of dropping them', async () => {
    rig = await startRig({ users: 5 });
    await synced(rig);
    await rig.gw.store.upsertUsers([{ record: { ...rig.gw.store.directory.user('u1')!, userid: 'carded', openvid: null, cards: ['77'] }, key: null, templates: [] }]);
    rig.gw.pipeline.handle(credentialEvent('front', 't', 'in', { type: 'card', value: '77' }));
    await until(async () => (await rig!.gw.store.heldCount()) === 1, 'held card record');
    expect((await rig.gw.store.heldRecords())[0]).toMatchObject({ method: 'card', held_reason: expect.stringContaining('no pass_method') });
  });

  it('queues records through an outage and drains them afterwards without loss or duplicates', async () => {
    rig = await startRig({ users: 0 });
    rig.emu.upsertUsers(Array.from({ length: 40 }, (_, i) => user(`p${i}`, { openvid: String(70_000 + i) })));
    await synced(rig);
    rig.emu.fault = () => 'drop';
    rig.emu.dropConnections();
    await until(() => rig!.adapter.state$.value.link === 'offline', 'offline');
    for (let i = 0; i < 40; i++) expect(grant(rig, `p${i}`)?.decision).toBe('grant');
    await rig.gw.journal.flush();
    expect(await rig.gw.store.outboxDepth()).toBe(40);
    // a restart in the middle of the outage loses nothing either
    await rig.restart();
    expect(await rig.gw.store.outboxDepth()).toBe(40);
    rig.emu.fault = () => undefined;
    await until(() => rig!.emu.checkins.length === 40, 'drained', 15_000);
    expect(new Set(rig.emu.checkins.map((c) => c.userid)).size).toBe(40);
    await until(async () => (await rig!.gw.store.outboxDepth()) === 0, 'outbox emptied after the acknowledgements');
  });
});

describe('WeCom: bad frames and faults', () => {
  it('ignores malformed frames, unknown req_ids and unknown pushes, and keeps working', async () => {
    rig = await startRig({ users: 5 });
    await synced(rig);
    rig.emu.pushAll('push_something_new', { x: 1 });
    for (const c of (rig.emu as unknown as { conns: Set<{ ws: { send(s: string): void } }> }).conns) {
      c.ws.send('{not json');
      c.ws.send('[1,2]');
      c.ws.send(JSON.stringify({ headers: { req_id: 'nobody-asked' }, errcode: 0, body: {} }));
      c.ws.send(JSON.stringify({ cmd: 'push_change_contact', headers: { req_id: 'p-bad' }, body: { perm_version: 'seven' } }));
    }
    rig.emu.upsertUsers([user('after-garbage')]);
    await synced(rig);
    expect(rig.gw.store.directory.user('after-garbage')).toBeDefined();
    expect(rig.adapter.state$.value.link).toBe('online');
  });

  it('survives a connection dropped mid-page and completes the sync after reconnecting', async () => {
    let drops = 0;
    rig = await startRig({ users: 600, provisioned: false });
    rig.emu.fault = (cmd, body) => (cmd === 'get_userinfo_by_page' && body.offset === 400 && drops++ === 0 ? 'drop' : undefined);
    writeSecret(rig.dataDir, { sn: SN, secret: rig.emu.provision(SN) });
    await rig.restart();
    await synced(rig);
    expect(drops).toBeGreaterThan(0);
    expect(await rig.gw.store.userCount()).toBe(600);
  });

  it('decides QR codes signed as WeCom signs them, offline, after sync', async () => {
    const dir = generateDirectory(20);
    rig = await startRig({ users: 0 });
    rig.emu.seed(dir.users);
    rig.emu.upsertUsers([]);
    await synced(rig);
    rig.emu.fault = () => 'drop';
    rig.emu.dropConnections(); // cloud gone: the door keeps deciding
    const u = dir.users[1]!;
    const text = signQrFor(u, dir.keys.get(u.public_key!)!, Math.floor(Date.now() / 1000));
    expect(rig.gw.pipeline.handle(credentialEvent('front', 't', 'in', { type: 'qr', text }))).toMatchObject({ decision: 'grant', userid: 'u1' });
  });
});

describe('the emulator as a development tool (--state-dir)', () => {
  const grant = (r: Rig, userid: string) => r.gw.pipeline.handle(credentialEvent('front', 't', 'in', { type: 'userid', value: userid, method: 'face' }));
  it('records every checkin it receives, and keeps its directory, keys and devices across runs so old codes still verify', async () => {
    const dir = join(tmpDir(), 'emu-state');
    rig = await startRig({ users: 10 });
    await synced(rig);
    recordReceived(dir, rig.emu);
    grant(rig, 'u1');
    grant(rig, 'u3');
    await until(() => rig!.emu.checkins.length === 2, 'uploads');
    const lines = readFileSync(join(dir, 'received.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { userid: string; duplicate: boolean });
    expect(lines.map((l) => [l.userid, l.duplicate])).toEqual([['u1', false], ['u3', false]]);
    // The state across a "restart": the same users, versions and corp keys.
    const gen = generateDirectory(5);
    const first = new WecomEmulator();
    first.seed(gen.users);
    first.permVersion = 7;
    saveEmulatorState(dir, first, gen.keys);
    expect(statSync(join(dir, 'state.json')).mode & 0o777).toBe(0o600);
    const code = signQrFor(gen.users[0]!, gen.keys.get(gen.users[0]!.public_key!)!, Math.floor(Date.now() / 1000));
    const again = new WecomEmulator();
    const keys = loadEmulatorState(dir, again)!;
    expect([again.users.size, again.permVersion, keys.size]).toEqual([5, 7, gen.keys.size]);
    const u = again.users.get(gen.users[0]!.userid)!;
    const pub = createPublicKey(keys.get(u.public_key!)!);
    const decoded = decodeQr(code);
    expect(decoded.ok && verifyQr(decoded.value, pub, { now: Math.floor(Date.now() / 1000), skewS: 30 }).ok).toBe(true);
  });
});
