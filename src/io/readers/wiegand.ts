/**
 * Reader kind `wiegand`: a Wiegand reader or keypad on two GPIO lines, through the character
 * device. Both lines are one line request, so the kernel stamps and orders every falling edge; the
 * framer rebuilds frames from those timestamps (exact even when the event loop was busy), and the
 * shared frame decoder turns them into cards or PIN keys. The reader's LED and beeper lines, where
 * wired, say grant or deny.
 */
import { Subject } from 'rxjs';
import type { CredentialEvent, DecisionEvent } from '../../domain/events.js';
import { WiegandFramer } from '../../domain/wiegand.js';
import { gpioBackend } from '../gpio/backends.js';
import { ReaderUnavailableError, type ReaderFactory } from './reader.js';
import { WiegandFrames } from './wiegand-frames.js';

export const openWiegandReader: ReaderFactory<'wiegand'> = async (r, ctx) => {
  const { config, door } = ctx;
  const log = ctx.log.child({ module: 'wiegand', reader: r.id });
  if ((await gpioBackend(config)).backend !== 'cdev') {
    throw new ReaderUnavailableError(`reader '${r.id}': Wiegand needs the GPIO character device (kernel edge timestamps; sysfs cannot keep up with 50 µs pulses). Set gpio.backend: cdev (Raspberry Pi OS bookworm and trixie have /dev/gpiochip*)`);
  }
  const { cdevBinding, findChip } = await import('../gpio/cdev.js');
  const b = cdevBinding();
  const chip = findChip({ chip: config.gpio.chip, chipLabel: config.gpio.chip_label });
  const d0 = r.d0!;
  const d1 = r.d1!;
  const out = new Subject<CredentialEvent>();
  const frames = WiegandFrames.forReader(r, door, (e) => out.next(e), (error, bits) => log.warn({ bits, error }, 'wiegand frame dropped'));

  let fd: number;
  try {
    fd = b.request(chip, `doorgw-${r.id}`.slice(0, 31), [d0, d1], { output: false, edges: 'falling', ...(r.bias === 'pull-up' ? { bias: 'pull-up' } : {}) });
  } catch (e) {
    throw new ReaderUnavailableError(`reader '${r.id}': D0/D1 on ${chip} lines ${d0}/${d1}: ${(e as Error).message}`);
  }
  // Kernel timestamps are CLOCK_MONOTONIC, as process.hrtime is.
  const framer = new WiegandFramer(process.hrtime.bigint());
  let flushTimer: NodeJS.Timeout | null = null;
  const take = (fs: ReturnType<WiegandFramer['flush']>): void => {
    for (const f of fs) {
      if (f.ok) frames.frame(f.bits);
      else frames.badFrame(f.error, f.bits);
    }
    const due = framer.dueNs;
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = null;
    if (due !== null) {
      const ms = Math.max(0, Number(due - process.hrtime.bigint()) / 1e6) + 1;
      flushTimer = setTimeout(() => take(framer.flush(process.hrtime.bigint())), ms);
    }
  };
  const handle = b.watch(fd, (offset, rising, ns) => {
    if (!rising) take(framer.push([{ line: offset === d1 ? 1 : 0, ns }]));
  });

  // LED and beeper, where wired: requested at their idle (inactive) level.
  const fbLines = [r.led, r.beeper].filter((x): x is number => x !== undefined);
  const inactive = r.feedback_active_low ? 1 : 0;
  const fbFd = fbLines.length ? b.request(chip, `doorgw-${r.id}-fb`.slice(0, 31), fbLines, { output: true, values: fbLines.map(() => inactive) }) : null;
  const timers = new Set<NodeJS.Timeout>();
  const levels = new Map<number, number>(fbLines.map((l) => [l, inactive]));
  const setLine = (line: number | undefined, active: boolean): void => {
    if (fbFd === null || line === undefined) return;
    levels.set(line, active ? 1 - inactive : inactive);
    b.setValues(fbFd, fbLines.map((l) => levels.get(l)!));
  };
  const at = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  log.info({ chip, d0, d1, led: r.led ?? null, beeper: r.beeper ?? null, format: r.card_format }, 'wiegand reader ready');
  // After the relay has moved: grant = LED on with a short beep, deny = three short beeps.
  const feedback = (d: DecisionEvent): void => {
    if (d.decision === 'grant') {
      setLine(r.led, true);
      setLine(r.beeper, true);
      at(120, () => setLine(r.beeper, false));
      at(1500, () => setLine(r.led, false));
    } else {
      for (let i = 0; i < 3; i++) {
        at(i * 250, () => setLine(r.beeper, true));
        at(i * 250 + 120, () => setLine(r.beeper, false));
      }
    }
  };
  return {
    credentials$: out,
    ...(fbFd !== null ? { feedback } : {}),
    badFrames: () => frames.bad,
    close: () => {
      for (const t of timers) clearTimeout(t);
      if (flushTimer) clearTimeout(flushTimer);
      frames.close();
      b.unwatch(handle);
      b.close(fd);
      if (fbFd !== null) {
        b.setValues(fbFd, fbLines.map(() => inactive));
        b.close(fbFd);
      }
      out.complete();
    },
  };
};
