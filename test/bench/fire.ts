/**
 * Fire input edge → every governed relay released, for 8 doors on one gateway: the real gateway
 * process with doorgw's GPIO addon against the fake kernel (test/helpers/fake-gpiochip.c), so the
 * path measured is the whole one — the kernel's edge event (its timestamp), the addon's watch, the
 * event loop, the fire release, eight line writes (each logged with its monotonic time by the fake).
 * Kernel debounce on real hardware comes before the edge event and adds its own period.
 *
 *   npm run build && node --import tsx test/bench/fire.ts [--runs 40]
 *
 * Prints one line per run, then a JSON summary as the last line (median, p95, max ms; goal < 50 ms).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pct, r2 } from './common.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 40) || 40;
const DOORS = 8;
const PANEL = 5;
const relayLine = (i: number): number => 10 + i;

const dir = mkdtempSync(join(tmpdir(), 'doorgw-bench-fire-'));
const fake = join(dir, 'fake-gpiochip.so');
const cc = spawnSync('cc', ['-O1', '-shared', '-fPIC', '-pthread', '-o', fake, join(ROOT, 'test/helpers/fake-gpiochip.c'), '-ldl'], { encoding: 'utf8' });
if (cc.status !== 0) throw new Error(cc.stderr);
if (!existsSync(join(ROOT, 'dist/io/gpio/gpio_cdev.node'))) throw new Error('build first: npm run build');
const log = join(dir, 'gpio.log');
const ctl = join(dir, 'gpio.ctl');
spawnSync('mkfifo', [ctl]);
const config = join(dir, 'doorgw.yaml');
// Half strikes (released = 1), half maglocks (released = 0): every door's released level is checked.
const doors = Array.from({ length: DOORS }, (_, i) => `  - id: d${i}\n    relay: { driver: gpio, pin: ${relayLine(i)}, lock_type: ${i % 2 ? 'fail_safe' : 'fail_secure'} }\n`).join('');
writeFileSync(
  config,
  `data_dir: ${join(dir, 'data')}\nlog: { level: warn, pretty: false }\ngpio: { backend: cdev, chip: /dev/gpiochip0 }\n` +
    `doors:\n${doors}io:\n  inputs:\n    panel: { pin: ${PANEL}, active_low: false, bias: pull-up, debounce_ms: 0 }\n  fire:\n    - { input: panel, latch: false }\n`,
);
const released = (i: number): string => `set ${relayLine(i)}=${i % 2 ? 0 : 1}`;
const idle = (i: number): string => `set ${relayLine(i)}=${i % 2 ? 1 : 0}`;

const child = spawn(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'start', '-c', config], {
  env: { ...process.env, LD_PRELOAD: fake, FAKE_GPIO_LOG: log, FAKE_GPIO_CTL: ctl, FAKE_GPIO_LEVELS: `${PANEL}=0` },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const lines = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
const waitFor = async (ok: () => boolean, what: string): Promise<void> => {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > 20_000) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
};

try {
  await waitFor(() => lines().filter((l) => l.startsWith('request')).length >= DOORS + 1, 'gateway up');
  await new Promise((r) => setTimeout(r, 300)); // the control FIFO's reader thread, the event loop settled
  const fifo = await open(ctl, 'w');
  const nowNs = (): bigint => process.hrtime.bigint(); // CLOCK_MONOTONIC, as the fake's stamps
  const ms: number[] = [];
  for (let run = 0; run < runs; run++) {
    const from = lines().length;
    const edge = nowNs();
    await fifo.write(`edge ${PANEL} 1 ${edge}\n`);
    const sets = (): string[] => lines().slice(from);
    await waitFor(() => Array.from({ length: DOORS }, (_, i) => i).every((i) => sets().some((l) => l.startsWith(`${released(i)} `))), `run ${run}: all released`);
    const last = Math.max(...Array.from({ length: DOORS }, (_, i) => Number(/t=(\d+)/.exec(sets().find((l) => l.startsWith(`${released(i)} `))!)![1])));
    const took = (last - Number(edge)) / 1e6;
    ms.push(took);
    console.log(JSON.stringify({ run, ms: r2(took) }));
    const back = lines().length;
    await fifo.write(`edge ${PANEL} 0\n`); // not latched: the doors re-lock with the panel
    await waitFor(() => Array.from({ length: DOORS }, (_, i) => i).every((i) => lines().slice(back).some((l) => l.startsWith(`${idle(i)} `))), `run ${run}: all re-locked`);
  }
  await fifo.close();
  console.log(JSON.stringify({ bench: 'fire_release', doors: DOORS, runs, median_ms: r2(pct(ms, 50)), p95_ms: r2(pct(ms, 95)), max_ms: r2(Math.max(...ms)), goal_ms: 50, within_goal: pct(ms, 95) < 50 }));
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
