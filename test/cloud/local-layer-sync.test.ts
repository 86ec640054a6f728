/** The local directory layer against real cloud syncs (WeCom full and incremental, Feishu). */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FeishuEmulator, feishuUsers } from '../../src/cloud/feishu/emulator.js';
import type { CloudUser } from '../../src/cloud/wecom/emulator.js';
import { validateConfig } from '../../src/config/load.js';
import { credentialEvent } from '../../src/domain/events.js';
import type { Credential } from '../../src/domain/types.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { tmpDir } from '../helpers/tmp.js';
import { startRig, synced, type Rig } from '../helpers/wecom.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: process.env.DOORGW_TEST_LOG ?? 'silent', pretty: true });
let rig: Rig | null = null;
let feishu: { emu: FeishuEmulator; gw: Gateway } | null = null;
afterEach(async () => {
  await rig?.stop();
  rig = null;
  await feishu?.gw.stop();
  await feishu?.emu.stop();
  feishu = null;
});

const person = (userid: string, openvid: string): CloudUser => ({ userid, openvid, user_type: 0, name: userid });
const at = (gw: Gateway, door: string, c: Credential) => gw.pipeline.handle(credentialEvent(door, 'reader', 'in', c));

describe('a WeCom sync with a local layer in place', () => {
  it('keeps local users and blocks through a full sync and through increments', async () => {
    rig = await startRig({ users: 0, doors: [{ id: 'front' }] });
    rig.emu.upsertUsers([person('zhang', '501'), person('li', '502')], { push: false });
    await synced(rig);
    const api = rig.gw.api;
    await api.usersAdd({ userid: 'cleaner', cards: [900] });
    await api.usersBlock({ userid: 'li', reason: 'left the company' });
    const who = (id: string) => at(rig!.gw, 'front', { type: 'userid', value: id, method: 'face' });

    // Full sync on demand: a new generation; the local layer is not part of it.
    await api.sync();
    expect(at(rig.gw, 'front', { type: 'card', value: '900' })).toMatchObject({ decision: 'grant', userid: 'cleaner' });
    expect(who('li')).toMatchObject({ decision: 'deny', reason: 'blocked' });
    expect(who('zhang')).toMatchObject({ decision: 'grant' });

    // Incremental: li updated, wang created, zhang deleted — pushed and applied one version at a time.
    rig.emu.upsertUsers([{ ...person('li', '502'), name: 'Li Lei' }, person('wang', '503')]);
    rig.emu.deleteUsers(['zhang']);
    await synced(rig);
    expect(rig.gw.store.cloudUser('li')?.name).toBe('Li Lei');
    expect(who('li')).toMatchObject({ decision: 'deny', reason: 'blocked' });
    expect(who('wang')).toMatchObject({ decision: 'grant' });
    expect(who('zhang')).toMatchObject({ decision: 'deny', reason: 'unknown_user' });
    expect(at(rig.gw, 'front', { type: 'card', value: '900' })).toMatchObject({ decision: 'grant', userid: 'cleaner' });
    expect((await api.status()).local_users).toBe(1);
  });
});

describe('a Feishu re-sync with a local layer in place', () => {
  it('keeps the local user, the lost-card block and the added card', async () => {
    const emu = new FeishuEmulator();
    emu.users = feishuUsers(20);
    const url = await emu.start();
    const config = validateConfig(
      {
        data_dir: join(tmpDir(), 'data'),
        policy: { debounce_ms: 0 },
        doors: [{ id: 'front' }],
        cloud: { provider: 'feishu', feishu: { base_url: url, app_id: emu.appId, app_secret: emu.appSecret, backoff_ms: 20 } },
      },
      'test',
    );
    const gw = await Gateway.start({ config, log, controlSocket: false });
    feishu = { emu, gw };
    await until(() => gw.cloud?.state$.value.link === 'online' && gw.cloud.state$.value.last_full_sync !== null, 'sync');
    const card = (n: string) => at(gw, 'front', { type: 'card', value: n });
    expect(card('100001')).toMatchObject({ decision: 'grant', userid: 'ou_00000001' });

    await gw.api.usersAdd({ userid: 'guard-master', cards: [424242] });
    await gw.api.usersBlock({ card: '100001', reason: 'lost' });
    await gw.api.usersSet({ userid: 'ou_00000002', add_cards: [555] });
    const first = gw.cloud!.state$.value.last_full_sync!;
    await gw.api.sync();
    expect(gw.cloud!.state$.value.last_full_sync).toBeGreaterThanOrEqual(first);
    expect(card('424242')).toMatchObject({ decision: 'grant', userid: 'guard-master' });
    expect(card('100001')).toMatchObject({ decision: 'deny', reason: 'blocked', detail: 'card blocked until lifted (lost)' });
    expect(card('555')).toMatchObject({ decision: 'grant', userid: 'ou_00000002' });
    expect(card('100002')).toMatchObject({ decision: 'grant', userid: 'ou_00000002' });
  });
});
