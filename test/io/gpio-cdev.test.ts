/**
 * The GPIO character-device backend, for real down to the system calls: the gateway process runs
 * doorgw's own addon against a fake kernel (test/helpers/fake-gpiochip.c, LD_PRELOAD) that answers
 * the v2 uAPI — chip info, line requests with their initial values and debounce, value sets, and
 * edge events with kernel timestamps — since this machine's kernel has no GPIO.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const ADDON = join(ROOT, 'dist/io/gpio/gpio_cdev.node');
let fake: string;
let fakeDir: string;
afterAll(() => rmSync(fakeDir, { recursive: true, force: true }));
beforeAll(() => {
  if (!existsSync(ADDON)) throw new Error('the GPIO addon is not built: sh scripts/build-native.sh (needs a C compiler and Node headers)');
  // Not tmpDir(): that is emptied after every test, and the library serves them all.
  fakeDir = mkdtempSync(join(tmpdir(), 'doorgw-fakegpio-'));
  fake = join(fakeDir, 'fake-gpiochip.so');
  const cc = spawnSync('cc', ['-O1', '-Wall', '-shared', '-fPIC', '-pthread', '-o', fake, join(ROOT, 'test/helpers/fake-gpiochip.c'), '-ldl'], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(cc.stderr);
});

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

async function gateway(env: Record<string, string> = {}, extraReaders = '', before?: (config: string) => void) {
  const dir = tmpDir();
  const log = join(dir, 'gpio.log');
  const ctl = join(dir, 'gpio.ctl');
  spawnSync('mkfifo', [ctl]);
  const config = join(dir, 'doorgw.yaml');
  writeFileSync(
    config,
    `data_dir: ${join(dir, 'data')}\nlog: { level: info, pretty: false }\npolicy: { debounce_ms: 0 }\n` +
      `gpio: { backend: cdev, chip: /dev/gpiochip0 }\n` +
      `doors:\n  - id: front\n    relay: { driver: gpio, pin: 17, pulse_ms: 300 }\n` +
      `    inputs:\n      exit_button: { pin: 27, active_low: true, debounce_ms: 20 }\n      door_contact: { pin: 22, active_low: true, debounce_ms: 20 }\n` +
      extraReaders,
  );
  before?.(config);
  const child = spawn(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'start', '-c', config], {
    env: { ...process.env, LD_PRELOAD: fake, FAKE_GPIO_LOG: log, FAKE_GPIO_CTL: ctl, FAKE_GPIO_LEVELS: '27=1,22=0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const out: Record<string, unknown>[] = [];
  let buf = '';
  child.stdout.on('data', (c: Buffer) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      try {
        out.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
      buf = buf.slice(i + 1);
    }
  });
  await until(() => out.some((l) => l.msg === 'gateway ready'), 'gateway ready', 20_000);
  const fifo = await open(ctl, 'w');
  const lines = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
  return {
    child,
    out,
    lines,
    config,
    send: (cmd: string) => fifo.write(`${cmd}\n`),
    close: () => fifo.close(),
  };
}

describe('GPIO character device (fake kernel under LD_PRELOAD)', () => {
  it('requests the relay at its idle level, takes kernel-debounced inputs, pulses on the exit button and relocks at shutdown', async () => {
    const g = await gateway();
    try {
      const requests = g.lines().filter((l) => l.startsWith('request'));
      // The relay's line is an output from the request itself, at its idle (locked) level: no glitch.
      expect(requests).toContainEqual(expect.stringMatching(/^request offsets=17 output=1 values=0 edges=none debounce=0 consumer=doorgw-front-relay /));
      expect(requests).toContainEqual(expect.stringMatching(/^request offsets=27 output=0 values=0 edges=both debounce=20000 consumer=doorgw-front\.exit_button /));
      expect(requests).toContainEqual(expect.stringMatching(/^request offsets=22 output=0 values=0 edges=both debounce=20000 consumer=doorgw-front\.door_contact /));
      expect(g.lines().some((l) => l.startsWith('set 17=1'))).toBe(false);
      expect(g.out.find((l) => l.msg === 'input on GPIO ready' && l.input === 'front.exit_button')).toMatchObject({ debounce: 'kernel', backend: 'cdev' });

      // The exit button (active low) is pressed: an edge with a kernel timestamp; the relay pulses 300 ms.
      await g.send('edge 27 0');
      await until(() => g.lines().some((l) => l.startsWith('set 17=0')), 'relay back to idle', 15_000);
      const sets = g.lines().filter((l) => l.startsWith('set 17=')).map((l) => /^set 17=(\d) t=(\d+)$/.exec(l)!);
      expect(sets.map((m) => m[1])).toEqual(['1', '0']);
      const ms = Number(BigInt(sets[1]![2]!) - BigInt(sets[0]![2]!)) / 1e6;
      expect(ms).toBeGreaterThanOrEqual(295);
      expect(ms).toBeLessThan(1500); // never shorter; later only by event-loop load (timers)
      expect(g.out.find((l) => l.msg === 'access granted')).toMatchObject({ reason: 'exit_request', door: 'front' });

      // The door contact opens (active low: the line rises).
      await g.send('edge 27 1');
      await g.send('edge 22 1');
      await until(() => g.out.some((l) => l.msg === 'door event' && l.event === 'contact_open'), 'contact open', 15_000);

      // SIGTERM: the relay is written to its idle level and the process ends.
      const exited = new Promise<number | null>((r) => g.child.once('exit', (c) => r(c)));
      g.child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(g.lines().filter((l) => l.startsWith('set 17=')).at(-1)).toMatch(/^set 17=0 /);
    } finally {
      await g.close();
    }
  }, 90_000);

  it('an input\'s level at start is a state: a door standing open is open at once; an exit button held at start opens nothing', async () => {
    const g = await gateway({ FAKE_GPIO_LEVELS: '27=0,22=1' }); // button pressed (active low), contact open
    try {
      await until(() => g.out.some((l) => l.msg === 'door event' && l.event === 'contact_open'), 'contact open at start', 15_000);
      expect(g.out.find((l) => l.msg === 'door event' && l.event === 'contact_open')).toMatchObject({ detail: 'open when the gateway started' });
      expect(g.out.some((l) => l.event === 'forced_open')).toBe(false);
      expect(g.out.find((l) => typeof l.msg === 'string' && l.msg.startsWith('exit button reads pressed at start'))).toMatchObject({ door: 'front' });
      // Released and pressed again: that press opens (a sentinel: the start level opened nothing before it).
      await g.send('edge 27 1');
      await g.send('edge 27 0');
      await until(() => g.out.some((l) => l.msg === 'access granted'), 'the real press', 15_000);
      expect(g.out.filter((l) => l.msg === 'access granted')).toHaveLength(1);
    } finally {
      await g.close();
    }
  }, 60_000);

  it('debounces in user space where the chip has no debounce, and names a missing line clearly', async () => {
    const g = await gateway({ FAKE_GPIO_NO_DEBOUNCE: '1' });
    try {
      expect(g.lines().filter((l) => l.startsWith('request offsets=27'))).toEqual([expect.stringMatching(/debounce=0 /)]);
      expect(g.out.find((l) => l.msg === 'input on GPIO ready' && l.input === 'front.exit_button')).toMatchObject({ debounce: 'user' });
      // A bounce shorter than 20 ms is not a press; a held press is.
      await g.send('edge 27 0');
      await g.send('edge 27 1');
      // Then a real press. The relay moves only after it (the fake stamps line writes on
      // CLOCK_MONOTONIC, as process.hrtime): had the bounce been taken as a press, it would be before.
      const pressed = process.hrtime.bigint();
      await g.send('edge 27 0');
      await until(() => g.lines().some((l) => l.startsWith('set 17=1')), 'pulse after a real press', 15_000);
      const first = BigInt(/t=(\d+)/.exec(g.lines().find((l) => l.startsWith('set 17=1'))!)![1]!);
      expect(first > pressed).toBe(true);
      expect(Number(first - pressed) / 1e6).toBeGreaterThanOrEqual(19); // held for the debounce period first
    } finally {
      await g.close();
    }
    // A line the chip does not have: the gateway refuses to start, saying which.
    const dir = tmpDir();
    const config = join(dir, 'c.yaml');
    writeFileSync(config, `data_dir: ${join(dir, 'data')}\ngpio: { backend: cdev, chip: /dev/gpiochip0 }\ndoors:\n  - id: front\n    relay: { driver: gpio, pin: 53 }\n`);
    const r = spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'start', '-c', config], { env: { ...process.env, LD_PRELOAD: fake, FAKE_GPIO_LINES: '28' }, encoding: 'utf8', timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/door 'front': relay on \/dev\/gpiochip0 line 53: the kernel refused the request \(EINVAL\)/);
    // A line by name: found on the chip by the kernel's line names; an unknown name says so.
    writeFileSync(config, `data_dir: ${join(dir, 'data')}\ngpio: { backend: cdev, chip: /dev/gpiochip0 }\ndoors:\n  - id: front\n    relay: { driver: gpio, line: GPIO99 }\n`);
    const named = spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'start', '-c', config], { env: { ...process.env, LD_PRELOAD: fake, FAKE_GPIO_LINES: '28' }, encoding: 'utf8', timeout: 20_000 });
    expect(named.stdout + named.stderr).toMatch(/no GPIO line named GPIO99 on \/dev\/gpiochip0/);
  }, 90_000);

  it('reads a Wiegand reader on two lines from kernel timestamps: a card opens with LED and beep, a misread is dropped, an unknown card gets three beeps', async () => {
    const readers = `    readers:\n      - { id: front-wg, type: wiegand, d0: 5, d1: 6, led: 13, beeper: 19, card_format: h10301 }\n`;
    const g = await gateway({ FAKE_GPIO_LEVELS: '27=1,22=0,5=1,6=1' }, readers, (config) => {
      const r = spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'users', 'add', 'li', '--card', '1001', '-c', config], { encoding: 'utf8' });
      expect(r.stdout).toBe('added local user li\n');
    });
    try {
      expect(g.lines()).toContainEqual(expect.stringMatching(/^request offsets=5,6 output=0 values=0 edges=falling debounce=0 consumer=doorgw-front-wg /));
      // LED and beeper requested inactive (high: active low).
      expect(g.lines()).toContainEqual(expect.stringMatching(/^request offsets=13,19 output=1 values=3 /));
      /** A frame as a reader sends it: each bit a 50 µs low pulse on D0 or D1, 2 ms apart. */
      const frame = async (bits: string): Promise<void> => {
        for (const [i, b] of [...bits].entries()) {
          const line = b === '1' ? 6 : 5;
          await g.send(`edge ${line} 0${i === 0 ? '' : ' +1950000'}`);
          await g.send(`edge ${line} 1 +50000`);
        }
      };
      const { encodeCard } = await import('../../src/domain/cards.js');
      const card = encodeCard('h10301', 0, 1001n);
      // A frame within 25 ms of the reader starting could be a partial one and is refused, by design.
      await new Promise((r) => setTimeout(r, 100));
      await frame(card);
      await until(() => g.lines().some((l) => l.startsWith('set 17=1')), 'the relay opens for the card', 15_000);
      // The log line is written after the relay moves (by design), so it can arrive a moment later.
      await until(() => g.out.some((l) => l.msg === 'access granted'), 'the grant is logged', 15_000);
      expect(g.out.find((l) => l.msg === 'access granted')).toMatchObject({ userid: 'li', method: 'card', reader: 'front-wg' });
      await until(() => g.lines().some((l) => l.startsWith('set 13=0')), 'LED on', 15_000);
      expect(g.lines().some((l) => l.startsWith('set 19=0'))).toBe(true); // the beep
      await until(() => g.lines().some((l) => l.startsWith('set 13=1')), 'LED off again', 15_000);
      // One bit misread: the parity catches it; dropped, logged, nothing decided.
      const decided = g.out.filter((l) => l.msg === 'access granted' || l.msg === 'access denied').length;
      await new Promise((r) => setTimeout(r, 100));
      await frame(`${card.slice(0, 9)}${card[9] === '1' ? '0' : '1'}${card.slice(10)}`);
      await until(() => g.out.some((l) => l.msg === 'wiegand frame dropped'), 'misread dropped', 15_000);
      expect(g.out.find((l) => l.msg === 'wiegand frame dropped')).toMatchObject({ bits: 26, error: expect.stringContaining('parity bit') });
      expect(g.out.filter((l) => l.msg === 'access granted' || l.msg === 'access denied')).toHaveLength(decided);
      // An unknown card is denied: three short beeps.
      await new Promise((r) => setTimeout(r, 100));
      const beepsBefore = g.lines().filter((l) => l.startsWith('set 19=0')).length;
      await frame(encodeCard('h10301', 0, 4242n));
      await until(() => g.out.some((l) => l.msg === 'access denied' && l.reason === 'unknown_user'), 'denied', 15_000);
      await until(() => g.lines().filter((l) => l.startsWith('set 19=0')).length === beepsBefore + 3, 'three beeps', 15_000);
    } finally {
      await g.close();
    }
  }, 90_000);

  it('fire panel on a supervised line: a cut wire releases every door, either lock type, past a grant; a rule drives a second relay; latched until reset; the reset is refused while in alarm', async () => {
    // Normal: the panel's normally-closed contact pulls line 5 to ground. Alarm, or a cut wire: the pull-up reads 1.
    const io = `  - id: back\n    relay: { driver: gpio, pin: 18, lock_type: fail_safe }\n` +
      `io:\n  inputs:\n    panel: { pin: 5, active_low: false, bias: pull-up, debounce_ms: 20 }\n` +
      `  outputs:\n    strobe: { pin: 19 }\n  fire:\n    - { input: panel }\n` +
      `  linkage:\n    - { name: fire-strobe, on: { input: panel }, do: [{ output: strobe, while_active: true }] }\n`;
    const g = await gateway({ FAKE_GPIO_LEVELS: '27=1,22=0,5=0' }, io);
    try {
      expect(g.lines()).toContainEqual(expect.stringMatching(/^request offsets=5 output=0 values=0 edges=both debounce=20000 consumer=doorgw-io\.panel bias=pull-up /));
      expect(g.lines()).toContainEqual(expect.stringMatching(/^request offsets=18 output=1 values=1 /)); // the maglock held (idle = energised)
      expect(g.out.some((l) => typeof l.msg === 'string' && l.msg.startsWith('fire input not supervised'))).toBe(false);
      await g.send('edge 27 0'); // an exit in progress
      await until(() => g.lines().some((l) => l.startsWith('set 17=1')), 'exit pulse', 15_000);
      await g.send('edge 5 1'); // the wire is cut (or the panel opens its contact)
      await until(() => g.lines().some((l) => l.startsWith('set 18=0')), 'maglock released', 15_000);
      await until(() => g.lines().some((l) => l.startsWith('set 19=1')), 'strobe on by rule', 15_000);
      await until(() => g.out.some((l) => l.msg === 'fire release: door released' && l.door === 'front'), 'front released', 15_000);
      await until(() => g.out.some((l) => l.msg === 'fire release: door released' && l.door === 'back'), 'back released', 15_000);
      const cli = (...a: string[]) => spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), ...a, '-c', g.config], { encoding: 'utf8', timeout: 20_000 });
      const refused = cli('fire', 'reset');
      expect(refused.status).toBe(1);
      expect(refused.stdout).toMatch(/refused: front: the fire alarm is still active \(fire input panel\)/);
      await g.send('edge 5 0'); // panel back to normal
      await until(() => g.lines().some((l) => l.startsWith('set 19=0')), 'strobe off with the input', 15_000);
      // Latched; and the exit's 300 ms pulse, long over by now (two CLI runs later), did not re-lock the strike.
      expect(g.lines().filter((l) => /^set 1[78]=/.test(l)).map((l) => l.slice(0, 8))).toEqual(['set 17=1', 'set 18=0']);
      const status = cli('fire', 'status');
      expect(status.stdout).toMatch(/front: RELEASED — latched \(fire input panel since /);
      const reset = cli('fire', 'reset');
      expect(reset.stdout).toBe('reset: front, back (back to their modes)\n');
      await until(() => g.lines().some((l) => l.startsWith('set 18=1')), 'maglock holds again', 15_000);
      expect(g.lines().filter((l) => /^set 1[78]=/.test(l)).map((l) => l.slice(0, 8))).toEqual(['set 17=1', 'set 18=0', 'set 17=0', 'set 18=1']);
    } finally {
      await g.close();
    }
  }, 90_000);

  it('a fire panel already in alarm (or its wire cut) when the gateway starts releases at once; an unsupervised fire input is said so', async () => {
    const io = `io:\n  inputs:\n    panel: { pin: 5, active_low: true }\n  fire:\n    - { input: panel }\n`;
    const g = await gateway({ FAKE_GPIO_LEVELS: '27=1,22=0,5=0' }, io); // active low, reading 0: in alarm
    try {
      await until(() => g.lines().some((l) => l.startsWith('set 17=1')), 'released at start', 15_000);
      expect(g.out.find((l) => l.msg === 'fire release: door released')).toMatchObject({ door: 'front', cause: 'fire input panel (active when the gateway started)' });
      expect(g.out.find((l) => typeof l.msg === 'string' && l.msg.startsWith('fire input not supervised'))).toMatchObject({ input: 'panel', active_low: true, bias: 'as-is' });
    } finally {
      await g.close();
    }
  }, 60_000);

  it('hw probe: the chip and its lines, which backend and why, and whether each door\'s lines can be had', () => {
    const dir = tmpDir();
    const config = join(dir, 'c.yaml');
    writeFileSync(config, `data_dir: ${join(dir, 'data')}\ngpio: { backend: cdev, chip: /dev/gpiochip0 }\ndoors:\n  - id: front\n    relay: { driver: gpio, pin: 17 }\n    inputs: { exit_button: { line: GPIO27 } }\n    readers: [{ id: wg, type: wiegand, d0: 5, d1: 6 }]\nio:\n  inputs: { panel: { pin: 12, active_low: false, bias: pull-up } }\n  outputs: { siren: { line: GPIO19 }, sim_one: { driver: sim } }\n`);
    const probe = (env: Record<string, string>) => spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'hw', 'probe', '--json', '-c', config], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
    const ok = probe({ LD_PRELOAD: fake, FAKE_GPIO_LABEL: 'pinctrl-rp1', FAKE_GPIO_LINES: '54' });
    expect(ok.status).toBe(0);
    const r = JSON.parse(ok.stdout) as { ok: boolean; gpio: { backend: string; why: string; chips: { path: string; label: string; lines: number }[] }; doors: { checks: { what: string; ok: boolean; detail: string }[] }[] };
    expect(r.gpio).toMatchObject({ backend: 'cdev', why: 'gpio.backend: cdev', chips: [{ path: '/dev/gpiochip0', label: 'pinctrl-rp1', lines: 54 }] });
    expect(r.doors[0]!.checks.map((c) => [c.what, c.ok])).toEqual([['relay (line 17)', true], ['exit_button (line GPIO27)', true], ['reader wg (D0 5, D1 6)', true]]);
    expect(r.doors[0]!.checks[1]!.detail).toBe('/dev/gpiochip0 line 27: can be requested'); // found by its name
    // The gateway's named lines, under `io` (a simulated output has no line).
    expect(r.doors[1]).toEqual({ door: 'io', checks: [{ what: 'input panel (line 12)', ok: true, detail: '/dev/gpiochip0 line 12: can be requested' }, { what: 'output siren (line GPIO19)', ok: true, detail: '/dev/gpiochip0 line 19: can be requested' }] });
    // Without the (fake) device: every line fails, exit 1, saying why.
    const bad = probe({});
    expect(bad.status).toBe(1);
    expect((JSON.parse(bad.stdout) as typeof r).doors[0]!.checks.every((c) => !c.ok)).toBe(true);
    // Neither GPIO interface (this machine): the advice is not "set gpio.backend: cdev", which would fail too.
    writeFileSync(config, `data_dir: ${join(dir, 'data')}\ngpio: { backend: sysfs, sysfs_root: ${join(dir, 'no-sysfs')} }\ndoors:\n  - id: front\n    relay: { driver: gpio, pin: 17 }\n`);
    const none = probe({});
    expect(none.status).toBe(1);
    const detail = (JSON.parse(none.stdout) as typeof r).doors[0]!.checks[0]!.detail;
    expect(detail).toMatch(/no GPIO at all/);
    expect(detail).not.toMatch(/gpio\.backend: cdev/);
  });
});
