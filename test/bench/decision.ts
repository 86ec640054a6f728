/**
 * Decision benchmark of the gateway as deployed: 100,000 cached users, Gateway.start (the same
 * construction as `doorgw start`: journal on disk with its group commits and replay memory, the log
 * effect writing JSON lines, reader gate, debounce), QR scan text in → relay command out, against
 * the floor (decode + index read + user read + key read + verify) on the same data in the same run.
 * Three spacings: back to back (blocks alternating with the floor), 2 ms apart and 500 ms apart
 * (caches go cold between people at a real door). Event-loop delay is measured alongside. Last line
 * of output is JSON.
 *
 * With --console the web console runs too, busy: another process holds a live event stream and
 * polls status, the journal and /metrics every 200 ms, as an open dashboard and a scraper would.
 *
 *   npm run bench:decision [-- --users 100000 --samples 20000 --spaced 2000 --slow 40 --policies --console]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { verify } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Subject } from 'rxjs';
import { validateConfig } from '../../src/config/load.js';
import { credentialEvent, type CredentialEvent } from '../../src/domain/events.js';
import { decodeQr } from '../../src/domain/qr.js';
import { normalizeWecomUser, type NormalizedUser } from '../../src/domain/user.js';
import { Gateway } from '../../src/gateway.js';
import { hashPassword } from '../../src/domain/password.js';
import { createLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { employeeQr, makeKey, type TestKey } from '../helpers/qr.js';
import { pct, r2, TimingRelay } from './common.js';

const { values } = parseArgs({ options: { users: { type: 'string', default: '100000' }, samples: { type: 'string', default: '20000' }, spaced: { type: 'string', default: '2000' }, slow: { type: 'string', default: '40' }, policies: { type: 'boolean', default: false }, console: { type: 'boolean', default: false } } });
const USERS = Number(values.users);
const SAMPLES = Number(values.samples);
const SPACED = Number(values.spaced);
const SLOW = Number(values.slow);
const BLOCK = 500;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'doorgw-bench-'));
  try {
    // Corp keys are shared by many users: 16 keys for the whole directory.
    const keys: TestKey[] = Array.from({ length: 16 }, () => makeKey());
    const openvidOf = (i: number): string => (18_000_000_000_000_000_000n + BigInt(i)).toString(); // above 2^53
    function* users(): Generator<NormalizedUser> {
      for (let i = 0; i < USERS; i++) {
        const r = normalizeWecomUser({
          userid: `user${i}`,
          openvid: openvidOf(i),
          name: `User ${i}`,
          public_key: keys[i % keys.length]!.publicB64,
          // half the users have a schedule (always open, so every sample is a grant), half the default
          pass_rule_list: i % 2 ? [{ id: 0, rule: '0:00-23:59 * * * *', effect_time: 1_500_000_000 }, { id: 1, rule: '9:00-18:00 * * 1-5 *', effect_time: 1_500_000_000 }] : [],
        });
        if (!r.ok) throw new Error(r.error);
        yield r.user;
      }
    }
    const seed = await Store.open(dir);
    const t0 = performance.now();
    await seed.replaceDirectory(users());
    const seedS = (performance.now() - t0) / 1000;
    await seed.close();

    // The gateway as deployed; its log goes where a service's would (a file), not to a terminal.
    const relay = new TimingRelay();
    const src = new Subject<CredentialEvent>();
    // --policies: a door with a holiday calendar, a lockdown-override group and extended unlock.
    const policies = values.policies
      ? { groups: { security: ['user1', 'user2'], accessible: ['user3'] }, holidays: { cn: ['2020-01-01', '2020-10-01..2020-10-07'] }, doorPolicy: { holidays: ['cn'], closed_on_holidays: true, holiday_exempt_groups: ['security'], lockdown_override_groups: ['security'], extended_unlock: { groups: ['accessible'], pulse_ms: 9000 } } }
      : null;
    const web = values.console ? { web: { enabled: true, port: 0 } } : {};
    const config = validateConfig({ data_dir: dir, storage: { reserve_mb: 0 }, doors: [{ id: 'front', ...(policies ? { policy: policies.doorPolicy } : {}) }], ...(policies ? { groups: policies.groups, holidays: policies.holidays } : {}), ...web }, 'bench');
    const c0 = performance.now();
    const gw = await Gateway.start({ config, log: createLogger({ level: 'info', pretty: false, destination: createWriteStream('/dev/null') }), relayFactory: () => relay, sources: [src], controlSocket: false });
    const startMs = performance.now() - c0;
    let busy: { child: ChildProcess; events: () => Promise<number> } | null = null;
    if (values.console) busy = await busyConsole(gw, dir);

    const now = Math.floor(Date.now() / 1000);
    const total = SAMPLES + SPACED + SLOW + 2000;
    const picks = Array.from({ length: total }, () => Math.floor(Math.random() * USERS));
    // Every code distinct (a user picked twice shows a newer code), each accepted once: replay memory in play.
    const codes = picks.map((u, n) => employeeQr(keys[u % keys.length]!.privateKey, openvidOf(u), now - 5 - n, 65_000));
    const dirApi = gw.store.directory;

    const full: number[] = [];
    const floor: number[] = [];
    let denied = 0;
    const runFull = (text: string, out: number[] | null): void => {
      const e = credentialEvent('front', 'scanner', 'in', { type: 'qr', text });
      const before = relay.last;
      src.next(e);
      if (relay.last === before) denied++;
      else out?.push(Number(relay.last - e.hr) / 1000);
    };
    const runFloor = (text: string, out: number[] | null): void => {
      const start = process.hrtime.bigint();
      const d = decodeQr(text);
      if (!d.ok) throw new Error('bad code');
      const uid = dirApi.useridByOpenvid(d.value.openvid);
      const u = uid ? dirApi.user(uid) : undefined;
      const key = u?.key_id ? dirApi.publicKey(u.key_id) : undefined;
      if (!key) throw new Error('floor: no key');
      const ok = verify('sha256', d.value.signed, { key, dsaEncoding: 'ieee-p1363' }, d.value.signature);
      const end = process.hrtime.bigint();
      if (!ok) throw new Error('floor check failed');
      out?.push(Number(end - start) / 1000);
    };

    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    let i = 0;
    for (; i < 2000; i++) {
      runFloor(codes[i]!, null);
      runFull(codes[i]!, null);
    }
    // Back to back, in alternating blocks so drift hits both.
    for (const end = i + SAMPLES; i < end; i += BLOCK) {
      for (let j = i; j < Math.min(i + BLOCK, end); j++) runFloor(codes[j]!, floor);
      for (let j = i; j < Math.min(i + BLOCK, end); j++) runFull(codes[j]!, full);
      await sleep(0); // let the journal's group commit and the log run, as they would
    }
    // Spaced like people at a door: 2 ms, then 500 ms apart.
    const spaced = { full: [] as number[], floor: [] as number[] };
    for (const end = i + SPACED; i < end; i++) {
      await sleep(2);
      runFloor(codes[i]!, spaced.floor);
      await sleep(2);
      runFull(codes[i]!, spaced.full);
    }
    const slow = { full: [] as number[], floor: [] as number[] };
    for (const end = i + SLOW; i < end; i++) {
      await sleep(500);
      runFloor(codes[i]!, slow.floor);
      await sleep(500);
      runFull(codes[i]!, slow.full);
    }
    loop.disable();
    const streamed = busy ? await busy.events() : null;
    if (denied) throw new Error(`${denied} samples were denied; the benchmark must measure grants`);
    await gw.journal.flush();
    const journaled = (await gw.store.recentJournal(total + 10)).length;
    await gw.stop();
    if (journaled < total) throw new Error(`${journaled} journal entries for ${total} grants`);

    const stats = (f: number[], fl: number[]) => ({ p50_us: r2(pct(f, 50)), p99_us: r2(pct(f, 99)), floor_p50_us: r2(pct(fl, 50)), floor_p99_us: r2(pct(fl, 99)), ratio_p50: r2(pct(f, 50) / pct(fl, 50)), ratio_p99: r2(pct(f, 99) / pct(fl, 99)) });
    const result = {
      bench: 'decision',
      users: USERS,
      policies: values.policies,
      console: values.console ? { events_streamed: streamed } : false,
      back_to_back: { samples: full.length, ...stats(full, floor) },
      spaced_2ms: { samples: spaced.full.length, ...stats(spaced.full, spaced.floor) },
      spaced_500ms: { samples: slow.full.length, ...stats(slow.full, slow.floor) },
      event_loop_delay_p99_ms: r2(loop.percentile(99) / 1e6),
      gateway_start_ms: r2(startMs),
      seed_users_per_s: Math.round(USERS / seedS),
    };
    for (const [k, v] of Object.entries(result)) if (typeof v === 'object' && v && 'p50_us' in v) process.stdout.write(`${k}: scan→relay p50 ${v.p50_us} µs, p99 ${v.p99_us} µs; floor p50 ${v.floor_p50_us} µs, p99 ${v.floor_p99_us} µs; ratio ${v.ratio_p50} / ${v.ratio_p99}\n`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A browser's worth of load in another process: log in, hold the live event stream, and poll what
 * an open dashboard and a Prometheus scraper fetch, every 200 ms.
 */
async function busyConsole(gw: Gateway, dir: string): Promise<{ child: ChildProcess; events: () => Promise<number> }> {
  await gw.api.webUserPut({ name: 'bench', role: 'viewer', hash: await hashPassword('bench-password') });
  const base = `http://127.0.0.1:${gw.web!.address!.port}`;
  const script = `
    const base = ${JSON.stringify(base)};
    const r = await fetch(base + '/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'bench', password: 'bench-password' }) });
    const cookie = r.headers.get('set-cookie').split(';')[0];
    let events = 0;
    const res = await fetch(base + '/api/events', { headers: { cookie } });
    (async () => { try { for await (const chunk of res.body) events += (Buffer.from(chunk).toString().match(/^event: (decision|door_event)$/gm) ?? []).length; } catch (e) { console.error('event stream ended: ' + e.message); } })();
    setInterval(() => { for (const p of ['/api/status', '/api/journal?limit=30', '/metrics']) fetch(base + p, { headers: { cookie } }).then((x) => x.arrayBuffer()).catch(() => {}); }, 200);
    process.on('message', () => process.send(events));
    process.send('ready');
  `;
  const file = join(dir, 'busy-console.mjs');
  writeFileSync(file, script);
  const child = fork(file, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise<void>((resolve) => child.once('message', () => resolve()));
  return {
    child,
    events: () =>
      new Promise<number>((resolve) => {
        child.once('message', (n) => {
          child.kill();
          resolve(n as number);
        });
        child.send('count');
      }),
  };
}

await main();
