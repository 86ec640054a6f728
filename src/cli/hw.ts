/**
 * `doorgw hw probe`: what an installer runs on a new board — the system, which GPIO interface will
 * be used and why, the chips and their lines (names, which are in use and by whom), the sysfs base,
 * permissions, HID devices and serial ports, and for each configured door whether its relay, inputs
 * and readers can really be opened (a relay line is requested at its idle level and released).
 */
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { release, userInfo } from 'node:os';
import type { Command } from 'commander';
import type { Config } from '../config/schema.js';
import type { CliDeps } from './wecom.js';

interface Check {
  what: string;
  ok: boolean;
  detail: string;
}

export interface ProbeReport {
  system: { os: string; kernel: string; model: string | null; user: string; groups: string[] };
  gpio: {
    backend: 'cdev' | 'sysfs';
    why: string;
    addon: boolean;
    chips: { path: string; label: string; lines: number; used: { offset: number; name: string; consumer: string }[]; error?: string }[];
    sysfs: { root: string; present: boolean; chips: { name: string; label: string; base: number; ngpio: number }[] };
  };
  devices: { gpiochips: { path: string; mode: string; group: string; rw: boolean }[]; serial: { path: string; rw: boolean }[]; hid: { id: string; path: string | null; product: string }[] | { error: string } };
  doors: { door: string; checks: Check[] }[];
  ok: boolean;
}

const read = (p: string): string | null => {
  try {
    return readFileSync(p, 'utf8').replace(/\0/g, '').trim();
  } catch {
    return null;
  }
};

const rw = (p: string): boolean => {
  try {
    accessSync(p, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
};

function groupNames(): string[] {
  const ids = new Set((read('/proc/self/status') ?? '').match(/^Groups:\s*(.*)$/m)?.[1]?.split(/\s+/).filter(Boolean) ?? []);
  const names: string[] = [];
  for (const line of (read('/etc/group') ?? '').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid && ids.has(gid)) names.push(name);
  }
  return names;
}

function groupOf(gid: number): string {
  for (const line of (read('/etc/group') ?? '').split('\n')) {
    const [name, , g] = line.split(':');
    if (name && Number(g) === gid) return name;
  }
  return String(gid);
}

export async function probe(config: Config): Promise<ProbeReport> {
  const os = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(read('/etc/os-release') ?? '')?.[1] ?? 'unknown';
  const system = { os, kernel: release(), model: read('/proc/device-tree/model'), user: userInfo().username, groups: groupNames() };
  const { gpioBackend } = await import('../io/gpio/backends.js');
  const { addonBuilt, cdevBinding, chipDevices, resolveLine } = await import('../io/gpio/cdev.js');
  const { listChips } = await import('../io/gpio/sysfs.js');
  const { relayLevels } = await import('../io/gpio/level-relay.js');
  const choice = await gpioBackend(config);
  const chips: ProbeReport['gpio']['chips'] = [];
  const devices = [...new Set([...chipDevices(), ...(config.gpio.chip ? [config.gpio.chip] : [])])];
  if (addonBuilt()) {
    const b = cdevBinding();
    for (const path of devices) {
      try {
        const info = b.chipInfo(path);
        const used: { offset: number; name: string; consumer: string }[] = [];
        for (let i = 0; i < Math.min(info.lines, 256); i++) {
          const li = b.lineInfo(path, i);
          if (li.used) used.push({ offset: i, name: li.name, consumer: li.consumer });
        }
        chips.push({ path, label: info.label, lines: info.lines, used });
      } catch (e) {
        chips.push({ path, label: '?', lines: 0, used: [], error: (e as Error).message });
      }
    }
  }
  let sysChips: ProbeReport['gpio']['sysfs']['chips'] = [];
  const sysPresent = existsSync(config.gpio.sysfs_root);
  if (sysPresent) {
    try {
      sysChips = listChips(config.gpio.sysfs_root).map((c) => ({ name: c.name, label: c.label, base: c.base, ngpio: c.ngpio }));
    } catch {
      sysChips = [];
    }
  }
  const serial = ['/dev/serial0', '/dev/serial1', ...(() => {
    try {
      return readdirSync('/dev').filter((n) => /^tty(USB|ACM|AMA)\d+$/.test(n)).map((n) => `/dev/${n}`);
    } catch {
      return [];
    }
  })()].filter((p) => existsSync(p)).map((path) => ({ path, rw: rw(path) }));
  let hid: ProbeReport['devices']['hid'];
  try {
    const { listDevices } = await import('../io/hid/device.js');
    hid = (await listDevices()).map((d) => ({ id: `${d.vendorId.toString(16).padStart(4, '0')}:${d.productId.toString(16).padStart(4, '0')}`, path: d.path ?? null, product: [d.manufacturer, d.product].filter(Boolean).join(' ') }));
  } catch (e) {
    hid = { error: (e as Error).message };
  }

  // Each door, and the gateway's named inputs and outputs: can their lines be had? (Busy because
  // the gateway runs is reported as such.)
  type Line = { what: string; pins: (number | string)[]; output: boolean; idle: 0 | 1 };
  const lineChecks = (lines: Line[]): Check[] => {
    const checks: Check[] = [];
    for (const l of lines) {
      if (choice.backend === 'sysfs') {
        // Advise the character device only where there is one: with neither, no setting helps.
        const absent = chipDevices().length
          ? `${config.gpio.sysfs_root} is absent: this system has only the character device (set gpio.backend: cdev${addonBuilt() ? '' : ', and build its addon: sh scripts/build-native.sh'})`
          : `this system has no GPIO at all (neither ${config.gpio.sysfs_root} nor /dev/gpiochip*): not a door controller, or its GPIO driver is not loaded; use relay.driver: sim to run without hardware`;
        checks.push({ what: l.what, ok: sysPresent, detail: sysPresent ? `sysfs ${config.gpio.sysfs_root}` : absent });
        continue;
      }
      let where: { chip: string; offset: number }[] = [];
      try {
        const b = cdevBinding();
        where = l.pins.map((p) => resolveLine({ chip: config.gpio.chip, chipLabel: config.gpio.chip_label }, typeof p === 'number' ? p : undefined, typeof p === 'string' ? p : undefined));
        const chip = where[0]!.chip;
        const fd = b.request(chip, 'doorgw-probe', where.map((w) => w.offset), l.output ? { output: true, values: [l.idle] } : { output: false, edges: 'none' });
        b.close(fd);
        checks.push({ what: l.what, ok: true, detail: `${chip} line ${where.map((w) => w.offset).join(', ')}: can be requested` });
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code !== 'EBUSY') {
          checks.push({ what: l.what, ok: false, detail: err.message });
          continue;
        }
        // Held: fine if the holder is doorgw itself (the running gateway), a problem otherwise.
        let consumers: string[];
        try {
          const b = cdevBinding();
          consumers = where.map((w) => b.lineInfo(w.chip, w.offset).consumer);
        } catch {
          consumers = ['?'];
        }
        const ours = consumers.every((c) => c.startsWith('doorgw'));
        checks.push({ what: l.what, ok: ours, detail: ours ? `held by the running gateway (${consumers.join(', ')})` : `in use by ${consumers.join(', ')}: another program holds the line` });
      }
    }
    return checks;
  };
  const doors: ProbeReport['doors'] = [];
  for (const d of config.doors) {
    const checks: Check[] = [];
    const lines: Line[] = [];
    if (d.relay.driver === 'gpio') lines.push({ what: `relay (line ${d.relay.line ?? d.relay.pin})`, pins: [d.relay.line ?? d.relay.pin!], output: true, idle: relayLevels(d.relay.active_low, d.relay.lock_type).idle });
    for (const [name, i] of Object.entries(d.inputs ?? {})) if (i) lines.push({ what: `${name} (line ${i.line ?? i.pin})`, pins: [i.line ?? i.pin!], output: false, idle: 0 });
    for (const r of d.readers) {
      if (r.type === 'wiegand') lines.push({ what: `reader ${r.id} (D0 ${r.d0}, D1 ${r.d1})`, pins: [r.d0!, r.d1!], output: false, idle: 0 });
      if (r.type === 'osdp') {
        const present = existsSync(r.path!);
        checks.push({ what: `reader ${r.id} (OSDP on ${r.path}, address ${r.address}, ${r.baud_rate} baud)`, ok: present && rw(r.path!), detail: !present ? 'no such serial port (the RS-485 adapter plugged in? `ls /dev/serial/by-id`)' : rw(r.path!) ? 'serial port present, read/write (doorgw osdp scan finds the readers on it)' : 'no access: the service user needs the dialout group' });
      }
      if (r.type === 'hid') {
        const want = `${(r.vendor_id ?? 0).toString(16).padStart(4, '0')}:${(r.product_id ?? 0).toString(16).padStart(4, '0')}`;
        const found = Array.isArray(hid) && hid.some((h) => h.id === want || (r.path !== undefined && h.path === r.path));
        checks.push({ what: `reader ${r.id} (HID ${want})`, ok: found, detail: found ? 'present' : Array.isArray(hid) ? 'not plugged in, or no permission on /dev/hidraw*' : `HID unavailable: ${hid.error}` });
      }
    }
    const f = d.fingerprint;
    if (f?.driver === 'r30x') {
      const present = existsSync(f.path!);
      checks.push({ what: `fingerprint module (r30x on ${f.path})`, ok: present && rw(f.path!), detail: !present ? 'no such serial port (plugged in? `ls /dev/ttyUSB*`)' : rw(f.path!) ? 'serial port present, read/write' : 'no access: the service user needs the dialout group' });
    }
    if (d.relay.driver === 'sim') checks.push({ what: 'relay', ok: true, detail: 'simulated (relay.driver: sim): nothing is driven' });
    checks.push(...lineChecks(lines));
    doors.push({ door: d.id, checks });
  }
  // The gateway's own inputs and outputs (fire panel, tamper, siren …), listed as the door `io`.
  const io = config.io;
  const ioLines: Line[] = [
    ...Object.entries(io.inputs).map(([name, i]) => ({ what: `input ${name} (line ${i.line ?? i.pin})`, pins: [i.line ?? i.pin!], output: false, idle: 0 as const })),
    ...Object.entries(io.outputs).filter(([, o]) => o.driver === 'gpio').map(([name, o]) => ({ what: `output ${name} (line ${o.line ?? o.pin})`, pins: [o.line ?? o.pin!], output: true, idle: relayLevels(o.active_low, 'fail_secure').idle })),
  ];
  if (ioLines.length) doors.push({ door: 'io', checks: lineChecks(ioLines) });
  const gpiochips = devices.filter((p) => existsSync(p)).map((path) => {
    const st = statSync(path);
    return { path, mode: (st.mode & 0o777).toString(8), group: groupOf(st.gid), rw: rw(path) };
  });
  return {
    system,
    gpio: { backend: choice.backend, why: choice.why, addon: addonBuilt(), chips, sysfs: { root: config.gpio.sysfs_root, present: sysPresent, chips: sysChips } },
    devices: { gpiochips, serial, hid },
    doors,
    ok: doors.every((d) => d.checks.every((c) => c.ok)),
  };
}

export function addHwCommands(program: Command, d: CliDeps): void {
  program
    .command('hw')
    .description('door hardware')
    .command('probe')
    .description('what this board has and whether each door\'s relay, inputs and readers can be opened (exit 0 all can, 1 not)')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { config: string; json?: boolean }) => {
      const config = await d.configFrom(o.config);
      const r = await probe(config);
      process.exitCode = r.ok ? 0 : 1;
      if (o.json) return d.json(r);
      d.out(`system     ${r.system.os}, kernel ${r.system.kernel}${r.system.model ? `, ${r.system.model}` : ''}`);
      d.out(`user       ${r.system.user} (groups: ${r.system.groups.join(', ') || 'none'})`);
      d.out(`gpio       ${r.gpio.backend} — ${r.gpio.why}${r.gpio.addon ? '' : ' (character-device addon not built: sh scripts/build-native.sh)'}`);
      for (const c of r.gpio.chips) d.out(`  ${c.path}  ${c.label}, ${c.lines} lines${c.error ? `  ERROR ${c.error}` : ''}${c.used.length ? `; in use: ${c.used.map((u) => `${u.offset} ${u.name || '?'} (${u.consumer || '?'})`).join(', ')}` : ''}`);
      for (const g of r.devices.gpiochips) d.out(`  ${g.path}  mode ${g.mode} group ${g.group}  ${g.rw ? 'read/write' : 'NO ACCESS for this user'}`);
      d.out(`sysfs      ${r.gpio.sysfs.present ? r.gpio.sysfs.chips.map((c) => `${c.name} ${c.label} base ${c.base}`).join('; ') || 'present, no chips' : `${r.gpio.sysfs.root} absent`}`);
      d.out(`serial     ${r.devices.serial.map((s) => `${s.path}${s.rw ? '' : ' (no access)'}`).join(', ') || 'none'}`);
      d.out(`hid        ${Array.isArray(r.devices.hid) ? r.devices.hid.map((h) => `${h.id} ${h.product}`).join(', ') || 'none' : r.devices.hid.error}`);
      for (const door of r.doors) {
        d.out(`door ${door.door}`);
        for (const c of door.checks) d.out(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.what}: ${c.detail}`);
      }
      d.out(r.ok ? 'every door\'s hardware can be opened' : 'some hardware cannot be opened (FAIL above)');
    });
}
