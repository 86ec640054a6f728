/**
 * Sync benchmark: a full sync of 100,000 users from the emulator, then 10,000 users with two 1 KB
 * fingerprint templates each, then an outbox drain of 10,000 queued pass records. The emulator and
 * the gateway (`node dist/cli/main.js start`, as deployed) each run in their own process; this one
 * only orchestrates, watching the gateway over its control socket. Peak RSS is the gateway
 * process's high-water mark (VmHWM). Last line of output is JSON for the 100,000-user run.
 *
 *   npm run bench:sync [-- --users 100000]
 *   BENCH_GATEWAY_NODE_FLAGS= BENCH_GATEWAY_ENV= npm run bench:sync   (plain node instead of the service's settings)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { emulatorProcess } from '../helpers/emulator-process.js';
import { writeSecret } from '../../src/cloud/wecom/secret.js';
import { connectControl } from '../../src/control/socket.js';
import { Store } from '../../src/store/store.js';

const { values } = parseArgs({ options: { users: { type: 'string', default: '100000' } } });
const ROOT = new URL('../..', import.meta.url).pathname;
/** The service's settings (the systemd unit), unless BENCH_GATEWAY_NODE_FLAGS / BENCH_GATEWAY_ENV say otherwise ('' for none). */
const NODE_FLAGS = (process.env.BENCH_GATEWAY_NODE_FLAGS ?? '--max-semi-space-size=4').split(' ').filter(Boolean);
const GATEWAY_ENV = Object.fromEntries((process.env.BENCH_GATEWAY_ENV ?? 'MALLOC_ARENA_MAX=2').split(' ').filter(Boolean).map((kv) => kv.split('=') as [string, string]));
/** CPU time a process has used, seconds, all its threads (Linux: utime + stime in clock ticks of 1/100 s). */
const cpuSeconds = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
/** Peak resident set of a process, MB (Linux). */
const peakRssMb = (pid: number): number => Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);


interface RunningGateway {
  child: ChildProcess;
  status(): Promise<{ users: number; outbox_depth: number; cloud: { directory_version: number | null } | null } | null>;
  /** Ends it; its peak RSS (MB) and the CPU it used (s). */
  stop(): Promise<{ peak: number; cpu: number }>;
}

/** Start the gateway as deployed; `stop()` returns its peak RSS in MB. */
function gatewayFor(url: string, dataDir: string, fingerprint: boolean): RunningGateway {
  writeSecret(dataDir, { sn: 'BENCH', secret: 's3cret' });
  const config = join(dataDir, 'bench.yaml');
  writeFileSync(config, `data_dir: ${dataDir}\nlog: { level: warn, pretty: false }\ndoors: [{ id: front${fingerprint ? ', fingerprint: { driver: sim }' : ''} }]\ncloud: { provider: wecom, wecom: { url: "${url}", sn: BENCH, request_timeout_ms: 30000 } }\n`);
  const child = spawn(process.execPath, [...NODE_FLAGS, join(ROOT, 'dist/cli/main.js'), 'start', '-c', config], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...GATEWAY_ENV } });
  return {
    child,
    async status() {
      const api = await connectControl(join(dataDir, 'doorgw.sock'));
      if (!api) return null;
      try {
        return await api.status();
      } finally {
        api.close();
      }
    },
    async stop() {
      const peak = peakRssMb(child.pid!);
      const cpu = cpuSeconds(child.pid!);
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      return { peak, cpu };
    },
  };
}

async function until(fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > timeoutMs) throw new Error('benchmark step timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function fullSync(users: number, templates: boolean): Promise<Record<string, number | string | boolean>> {
  const { url, child } = await emulatorProcess(['--users', String(users), ...(templates ? ['--templates'] : [])]);
  const dataDir = mkdtempSync(join(tmpdir(), 'doorgw-bench-sync-'));
  try {
    const t0 = performance.now();
    const gw = gatewayFor(url, dataDir, templates);
    await until(async () => {
      const s = await gw.status();
      return s?.cloud?.directory_version === 1 && s.users === users;
    }, 600_000);
    const seconds = (performance.now() - t0) / 1000; // includes process start and login
    const { peak, cpu } = await gw.stop();
    // CPU includes the process's start and login (~0.5 s), as the seconds do.
    return { bench: 'sync', users, templates, seconds: Math.round(seconds * 100) / 100, users_per_s: Math.round(users / seconds), cpu_us_per_user: Math.round((cpu / users) * 1e6 * 10) / 10, peak_rss_mb: peak };
  } finally {
    child.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function outboxDrain(records: number): Promise<Record<string, number | string>> {
  const { url, child } = await emulatorProcess(['--users', '10']);
  const dataDir = mkdtempSync(join(tmpdir(), 'doorgw-bench-outbox-'));
  try {
    const s = await Store.open(dataDir);
    const now = Math.floor(Date.now() / 1000);
    for (let i = 0; i < records; i += 1000) {
      await s.append(Array.from({ length: 1000 }, (_, j) => ({
        decision: { decision: 'grant' as const, reason: 'default_allow' as const, userid: `u${(i + j) % 10}`, user_type: 0 as const, method: 'qr' as const, door: 'front', at: (now - records + i + j) * 1000 },
        pass: { userid: `u${(i + j) % 10}`, user_type: 0, timestamp: now - records + i + j, direction: 'in' as const, method: 'qr' as const, door: 'front' },
      })));
    }
    await s.close();
    const t0 = performance.now();
    const gw = gatewayFor(url, dataDir, false);
    await until(async () => (await gw.status())?.outbox_depth === 0, 600_000);
    const seconds = (performance.now() - t0) / 1000;
    await gw.stop();
    return { bench: 'outbox_drain', records, seconds: Math.round(seconds * 100) / 100, records_per_s: Math.round(records / seconds) };
  } finally {
    child.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const main = await fullSync(Number(values.users), false);
const tpl = await fullSync(10_000, true);
const drain = await outboxDrain(10_000);
process.stdout.write(`${JSON.stringify(tpl)}\n${JSON.stringify(drain)}\n`);
process.stdout.write(`sync: ${main.users} users in ${main.seconds} s (${main.users_per_s}/s), peak RSS ${main.peak_rss_mb} MB; with templates ${tpl.users_per_s}/s; outbox drain ${drain.records_per_s} records/s\n`);
process.stdout.write(`${JSON.stringify(main)}\n`);
