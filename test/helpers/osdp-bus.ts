import { OsdpBusEmulator } from '../../src/io/osdp/emulator.js';
import { ptyPair } from './r30x-emulator.js';

/**
 * A pseudo-terminal pair with the emulated reader bus on its device end (the gateway opens
 * `pty.gateway`); both are closed through `closers`, in the order they were opened.
 */
export async function emulatedOsdpBus(closers: { push(close: () => Promise<unknown>): unknown }, baud = 115200): Promise<{ pty: Awaited<ReturnType<typeof ptyPair>>; emu: OsdpBusEmulator }> {
  const pty = await ptyPair();
  closers.push(() => Promise.resolve(pty.stop()));
  const emu = await OsdpBusEmulator.open(pty.device, baud);
  closers.push(() => emu.close());
  return { pty, emu };
}
