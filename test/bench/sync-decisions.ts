/**
 * Decisions during a full sync: the gateway (in this process, as deployed) syncs 100,000 users from
 * the WeCom emulator (its own process) while a reader presents a card every 5 ms. Latency is from
 * when the scan was due (a reader's data waits in the kernel while the event loop is busy) to its
 * decision; event-loop delay is measured alongside. Last line of output is JSON.
 *
 *   npm run build && npm run bench:sync-decisions [-- --users 100000]
 */
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { emulatorProcess } from '../helpers/emulator-process.js';
import { Subject } from 'rxjs';
import { writeSecret } from '../../src/cloud/wecom/secret.js';
import { validateConfig } from '../../src/config/load.js';
import { credentialEvent, type CredentialEvent } from '../../src/domain/events.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { pct, r2 } from './common.js';

const { values } = parseArgs({ options: { users: { type: 'string', default: '100000' }, gap: { type: 'string', default: '5' } } });
const USERS = Number(values.users);
const GAP_MS = Number(values.gap);


const { url, child } = await emulatorProcess(['--users', String(USERS)]);
const dir = mkdtempSync(join(tmpdir(), 'doorgw-bench-syncdec-'));
try {
  writeSecret(dir, { sn: 'BENCH', secret: 's3cret' });
  const config = validateConfig({ data_dir: dir, storage: { reserve_mb: 0 }, policy: { debounce_ms: 0 }, doors: [{ id: 'front' }], cloud: { provider: 'wecom', wecom: { url, sn: 'BENCH', request_timeout_ms: 30_000 } } }, 'bench');
  const src = new Subject<CredentialEvent>();
  const gw = await Gateway.start({ config, log: createLogger({ level: 'info', pretty: false, destination: createWriteStream('/dev/null') }), sources: [src], controlSocket: false });
  const during: number[] = [];
  const idle: number[] = [];
  let syncing = true;
  // A scan due every GAP_MS on a fixed schedule: its latency is from when it was due (one that
  // fires late waited for the event loop) to when its decision was made (synchronously in next()).
  const t0 = performance.now();
  let k = 0;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const schedule = (): void => {
    const dueAt = t0 + ++k * GAP_MS;
    setTimeout(() => {
      // A timer may fire a little early: the scan then arrives when it fires.
      const arrived = Math.min(dueAt, performance.now());
      src.next(credentialEvent('front', 'probe', 'in', { type: 'card', value: '424242' }));
      (syncing ? during : idle).push((performance.now() - arrived) * 1000);
      if (syncing || idle.length < 1000) schedule();
    }, Math.max(0, dueAt - performance.now()));
  };
  schedule();
  const s0 = performance.now();
  while (gw.cloud?.state$.value.directory_version !== 1 || (await gw.store.userCount()) !== USERS) await new Promise((r) => setTimeout(r, 50));
  const syncS = (performance.now() - s0) / 1000;
  const delayDuring = loop.percentile(99) / 1e6;
  loop.reset();
  syncing = false;
  while (idle.length < 1000) await new Promise((r) => setTimeout(r, 50));
  const delayIdle = loop.percentile(99) / 1e6;
  loop.disable();
  await gw.stop();
  const result = {
    bench: 'sync_decisions',
    users: USERS,
    sync_s: r2(syncS),
    during_sync: { samples: during.length, p50_us: r2(pct(during, 50)), p99_us: r2(pct(during, 99)), max_us: r2(Math.max(...during)), event_loop_delay_p99_ms: r2(delayDuring) },
    idle: { samples: idle.length, p50_us: r2(pct(idle, 50)), p99_us: r2(pct(idle, 99)), event_loop_delay_p99_ms: r2(delayIdle) },
  };
  process.stdout.write(`during a ${USERS}-user sync (${result.sync_s} s): scan→decision p50 ${result.during_sync.p50_us} µs, p99 ${result.during_sync.p99_us} µs, max ${result.during_sync.max_us} µs\n`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
