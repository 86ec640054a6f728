/**
 * Decision benchmark: 100,000 cached users; QR scan text in → relay command out, in-process,
 * against the floor (one crypto.verify plus one store read) measured in the same run on the
 * same data. Blocks of the two alternate so drift hits both. Last line of output is JSON.
 *
 *   npm run bench:decision [-- --users 100000 --samples 20000]
 */
import { verify } from 'node:crypto';
import { BehaviorSubject } from 'rxjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeQr, importPublicKey } from '../../src/domain/qr.js';
import { ReplayGuard } from '../../src/domain/replay.js';
import { normalizeWecomUser, type NormalizedUser } from '../../src/domain/user.js';
import type { Relay } from '../../src/io/relay.js';
import { createLogger } from '../../src/log.js';
import { AccessPipeline } from '../../src/pipeline/access.js';
import { credentialEvent } from '../../src/domain/events.js';
import { Store } from '../../src/store/store.js';
import { employeeQr, makeKey, type TestKey } from '../helpers/qr.js';

const { values } = parseArgs({ options: { users: { type: 'string', default: '100000' }, samples: { type: 'string', default: '20000' } } });
const USERS = Number(values.users);
const SAMPLES = Number(values.samples);
const BLOCK = 500;

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const r2 = (x: number): number => Math.round(x * 100) / 100;

/** A relay that only notes when it was commanded. */
class TimingRelay implements Relay {
  last = 0n;
  energised = false;
  readonly state$ = new BehaviorSubject(false);
  relock(): void {}
  pulse(): void {
    this.last = process.hrtime.bigint();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

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
    const path = join(dir, 'db');
    let store = await Store.open(path);
    const t0 = performance.now();
    await store.replaceDirectory(users());
    const seedS = (performance.now() - t0) / 1000;
    await store.close();

    // Cold start: open the database and answer the first lookup.
    const c0 = performance.now();
    store = await Store.open(path);
    store.directory.user('user0');
    const coldStartMs = performance.now() - c0;

    // Pre-sign distinct codes for random users (each accepted once: replay memory stays in play).
    const now = Math.floor(Date.now() / 1000);
    const picks = Array.from({ length: SAMPLES + 2000 }, () => Math.floor(Math.random() * USERS));
    const codes = picks.map((i) => ({ userid: `user${i}`, text: employeeQr(keys[i % keys.length]!.privateKey, openvidOf(i), now - 5, 600) }));
    const floorKeys = keys.map((k) => importPublicKey(Buffer.from(k.publicB64, 'base64')));

    const relay = new TimingRelay();
    const pipeline = new AccessPipeline({
      store,
      doors: new Map([['front', { context: { id: 'front', mode: 'normal', timezone: 'Asia/Shanghai' }, relay, pulseMs: 3000 }]]),
      policy: { default_allow: { employee: true, visitor: false, student: true }, replay_protection: true, qr_skew_s: 30 },
      debounceMs: 1500,
      replay: new ReplayGuard(),
      log: createLogger({ level: 'silent', pretty: false }),
    });

    const full: number[] = [];
    const floor: number[] = [];
    let denied = 0;
    const runFull = (c: { text: string }, record: boolean): void => {
      const start = process.hrtime.bigint();
      const d = pipeline.handle(credentialEvent('front', 'bench', 'in', { type: 'qr', text: c.text }));
      if (d?.decision !== 'grant') denied++;
      if (record) full.push(Number(relay.last - start) / 1000);
    };
    const runFloor = (c: { userid: string; text: string }, i: number, record: boolean): void => {
      const decoded = decodeQr(c.text); // outside the timed region: the floor is verify + read only
      if (!decoded.ok) throw new Error('bad code');
      const { signed, signature } = decoded.value;
      const start = process.hrtime.bigint();
      const u = store.directory.user(c.userid);
      const ok = verify('sha256', signed, { key: floorKeys[picks[i]! % keys.length]!, dsaEncoding: 'ieee-p1363' }, signature);
      const end = process.hrtime.bigint();
      if (!ok || !u) throw new Error('floor check failed');
      if (record) floor.push(Number(end - start) / 1000);
    };

    // Warm-up, then alternate blocks.
    for (let i = 0; i < 2000; i++) {
      runFloor(codes[i]!, i, false);
      runFull(codes[i]!, false);
    }
    for (let b = 2000; b < codes.length; b += BLOCK) {
      for (let i = b; i < Math.min(b + BLOCK, codes.length); i++) runFloor(codes[i]!, i, true);
      for (let i = b; i < Math.min(b + BLOCK, codes.length); i++) runFull(codes[i]!, true);
    }
    if (denied) throw new Error(`${denied} samples were denied; the benchmark must measure grants`);
    await store.close();

    const result = {
      bench: 'decision',
      users: USERS,
      samples: full.length,
      p50_us: r2(pct(full, 50)),
      p99_us: r2(pct(full, 99)),
      floor_p50_us: r2(pct(floor, 50)),
      floor_p99_us: r2(pct(floor, 99)),
      ratio_p50: r2(pct(full, 50) / pct(floor, 50)),
      ratio_p99: r2(pct(full, 99) / pct(floor, 99)),
      cold_start_ms: r2(coldStartMs),
      seed_users_per_s: Math.round(USERS / seedS),
    };
    process.stdout.write(`decision: ${USERS} users, ${full.length} samples; scan→relay p50 ${result.p50_us} µs, p99 ${result.p99_us} µs\n`);
    process.stdout.write(`floor (verify + store read): p50 ${result.floor_p50_us} µs, p99 ${result.floor_p99_us} µs; cold start ${result.cold_start_ms} ms\n`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
