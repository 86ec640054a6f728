/**
 * BCM pin → sysfs GPIO number. On kernel 6.6+ the SoC's GPIOs no longer start at 0 (512 on a Pi 4,
 * 571 on a Pi 5, and it varies between images), so the base is read from the gpiochip whose label
 * is the SoC pin controller's. Pure file reads: no onoff here.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Labels of Raspberry Pi SoC pin controllers (Pi 0-3, Pi 4, Pi 5). */
export const PI_CHIP_LABELS = ['pinctrl-bcm2835', 'pinctrl-bcm2711', 'pinctrl-bcm2712', 'pinctrl-rp1'];

export class GpioUnavailableError extends Error {}

export interface Chip {
  name: string;
  base: number;
  label: string;
  ngpio: number;
}

export function listChips(root: string): Chip[] {
  if (!existsSync(root)) {
    throw new GpioUnavailableError(
      `${root} does not exist: sysfs GPIO is not available on this system (Raspberry Pi OS trixie and kernels without CONFIG_GPIO_SYSFS removed it). ` +
        'Use Raspberry Pi OS bookworm, or a kernel with CONFIG_GPIO_SYSFS=y; set relay.driver: sim to run without GPIO.',
    );
  }
  return readdirSync(root)
    .filter((n) => n.startsWith('gpiochip'))
    .map((name) => {
      const read = (f: string): string => readFileSync(join(root, name, f), 'utf8').trim();
      return { name, base: Number(read('base')), label: read('label'), ngpio: Number(read('ngpio')) };
    })
    .filter((c) => Number.isInteger(c.base) && Number.isInteger(c.ngpio));
}

/** The sysfs number of BCM pin `bcm`. */
export function sysfsNumber(bcm: number, o: { root: string; chipLabel?: string | undefined; base?: number | undefined }): number {
  if (o.base !== undefined) return o.base + bcm;
  const chips = listChips(o.root);
  const labels = o.chipLabel ? [o.chipLabel] : PI_CHIP_LABELS;
  const chip = chips.find((c) => labels.includes(c.label));
  if (!chip) {
    const seen = chips.map((c) => `${c.name} (${c.label}, base ${c.base}, ${c.ngpio} lines)`).join('; ') || 'none';
    throw new GpioUnavailableError(`no gpiochip labelled ${labels.join(' or ')} under ${o.root} (found: ${seen}); set gpio.chip_label or gpio.base`);
  }
  if (bcm >= chip.ngpio) throw new GpioUnavailableError(`BCM ${bcm} is beyond ${chip.name} (${chip.ngpio} lines)`);
  return chip.base + bcm;
}
