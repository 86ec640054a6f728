/**
 * Runs inside `unshare -m` with tmpfs over /sys/class (see gpio.test.ts): builds a gpiochip tree,
 * starts the kernel helper, drives the real onoff adapter and prints what happened as JSON.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GpioInput, GpioRelay } from '../../src/io/gpio/onoff.js';
import { sysfsNumber } from '../../src/io/gpio/sysfs.js';
import { createLogger } from '../../src/log.js';

const root = '/sys/class/gpio';
mkdirSync(root, { recursive: true });
writeFileSync(join(root, 'export'), '');
writeFileSync(join(root, 'unexport'), '');
const chip = (name: string, base: number, label: string, ngpio: number): void => {
  mkdirSync(join(root, name));
  writeFileSync(join(root, name, 'base'), `${base}\n`);
  writeFileSync(join(root, name, 'label'), `${label}\n`);
  writeFileSync(join(root, name, 'ngpio'), `${ngpio}\n`);
};
chip('gpiochip512', 512, 'pinctrl-bcm2711', 58);
chip('gpiochip570', 570, 'raspberrypi-exp-gpio', 8);
const helper = spawn(process.execPath, [new URL('./sysfs-kernel.mjs', import.meta.url).pathname, root], { stdio: 'inherit' });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const log = createLogger({ level: 'silent', pretty: false });
const read = (n: number, f: string): string => readFileSync(join(root, `gpio${n}`, f), 'utf8').trim();

const out: Record<string, unknown> = {};
try {
  const strike = sysfsNumber(17, { root });
  const activeLowBoard = sysfsNumber(27, { root });
  const maglock = sysfsNumber(5, { root });
  out.numbers = { strike, activeLowBoard, maglock, override: sysfsNumber(17, { root, base: 0 }) };
  try {
    sysfsNumber(17, { root, chipLabel: 'pinctrl-rp1' });
  } catch (e) {
    out.missingChip = (e as Error).message;
  }

  const r1 = await GpioRelay.open({ door: 'a', number: strike, activeLow: false, lockType: 'fail_secure', log });
  const r2 = await GpioRelay.open({ door: 'b', number: activeLowBoard, activeLow: true, lockType: 'fail_secure', log });
  const r3 = await GpioRelay.open({ door: 'c', number: maglock, activeLow: false, lockType: 'fail_safe', log });
  await sleep(30);
  out.afterStart = { strike: [read(strike, 'direction'), read(strike, 'value'), read(strike, 'active_low')], activeLowBoard: [read(activeLowBoard, 'direction'), read(activeLowBoard, 'value')], maglock: [read(maglock, 'value')] };
  r1.pulse(200);
  r2.pulse(200);
  r3.pulse(200);
  await sleep(100);
  r1.pulse(200); // extends, does not stack
  await sleep(80);
  out.duringPulse = { strike: read(strike, 'value'), activeLowBoard: read(activeLowBoard, 'value'), maglock: read(maglock, 'value'), energised: r1.energised };
  await sleep(250);
  out.afterPulse = { strike: read(strike, 'value'), activeLowBoard: read(activeLowBoard, 'value'), maglock: read(maglock, 'value'), energised: r1.energised };
  await r1.close();
  await r2.close();
  await r3.close();
  out.afterClose = { strike: read(strike, 'value'), exported: read(strike, 'direction') };

  const changes: boolean[] = [];
  const button = sysfsNumber(22, { root });
  const input = await GpioInput.open({ name: 'exit', number: button, activeLow: true, debounceMs: 30, onChange: (a) => changes.push(a), log, pollMs: 5 });
  out.inputMode = input.mode;
  out.activeAtOpen = input.active; // the level at start is a state: read when the input is opened
  writeFileSync(join(root, `gpio${button}`, 'value'), '1'); // idle: pulled up (active low)
  await sleep(60);
  for (const v of ['0', '1', '0', '1', '0']) {
    writeFileSync(join(root, `gpio${button}`, 'value'), v); // bounce while pressed
    await sleep(8);
  }
  await sleep(80);
  writeFileSync(join(root, `gpio${button}`, 'value'), '1');
  await sleep(80);
  out.inputChanges = changes;
  input.close();
  await sleep(20);
  // The gateway's named lines through the same backends (io.outputs, io.inputs), as the gateway opens them.
  const { validateConfig } = await import('../../src/config/load.js');
  const { openInput, openOutput } = await import('../../src/io/gpio/backends.js');
  const config = validateConfig({ data_dir: '/tmp/unused', gpio: { backend: 'sysfs', sysfs_root: root }, doors: [{ id: 'x' }], io: { outputs: { siren: { pin: 19, active_low: true } } } }, 'scenario');
  const siren = await openOutput('siren', config.io.outputs.siren!, config, log);
  const sirenLine = sysfsNumber(19, { root });
  await sleep(30);
  const sirenIdle = read(sirenLine, 'value');
  siren.pulse(100_000);
  const sirenOn = read(sirenLine, 'value');
  siren.relock();
  out.siren = { idle: sirenIdle, on: sirenOn, off: read(sirenLine, 'value') };
  await siren.close();
  const panelLine = sysfsNumber(12, { root });
  const seen: boolean[] = [];
  const panel = await openInput({ door: 'io', name: 'panel', pin: 12, activeLow: false, debounceMs: 0, onChange: (a) => seen.push(a) }, config, log);
  const atOpen = panel.active; // exported at 0: normal (active high)
  writeFileSync(join(root, `gpio${panelLine}`, 'value'), '1'); // alarm (or a cut wire with the pull-up)
  await sleep(60);
  out.panel = { atOpen, changes: seen, now: panel.active };
  panel.close();
  out.valueLog = readFileSync(join(root, '..', 'value-log'), 'utf8').trim().split('\n');
} catch (e) {
  out.error = (e as Error).stack;
} finally {
  helper.kill();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
