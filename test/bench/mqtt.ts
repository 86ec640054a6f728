/**
 * MQTT latency: a reader publishes a card credential to a real Mosquitto (QoS 1); the gateway
 * receives it, decides and commands the relay. Measured from the reader's publish call to the
 * relay command, in one process (same clock). Last line of output is JSON.
 *
 *   npm run bench:mqtt [-- --samples 3000]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { Broker, client, USERS } from '../helpers/mosquitto.js';
import { normalizeWecomUser } from '../../src/domain/user.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pct, r2, TimingRelay } from './common.js';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '3000' } } });
const SAMPLES = Number(values.samples);

const broker = new Broker();
await broker.start();
const dir = mkdtempSync(join(tmpdir(), 'doorgw-bench-mqtt-'));
const seed = await Store.open(dir);
const users = Array.from({ length: 1000 }, (_, i) => {
  const r = normalizeWecomUser({ userid: `u${i}`, cards: [10_000 + i] });
  if (!r.ok) throw new Error(r.error);
  return r.user;
});
await seed.replaceDirectory(users);
await seed.close();
const relay = new TimingRelay();
const gw = await Gateway.start({
  config: validateConfig(
    {
      gateway_id: 'bench',
      data_dir: dir,
      policy: { debounce_ms: 0 },
      doors: [{ id: 'front', readers: [{ id: 'lobby-reader', type: 'mqtt', direction: 'in' }] }],
      mqtt: { enabled: true, url: broker.url, username: 'doorgw', password: USERS.doorgw, home_assistant: { enabled: false } },
    },
    'bench',
  ),
  log: createLogger({ level: 'silent', pretty: false }),
  relayFactory: () => relay,
  controlSocket: false,
});
while (!gw.mqtt!.link.connected$.value) await new Promise((r) => setTimeout(r, 20));
await new Promise((r) => setTimeout(r, 300)); // subscriptions settled
const reader = await client(broker, 'lobby-reader');
const topic = 'doorgw/bench/reader/lobby-reader/credential';
const lat: number[] = [];
for (let i = 0; i < SAMPLES + 200; i++) {
  const payload = JSON.stringify({ type: 'card', value: 10_000 + (i % 1000) });
  const done = new Promise<bigint>((resolve) => (relay.onPulse = () => resolve(process.hrtime.bigint())));
  const t0 = process.hrtime.bigint();
  reader.c.publish(topic, payload, { qos: 1 });
  const t1 = await done;
  if (i >= 200) lat.push(Number(t1 - t0) / 1000);
}
await reader.c.endAsync();
await gw.stop();
await broker.stop();
rmSync(dir, { recursive: true, force: true });
const result = { bench: 'mqtt', samples: lat.length, p50_us: r2(pct(lat, 50)), p99_us: r2(pct(lat, 99)), p50_ms: r2(pct(lat, 50) / 1000), p99_ms: r2(pct(lat, 99) / 1000) };
process.stdout.write(`mqtt: reader publish → relay command through Mosquitto, ${lat.length} samples: p50 ${result.p50_us} µs, p99 ${result.p99_us} µs\n`);
process.stdout.write(`${JSON.stringify(result)}\n`);
