/**
 * What the site broker does at 1,000 doors (issue 23, "say what holds at 1,000 doors"), simulated:
 * a real Mosquitto and --doors MQTT sessions (default 1,000) subscribed to the site's facts as a
 * door's bridge is — not 1,000 gateways (this machine has 2 cores), but the broker's part of it.
 *   lockdown   one retained fact published → received by every session (ms; --runs runs)
 *   healing    every session reconnects at once while --facts retained facts are held (default
 *              1,000) → every session holds all of them (ms, and messages per second)
 * A door's own work on top (verifying each envelope, applying it) is measured by bench:site and
 * bench:site-processes. Last line of output is JSON.
 *
 *   npm run bench:site-fanout [-- --doors 1000 --runs 20 --facts 1000]
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { keyIdOf, signEnvelope } from '../../src/domain/site-envelope.js';
import { freePort } from '../helpers/mosquitto.js';
import { pct, r2 } from './common.js';

const { values } = parseArgs({ options: { doors: { type: 'string', default: '1000' }, runs: { type: 'string', default: '20' }, facts: { type: 'string', default: '1000' } } });
const DOORS = Number(values.doors);
const RUNS = Number(values.runs);
const FACTS = Number(values.facts);

const dir = mkdtempSync(join(tmpdir(), 'doorgw-fanout-'));
const port = await freePort();
writeFileSync(join(dir, 'm.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages 100\nlog_type error\n`);
const broker = spawn(existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto', ['-c', join(dir, 'm.conf')], { stdio: 'ignore' });
const url = `mqtt://127.0.0.1:${port}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
for (let i = 0; ; i++) {
  const ok = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 500 }).then((c) => c.endAsync().then(() => true)).catch(() => false);
  if (ok) break;
  if (i > 100) throw new Error('mosquitto did not come up');
  await sleep(50);
}

const admin = generateKeyPairSync('ed25519');
const fact = (subject: string, body: unknown) => JSON.stringify(signEnvelope({ v: 1, kid: keyIdOf(admin.publicKey), iat: Date.now(), id: randomUUID(), kind: 'fact', subject, scope: { site: true }, version: Date.now(), body }, admin.privateKey));

// The doors' sessions (QoS 1, as a bridge subscribes), counting what each receives.
const got = new Array<number>(DOORS).fill(0);
const sessions: MqttClient[] = [];
async function connectAll(clean: boolean): Promise<void> {
  sessions.length = 0;
  const batch = 50;
  for (let i = 0; i < DOORS; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, DOORS - i) }, async (_, j) => {
        const n = i + j;
        const c = await mqtt.connectAsync(url, { clientId: `door-${n}`, clean, protocolVersion: 5, reconnectPeriod: 0, properties: clean ? {} : { sessionExpiryInterval: 3600 } });
        c.on('message', () => got[n]!++);
        await c.subscribeAsync('doorgw-site/fact/#', { qos: 1 });
        sessions[n] = c;
      }),
    );
  }
}
await connectAll(true);
const pub = await mqtt.connectAsync(url, { clientId: 'operator', protocolVersion: 5 });

async function waitFor(ok: () => boolean, what: string, ms = 300_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(2);
  }
}

const lockdown: number[] = [];
for (let r = 0; r < RUNS; r++) {
  const before = got.map((x) => x);
  const payload = fact('threat_level/site', { level: r % 2 === 0 ? 'lockdown' : 'normal' });
  const t0 = performance.now();
  await pub.publishAsync('doorgw-site/fact/threat_level/site', payload, { qos: 1, retain: true });
  await waitFor(() => got.every((x, i) => x > before[i]!), 'every session got the level');
  lockdown.push(performance.now() - t0);
}

// Healing: facts retained, then every session connects at once and must receive all of them.
for (let i = 0; i < FACTS; i++) await pub.publishAsync(`doorgw-site/fact/block/card:${1_000_000 + i}`, fact(`block/card:${1_000_000 + i}`, { reason: 'bench' }), { qos: 1, retain: true });
await Promise.all(sessions.map((c) => c.endAsync()));
got.fill(0);
const t0 = performance.now();
await connectAll(true);
await waitFor(() => got.every((x) => x >= FACTS + 1), 'every session holds every retained fact');
const healMs = performance.now() - t0;

await pub.endAsync();
await Promise.all(sessions.map((c) => c.endAsync()));
broker.kill('SIGKILL');
rmSync(dir, { recursive: true, force: true });
const result = {
  bench: 'site-fanout',
  doors: DOORS,
  lockdown_all_sessions_ms: { p50: r2(pct(lockdown, 50)), p99: r2(pct(lockdown, 99)), max: r2(Math.max(...lockdown)), runs: RUNS },
  healing: { facts: FACTS + 1, all_sessions_reconnect_and_hold_all_ms: Math.round(healMs), messages: DOORS * (FACTS + 1), messages_per_s: Math.round((DOORS * (FACTS + 1)) / (healMs / 1000)) },
};
process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
