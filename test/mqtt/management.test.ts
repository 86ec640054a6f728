/** The management requests through a real Mosquitto with the shipped ACL: every request, both roles. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REQUESTS, requestsFor } from '../../src/control/requests.js';
import { discoveryConfigs } from '../../src/io/mqtt/discovery.js';
import { Topics } from '../../src/io/mqtt/topics.js';
import { createLogger } from '../../src/log.js';
import { ACL, Broker, client } from '../helpers/mosquitto.js';
import { cleanup, simRelay, startMqttGateway } from '../helpers/mqtt-gateway.js';
import { makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: process.env.DOORGW_TEST_LOG ?? 'silent', pretty: true });
const broker = new Broker();
const key = makeKey();
beforeAll(() => broker.start());
afterAll(() => broker.stop());
const t = cleanup();

type Reply = { status: 'ok' | 'error'; data?: unknown; error?: string; code?: string; transaction?: unknown };

function dataOf<T = unknown>(r: Reply | 'not_authorized' | null): T {
  if (r === null || r === 'not_authorized' || r.status !== 'ok') throw new Error(`no data: ${JSON.stringify(r)}`);
  return r.data as T;
}

/**
 * A caller with one broker account: ask(name, params) → the response with our transaction, on the
 * account's own response topic (the shipped ACL lets nobody else read it).
 */
async function caller(account: 'operator' | 'admin') {
  const c = await client(broker, account, [`doorgw/gw1/response/${account}/#`]);
  t.closers.push(() => c.c.endAsync());
  let n = 0;
  return {
    async ask(name: string, params: Record<string, unknown> = {}, timeoutMs = 4000): Promise<Reply | 'not_authorized' | null> {
      const tx = `${account}-${++n}`;
      const responseTopic = `doorgw/gw1/response/${account}/${name}`;
      try {
        await c.c.publishAsync(`doorgw/gw1/request/${name}`, JSON.stringify({ ...params, transaction: tx }), { qos: 1, properties: { responseTopic } });
      } catch (e) {
        // MQTT 5: the broker answers a publish its ACL refuses with "not authorized".
        if (/Not authorized/i.test((e as Error).message)) return 'not_authorized';
        throw e;
      }
      const mine = (m: { topic: string; payload: string }): boolean => m.topic === responseTopic && (JSON.parse(m.payload) as Reply).transaction === tx;
      try {
        await until(() => c.got.some(mine), `response to ${name}`, timeoutMs);
      } catch {
        return null; // the broker dropped the request (ACL), or nobody answered
      }
      return JSON.parse(c.got.find(mine)!.payload) as Reply;
    },
  };
}

describe('the shipped ACL and the request table', () => {
  it('grant the operator account exactly the operator requests, and admin all of them', () => {
    const acl = readFileSync(ACL, 'utf8');
    const section = (user: string): string[] => {
      const body = acl.split(/^user /m).find((s) => s.startsWith(`${user}\n`)) ?? '';
      return [...body.matchAll(/^topic write doorgw\/\+\/request\/(.+)$/gm)].map((m) => m[1]!);
    };
    expect(section('operator').sort()).toEqual(requestsFor('operator').sort());
    expect(section('admin')).toEqual(['#']);
    expect(section('homeassistant')).toEqual(['sync', 'fire/reset']); // its sync and reset-fire-release buttons
    expect(requestsFor('admin').sort()).toEqual(Object.keys(REQUESTS).sort());
  });
});

describe('management requests over MQTT', () => {
  it('local directory, doors, journal, outbox and backup: success and failure paths, with codes', async () => {
    const dataDir = join(tmpDir(), 'data');
    const backups = tmpDir();
    t.gw = await startMqttGateway(broker, { log, key, dataDir, top: { backup: { dir: backups } } });
    const admin = await caller('admin');
    const op = await caller('operator');

    // Users: add, show, list with paging, set, block, unblock, remove, export, import, conflicts.
    expect(await admin.ask('users/add', { userid: 'cleaner', name: 'Li', cards: [900], valid_until: '2030-01-01T00:00:00Z' })).toMatchObject({ status: 'ok', data: { user: { userid: 'cleaner', layer: 'local' } } });
    expect(await admin.ask('users/add', { userid: 'cleaner' })).toMatchObject({ status: 'error', code: 'conflict', error: "local user 'cleaner' exists (change it with users set)" });
    expect(await admin.ask('users/add', { userid: 'x', cards: ['nope'] })).toMatchObject({ status: 'error', code: 'invalid', error: 'card "nope" is not a non-negative whole number' });
    expect(await op.ask('users/show', { userid: 'cleaner' })).toMatchObject({ status: 'ok', data: { decided_by: 'local user', record: { cards: ['900'] } } });
    expect(await op.ask('users/show', { userid: 'ghost' })).toMatchObject({ status: 'error', code: 'not_found' });
    expect(await op.ask('users/show', {})).toMatchObject({ status: 'error', code: 'invalid', error: 'userid is required (a string)' });
    const p1 = await op.ask('users/list', { limit: 1 });
    expect(p1).toMatchObject({ status: 'ok', data: { users: [{ userid: 'alice', layer: 'cloud' }], next: 'alice' } });
    expect(await op.ask('users/list', { limit: 1, after: 'alice' })).toMatchObject({ data: { users: [{ userid: 'cleaner', layer: 'local' }], next: null } });
    expect(await op.ask('users/list', { layer: 'moon' })).toMatchObject({ status: 'error', code: 'invalid' });
    expect(await admin.ask('users/set', { userid: 'alice', add_cards: [1002] })).toMatchObject({ status: 'ok', data: { user: { cards: ['1001', '1002'] } } });
    expect(await admin.ask('users/set', { userid: 'alice', rules: ['8:00-9:00 * * * *'] })).toMatchObject({ status: 'error', code: 'invalid', error: expect.stringContaining('comes from the cloud') });
    expect(await op.ask('users/block', { card: 1002, reason: 'lost' })).toMatchObject({ status: 'ok', data: { blocked: [{ userid: 'alice', card: '1002', until: null }] } });
    expect(await op.ask('users/block', { card: 5555 })).toMatchObject({ status: 'error', code: 'not_found' });
    expect(await admin.ask('users/import', { records: [{ kind: 'local_user', userid: 'temp', cards: [901] }, { kind: 'local_user', userid: 'bad', doors: ['nowhere'] }] })).toMatchObject({ status: 'ok', data: { layer: 'local', imported: 1, rejected: [{ index: 1 }] } });
    expect(await admin.ask('users/import', { records: 'x' })).toMatchObject({ status: 'error', code: 'invalid' });
    expect(dataOf<{ userid: string }[]>(await admin.ask('users/export')).map((e) => e.userid)).toEqual(['cleaner', 'temp', 'alice']);
    expect(await admin.ask('users/add', { userid: 'dup', cards: [1001] })).toMatchObject({ status: 'ok', data: { conflicts: [{ kind: 'card', value: '1001' }] } });
    expect(dataOf(await op.ask('users/conflicts'))).toEqual([expect.objectContaining({ kind: 'card', value: '1001', userids: ['alice', 'dup'] })]);
    expect(await admin.ask('users/remove', { userid: 'dup' })).toMatchObject({ status: 'ok', data: { removed: 'local_user' } });
    expect(await admin.ask('users/remove', { userid: 'ghost' })).toMatchObject({ status: 'error', code: 'not_found' });
    expect(await admin.ask('users/unblock', { card: 1002 })).toMatchObject({ status: 'ok' });

    // Doors: open pulses the relay and is journaled by the channel; modes take a duration.
    expect(await op.ask('door/open', { door: 'lobby' })).toMatchObject({ status: 'ok', data: { decision: 'grant', reason: 'operator_open' } });
    await until(() => simRelay(t.gw!).pulses.length === 1, 'relay pulse');
    expect(await op.ask('door/open', { door: 'garage' })).toMatchObject({ status: 'error', code: 'not_found' });
    expect(await op.ask('door/mode', { door: 'lobby', mode: 'lockdown', duration_s: 600 })).toMatchObject({ status: 'ok', data: { door: 'lobby', mode: 'lockdown' } });
    expect(await op.ask('door/open', { door: 'lobby' })).toMatchObject({ status: 'ok', data: { decision: 'deny', reason: 'lockdown' } });
    expect(await op.ask('door/mode', { door: 'lobby', mode: 'party' })).toMatchObject({ status: 'error', code: 'invalid' });
    expect(await op.ask('door/mode', { door: 'lobby', mode: 'normal', duration_s: 'long' })).toMatchObject({ status: 'error', code: 'invalid', error: 'duration_s must be a whole number' });
    await op.ask('door/mode', { door: 'lobby', mode: 'normal' });

    // Journal queries, with door events (the operator actions above among them).
    const q = await op.ask('journal/query', { door: 'lobby', reason: 'operator_open' });
    expect(q).toMatchObject({ status: 'ok', data: { entries: [{ reason: 'operator_open', method: 'operator' }], next: null } });
    const actions = await op.ask('journal/query', { kind: 'door_events', type: 'operator_action', order: 'asc' });
    expect(dataOf<{ entries: { detail: string }[] }>(actions).entries.map((e) => e.detail)).toEqual(expect.arrayContaining(['mqtt: users add cleaner', 'mqtt: users block card 1002 of alice (lost)', 'mqtt: open (grant)', 'mqtt: mode lockdown for 600 s']));
    expect(await op.ask('journal/query', { from: 'last tuesday' })).toMatchObject({ status: 'error', code: 'invalid' });

    // Outbox: list; requeue and discard refuse unknown records; discard needs a reason.
    expect(await op.ask('outbox/list')).toMatchObject({ status: 'ok', data: { queued: [], held: [] } });
    expect(await admin.ask('outbox/requeue', { seqs: [99] })).toMatchObject({ status: 'error', code: 'invalid', error: 'no held record #99 (doorgw outbox lists them)' });
    expect(await admin.ask('outbox/discard', { seqs: [99] })).toMatchObject({ status: 'error', error: 'give a reason (journaled with the discard)' });
    expect(await admin.ask('outbox/requeue', { seqs: 'all' })).toMatchObject({ status: 'error', error: 'seqs must be a list of record numbers' });

    // Sync without a cloud, status, backup.
    expect(await op.ask('sync')).toMatchObject({ status: 'error', code: 'invalid', error: 'no cloud provider is configured (cloud.provider)' });
    expect(await op.ask('status')).toMatchObject({ status: 'ok', data: { users: 3, local_users: 2, local_adjustments: 1 } });
    const file = join(backups, 'b.doorgw-backup');
    expect(await admin.ask('backup', { file })).toMatchObject({ status: 'ok', data: { file, files: 0 } });
    expect(await admin.ask('backup', { file: 'relative.gz' })).toMatchObject({ status: 'error', code: 'invalid' });
    expect(await admin.ask('backup', { file: join(backups, 'nope', 'b.gz') })).toMatchObject({ status: 'error', code: 'unavailable' });
    // Only into backup.dir, never over a file (not even with force), never into the data directory.
    expect(await admin.ask('backup', { file, force: true })).toMatchObject({ status: 'error', code: 'forbidden', error: `${file} exists: give another name` });
    expect(await admin.ask('backup', { file: join(dataDir, 'CURRENT') })).toMatchObject({ status: 'error', code: 'forbidden', error: expect.stringContaining('inside the data directory') });
    expect(await admin.ask('backup', { file: join(tmpDir(), 'elsewhere.gz') })).toMatchObject({ status: 'error', code: 'forbidden', error: `backups over MQTT go only into ${backups} (backup.dir)` });
  }, 60_000);

  it('an operator cannot send admin requests: the broker drops them and nothing changes', async () => {
    t.gw = await startMqttGateway(broker, { log, key });
    const op = await caller('operator');
    for (const name of ['users/add', 'users/remove', 'users/unblock', 'outbox/discard', 'backup', 'users/export']) {
      expect(await op.ask(name, { userid: 'mallory', cards: [1], file: '/tmp/x', reason: 'because' }, 800), name).toBe('not_authorized');
    }
    expect(t.gw.store.localUser('mallory')).toBeUndefined();
    // …while the requests it may send are answered.
    expect(await op.ask('status')).toMatchObject({ status: 'ok' });
  }, 30_000);
});

describe('Home Assistant discovery', () => {
  it('diagnostic sensors always; the cloud link, last sync and sync button only with a cloud', () => {
    const base = { prefix: 'homeassistant', topics: new Topics('doorgw', 'gw1'), gatewayId: 'gw1', version: '1', doors: [{ id: 'lobby' }] };
    const objects = (cloud: boolean) => [...discoveryConfigs({ ...base, cloud }).keys()].map((k) => k.split('/').slice(1, 2).concat(k.split('/')[3]!).join(':'));
    const none = objects(false);
    expect(none).toEqual(expect.arrayContaining(['sensor:outbox_depth', 'sensor:held_records', 'sensor:directory_size', 'sensor:started']));
    expect(none.filter((o) => /cloud_link|last_sync|:sync$/.test(o))).toEqual([]);
    expect(objects(true)).toEqual(expect.arrayContaining(['binary_sensor:cloud_link', 'sensor:last_sync', 'button:sync']));
    const button = discoveryConfigs({ ...base, cloud: true }).get('homeassistant/button/gw1/sync/config');
    expect(button).toMatchObject({ command_topic: 'doorgw/gw1/request/sync', payload_press: '{}' });
  });
});
