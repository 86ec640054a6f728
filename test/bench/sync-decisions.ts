/**
 * Decisions during a full sync: the gateway (in this process, as deployed) syncs 100,000 users from
 * the WeCom emulator (its own process) while a reader (another process) presents a card every 5 ms
 * through a pipe. Latency is from the reader's write to the decision; event-loop delay is measured
 * alongside. Last line of output is JSON.
 *
 *   npm run bench:sync-decisions [-- --users 100000]   (builds first; runs with the service's flags)
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { emulatorProcess } from '../helpers/emulator-process.js';
import { Subject } from 'rxjs';
import type { CredentialEvent } from '../../src/domain/events.js';
import { pct, r2 } from './common.js';

// The gateway as deployed: the built JavaScript (its generation worker too), not the TypeScript
// source through a loader.
const dist = <M>(m: string): Promise<M> => import(new URL(`../../dist/${m}`, import.meta.url).href) as Promise<M>;
const { writeSecret } = await dist<typeof import('../../src/cloud/wecom/secret.js')>('cloud/wecom/secret.js');
const { validateConfig } = await dist<typeof import('../../src/config/load.js')>('config/load.js');
const { credentialEvent } = await dist<typeof import('../../src/domain/events.js')>('domain/events.js');
const { Gateway } = await dist<typeof import('../../src/gateway.js')>('gateway.js');
const { createLogger } = await dist<typeof import('../../src/log.js')>('log.js');

const { values } = parseArgs({ options: { users: { type: 'string', default: '100000' }, gap: { type: 'string', default: '5' } } });
const USERS = Number(values.users);
const GAP_MS = Number(values.gap);


/** The reader process: a stamped line every `gap` ms on a fixed schedule. */
const READER = `const gap = Number(process.argv[1]); const t0 = performance.now(); let k = 0;
const tick = () => { process.stdout.write(process.hrtime.bigint() + '\\n'); setTimeout(tick, Math.max(0, t0 + ++k * gap - performance.now())); };
tick();`;

const { url, child } = await emulatorProcess(['--users', String(USERS)]);
const dir = mkdtempSync(join(tmpdir(), 'doorgw-bench-syncdec-'));
try {
  writeSecret(dir, { sn: 'BENCH', secret: 's3cret' });
  const config = validateConfig({ data_dir: dir, storage: { reserve_mb: 0 }, policy: { debounce_ms: 0 }, doors: [{ id: 'front' }], cloud: { provider: 'wecom', wecom: { url, sn: 'BENCH', request_timeout_ms: 30_000 } } }, 'bench');
  const src = new Subject<CredentialEvent>();
  const gw = await Gateway.start({ config, log: createLogger({ level: 'info', pretty: false, destination: createWriteStream('/dev/null') }), sources: [src], controlSocket: false });
  const during: number[] = [];
  /** Of each scan during the sync, the time inside the decision itself (the rest waited for the thread). */
  const deciding: number[] = [];
  const idle: number[] = [];
  let syncing = true;
  // The reader is another process writing a stamped line every GAP_MS into a pipe, as a reader's
  // data reaches the kernel: a line that waits there while the event loop is busy counts against
  // the gateway, and timer granularity in this process does not. The stamp is process.hrtime
  // (CLOCK_MONOTONIC: comparable across processes); the decision is made synchronously in next().
  const reader = spawn(process.execPath, ['-e', READER, String(GAP_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let partial = '';
  reader.stdout.setEncoding('utf8');
  reader.stdout.on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const before = process.hrtime.bigint();
      src.next(credentialEvent('front', 'probe', 'in', { type: 'card', value: '424242' }));
      const after = process.hrtime.bigint();
      const us = Number(after - BigInt(line)) / 1000;
      if (syncing) {
        during.push(us);
        deciding.push(Number(after - before) / 1000);
      } else if (idle.length < 1000) idle.push(us);
    }
  });
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const s0 = performance.now();
  while (gw.cloud?.state$.value.directory_version !== 1 || (await gw.store.userCount()) !== USERS) await new Promise((r) => setTimeout(r, 50));
  const syncS = (performance.now() - s0) / 1000;
  const delayDuring = loop.percentile(99) / 1e6;
  loop.reset();
  syncing = false;
  while (idle.length < 1000) await new Promise((r) => setTimeout(r, 50));
  const delayIdle = loop.percentile(99) / 1e6;
  loop.disable();
  reader.kill();
  await gw.stop();
  const result = {
    bench: 'sync_decisions',
    users: USERS,
    sync_s: r2(syncS),
    during_sync: { samples: during.length, p50_us: r2(pct(during, 50)), p99_us: r2(pct(during, 99)), max_us: r2(Math.max(...during)), deciding_p99_us: r2(pct(deciding, 99)), event_loop_delay_p99_ms: r2(delayDuring) },
    idle: { samples: idle.length, p50_us: r2(pct(idle, 50)), p99_us: r2(pct(idle, 99)), event_loop_delay_p99_ms: r2(delayIdle) },
  };
  process.stdout.write(`during a ${USERS}-user sync (${result.sync_s} s): scan→decision p50 ${result.during_sync.p50_us} µs, p99 ${result.during_sync.p99_us} µs, max ${result.during_sync.max_us} µs\n`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
