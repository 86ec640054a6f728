/**
 * OSDP peripheral devices (card readers) emulated on a serial port — one end of a pseudo-terminal
 * pair in the tests and in `doorgw osdp emulator` (development without readers): several
 * readers share the "bus" as on RS-485, each with its address, sequence-number discipline (repeat
 * → the same reply again, a wrong number → NAK), CRC or checksum, secure channel (install mode on
 * SCBK-D, KEYSET, MAC and encryption), LED / buzzer / text records, card, keypad, tamper and power
 * reports — built from the same codec as the control panel, written from the v2.2 spec's rules —
 * and knobs for what real buses do: silence, late replies, BUSY, NAK storms, garbage, truncated
 * frames, corrupted MACs, a reader that restarts.
 */
import { randomBytes } from 'node:crypto';
import { checksum as checksumOf, crc16 as crc16Of, encodePacket, PacketDecoder, SCS, type Packet } from './packet.js';
import { CMD, encodeCapabilities, encodeFormattedCard, encodeKeypad, encodePdId, encodeRawCard, NAK, parseBuzzer, parseComset, parseKeyset, parseLed, parseText, REPLY, type LedState, type PdId } from './messages.js';
import { SCBK_DEFAULT, SecureSession } from './secure-channel.js';
import { openSerial, type SerialLink } from '../serial.js';

export interface PdOptions {
  address: number;
  /** The reader's own key (null: none yet, install mode only). */
  scbk?: Buffer | null;
  installMode?: boolean;
  secureCapable?: boolean;
  /** Knows only the 8-bit checksum: NAKs CRC-16 packets. */
  checksumOnly?: boolean;
  display?: boolean;
  buzzer?: boolean;
  id?: Partial<PdId>;
}

export class EmulatedPd {
  readonly address: number;
  scbk: Buffer | null;
  installMode: boolean;
  secureCapable: boolean;
  checksumOnly: boolean;
  display: boolean;
  buzzer: boolean;
  readonly id: PdId;
  // Knobs.
  silent = false;
  replyDelayMs = 0;
  busyNext = 0;
  nakNext = 0;
  nakCode: number = NAK.unableToProcess;
  /** Only these commands are NAKed by nakNext (default: any). */
  nakOnly: number | null = null;
  corruptMacNext = 0;
  garbageBeforeReply = 0;
  truncateNext = 0;
  /** Answer a challenge on the other key's indicator (a misbehaving reader). */
  wrongIndicator = false;
  /** Answer this many challenges with a garbled cryptogram (line noise that got past the check). */
  garbleCryptograms = 0;
  /** Take a KEYSET, then fall silent before acknowledging it (the ACK lost on the wire). */
  muteAfterKeyset = false;
  /** Refuse plaintext POLLs once keyed (real readers in secure mode do). */
  requireSecure = false;
  tamper = false;
  power = false;
  /** Told of what the control panel shows or sets on this reader (LED, buzzer, text, a new key). */
  onShown: ((what: string) => void) | null = null;
  // What it was told.
  readonly commands: { code: number; sqn: number; secure: boolean; at: number }[] = [];
  readonly leds: LedState[] = [];
  readonly buzzes: ReturnType<typeof parseBuzzer>[] = [];
  readonly texts: ReturnType<typeof parseText>[] = [];
  readonly keysets: Buffer[] = [];
  // State.
  private lastSqn: number | null = null;
  private lastReply: Buffer | null = null;
  private session: SecureSession | null = null;
  private scActive = false;
  private indicator = 0;
  private events: { code: number; data: Buffer }[] = [];
  private reportedStatus = { tamper: false, power: false };

  constructor(o: PdOptions) {
    this.address = o.address;
    this.scbk = o.scbk ?? null;
    this.installMode = o.installMode ?? this.scbk === null;
    this.secureCapable = o.secureCapable ?? true;
    this.checksumOnly = o.checksumOnly ?? false;
    this.display = o.display ?? true;
    this.buzzer = o.buzzer ?? true;
    this.id = { vendor: '0a1b2c', model: 7, version: 1, serial: 0x1000 + o.address, firmware: '2.4.1', ...o.id };
  }

  get cuid(): Buffer {
    return Buffer.concat([Buffer.from(this.id.vendor, 'hex'), Buffer.from([this.id.model]), Buffer.from(Uint32Array.of(this.id.serial).buffer)]);
  }

  get secure(): boolean {
    return this.scActive;
  }

  presentCard(bits: string, format = 1): void {
    this.events.push({ code: REPLY.raw, data: encodeRawCard(bits, format) });
  }

  presentCardText(text: string): void {
    this.events.push({ code: REPLY.fmt, data: encodeFormattedCard(text) });
  }

  pressKeys(keys: string): void {
    this.events.push({ code: REPLY.keypad, data: encodeKeypad(keys) });
  }

  /** Power-cycled: forgets its sequence and session (keeps its key). */
  reboot(): void {
    this.lastSqn = null;
    this.lastReply = null;
    this.session = null;
    this.scActive = false;
  }

  /** Factory reset: back to install mode on the default key. */
  factoryReset(): void {
    this.reboot();
    this.scbk = null;
    this.installMode = true;
  }

  /** The reply to a command addressed to this reader (null: no reply). */
  handle(p: Packet): Buffer[] | null {
    if (this.silent) return null;
    const crc = !this.checksumOnly;
    if (this.checksumOnly && p.crc) return [this.frame(p.sqn, REPLY.nak, Buffer.from([NAK.check]), false)];
    const reply = (code: number, data: Buffer = Buffer.alloc(0)): Buffer[] => {
      const f = this.frame(p.sqn, code, data, crc);
      this.lastSqn = p.sqn;
      this.lastReply = f;
      return [f];
    };
    const plainNak = (code: number): Buffer[] => {
      this.session = null;
      this.scActive = false;
      return reply(REPLY.nak, Buffer.from([code]));
    };
    // Sequence: 0 resets; the same number again asks for the same reply; anything else but the next is an error.
    if (p.sqn === 0) {
      this.session = null;
      this.scActive = false;
    } else if (this.lastSqn !== null && p.sqn === this.lastSqn && this.lastReply) {
      return [this.lastReply];
    } else if (this.lastSqn === null || p.sqn !== (this.lastSqn % 3) + 1) {
      return [this.frame(p.sqn, REPLY.nak, Buffer.from([NAK.sequence]), crc)];
    }
    this.commands.push({ code: p.code, sqn: p.sqn, secure: p.scb?.type === SCS.cmdMac || p.scb?.type === SCS.cmdEnc, at: Date.now() });
    if (this.busyNext > 0) {
      this.busyNext--;
      return [this.frame(0, REPLY.busy, Buffer.alloc(0), crc)]; // BUSY with sequence 0, as some readers send it
    }
    // The secure channel handshake.
    if (p.code === CMD.chlng && p.scb?.type === SCS.chlng) {
      if (!this.secureCapable) return reply(REPLY.nak, Buffer.from([NAK.securityConditions]));
      this.indicator = p.scb.data[0] ?? 1;
      const key = this.indicator === 0 ? (this.installMode ? SCBK_DEFAULT : null) : this.scbk;
      if (!key || p.data.length !== 8) return plainNak(NAK.securityConditions);
      this.session = new SecureSession(key, p.data, randomBytes(8));
      this.scActive = false;
      const ind = this.wrongIndicator ? 1 - this.indicator : this.indicator;
      const cryptogram = Buffer.from(this.session.clientCryptogram);
      if (this.garbleCryptograms > 0) {
        this.garbleCryptograms--;
        cryptogram[0]! ^= 0xff;
      }
      return this.secureHandshakeReply(p.sqn, REPLY.ccrypt, SCS.ccrypt, ind, Buffer.concat([this.cuid, this.session.rndB, cryptogram]), crc);
    }
    if (p.code === CMD.scrypt && p.scb?.type === SCS.scrypt) {
      const s = this.session;
      if (!s || !s.serverCryptogramMatches(p.data)) return plainNak(NAK.securityConditions);
      const rmac = s.initialRmac();
      s.startChain(rmac);
      this.scActive = true;
      return this.secureHandshakeReply(p.sqn, REPLY.rmacI, SCS.rmacI, 1, rmac, crc);
    }
    let data = p.data;
    const secureCmd = p.scb?.type === SCS.cmdMac || p.scb?.type === SCS.cmdEnc;
    if (secureCmd) {
      if (!this.scActive || !this.session || !p.mac || !this.session.verify(p.macInput, p.mac, true)) return plainNak(NAK.securityConditions);
      if (p.scb!.type === SCS.cmdEnc) {
        try {
          data = this.session.decrypt(p.data, true);
        } catch {
          return plainNak(NAK.securityConditions);
        }
      }
    } else if (this.scActive || (this.requireSecure && !this.installMode && p.code !== CMD.id && p.code !== CMD.cap)) {
      return plainNak(NAK.encryptionRequired);
    }
    let code: number;
    let out: Buffer;
    if (this.nakNext > 0 && (this.nakOnly === null || this.nakOnly === p.code)) {
      // A NAK for the command, nothing done (inside the session when there is one).
      this.nakNext--;
      [code, out] = [REPLY.nak, Buffer.from([this.nakCode])];
    } else {
      [code, out] = this.execute(p.code, data, secureCmd);
      if (p.code === CMD.keyset && this.muteAfterKeyset) {
        this.silent = true;
        return null;
      }
    }
    if (!this.scActive || !this.session) return reply(code, out);
    const s = this.session;
    const enc = out.length > 0;
    let f = encodePacket({ addr: this.address, reply: true, sqn: p.sqn, crc, scb: { type: enc ? SCS.replyEnc : SCS.replyMac }, code, data: enc ? s.encrypt(out, false) : out }, (m) => s.mac(m, false));
    if (this.corruptMacNext > 0) {
      this.corruptMacNext--;
      f = Buffer.from(f);
      const at = f.length - (crc ? 2 : 1) - 1;
      f[at] = f[at]! ^ 0x5a;
      f = this.recheck(f, crc);
    }
    this.lastSqn = p.sqn;
    this.lastReply = f;
    return [f];
  }

  private execute(code: number, data: Buffer, secure: boolean): [number, Buffer] {
    switch (code) {
      case CMD.id:
        return [REPLY.pdid, encodePdId(this.id)];
      case CMD.cap:
        return [
          REPLY.pdcap,
          encodeCapabilities([
            [1, 1, 0],
            [3, 1, 0],
            [4, 1, 1],
            [5, this.buzzer ? 1 : 0, this.buzzer ? 1 : 0],
            [6, this.display ? 1 : 0, this.display ? 1 : 0],
            [8, this.checksumOnly ? 0 : 1, 0],
            [9, this.secureCapable ? 1 : 0, this.secureCapable ? 1 : 0],
            [10, 0x80, 0],
          ]),
        ];
      case CMD.poll: {
        if (this.tamper !== this.reportedStatus.tamper || this.power !== this.reportedStatus.power) return this.status();
        const e = this.events.shift();
        return e ? [e.code, e.data] : [REPLY.ack, Buffer.alloc(0)];
      }
      case CMD.lstat:
        return this.status();
      case CMD.led:
        for (const r of parseLed(data)) {
          this.leds.push(r.state);
          const c = (n: number): string => ['off', 'red', 'green', 'amber', 'blue', 'magenta', 'cyan', 'white'][n] ?? String(n);
          if (r.state.temporary) this.onShown?.(`LED ${c(r.state.temporary.on)} for ${r.state.temporary.ms} ms`);
          if (r.state.permanent) this.onShown?.(`LED ${c(r.state.permanent.on)} (steady)`);
        }
        return [REPLY.ack, Buffer.alloc(0)];
      case CMD.buz:
        if (!this.buzzer) return [REPLY.nak, Buffer.from([NAK.unknownCommand])];
        this.buzzes.push(parseBuzzer(data));
        this.onShown?.(`beep ${this.buzzes.at(-1)!.onMs} ms × ${this.buzzes.at(-1)!.count}`);
        return [REPLY.ack, Buffer.alloc(0)];
      case CMD.text:
        if (!this.display) return [REPLY.nak, Buffer.from([NAK.unknownCommand])];
        this.texts.push(parseText(data));
        this.onShown?.(`display "${this.texts.at(-1)!.text}"`);
        return [REPLY.ack, Buffer.alloc(0)];
      case CMD.keyset: {
        if (!secure) return [REPLY.nak, Buffer.from([NAK.encryptionRequired])];
        const key = parseKeyset(data);
        this.keysets.push(key);
        this.scbk = key;
        this.installMode = false;
        this.onShown?.('a new secure-channel key (KEYSET): install mode ends');
        return [REPLY.ack, Buffer.alloc(0)];
      }
      case CMD.comset: {
        const c = parseComset(data);
        return [REPLY.com, Buffer.concat([Buffer.from([c.address]), Buffer.from(Uint32Array.of(c.baud).buffer)])];
      }
      default:
        return [REPLY.nak, Buffer.from([NAK.unknownCommand])];
    }
  }

  private status(): [number, Buffer] {
    this.reportedStatus = { tamper: this.tamper, power: this.power };
    return [REPLY.lstatr, Buffer.from([this.tamper ? 1 : 0, this.power ? 1 : 0])];
  }

  private secureHandshakeReply(sqn: number, code: number, scbType: number, ind: number, data: Buffer, crc: boolean): Buffer[] {
    const f = encodePacket({ addr: this.address, reply: true, sqn, crc, scb: { type: scbType, data: Buffer.from([ind]) }, code, data });
    this.lastSqn = sqn;
    this.lastReply = f;
    return [f];
  }

  private frame(sqn: number, code: number, data: Buffer, crc: boolean): Buffer {
    return encodePacket({ addr: this.address, reply: true, sqn, crc, code, data });
  }

  /** Recompute the check after tampering with a MAC (the frame arrives intact; only the MAC lies). */
  private recheck(f: Buffer, crc: boolean): Buffer {
    const body = f.subarray(0, f.length - (crc ? 2 : 1));
    const out = Buffer.alloc(f.length);
    body.copy(out);
    if (crc) out.writeUInt16LE(crc16Of(body), body.length);
    else out[body.length] = checksumOf(body);
    return out;
  }
}

/** A reply carrying card data (plaintext RAW/FMT; a secure reply's code is not encrypted either). */
function isCardReply(f: Buffer): boolean {
  const ctrl = f[4]!;
  const at = ctrl & 8 ? 5 + f[5]! : 5;
  return f[at] === REPLY.raw || f[at] === REPLY.fmt;
}

/** Several emulated readers on one end of a pty pair: the bus. */
export class OsdpBusEmulator {
  readonly pds = new Map<number, EmulatedPd>();
  private readonly decoder = new PacketDecoder(50);
  /** Every command frame seen on the bus (any address). */
  readonly seen: Packet[] = [];

  /** When the last card reply began on the wire (process.hrtime), for latency benchmarks. */
  cardReplyStartedAt: bigint | null = null;
  /** …and when its last byte left. */
  cardReplyEndedAt: bigint | null = null;

  private constructor(
    private readonly link: SerialLink,
    /** Emulate the wire: a command is heard only after its bytes' time, a reply's bytes leave at this speed (a pty has no baud rate). */
    private readonly wireBaud: number | null = null,
  ) {
    link.data$.subscribe((b) => {
      for (const p of this.decoder.push(b, Date.now())) this.onPacket(p);
    });
  }

  static async open(path: string, baud = 9600, o: { emulateWire?: boolean } = {}): Promise<OsdpBusEmulator> {
    return new OsdpBusEmulator(await openSerial(path, baud), o.emulateWire ? baud : null);
  }

  /** Write bytes as a UART at `wireBaud` would: in 1 ms slices. */
  private paced(b: Buffer, onLast?: () => void): void {
    if (!this.wireBaud) {
      this.link.write(b);
      return onLast?.();
    }
    const perMs = Math.max(1, Math.floor(this.wireBaud / 10 / 1000));
    const t0 = performance.now();
    const step = (i: number): void => {
      this.link.write(b.subarray(i, i + perMs));
      const next = i + perMs;
      if (next >= b.length) return onLast?.();
      const due = t0 + ((next * 10 * 1000) / this.wireBaud!);
      setTimeout(() => step(next), Math.max(0, due - performance.now()));
    };
    step(0);
  }

  add(o: PdOptions): EmulatedPd {
    const pd = new EmulatedPd(o);
    this.pds.set(o.address, pd);
    return pd;
  }

  /** Raw bytes onto the bus (noise). */
  inject(b: Buffer): void {
    this.link.write(b);
  }

  private onPacket(p: Packet): void {
    if (p.reply) return;
    this.seen.push(p);
    if (this.seen.length > 5000) this.seen.splice(0, 1000);
    const targets = p.addr === 0x7f ? [...this.pds.values()].slice(0, 1) : [this.pds.get(p.addr)].filter((x): x is EmulatedPd => x !== undefined);
    for (const pd of targets) {
      const out = pd.handle(p);
      if (!out) continue;
      const send = (): void => {
        if (pd.garbageBeforeReply > 0) {
          pd.garbageBeforeReply--;
          this.link.write(Buffer.from([0x53, 0x00, 0xff, 0x12, 0x99, 0x01, 0x02]));
        }
        for (const f of out) {
          if (pd.truncateNext > 0) {
            pd.truncateNext--;
            this.link.write(f.subarray(0, Math.ceil(f.length / 2)));
          } else {
            const card = f.length > 6 && isCardReply(f);
            if (card) this.cardReplyStartedAt = process.hrtime.bigint();
            this.paced(Buffer.concat([Buffer.from([0xff]), f]), card ? () => (this.cardReplyEndedAt = process.hrtime.bigint()) : undefined);
          }
        }
      };
      // On a wire the reader hears the command only once its last byte has arrived.
      const heard = this.wireBaud ? ((p.macInput.length + 4) * 10 * 1000) / this.wireBaud : 0;
      const delay = pd.replyDelayMs + heard;
      if (delay > 0) setTimeout(send, delay);
      else send();
    }
  }

  close(): Promise<void> {
    return this.link.close();
  }
}
