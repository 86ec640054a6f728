/**
 * Finding readers on a bus (`doorgw osdp scan`): at each speed, a broadcast ID first (one reader on the
 * bus answers with its address at once), then, where anything answered or collided, every address
 * 0–126 with ID and CAP — CRC first, then the checksum for readers that NAK it. Read-only for the
 * readers: nothing but ID and CAP is sent, each with sequence 0.
 */
import { openSerial } from '../serial.js';
import { OsdpBus } from './bus.js';
import { CMD, NAK, parseCapabilities, parsePdId, REPLY, type Capabilities, type PdId } from './messages.js';
import { BROADCAST, encodePacket, type Packet } from './packet.js';

export const BAUD_RATES = [9600, 19200, 38400, 57600, 115200] as const;

export interface FoundReader {
  address: number;
  baud: number;
  check: 'crc' | 'checksum';
  id: PdId;
  caps: Capabilities | null;
}

export interface ScanOptions {
  bauds?: readonly number[];
  /** Sweep every address even where the broadcast found nothing. */
  full?: boolean;
  timeoutMs?: number;
  onProgress?: (what: string) => void;
}

export async function scanBus(path: string, o: ScanOptions = {}): Promise<FoundReader[]> {
  const found: FoundReader[] = [];
  for (const baud of o.bauds ?? BAUD_RATES) {
    const link = await openSerial(path, baud);
    const bus = new OsdpBus({ link, baud, replyTimeoutMs: o.timeoutMs ?? 200 });
    try {
      const ask = async (addr: number, crc: boolean, code: number, sqn: number, timeoutMs?: number): Promise<Packet | null> =>
        bus.exchange(addr, encodePacket({ addr, sqn, crc, code, data: Buffer.from([0]) }), timeoutMs);
      // A reader that has answered is known to be there: its capabilities get the standard's full
      // reply time (200 ms) even when the sweep runs on a shorter deadline, and two repeats.
      const capTimeout = Math.max(o.timeoutMs ?? 200, 200);
      const identify = async (addr: number): Promise<FoundReader | null> => {
        let nakked = false;
        for (const crc of [true, false]) {
          // A broadcast reply carries the reader's own address; CAP goes to that. A reader that
          // NAKed the CRC form is known to be there: its checksum ID gets the standard's full time.
          const p = await ask(addr, crc, CMD.id, 0, nakked ? capTimeout : undefined);
          if (!p) continue;
          if (p.code === REPLY.nak && p.data[0] === NAK.check) {
            nakked = true;
            continue;
          }
          if (p.code !== REPLY.pdid) return null;
          const at = p.addr;
          // It answered: a missed capabilities reply (a busy host, a noisy line) is asked again, with
          // the same sequence number (a repeat, as OSDP retries are).
          let cap: Packet | null = null;
          for (let i = 0; i < 3 && !cap; i++) cap = await ask(at, crc, CMD.cap, 1, capTimeout);
          let caps: Capabilities | null = null;
          try {
            caps = cap?.code === REPLY.pdcap ? parseCapabilities(cap.data) : null;
          } catch {
            caps = null;
          }
          return { address: at, baud, check: crc ? 'crc' : 'checksum', id: parsePdId(p.data), caps };
        }
        return null;
      };
      o.onProgress?.(`${baud} baud: broadcast`);
      const before = { ...bus.dropped };
      const one = await identifyBroadcast(bus, identify);
      const noise = bus.dropped.garbage + bus.dropped.check + bus.dropped.length - (before.garbage + before.check + before.length);
      if (one) found.push(one);
      if (!o.full && !one && noise === 0) continue;
      o.onProgress?.(`${baud} baud: addresses 0–126`);
      for (let a = 0; a <= 126; a++) {
        if (found.some((f) => f.baud === baud && f.address === a)) continue;
        const r = await identify(a);
        if (r) found.push(r);
      }
    } finally {
      await link.close();
    }
  }
  return found;
}

/** The broadcast exchange waits for a reply from any address (the bus only matches the address asked). */
async function identifyBroadcast(bus: OsdpBus, identify: (addr: number) => Promise<FoundReader | null>): Promise<FoundReader | null> {
  bus.acceptAnyAddress = true;
  try {
    return await identify(BROADCAST);
  } finally {
    bus.acceptAnyAddress = false;
  }
}
