/**
 * The other side of `bench:mqtt`, in its own process: a reader publishing credentials, a watcher
 * receiving the gateway's events, and a pair of clients measuring the broker's own one-hop floor.
 * Commanded over IPC; times are process.hrtime (CLOCK_MONOTONIC: comparable across processes).
 */
import mqtt from 'mqtt';

const url = process.argv[2]!;
const users = JSON.parse(process.env.BENCH_USERS!) as Record<string, string>;
const connect = (user: string): Promise<mqtt.MqttClient> =>
  new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { username: user, password: users[user] ?? '', protocolVersion: 5, reconnectPeriod: 0 });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
const now = (): string => process.hrtime.bigint().toString();
const send = (m: Record<string, unknown>): void => void process.send!(m);

// Alive until told to stop (a forked child whose sockets are all the loop has can be let go early).
const alive = setInterval(() => undefined, 1 << 30);
// One account per connection: the shipped broker makes the user name the client id.
const reader = await connect('lobby-reader');
const watcher = await connect('operator');
const floorPub = await connect('bench-floor-a');
const floorSub = await connect('bench-floor-b');
await watcher.subscribeAsync('doorgw/bench/door/front/event', { qos: 1 });
await floorSub.subscribeAsync('bench/floor', { qos: 1 });
watcher.on('message', (_t, payload) => {
  const at = now();
  const e = JSON.parse(payload.toString()) as { userid?: string };
  send({ kind: 'event', userid: e.userid ?? null, at });
});
floorSub.on('message', (_t, payload) => send({ kind: 'floor', i: Number(payload.toString()), at: now() }));
process.on('message', (m: { kind: string; i: number; value?: number }) => {
  if (m.kind === 'floor') {
    const t0 = now();
    floorPub.publish('bench/floor', String(m.i), { qos: 1 });
    send({ kind: 'floor-sent', i: m.i, at: t0 });
  } else if (m.kind === 'card') {
    const t0 = now();
    reader.publish('doorgw/bench/reader/lobby-reader/credential', JSON.stringify({ type: 'card', value: m.value }), { qos: 1 });
    send({ kind: 'card-sent', i: m.i, at: t0 });
  } else if (m.kind === 'stop') {
    clearInterval(alive);
    void Promise.all([reader, watcher, floorPub, floorSub].map((c) => c.endAsync())).then(() => process.exit(0));
  }
});
send({ kind: 'ready' });
