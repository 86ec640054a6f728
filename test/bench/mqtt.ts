/**
 * MQTT latency through a real Mosquitto (QoS 1, the shipped configuration), with the reader and an
 * event watcher in another process (test/bench/mqtt-peer.ts; CLOCK_MONOTONIC times compared
 * across processes):
 *   floor            one publish → one subscriber, the broker's own hop (two other clients)
 *   card → relay     the reader's publish → the gateway's relay command
 *   card → event     the reader's publish → the access event received by the watcher (two hops)
 * Last line of output is JSON.
 *
 *   npm run bench:mqtt [-- --samples 3000]
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { Broker, USERS } from '../helpers/mosquitto.js';
import { normalizeWecomUser } from '../../src/domain/user.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pct, r2, TimingRelay } from './common.js';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '3000' } } });
const SAMPLES = Number(values.samples);

// Two accounts of their own for the floor (the shipped broker makes the user name the client id:
// two connections under one name would take each other's session).
const FLOOR_USERS = { 'bench-floor-a': 'floor-a', 'bench-floor-b': 'floor-b' };
const broker = new Broker({ users: FLOOR_USERS, acl: 'user bench-floor-a\ntopic readwrite bench/#\nuser bench-floor-b\ntopic readwrite bench/#' });
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
      // No rate limit: the benchmark presents cards far faster than a person (the default would drop them).
      doors: [{ id: 'front', readers: [{ id: 'lobby-reader', type: 'mqtt', direction: 'in', rate_limit: { per_s: 10_000, burst: 10_000 } }] }],
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
const peer = fork(new URL('./mqtt-peer.ts', import.meta.url).pathname, [broker.url], { execArgv: ['--import', 'tsx'], env: { ...process.env, BENCH_USERS: JSON.stringify({ ...USERS, ...FLOOR_USERS }) } });
type Msg = { kind: string; i?: number; at: string; userid?: string | null };
const inbox: Msg[] = [];
let wake: (() => void) | null = null;
peer.on('message', (m: Msg) => {
  if (process.env.BENCH_DEBUG) process.stderr.write(`peer: ${JSON.stringify(m)}\n`);
  inbox.push(m);
  wake?.();
});
const next = async (kind: string, match: (m: Msg) => boolean = () => true): Promise<Msg> => {
  for (;;) {
    const i = inbox.findIndex((m) => m.kind === kind && match(m));
    if (i >= 0) return inbox.splice(i, 1)[0]!;
    await new Promise<void>((r) => (wake = r));
  }
};
await next('ready');
const us = (a: bigint, b: string): number => Number(a - BigInt(b)) / 1000;
const floor: number[] = [];
const toRelay: number[] = [];
const toEvent: number[] = [];
for (let i = 0; i < SAMPLES + 200; i++) {
  // The broker's own hop, between the same two processes' worth of clients.
  peer.send({ kind: 'floor', i });
  const fs = await next('floor-sent', (m) => m.i === i);
  const fr = await next('floor', (m) => m.i === i);
  // A card: to the relay (here) and to the published event (there).
  const relayAt = new Promise<bigint>((resolve) => (relay.onPulse = () => resolve(process.hrtime.bigint())));
  peer.send({ kind: 'card', i, value: 10_000 + (i % 1000) });
  const sent = await next('card-sent', (m) => m.i === i);
  const t1 = await relayAt;
  const ev = await next('event', (m) => m.userid === `u${i % 1000}`);
  if (i >= 200) {
    floor.push(us(BigInt(fr.at), fs.at));
    toRelay.push(us(t1, sent.at));
    toEvent.push(us(BigInt(ev.at), sent.at));
  }
}
peer.send({ kind: 'stop' });
await new Promise((r) => peer.once('exit', r));
await gw.stop();
await broker.stop();
rmSync(dir, { recursive: true, force: true });
const stats = (xs: number[]) => ({ p50_us: r2(pct(xs, 50)), p99_us: r2(pct(xs, 99)) });
const result = {
  bench: 'mqtt',
  samples: toRelay.length,
  floor: stats(floor),
  card_to_relay: stats(toRelay),
  card_to_event: stats(toEvent),
  relay_ratio_p50: r2(pct(toRelay, 50) / pct(floor, 50)),
  relay_ratio_p99: r2(pct(toRelay, 99) / pct(floor, 99)),
  event_ratio_p50_to_two_hops: r2(pct(toEvent, 50) / (2 * pct(floor, 50))),
};
process.stdout.write(`mqtt, ${toRelay.length} samples, reader in another process: broker hop p50 ${result.floor.p50_us} / p99 ${result.floor.p99_us} µs; card → relay p50 ${result.card_to_relay.p50_us} / p99 ${result.card_to_relay.p99_us} µs; card → event received p50 ${result.card_to_event.p50_us} / p99 ${result.card_to_event.p99_us} µs\n`);
process.stdout.write(`${JSON.stringify(result)}\n`);
