/**
 * The onoff adapter for real, against an emulated sysfs GPIO tree in a private mount namespace
 * (unshare -m, tmpfs over /sys/class, a helper process playing the kernel).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GpioUnavailableError, sysfsNumber } from '../../src/io/gpio/sysfs.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const probe = spawnSync('unshare', ['-m', 'true']);
const namespaces = probe.status === 0;
if (!namespaces) {
  process.stderr.write(`\n*** GPIO adapter test NOT RUN: this machine does not allow a private mount namespace (unshare -m: ${probe.stderr?.toString().trim() || probe.error?.message}). Run the tests as root on Linux. ***\n\n`);
}

describe('sysfs numbering', () => {
  it('explains a missing sysfs GPIO tree and an unknown chip', () => {
    expect(() => sysfsNumber(17, { root: '/nonexistent/gpio' })).toThrow(GpioUnavailableError);
    expect(() => sysfsNumber(17, { root: '/nonexistent/gpio' })).toThrow(/trixie/);
    const root = mkdtempSync(join(tmpdir(), 'gpio-'));
    expect(() => sysfsNumber(17, { root })).toThrow(/no gpiochip labelled/);
  });
});

describe.skipIf(!namespaces)('onoff adapter on an emulated sysfs tree', () => {
  it('exports the right numbers, never drives a strike high at start, pulses, extends, and debounces inputs', () => {
    const script = join(mkdtempSync(join(tmpdir(), 'gpio-ns-')), 'run.sh');
    writeFileSync(script, `set -e\nmount -t tmpfs tmpfs /sys/class\ncd '${ROOT}'\nexec '${process.execPath}' --import tsx test/io/gpio-scenario.ts\n`);
    const r = spawnSync('unshare', ['-m', 'bash', script], { encoding: 'utf8', timeout: 60_000 });
    const last = r.stdout.trim().split('\n').at(-1) ?? '';
    const out = JSON.parse(last) as Record<string, unknown>;
    expect(out.error).toBeUndefined();
    // BCM → sysfs through the SoC chip's base (512 on this "Pi 4"), not the expander's
    expect(out.numbers).toEqual({ strike: 529, activeLowBoard: 539, maglock: 517, override: 17 });
    expect(out.missingChip).toMatch(/no gpiochip labelled pinctrl-rp1.*gpiochip512 \(pinctrl-bcm2711, base 512/);
    // At start: outputs at their idle level in the direction write; active_low untouched
    expect(out.afterStart).toEqual({ strike: ['out', '0', '0'], activeLowBoard: ['out', '1'], maglock: ['1'] });
    expect(out.duringPulse).toEqual({ strike: '1', activeLowBoard: '0', maglock: '0', energised: true });
    expect(out.afterPulse).toEqual({ strike: '0', activeLowBoard: '1', maglock: '1', energised: false });
    expect(out.afterClose).toEqual({ strike: '0', exported: 'out' }); // left exported at idle
    // The strike's value over time: low from the start, one high period (extended, not stacked), low again.
    const strike = (out.valueLog as string[]).filter((l) => l.split(' ')[1] === '529').map((l) => l.split(' ')[2]);
    expect(strike).toEqual(['0', '1', '0']);
    // Edge interrupts are unavailable on tmpfs: the adapter polls. The emulated kernel exports the
    // line at 0 (reads as pressed on an active-low input; the initial level is no event), the
    // pull-up then idles it (released), the bouncing press is one press, then the release.
    expect(out.inputMode).toBe('poll');
    expect(out.activeAtOpen).toBe(true); // the line reads 0 at export: pressed on an active-low input, known at once
    expect(out.inputChanges).toEqual([false, true, false]);
    // A named output (active low: on is 0) and a named input on sysfs, opened as the gateway opens them.
    expect(out.siren).toEqual({ idle: '1', on: '0', off: '1' });
    expect(out.panel).toEqual({ atOpen: false, changes: [true], now: true });
  });
});
