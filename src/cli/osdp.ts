/**
 * `doorgw osdp scan <port>`: which readers are on a bus, at which address and speed, what they are
 * and can do (run it with the gateway stopped: one process owns a serial port).
 * `doorgw osdp enroll <reader>`: the running gateway gives the reader a fresh random key by KEYSET.
 * `doorgw osdp status`: each OSDP reader's link as the running gateway sees it.
 */
import type { Command } from 'commander';
import { UsageError } from '../control/errors.js';
import { cliActor, intArg } from './args.js';
import type { CliDeps } from './wecom.js';

export function addOsdpCommands(program: Command, d: CliDeps): void {
  const osdp = program.command('osdp').description('OSDP readers on RS-485');
  addOsdpEmulatorCommand(osdp, d);

  osdp
    .command('scan <port>')
    .description('find readers on a bus: address, speed, vendor, model, serial, firmware, capabilities (exit 0 found, 1 none)')
    .option('--baud <rate>', 'only this speed (default: 9600, 19200, 38400, 57600, 115200)')
    .option('--full', 'sweep every address at every speed, even where the broadcast found nothing')
    .option('--timeout <ms>', 'reply deadline per address', '200')
    .option('--json', 'machine-readable output')
    .action(async (port: string, o: { baud?: string; full?: boolean; timeout: string; json?: boolean }) => {
      const { scanBus, BAUD_RATES } = await import('../io/osdp/scan.js');
      const bauds = o.baud ? [intArg('--baud', o.baud, 'baud')] : BAUD_RATES;
      if (o.baud && !(BAUD_RATES as readonly number[]).includes(bauds[0])) throw new UsageError(`--baud ${o.baud}: OSDP speeds are ${BAUD_RATES.join(', ')}`);
      const { SerialUnavailableError } = await import('../io/serial.js');
      let found;
      try {
        found = await scanBus(port, { bauds, full: !!o.full, timeoutMs: intArg('--timeout', o.timeout, 'ms'), onProgress: (w) => !o.json && process.stderr.write(`scanning ${w}\n`) });
      } catch (e) {
        if (e instanceof SerialUnavailableError) throw new UsageError(`${e.message} (is the gateway running? stop it first: systemctl stop doorgw)`, 'unavailable');
        throw e;
      }
      process.exitCode = found.length ? 0 : 1;
      if (o.json) return d.json(found.map((f) => ({ ...f, caps: f.caps && { crc: f.caps.crc, secure_channel: f.caps.secureChannel, leds: f.caps.leds, audible: f.caps.audible, text: f.caps.text, receive_buffer: f.caps.receiveBuffer } })));
      if (!found.length) return d.out('no reader answered (wiring A/B swapped? termination? the reader powered? another address range: --full)');
      for (const f of found) {
        const c = f.caps;
        d.out(
          `address ${f.address}  ${f.baud} baud  ${f.check}  vendor ${f.id.vendor} model ${f.id.model} v${f.id.version} serial ${f.id.serial} firmware ${f.id.firmware}` +
            (c ? `  secure channel ${c.secureChannel ? 'yes' : 'NO'}, LEDs ${c.leds}, buzzer ${c.audible ? 'yes' : 'no'}, display ${c.text ? 'yes' : 'no'}` : '  (no capabilities)'),
        );
      }
    });

  osdp
    .command('enroll <reader>')
    .description('give a reader a fresh random secure-channel key (the running gateway sends it by KEYSET; from then on only that key is accepted)')
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (reader: string, o: { config?: string; json?: boolean }) => {
      const st = await d.withApi(o.config, (api) => api.osdpEnroll({ reader, by: cliActor() }));
      if (o.json) return d.json(st);
      d.out(`reader ${st.id} enrolled: ${st.state}${st.secure ? ', secure channel on its own key' : ` (${st.detail})`}`);
      if (!st.secure) process.exitCode = 1;
    });

  osdp
    .command('forget <reader>')
    .description("drop a reader's secure-channel key (a reader replaced, or reset to its default key): it must be enrolled again")
    .addOption(d.configOpt())
    .action(async (reader: string, o: { config?: string }) => {
      const r = await d.withApi(o.config, (api) => api.osdpForget({ reader, by: cliActor() }));
      if (!r.forgotten) {
        d.out(`reader ${reader} has no key`);
        process.exitCode = 1;
        return;
      }
      d.out(`reader ${reader}: key dropped. A reader still holding it is refused until it is reset to its default key and enrolled again.`);
    });

  osdp
    .command('status')
    .description("each OSDP reader's link: online, secure, tamper, power, device (exit 0 all online and secured, 1 not)")
    .addOption(d.configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { config?: string; json?: boolean }) => {
      const s = await d.withApi(o.config, (api) => api.status());
      if (!s.running) throw new UsageError('the gateway is not running: reader links are known only to it', 'unavailable');
      const readers = (s.readers ?? []).filter((r) => r.type === 'osdp');
      process.exitCode = readers.every((r) => r.state === 'online') ? 0 : 1;
      if (o.json) return d.json(readers);
      if (!readers.length) return d.out('no OSDP readers configured');
      for (const r of readers) d.out(readerLine(r));
    });
}

export function readerLine(r: import('../io/readers/reader.js').ReaderStatus): string {
  const dev = r.device ? ` ${r.device.vendor}/${r.device.model} serial ${r.device.serial} fw ${r.device.firmware}` : '';
  const flags = [r.secure ? 'secure' : 'NOT secure', r.tamper ? 'TAMPER' : null, r.power_failure ? 'POWER FAILURE' : null].filter(Boolean).join(', ');
  return `reader ${r.id} (door ${r.door}, ${r.path} address ${r.address}): ${r.state} — ${flags}; ${r.detail}${dev}`;
}

/**
 * `doorgw osdp emulator <port>`: a reader to develop against without one. Pair it with the gateway
 * through a pseudo-terminal pair (`socat pty,raw,echo=0,link=/tmp/ttyGW pty,raw,echo=0,link=/tmp/ttyRD`),
 * configure an osdp reader on /tmp/ttyGW, run the emulator on /tmp/ttyRD and type cards.
 */
export function addOsdpEmulatorCommand(osdp: Command, d: Pick<CliDeps, 'out'>): void {
  osdp
    .command('emulator <port>')
    .description('emulate an OSDP reader on a serial port (development): type `card 123456`, `keys 1234#`, `tamper on`, `help`')
    .option('--address <n>', 'its address', '0')
    .option('--baud <rate>', 'speed', '9600')
    .option('--key <hex>', "its secure-channel key (32 hex digits); without one it is in install mode, on the default key")
    .option('--no-secure', 'offer no secure channel')
    .option('--checksum', 'speak the 8-bit checksum only')
    .action(async (port: string, o: { address: string; baud: string; key?: string; secure: boolean; checksum?: boolean }) => {
      if (o.key !== undefined && !/^[0-9a-fA-F]{32}$/.test(o.key)) throw new UsageError('--key: 32 hex digits (16 bytes)');
      const { OsdpBusEmulator } = await import('../io/osdp/emulator.js');
      const { encodeCard } = await import('../domain/cards.js');
      const emu = await OsdpBusEmulator.open(port, intArg('--baud', o.baud, 'baud'));
      const pd = emu.add({ address: intArg('--address', o.address, 'address'), scbk: o.key ? Buffer.from(o.key, 'hex') : null, secureCapable: o.secure, checksumOnly: !!o.checksum });
      pd.onShown = (what) => d.out(`reader: ${what}`);
      d.out(`OSDP reader emulated on ${port}, address ${pd.address}, ${o.baud} baud, ${o.key ? 'keyed' : o.secure ? 'install mode (default key)' : 'no secure channel'}. Type help.`);
      const { createInterface } = await import('node:readline');
      const rl = createInterface({ input: process.stdin });
      const help = 'card <number> (26-bit up to 16777215, else 34-bit) · bits <0101…> · keys <0-9*#> · tamper on|off · power fail|ok · silent on|off · quit';
      for await (const line of rl) {
        const [cmd, arg = ''] = line.trim().split(/\s+/, 2);
        try {
          if (!cmd) continue;
          else if (cmd === 'help') d.out(help);
          else if (cmd === 'quit') break;
          else if (cmd === 'card' && /^\d{1,10}$/.test(arg)) {
            const n = BigInt(arg);
            pd.presentCard(n < 1n << 24n ? encodeCard('h10301', Number(n >> 16n), n & 0xffffn) : encodeCard('h10306', Number(n >> 16n), n & 0xffffn));
          } else if (cmd === 'bits' && /^[01]{1,128}$/.test(arg)) pd.presentCard(arg);
          else if (cmd === 'keys' && /^[0-9*#]{1,16}$/.test(arg)) pd.pressKeys(arg);
          else if (cmd === 'tamper' && /^(on|off)$/.test(arg)) pd.tamper = arg === 'on';
          else if (cmd === 'power' && /^(fail|ok)$/.test(arg)) pd.power = arg === 'fail';
          else if (cmd === 'silent' && /^(on|off)$/.test(arg)) pd.silent = arg === 'on';
          else d.out(`? ${help}`);
        } catch (e) {
          d.out(`? ${(e as Error).message}`);
        }
      }
      rl.close();
      await emu.close();
    });
}
