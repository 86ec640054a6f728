/**
 * Scan to open, timed (issue 26): the WeCom emulator pushes push_user_scan for the door's code;
 * measured from the push leaving the emulator to the relay command, and to the door's
 * report_remote_open_door arriving back — idle, and during a full sync of `--users` users. The
 * emulator runs in this process (it serves the sync's pages on the same event loop: a pessimistic
 * setting). Last line of output is JSON.
 *
 *   npm run bench:scan [-- --users 50000 --scans 200]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateDirectory, WecomEmulator } from '../../src/cloud/wecom/emulator.js';
import type { WecomAdapter } from '../../src/cloud/wecom/adapter.js';
import { writeSecret } from '../../src/cloud/wecom/secret.js';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import type { SimRelay } from '../../src/io/relay.js';
import { createLogger } from '../../src/log.js';
import { pct, r2 } from './common.js';

const { values } = parseArgs({ options: { users: { type: 'string', default: '50000' }, scans: { type: 'string', default: '200' } } });
const USERS = Number(values.users);
const SCANS = Number(values.scans);

const emu = new WecomEmulator();
const url = await emu.start();
emu.seed(generateDirectory(USERS).users);
const dir = mkdtempSync(join(tmpdir(), 'doorgw-bench-scan-'));
writeSecret(dir, { sn: 'BENCH', secret: emu.provision('BENCH') });
const config = validateConfig({ data_dir: dir, storage: { reserve_mb: 0 }, policy: { debounce_ms: 0 }, doors: [{ id: 'front', relay: { pulse_ms: 100 } }], cloud: { provider: 'wecom', wecom: { url, sn: 'BENCH', request_timeout_ms: 30_000 } } }, 'bench');
const gw = await Gateway.start({ config, log: createLogger({ level: 'silent', pretty: false }), controlSocket: false });
const adapter = gw.cloud as WecomAdapter;
const until = async (f: () => boolean | Promise<boolean>): Promise<void> => {
  while (!(await f())) await new Promise((r) => setTimeout(r, 20));
};
await until(async () => (await gw.store.userCount()) === USERS && adapter.loginCode('front') !== null);
/** Employees without rules (generateDirectory: every 10th is a visitor, every 4th has rules): they pass. */
const PASSERS = Array.from({ length: Math.min(USERS, 5000) }, (_, i) => i).filter((i) => i % 10 !== 9 && i % 4 !== 0).map((i) => `u${i}`);
const relay = gw.relays.get('front') as SimRelay;
let pulsedAt = 0n;
const pulse = relay.pulse.bind(relay);
relay.pulse = (ms: number) => {
  pulsedAt = process.hrtime.bigint();
  pulse(ms);
};

async function scans(n: number, keepGoing: () => boolean = () => true): Promise<{ relay: number[]; report: number[] }> {
  const out = { relay: [] as number[], report: [] as number[] };
  for (let i = 0; i < n && keepGoing(); i++) {
    const code = adapter.loginCode('front')!.text;
    const t0 = process.hrtime.bigint();
    pulsedAt = 0n;
    const r = await emu.scan(code, PASSERS[i % PASSERS.length]!);
    if ('refused' in r) throw new Error(r.refused);
    if (r.report.status !== 0 || pulsedAt === 0n) throw new Error(`scan ${i} did not open: ${JSON.stringify(r.report)}`);
    out.relay.push(Number(pulsedAt - t0) / 1e6);
    out.report.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

const idle = await scans(SCANS);
// During a full sync (the generation worker writes the directory; the emulator serves its pages).
let syncing = true;
const sync = gw.api.sync().finally(() => (syncing = false));
await new Promise((r) => setTimeout(r, 50));
const during = await scans(SCANS, () => syncing);
await sync;
const summary = (x: { relay: number[]; report: number[] }) => ({ n: x.relay.length, relay_ms: { p50: r2(pct(x.relay, 50)), p99: r2(pct(x.relay, 99)), max: r2(pct(x.relay, 100)) }, report_ms: { p50: r2(pct(x.report, 50)), p99: r2(pct(x.report, 99)), max: r2(pct(x.report, 100)) } });
await gw.stop();
await emu.stop();
rmSync(dir, { recursive: true, force: true });
const result = { bench: 'scan-to-open', users: USERS, idle: summary(idle), during_full_sync: summary(during) };
console.log(`idle: relay p50 ${result.idle.relay_ms.p50} ms, report p50 ${result.idle.report_ms.p50} ms; during a full sync of ${USERS}: relay p99 ${result.during_full_sync.relay_ms.p99} ms, report p99 ${result.during_full_sync.report_ms.p99} ms (${result.during_full_sync.n} scans)`);
console.log(JSON.stringify(result));
