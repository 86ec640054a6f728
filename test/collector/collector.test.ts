/**
 * The collector (issue 24) against a real PostgreSQL and a real Mosquitto with the shipped site
 * ACL, gateways on the bus with their own accounts: every decision and door event of every door
 * in the site journal exactly once — through a kill -9 of the collector during a burst, a door cut
 * off while it decides 1,000 times, and a broker restart — and nothing from a batch that is not
 * its door's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Collector } from '../../src/collector/collector.js';
import { collectorConfigSchema } from '../../src/config/collector-schema.js';
import { signBatch } from '../../src/domain/door-journal.js';
import { signReport } from '../../src/domain/door-report.js';
import { credentialEvent } from '../../src/domain/events.js';
import { keyIdOf, rawPublicKey } from '../../src/domain/site-envelope.js';
import type { Gateway } from '../../src/gateway.js';
import { doorKey } from '../../src/io/door-key.js';
import { createLogger } from '../../src/log.js';
import { SiteJournalDb } from '../../src/store/site-journal-db.js';
import { CLI_MAIN, doorgwAsync, ROOT } from '../helpers/cli.js';
import { type Broker, siteBroker } from '../helpers/mosquitto.js';
import { startMqttGateway } from '../helpers/mqtt-gateway.js';
import { Postgres } from '../helpers/postgres.js';
import { makeKey } from '../helpers/qr.js';
import { TcpCut } from '../helpers/tcp-cut.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import mqtt from 'mqtt';

const log = createLogger({ level: 'silent', pretty: false });
const qrKey = makeKey();
const pg = new Postgres();
beforeAll(() => pg.start(), 60_000);
afterAll(() => pg.stop());

const ACCOUNTS = { gw1: 'b1', gw2: 'b2', collector: 'c1', 'site-operator': 's1' };
let broker: Broker;
const closers: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  // The site broker as shipped (deploy/mosquitto/site.acl); the gateways connect to it directly.
  broker = siteBroker(ACCOUNTS);
  await broker.start();
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await broker.stop();
});

const collectorKey = generateKeyPairSync('ed25519');
const site = { enabled: true, keys: [{ kid: keyIdOf(collectorKey.publicKey), name: 'site-collector', public_key: rawPublicKey(collectorKey.publicKey), roles: ['collector'] }] };

async function door(id: 'gw1' | 'gw2', url = broker.url): Promise<Gateway> {
  const g = await startMqttGateway(broker, { log, key: qrKey, extra: { url, username: id, password: ACCOUNTS[id] }, top: { gateway_id: id, site } });
  closers.push(() => g.stop());
  return g;
}
const keyOf = (g: Gateway) => {
  const k = doorKey(g.config.data_dir);
  return { gateway: g.config.gateway_id, kid: k.kid, public_key: k.publicKey };
};
const decide = (g: Gateway, n: number) => g.pipeline.handle(credentialEvent('lobby', 'test', 'in', { type: 'card', value: n % 3 ? '1001' : '9999' }));

/** Every (gateway, seq) the door's own journal holds: what the site journal must hold, once each. */
async function doorSeqs(g: Gateway): Promise<string[]> {
  const r = await g.store.journalRecords(1, g.store.lastSeq, 1_000_000);
  return r.records.map((x) => `${g.config.gateway_id}:${x.seq}`);
}
async function dbSeqs(db: SiteJournalDb): Promise<string[]> {
  const rows = await db.page({ fromMs: 0, toMs: Date.now() + 86_400_000, zone: 'UTC' }, 1_000_000, null);
  return rows.map((r) => `${r.gateway}:${r.seq}`).sort();
}
async function converged(db: SiteJournalDb, gws: Gateway[], decisions: number): Promise<boolean> {
  // One read of each door's journal for both the sequence numbers and the count of decisions: two
  // reads could straddle a write still on its way to the door's disk and agree with a site journal
  // that lacks it.
  const journals = await Promise.all(gws.map(async (g) => ({ id: g.config.gateway_id, records: (await g.store.journalRecords(1, g.store.lastSeq, 1_000_000)).records })));
  const decided = journals.reduce((n, j) => n + j.records.filter((r) => r.kind === 'decision').length, 0);
  if (decided < decisions) return false;
  const want = journals.flatMap((j) => j.records.map((r) => `${j.id}:${r.seq}`)).sort();
  const have = await dbSeqs(db);
  return have.length === want.length && have.every((s, i) => s === want[i]);
}

function collectorConfig(dbUrl: string, doorKeys: ReturnType<typeof keyOf>[], keyFile: string, brokerUrl = broker.url) {
  return {
    collector_id: 'collector',
    site: { url: brokerUrl, username: 'collector' },
    key_file: keyFile,
    door_keys: doorKeys,
    database: { url: dbUrl },
    gaps: { retry_s: 1 },
  };
}
function writeKey(k: KeyObject): string {
  const f = join(tmpDir(), 'collector.pem');
  writeFileSync(f, k.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return f;
}

async function inProcess(dbUrl: string, doorKeys: ReturnType<typeof keyOf>[]): Promise<{ c: Collector; db: SiteJournalDb }> {
  const config = collectorConfigSchema.parse(collectorConfig(dbUrl, doorKeys, '/unused'));
  config.site.password = ACCOUNTS.collector;
  const db = await SiteJournalDb.open({ url: dbUrl });
  const c = new Collector({ config, signer: { privateKey: collectorKey.privateKey, kid: keyIdOf(collectorKey.publicKey) }, db, log });
  await c.start();
  closers.push(async () => {
    await c.stop();
    await db.close();
  });
  return { c, db };
}

describe('doorgw collector', () => {
  it('writes every door\'s decisions and door events once, and answers the site journal across doors (CLI, CSV)', async () => {
    const [g1, g2] = [await door('gw1'), await door('gw2')];
    const dbUrl = await pg.database();
    const { c, db } = await inProcess(dbUrl, [keyOf(g1), keyOf(g2)]);
    for (let i = 0; i < 30; i++) {
      decide(g1, i);
      decide(g2, i);
    }
    await until(() => converged(db, [g1, g2], 60), 'the site journal holds both doors\' journals', 15_000);
    expect(await db.counts()).toEqual({ rows: (await doorSeqs(g1)).length + (await doorSeqs(g2)).length, distinct: (await doorSeqs(g1)).length + (await doorSeqs(g2)).length });
    expect(c.status().gateways.map((g) => [g.gateway, g.missing])).toEqual([['gw1', 0], ['gw2', 0]]);

    const alice = await db.page({ fromMs: 0, toMs: Date.now() + 1000, zone: 'UTC', userid: 'alice', kind: 'decision' }, 1000, null);
    expect(alice.length).toBe(40); // 20 of 30 at each door
    expect(new Set(alice.map((r) => r.gateway))).toEqual(new Set(['gw1', 'gw2']));
    expect(alice.every((r) => r.decision === 'grant' && r.door === 'lobby' && r.method === 'card')).toBe(true);
    const denied = await db.page({ fromMs: 0, toMs: Date.now() + 1000, zone: 'UTC', decision: 'deny', gateway: 'gw2' }, 1000, null);
    expect(denied.map((r) => r.reason)).toEqual(Array(10).fill('unknown_user'));

    // The CLI, on the same database: a CSV export streamed page by page (pages of 7 here).
    const file = join(tmpDir(), 'collector.yaml');
    writeFileSync(file, JSON.stringify({ ...collectorConfig(dbUrl, [keyOf(g1), keyOf(g2)], writeKey(collectorKey.privateKey)), timezone: 'Asia/Shanghai' }));
    const csv = await doorgwAsync(['collector', 'journal', '--collector-config', file, '--user', 'alice', '--format', 'csv']);
    expect(csv.stderr).toBe('');
    const lines = csv.stdout.trim().split('\r\n');
    expect(lines[0]).toBe('time_local,at_ms,gateway,seq,door,kind,decision,reason,method,userid,user_type,reader,direction,type,detail');
    expect(lines.length).toBe(41);
    expect(lines[1]).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}.*,gw[12],\d+,lobby,decision,grant,default_allow,card,alice,/);
    const table = await doorgwAsync(['collector', 'journal', '--collector-config', file, '--decision', 'deny', '--limit', '3']);
    expect(table.stdout.trim().split('\n')).toHaveLength(3);
    const bad = await doorgwAsync(['collector', 'journal', '--collector-config', file, '--from', 'yesterday']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/from 'yesterday'/);
    const example = await doorgwAsync(['collector', 'check', '--collector-config', join(ROOT, 'config/example-collector.yaml')]);
    expect(example.stdout).toMatch(/^valid \(1 door key, database embedded in .*collector-db, broker mqtt:\/\/127\.0\.0\.1:1883\)/);
    const wrong = join(tmpDir(), 'wrong.yaml');
    writeFileSync(wrong, 'site: { url: mqtt://x }\nkey_file: k\ndoor_keys: [{ gateway: g, kid: "00000000000000000000000000000000", public_key: "AAAA" }]\nretention_months: 0\n');
    const invalid = await doorgwAsync(['collector', 'check', '--collector-config', wrong]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/door_keys\[0\]\.public_key: an Ed25519 public key is 32 bytes/);
    expect(invalid.stderr).toMatch(/retention_months/);
    // The same over the site broker: a request to the collector, answered to the account that asked only.
    const op = await mqtt.connectAsync(broker.url, { username: 'site-operator', password: ACCOUNTS['site-operator'], clientId: 'site-operator', protocolVersion: 5 });
    closers.push(() => op.endAsync());
    const spy = await mqtt.connectAsync(broker.url, { username: 'gw1', password: ACCOUNTS.gw1, clientId: 'gw1-spy', protocolVersion: 5 });
    closers.push(() => spy.endAsync());
    const replies: string[] = [];
    const spied: string[] = [];
    op.on('message', (_t, p) => replies.push(p.toString()));
    spy.on('message', (_t, p) => spied.push(p.toString()));
    await op.subscribeAsync('doorgw-site/collector/response/site-operator/#', { qos: 1 });
    await spy.subscribeAsync('doorgw-site/collector/response/#', { qos: 1 });
    const ask = (name: string, body: Record<string, unknown>) => op.publishAsync(`doorgw-site/collector/request/${name}`, JSON.stringify(body), { qos: 1, properties: { responseTopic: 'doorgw-site/collector/response/site-operator/r' } });
    await ask('journal', { transaction: 'j1', userid: 'alice', limit: 5 });
    await ask('journal', { transaction: 'j2', from: 'yesterday' });
    await ask('status', { transaction: 's1' });
    await until(() => replies.length === 3, 'three answers');
    const byTx = Object.fromEntries(replies.map((r) => [(JSON.parse(r) as { transaction: string }).transaction, JSON.parse(r) as { status: string; code?: string; error?: string; data?: { entries?: { userid: string; gateway: string }[]; next?: unknown; gateways?: { gateway: string; missing: number }[] } }]));
    expect(byTx.j1!.status).toBe('ok');
    expect(byTx.j1!.data!.entries!.map((e) => e.userid)).toEqual(Array(5).fill('alice'));
    expect(byTx.j1!.data!.next).toHaveLength(3);
    expect(byTx.j2).toMatchObject({ status: 'error', code: 'invalid' });
    expect(byTx.j2!.error).toMatch(/from 'yesterday'/);
    expect(byTx.s1!.data!.gateways!.map((g) => [g.gateway, g.missing])).toEqual([['gw1', 0], ['gw2', 0]]);
    expect(spied).toEqual([]); // another account reads nobody's replies
    const status = await doorgwAsync(['collector', 'status', '--collector-config', file, '--json']);
    expect((JSON.parse(status.stdout) as { gateways: { gateway: string; missing: number }[] }).gateways.map((g) => [g.gateway, g.missing])).toEqual([['gw1', 0], ['gw2', 0]]);
  }, 60_000);

  it('loses nothing and duplicates nothing: kill -9 of the collector during a burst, a door cut off for 1,000 decisions, a broker restart', async () => {
    const cut = new TcpCut(broker.port);
    await cut.start();
    closers.push(() => cut.stop());
    const g1 = await door('gw1', cut.url);
    const g2 = await door('gw2');
    const dbUrl = await pg.database();
    const file = join(tmpDir(), 'collector.yaml');
    writeFileSync(file, JSON.stringify(collectorConfig(dbUrl, [keyOf(g1), keyOf(g2)], writeKey(collectorKey.privateKey))));
    let proc: ChildProcess | null = null;
    let output = '';
    const run = () => {
      const p = spawn(process.execPath, [CLI_MAIN, 'collector', 'run', '--collector-config', file], { cwd: ROOT, env: { ...process.env, DOORGW_COLLECTOR_PASSWORD: ACCOUNTS.collector, DOORGW_LOG_LEVEL: 'info' } });
      p.stdout.on('data', (b: Buffer) => (output += b.toString()));
      p.stderr.on('data', (b: Buffer) => (output += b.toString()));
      proc = p;
      return p;
    };
    const exited = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r())));
    closers.push(async () => {
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited(proc);
      }
    });
    run();
    await until(() => /collector started/.test(output) && /site broker connected/.test(output), 'the collector up', 15_000);
    const db = await SiteJournalDb.open({ url: dbUrl });
    closers.push(() => db.close());

    // A burst at both doors; the collector killed (-9) once the site journal has some of it, while
    // the rest is still on its way (in the doors' batches, on the broker, in the collector).
    let decided = 0;
    let killedAt: number | null = null;
    const killer = until(async () => (await db.counts()).rows > 100, 'the collector writing', 30_000).then(async () => {
      proc!.kill('SIGKILL');
      killedAt = (await db.counts()).rows;
    });
    for (let i = 0; i < 600; i++) {
      decide(g1, i);
      decide(g2, i);
      decided += 2;
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 5)); // paced: the burst lasts a while
    }
    await killer;
    expect(killedAt).toBeLessThan(decided); // midway
    await exited(proc!);
    run();
    await until(() => converged(db, [g1, g2], decided), 'everything of the burst, once', 60_000);

    // gw1 cut off from the broker while it decides 1,000 times; then the network heals.
    cut.cut();
    await until(() => !g1.mqtt!.link.connected$.value, 'gw1 off the bus');
    for (let i = 0; i < 1000; i++) decide(g1, i);
    decided += 1000;
    expect(g1.pipeline.handle(credentialEvent('lobby', 'test', 'in', { type: 'card', value: '1001' }))?.decision).toBe('grant'); // it decides alone
    decided++;
    cut.heal();
    await until(() => converged(db, [g1, g2], decided), 'the 1,000 asked for and written once', 60_000);

    // The broker restarts (no persistence: every session and queue is lost); the doors decide meanwhile.
    const port = broker.port;
    await broker.stop();
    for (let i = 0; i < 50; i++) decide(g2, i);
    decided += 50;
    await broker.start(port);
    // Well inside the doors' periodic head (HEAD_EVERY_MS, 30 s): the collector asks each door on reconnecting.
    await until(() => converged(db, [g1, g2], decided), 'what was decided during the restart', 20_000);
    const counts = await db.counts();
    expect(counts.rows).toBe(counts.distinct);
    expect(counts.rows).toBe((await doorSeqs(g1)).length + (await doorSeqs(g2)).length);
    expect(output).toMatch(/journal range asked/);
  }, 240_000);

  it('refuses a forged batch, a batch on another door\'s topic and records of a door that is not the gateway\'s; a replayed batch is written once', async () => {
    const [g1, g2] = [await door('gw1'), await door('gw2')];
    const dbUrl = await pg.database();
    const { c, db } = await inProcess(dbUrl, [keyOf(g1), keyOf(g2)]);
    decide(g1, 1);
    await until(() => converged(db, [g1, g2], 1), 'the first decision');
    const before = await db.counts();
    // gw1's broker account publishes on its own topic (all the ACL lets it).
    const rogue = await mqtt.connectAsync(broker.url, { username: 'gw1', password: ACCOUNTS.gw1, clientId: 'gw1-rogue', protocolVersion: 5 });
    closers.push(() => rogue.endAsync());
    const other = generateKeyPairSync('ed25519');
    const at = Date.now();
    const rec = (seq: number, door = 'lobby') => ({ seq, kind: 'decision' as const, entry: { seq, decision: 'grant' as const, reason: 'operator_open' as const, userid: 'mallory', user_type: 1 as const, method: 'operator' as const, door, at } });
    const k1 = doorKey(g1.config.data_dir);
    const send = (payload: string) => rogue.publishAsync('doorgw-site/journal/gw1', payload, { qos: 1 });
    await send(JSON.stringify(signBatch({ gateway: 'gw1', at, covers: [900, 900], head: 900, records: [rec(900)] }, keyIdOf(other.publicKey), other.privateKey)));
    await send(JSON.stringify(signBatch({ gateway: 'gw2', at, covers: [900, 900], head: 900, records: [rec(900)] }, k1.kid, k1.privateKey)));
    await send(JSON.stringify(signBatch({ gateway: 'gw1', at, covers: [900, 900], head: 900, records: [rec(900, 'vault')] }, k1.kid, k1.privateKey)));
    await send('{"batch":');
    await until(() => (c.refused.bad_signature ?? 0) + (c.refused.wrong_gateway ?? 0) + (c.refused.malformed ?? 0) >= 4, 'four refusals');
    expect(c.refused).toMatchObject({ bad_signature: 1, wrong_gateway: 2, malformed: 1 });
    expect(await db.counts()).toEqual(before);
    // A batch gw1 really sent, delivered again (a broker's redelivery, or a replay): written once.
    const seqs = await doorSeqs(g1);
    const r = await g1.store.journalRecords(1, g1.store.lastSeq, 100);
    const again = JSON.stringify(signBatch({ gateway: 'gw1', at, covers: [1, r.to], head: g1.store.lastSeq, records: r.records }, k1.kid, k1.privateKey));
    const dup = c.duplicates;
    await send(again);
    await send(again);
    await until(() => c.duplicates >= dup + 2 * r.records.length, 'the replays seen');
    expect(await db.counts()).toEqual(before);
    expect(seqs.length).toBe(before.rows - (await doorSeqs(g2)).length);
    // A door reporting the site's fire level begins the site muster; an unsigned report claiming it does not.
    expect(c.muster).toBeNull();
    const report = (level: string) => ({ gateway: 'gw1', doors: ['lobby', 'back'], at: Date.now(), facts: 0, in_scope: 0, digest: '', complete: null, manifest: null, levels: [{ door: 'lobby', level, by: 'fire-panel' }] });
    await rogue.publishAsync('doorgw-site/door/gw1', JSON.stringify(report('fire')), { qos: 1 });
    await until(() => (c.refused.report ?? 0) >= 1, 'the unsigned report refused');
    expect(c.muster).toBeNull();
    await rogue.publishAsync('doorgw-site/door/gw1', JSON.stringify(signReport(report('fire'), k1.kid, k1.privateKey)), { qos: 1 });
    await until(() => c.muster !== null, 'the site muster begun');
    expect(c.muster).toMatchObject({ by: 'fire threat level', cause: 'reported by gw1 (set by fire-panel)' });
  }, 60_000);
});

describe('doorgw collector without a database configured', () => {
  it('runs on an embedded PostgreSQL (PGlite) in a directory: one command, and the journal read from it once it has stopped', async () => {
    const g1 = await door('gw1');
    const dir = join(tmpDir(), 'collector-db');
    const file = join(tmpDir(), 'collector.yaml');
    const { database: _none, ...config } = collectorConfig('unused', [keyOf(g1)], writeKey(collectorKey.privateKey));
    writeFileSync(file, JSON.stringify({ ...config, database: { dir } }));
    let output = '';
    const p = spawn(process.execPath, [CLI_MAIN, 'collector', 'run', '--collector-config', file], { cwd: ROOT, env: { ...process.env, DOORGW_COLLECTOR_PASSWORD: ACCOUNTS.collector, DOORGW_LOG_LEVEL: 'debug' } });
    p.stdout.on('data', (b: Buffer) => (output += b.toString()));
    p.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    closers.push(async () => {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await exited;
    });
    await until(() => /embedded/.test(output) && /site broker connected/.test(output), 'the collector up on PGlite', 30_000);
    for (let i = 0; i < 5; i++) decide(g1, i);
    await until(() => (output.match(/journal batch written/g) ?? []).length > 0 && /"inserted":[1-9]/.test(output), 'a batch written', 15_000);
    // While it runs, the embedded database is its alone: a second process is told so, and writes nothing.
    const busy = await doorgwAsync(['collector', 'journal', '--collector-config', file]);
    expect(busy.code).not.toBe(0);
    expect(busy.stderr).toMatch(new RegExp(`open in process ${p.pid}.*database\\.url`));
    await until(async () => {
      const s = (await g1.store.journalRecords(1, g1.store.lastSeq, 100)).records.filter((r) => r.kind === 'decision').length;
      return s === 5 && (output.match(/"inserted":(\d+)/g) ?? []).reduce((n, m) => n + Number(m.split(':')[1]), 0) >= 5;
    }, 'the five decisions written');
    p.kill('SIGTERM');
    expect(await exited).toBe(0);
    const read = await doorgwAsync(['collector', 'journal', '--collector-config', file, '--format', 'jsonl']);
    expect(read.stderr).toBe('');
    const rows = read.stdout.trim().split('\n').map((l) => JSON.parse(l) as { gateway: string; userid: string | null; decision: string });
    expect(rows.map((r) => [r.gateway, r.decision])).toEqual([['gw1', 'deny'], ['gw1', 'grant'], ['gw1', 'grant'], ['gw1', 'deny'], ['gw1', 'grant']]);
  }, 60_000);
});

describe('the site journal database', () => {
  it('partitions by month and drops whole months past retention, keeping the rest and the coverage', async () => {
    const db = await SiteJournalDb.open({ url: await pg.database() });
    closers.push(() => db.close());
    const rec = (seq: number, at: number) => ({ seq, kind: 'decision' as const, entry: { seq, decision: 'grant' as const, reason: 'rule_match' as const, userid: 'alice', user_type: 1 as const, method: 'card' as const, door: 'lobby', at } });
    const months = [Date.UTC(2024, 0, 15), Date.UTC(2024, 5, 15), Date.UTC(2026, 10, 15)];
    const w = await db.writeBatch('gw1', [1, 3], 3, months.map((at, i) => rec(i + 1, at)));
    expect(w).toMatchObject({ inserted: 3, covered: [[1, 3]], head: 3 });
    expect(await db.writeBatch('gw1', [1, 3], 3, months.map((at, i) => rec(i + 1, at)))).toMatchObject({ inserted: 0 }); // once
    expect(await db.dropMonthsBefore(Date.UTC(2024, 6, 1))).toEqual(['journal_2024_01', 'journal_2024_06']);
    const left = await db.page({ fromMs: 0, toMs: Date.UTC(2030, 0, 1), zone: 'UTC' }, 10, null);
    expect(left.map((r) => r.seq)).toEqual([3]);
    expect((await db.gateways())[0]!.covered).toEqual([[1, 3]]); // what was dropped stays known, not asked for again
    // A month written again after its partition was dropped is created again.
    expect(await db.writeBatch('gw1', [4, 4], 4, [rec(4, Date.UTC(2024, 0, 20))])).toMatchObject({ inserted: 1 });
  });
});
