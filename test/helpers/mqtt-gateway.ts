/** A gateway on a test broker: config, a seeded directory, started and connected. */
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import type { SimRelay } from '../../src/io/relay.js';
import type { Logger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { type Broker, USERS } from './mosquitto.js';
import type { TestKey } from './qr.js';
import { tmpDir } from './tmp.js';
import { user } from './users.js';
import { until } from './wait.js';

export const DEFAULT_DOORS = [
  { id: 'lobby', name: 'Lobby', relay: { pulse_ms: 300 }, readers: [{ id: 'lobby-reader', type: 'mqtt', direction: 'in' }] },
  { id: 'back', readers: [{ id: 'other-reader', type: 'mqtt', direction: 'out' }] },
];

export function mqttConfig(broker: Broker, dataDir: string, extra: Record<string, unknown> = {}, doors: unknown[] = DEFAULT_DOORS, top: Record<string, unknown> = {}) {
  return validateConfig(
    {
      gateway_id: 'gw1',
      data_dir: dataDir,
      policy: { debounce_ms: 0 },
      doors,
      mqtt: { enabled: true, url: broker.url, username: 'doorgw', password: USERS.doorgw, ...extra },
      ...top,
    },
    'test',
  );
}

/** Start a gateway whose directory holds alice (openvid 11, card 1001) and wait for the broker. */
export async function startMqttGateway(
  broker: Broker,
  o: { log: Logger; key: TestKey; dataDir?: string; extra?: Record<string, unknown>; doors?: unknown[]; top?: Record<string, unknown> },
): Promise<Gateway> {
  const dataDir = o.dataDir ?? join(tmpDir(), 'data');
  const seed = await Store.open(dataDir); // the directory exists before the gateway starts
  await seed.upsertUsers([user({ userid: 'alice', openvid: 11, public_key: o.key.publicB64, cards: [1001] })]);
  await seed.close();
  const gw = await Gateway.start({ config: mqttConfig(broker, dataDir, o.extra, o.doors, o.top), log: o.log, controlSocket: false });
  await until(() => gw.mqtt!.link.connected$.value, 'mqtt connected');
  return gw;
}

export const simRelay = (g: Gateway, door = 'lobby') => g.relays.get(door) as SimRelay;

/**
 * What a test started, stopped after it whatever happened: `t.gw` (the gateway) and `t.closers`
 * (clients and the like, closed in order).
 */
export function cleanup(): { gw: Gateway | null; closers: (() => Promise<unknown>)[] } {
  const t = { gw: null as Gateway | null, closers: [] as (() => Promise<unknown>)[] };
  afterEach(async () => {
    await t.gw?.stop();
    t.gw = null;
    for (const c of t.closers.splice(0)) await c();
  });
  return t;
}
