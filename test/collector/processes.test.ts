/**
 * The site journal with every door its own process (`doorgw start`, as deployed): three gateways
 * on a real Mosquitto, an MQTT reader presenting cards at each, the collector writing into a real
 * PostgreSQL. One gateway is killed (-9) in the middle of its burst and started again: what its own
 * journal holds after the restart — the source of truth — is in the site journal exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collector } from '../../src/collector/collector.js';
import { collectorConfigSchema } from '../../src/config/collector-schema.js';
import { keyIdOf, rawPublicKey } from '../../src/domain/site-envelope.js';
import { doorKey } from '../../src/io/door-key.js';
import { createLogger } from '../../src/log.js';
import { SiteJournalDb } from '../../src/store/site-journal-db.js';
import { Store } from '../../src/store/store.js';
import { CLI_MAIN, doorgwAsync, ROOT } from '../helpers/cli.js';
import { siteBroker, USERS } from '../helpers/mosquitto.js';
import { Postgres } from '../helpers/postgres.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';
import { until } from '../helpers/wait.js';

const IDS = ['gw1', 'gw2', 'gw3'] as const;
const ACCOUNTS = { gw1: 'p1', gw2: 'p2', gw3: 'p3', collector: 'c1' } as const;
const pg = new Postgres();
const broker = siteBroker(ACCOUNTS);
beforeAll(async () => {
  await Promise.all([pg.start(), broker.start()]);
}, 60_000);
afterAll(async () => {
  await broker.stop();
  await pg.stop();
});

const collectorKey = generateKeyPairSync('ed25519');

describe('the site journal from gateway processes', () => {
  it('three gateways as processes, one killed -9 mid-burst and started again: each door\'s journal in PostgreSQL exactly once', async () => {
    const dirs = Object.fromEntries(IDS.map((id) => [id, join(tmpDir(), id)])) as Record<(typeof IDS)[number], string>;
    const door_keys = IDS.map((id) => ({ gateway: id, kid: doorKey(dirs[id]).kid, public_key: doorKey(dirs[id]).publicKey }));
    const files: Record<string, string> = {};
    for (const id of IDS) {
      const s = await Store.open(dirs[id]);
      await s.upsertUsers([user({ userid: 'alice', cards: [1001] })]);
      await s.close();
      files[id] = join(tmpDir(), `${id}.json`);
      writeFileSync(files[id], JSON.stringify({
        gateway_id: id,
        data_dir: dirs[id],
        log: { level: 'warn' },
        policy: { debounce_ms: 0 },
        doors: [{ id: 'lobby', readers: [{ id: 'lobby-reader', type: 'mqtt', direction: 'in', rate_limit: { per_s: 5000, burst: 5000 } }] }],
        mqtt: { enabled: true, url: broker.url, username: id, password: ACCOUNTS[id] },
        site: { enabled: true, door_keys, keys: [{ kid: keyIdOf(collectorKey.publicKey), name: 'collector', public_key: rawPublicKey(collectorKey.publicKey), roles: ['collector'] }] },
      }));
    }
    const procs = new Map<string, ChildProcess>();
    let output = '';
    const start = (id: string) => {
      const p = spawn(process.execPath, [CLI_MAIN, 'start', '-c', files[id]!], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      p.stdout.on('data', (b: Buffer) => (output += `${id}: ${b.toString()}`));
      p.stderr.on('data', (b: Buffer) => (output += `${id}: ${b.toString()}`));
      procs.set(id, p);
      return p;
    };
    const watch = await mqtt.connectAsync(broker.url, { username: 'lobby-reader', password: USERS['lobby-reader'], clientId: 'lobby-reader', protocolVersion: 5 });
    try {
      const config = collectorConfigSchema.parse({ site: { url: broker.url, username: 'collector', password: ACCOUNTS.collector }, key_file: '/unused', door_keys, database: { url: await pg.database() }, gaps: { retry_s: 1 } });
      const db = await SiteJournalDb.open({ url: config.database.url! });
      const c = new Collector({ config, signer: { privateKey: collectorKey.privateKey, kid: keyIdOf(collectorKey.publicKey) }, db, log: createLogger({ level: 'silent', pretty: false }) });
      await c.start();
      for (const id of IDS) start(id);
      // Every gateway's head batch (sent on connect; the journal holds the start's door events): all three on the bus.
      // (No watcher logs in under a gateway's account: with use_username_as_clientid it would take the gateway's session.)
      await until(() => IDS.every((id) => c.status().gateways.some((g) => g.gateway === id)), 'three gateways heard', 30_000).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n${output.slice(-3000)}`);
      });
      const card = (id: string, n: number) => watch.publishAsync(`doorgw/${id}/reader/lobby-reader/credential`, JSON.stringify({ type: 'card', value: n % 3 ? 1001 : 9999 }), { qos: 1 });
      // A burst at each; gw2 killed -9 halfway through its share.
      for (let i = 0; i < 300; i++) {
        await Promise.all(IDS.map((id) => (id === 'gw2' && i >= 150 && procs.get('gw2')!.exitCode === null && procs.get('gw2')!.signalCode === null ? (procs.get('gw2')!.kill('SIGKILL'), Promise.resolve()) : id === 'gw2' && i >= 150 ? Promise.resolve() : card(id, i))));
      }
      await new Promise<void>((r) => (procs.get('gw2')!.signalCode !== null ? r() : procs.get('gw2')!.once('exit', () => r())));
      start('gw2');
      // Every record each door's own journal holds, once: compare by sequence with what the door says (its CLI, on its running gateway).
      const journalOf = async (id: string): Promise<number[]> => {
        const r = await doorgwAsync(['journal', '--format', 'jsonl', '-c', files[id]!]);
        if (r.code !== 0) return [];
        return r.stdout.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { seq: number }).seq);
      };
      const dbSeqs = async (id: string): Promise<number[]> => (await db.page({ fromMs: 0, toMs: Date.now() + 86_400_000, zone: 'UTC', gateway: id, kind: 'decision' }, 100_000, null)).map((r) => r.seq).sort((a, b) => a - b);
      for (const id of IDS) {
        await until(async () => {
          const want = (await journalOf(id)).sort((a, b) => a - b);
          const have = await dbSeqs(id);
          return want.length > 0 && have.length === want.length && have.every((s, i) => s === want[i]);
        }, `${id}: its journal in the site journal`, 60_000);
      }
      const counts = await db.counts();
      expect(counts.rows).toBe(counts.distinct);
      expect((await dbSeqs('gw1')).length).toBe(300);
      expect((await dbSeqs('gw3')).length).toBe(300);
      expect((await dbSeqs('gw2')).length).toBeGreaterThan(0);
      expect((await dbSeqs('gw2')).length).toBeLessThanOrEqual(150);
      await c.stop();
      await db.close();
    } finally {
      for (const p of procs.values()) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await watch.endAsync();
    }
  }, 180_000);
});
