/**
 * What strict durability costs: scan → relay latency of the gateway as deployed (Gateway.start,
 * journal on disk, log and effects on), card scans 5 ms apart, batched vs strict, alternating runs.
 * Last line of output is JSON.
 *
 *   npm run bench:durability [-- --scans 2000 --runs 3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Subject } from 'rxjs';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { credentialEvent, type CredentialEvent } from '../../src/domain/events.js';
import { Store } from '../../src/store/store.js';
import { user } from '../helpers/users.js';
import { pct, TimingRelay } from './common.js';

const { values } = parseArgs({ options: { scans: { type: 'string', default: '2000' }, runs: { type: 'string', default: '3' }, gap: { type: 'string', default: '5' } } });
const SCANS = Number(values.scans);
const RUNS = Number(values.runs);
const GAP_MS = Number(values.gap);

const median = (xs: number[]): number => pct(xs, 50);
const r = (x: number): number => Math.round(x);


async function run(durability: 'batched' | 'strict'): Promise<{ p50: number; p99: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'doorgw-bench-dur-'));
  try {
    const seed = await Store.open(dir);
    await seed.upsertUsers(Array.from({ length: 1000 }, (_, i) => user({ userid: `u${i}`, cards: [i + 1] })));
    await seed.close();
    const config = validateConfig({ data_dir: dir, policy: { debounce_ms: 0 }, journal: { durability }, storage: { reserve_mb: 0 }, doors: [{ id: 'front' }] }, 'bench');
    const relay = new TimingRelay();
    const src = new Subject<CredentialEvent>();
    const log = createLogger({ level: 'info', pretty: false, destination: { write: () => true } as unknown as NodeJS.WritableStream });
    const gw = await Gateway.start({ config, log, sources: [src], relayFactory: () => relay, controlSocket: false });
    const sent: bigint[] = [];
    for (let i = 0; i < SCANS; i++) {
      const e = credentialEvent('front', 'bench', 'in', { type: 'card', value: String((i % 1000) + 1) });
      sent.push(e.hr);
      src.next(e);
      await new Promise((res) => setTimeout(res, GAP_MS));
    }
    await gw.journal.flush();
    await new Promise((res) => setTimeout(res, 50));
    await gw.stop();
    const us = relay.times.map((t, i) => Number(t - sent[i]!) / 1000);
    if (us.length !== SCANS) throw new Error(`${us.length} pulses for ${SCANS} scans`);
    return { p50: pct(us, 50), p99: pct(us, 99) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const results: Record<'batched' | 'strict', { p50: number; p99: number }[]> = { batched: [], strict: [] };
for (let i = 0; i < RUNS; i++) {
  for (const mode of ['batched', 'strict'] as const) {
    const x = await run(mode);
    results[mode].push(x);
    process.stdout.write(`run ${i + 1} ${mode}: p50 ${r(x.p50)} µs, p99 ${r(x.p99)} µs\n`);
  }
}
const summary = Object.fromEntries(
  (['batched', 'strict'] as const).map((m) => [m, { p50_us: r(median(results[m].map((x) => x.p50))), p99_us: r(median(results[m].map((x) => x.p99))), p50_runs: results[m].map((x) => r(x.p50)), p99_runs: results[m].map((x) => r(x.p99)) }]),
);
process.stdout.write(`${JSON.stringify({ bench: 'durability', scans: SCANS, gap_ms: GAP_MS, runs: RUNS, tmpdir: tmpdir(), ...summary })}\n`);
