/**
 * An R30x-family fingerprint module, emulated on one end of a real pseudo-terminal pair (socat): the
 * packet protocol with checksums, the password, captures (with a finger the test places and lifts,
 * optionally slow), features, model, store, search, template upload and download, deletion.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CMD, encodePacket, PacketDecoder, PID } from '../../src/io/fingerprint/r30x-packets.js';
import { openSerial, type SerialLink } from '../../src/io/serial.js';
import { tmpDir } from './tmp.js';
import { until } from './wait.js';

/** A linked pair of pseudo-terminals: what the gateway opens, and what the emulator opens (at given paths, or new ones). */
export async function ptyPair(at?: { gateway: string; device: string }): Promise<{ gateway: string; device: string; stop: () => void }> {
  const dir = at ? '' : tmpDir('doorgw-pty-');
  const gateway = at?.gateway ?? join(dir, 'ttyGW');
  const device = at?.device ?? join(dir, 'ttyDEV');
  const socat: ChildProcess = spawn('socat', [`pty,raw,echo=0,link=${gateway}`, `pty,raw,echo=0,link=${device}`], { stdio: 'ignore' });
  await until(() => existsSync(gateway) && existsSync(device), 'socat pty pair', 5000);
  return { gateway, device, stop: () => socat.kill() };
}

export class R30xEmulator {
  password = 0;
  capacity = 100;
  packetSize = 128;
  captureDelayMs = 0;
  /** The finger on the sensor (an id; its features derive from it), or null. */
  finger: string | null = null;
  readonly library = new Map<number, Buffer>();
  readonly commands: number[] = [];
  private readonly buffers = new Map<number, Buffer>();
  private image: Buffer | null = null;
  private readonly decoder = new PacketDecoder();
  private receiving: { buffer: number; parts: Buffer[] } | null = null;
  private queue: Promise<void> = Promise.resolve();

  private constructor(private readonly link: SerialLink) {
    link.data$.subscribe((b) => {
      for (const p of this.decoder.push(b)) this.queue = this.queue.then(() => this.onPacket(p.pid, p.payload));
    });
  }

  static async open(path: string): Promise<R30xEmulator> {
    return new R30xEmulator(await openSerial(path, 57600));
  }

  static features(finger: string): Buffer {
    const h = createHash('sha256').update(finger).digest();
    return Buffer.concat(Array.from({ length: 16 }, () => h)); // 512 bytes, like a real template
  }

  private ack(conf: number, extra: Buffer = Buffer.alloc(0)): void {
    this.link.write(encodePacket(PID.ack, Buffer.concat([Buffer.from([conf]), extra])));
  }

  private async onPacket(pid: number, payload: Buffer): Promise<void> {
    if (this.receiving && (pid === PID.data || pid === PID.end)) {
      this.receiving.parts.push(payload);
      if (pid === PID.end) {
        this.buffers.set(this.receiving.buffer, Buffer.concat(this.receiving.parts));
        this.receiving = null;
      }
      return;
    }
    if (pid !== PID.command) return;
    const code = payload[0]!;
    this.commands.push(code);
    const p = payload.subarray(1);
    switch (code) {
      case CMD.verifyPassword:
        return this.ack(p.readUInt32BE(0) === this.password ? 0 : 0x13);
      case CMD.readSysPara: {
        const b = Buffer.alloc(16);
        b.writeUInt16BE(this.capacity, 4);
        b.writeUInt16BE(3, 6);
        b.writeUInt32BE(0xffffffff, 8);
        b.writeUInt16BE([32, 64, 128, 256].indexOf(this.packetSize), 12);
        b.writeUInt16BE(6, 14);
        return this.ack(0, b);
      }
      case CMD.genImg:
        if (this.captureDelayMs) await new Promise((r) => setTimeout(r, this.captureDelayMs));
        if (!this.finger) return this.ack(0x02);
        this.image = R30xEmulator.features(this.finger);
        return this.ack(0);
      case CMD.img2Tz:
        if (!this.image) return this.ack(0x15);
        this.buffers.set(p[0]!, this.image);
        return this.ack(0);
      case CMD.regModel:
        return this.ack(this.buffers.get(1)?.equals(this.buffers.get(2) ?? Buffer.alloc(0)) ? 0 : 0x0a);
      case CMD.store: {
        const page = p.readUInt16BE(1);
        if (page >= this.capacity) return this.ack(0x0b);
        this.library.set(page, this.buffers.get(p[0]!)!);
        return this.ack(0);
      }
      case CMD.search: {
        const want = this.buffers.get(p[0]!);
        const hit = [...this.library].find(([, t]) => want && t.equals(want));
        if (!hit) return this.ack(0x09);
        const b = Buffer.alloc(4);
        b.writeUInt16BE(hit[0], 0);
        b.writeUInt16BE(120, 2);
        return this.ack(0, b);
      }
      case CMD.upChar: {
        const t = this.buffers.get(p[0]!);
        if (!t) return this.ack(0x0d);
        this.ack(0);
        for (let i = 0; i < t.length; i += this.packetSize) this.link.write(encodePacket(i + this.packetSize >= t.length ? PID.end : PID.data, t.subarray(i, i + this.packetSize)));
        return;
      }
      case CMD.downChar:
        this.receiving = { buffer: p[0]!, parts: [] };
        return this.ack(0);
      case CMD.deleteChar: {
        const page = p.readUInt16BE(0);
        const n = p.readUInt16BE(2);
        for (let i = page; i < page + n; i++) this.library.delete(i);
        return this.ack(0);
      }
      case CMD.empty:
        this.library.clear();
        return this.ack(0);
      case CMD.templateNum: {
        const b = Buffer.alloc(2);
        b.writeUInt16BE(this.library.size);
        return this.ack(0, b);
      }
      default:
        return this.ack(0x01);
    }
  }

  close(): Promise<void> {
    return this.link.close();
  }
}
