/**
 * One OSDP reader (peripheral device) as the control panel sees it: the link layer (sequence numbers,
 * retries with the same bytes, CRC or checksum, the secure channel's MAC chain and encryption) and
 * the reader's state machine:
 *
 *   offline → ID → CAP → [CHLNG → SCRYPT] → online   (or `install`: on the default key, awaiting enrollment)
 *
 * The bus asks `nextFrame()` when it is this reader's turn and hands back what came of it with
 * `onReply(packet | null)`. Everything that can go wrong on a wire is handled here, with the traps
 * public implementations fell into in mind (see docs/hardware.md, "OSDP readers"):
 * - a retry after silence resends the very same bytes, same sequence number, same challenge;
 * - after a failed cryptogram the next challenge (default key) starts again from sequence 0;
 * - BUSY is accepted with any sequence number and answered by repeating the command;
 * - a reply with sequence 0 to a non-zero command, a sequence NAK, or a reply that fails its MAC or
 *   comes without a security block inside a session restarts the link (a session is never patched up);
 * - retries count consecutive failures only: any good reply clears them.
 */
import { randomBytes } from 'node:crypto';
import { SlidingWindow } from '../../domain/rate-limit.js';
import { encodePacket, SCS, type Packet } from './packet.js';
import { CMD, CODE_NAMES, encodeKeyset, MessageError, NAK, NAK_WORDS, parseCapabilities, parseCcrypt, parseFormattedCard, parseKeypad, parseLocalStatus, parsePdId, parseRawCard, REPLY, REPLY_NAMES, type Capabilities, type PdId } from './messages.js';
import { SCBK_DEFAULT, SecureSession } from './secure-channel.js';

export type ReaderLinkState = 'offline' | 'connecting' | 'online' | 'install' | 'refused';

export interface OsdpKeyRing {
  /** The reader's enrolled key, if any, and a key sent by KEYSET but not yet confirmed. */
  get(): { key: Buffer | null; pending: Buffer | null };
  setPending(key: Buffer): void;
  /** The pending key is the reader's key now. */
  confirm(key: Buffer): void;
  /** The pending key never reached the reader. */
  dropPending(): void;
}

export interface OsdpDeviceEvents {
  card(c: { bits: string; format: number }): void;
  cardText(text: string): void;
  keys(keys: string[]): void;
  status(s: { tamper: boolean; power: boolean }): void;
  state(s: ReaderLinkState, detail: string): void;
  /** A secure-channel problem worth an alarm (wrong key, MAC failure, downgrade). */
  secureFailure(detail: string): void;
  /** Something went wrong on the wire that is not worth more than a debug line. */
  trace(what: string, fields?: Record<string, unknown>): void;
}

export interface OsdpDeviceOptions {
  address: number;
  /** Require the secure channel (credentials are refused outside an enrolled session). */
  secure: boolean;
  /** CRC-16 (default) or the 8-bit checksum; `auto` falls back to the checksum when a reader NAKs CRCs. */
  check: 'crc' | 'checksum' | 'auto';
  keys: OsdpKeyRing;
  events: OsdpDeviceEvents;
  /** Consecutive missed replies before the reader counts as offline. */
  offlineAfter?: number;
  /** Consecutive NAKs (a storm) before the link is restarted. */
  nakLimit?: number;
  /** How long an offline or refused reader waits between attempts. */
  retryMs?: number;
  now?: () => number;
}

type Phase = 'id' | 'cap' | 'chlng' | 'scrypt' | 'poll';

interface Outgoing {
  code: number;
  data: Buffer;
  /** Settles a caller waiting for this command (KEYSET); `refused`: the reader said no (not merely silent). */
  done?: (err: Error | null, refused?: boolean) => void;
}

interface Candidate {
  key: Buffer;
  /** 1: SCBK, 0: SCBK-D. */
  indicator: 0 | 1;
  kind: 'enrolled' | 'pending' | 'default';
}

export class OsdpDevice {
  state: ReaderLinkState = 'offline';
  pdId: PdId | null = null;
  caps: Capabilities | null = null;
  tamper: boolean | null = null;
  power: boolean | null = null;
  /** A session on the reader's own key (not the default one). */
  secured = false;
  /** The last command had a reply (a reader being brought up answers: it is polled like a live one). */
  responsive = false;
  /** When the next attempt of an offline or refused reader is due. */
  nextAttemptAt = 0;
  /** Counters for status and metrics. */
  readonly counters = { timeouts: 0, naks: 0, busy: 0, macFailures: 0, restarts: 0, replies: 0 };
  /** Commands the reader said it does not know (no display, no buzzer): not sent again. */
  readonly unsupported = new Set<number>();

  private phase: Phase = 'id';
  private sqn = 0;
  private crc: boolean;
  private inFlight: { frame: Buffer; code: number; sqn: number; out: Outgoing | null } | null = null;
  private retries = 0;
  private nakRun = 0;
  private readonly queue: Outgoing[] = [];
  private session: SecureSession | null = null;
  private candidates: Candidate[] = [];
  private candidate: Candidate | null = null;
  private rndA: Buffer | null = null;
  private everOnline = false;
  /** Handshake rounds in a row in which no candidate key matched. */
  private keyMismatchRounds = 0;
  /** When each recent session restart happened (monotonic ms): a reader that cannot keep a session is unhealthy. */
  private readonly restartTimes = new SlidingWindow(60_000, 100);
  /** Since when (monotonic ms) the link has been in its state. */
  private stateSince = performance.now();
  private readonly now: () => number;

  constructor(private readonly o: OsdpDeviceOptions) {
    this.crc = o.check !== 'checksum';
    this.now = o.now ?? Date.now;
  }

  get address(): number {
    return this.o.address;
  }

  /** Not answering (offline) or refused: tried only now and then. */
  get down(): boolean {
    return this.state === 'offline' || this.state === 'refused';
  }

  /** Usable for credentials: online, and secured when the door asks for it. */
  get trusted(): boolean {
    return this.state === 'online' && (this.secured || !this.o.secure);
  }

  get checkMode(): 'crc' | 'checksum' {
    return this.crc ? 'crc' : 'checksum';
  }

  /** Queue a command for the reader (LED, buzzer, text); the oldest feedback goes first past 16 waiting. */
  send(code: number, data: Buffer): void {
    if (this.unsupported.has(code)) return;
    if (this.queue.length >= 16) this.queue.splice(this.queue.findIndex((q) => !q.done), 1);
    this.queue.push({ code, data });
  }

  /** Give the reader a fresh random key (it must be in a session now: install or online). */
  enroll(): Promise<void> {
    if (!this.session) return Promise.reject(new Error(this.state === 'online' ? 'the reader runs without a secure channel (secure: false): nothing to enroll' : `the reader is ${this.state}, not in a session: it must answer before it can be enrolled`));
    const key = randomBytes(16);
    this.o.keys.setPending(key);
    return new Promise((resolve, reject) => {
      this.queue.unshift({
        code: CMD.keyset,
        data: encodeKeyset(key),
        done: (err, refused) => {
          if (err) {
            // Refused: the reader keeps its key. Silent: it may have taken the new one; the next
            // handshake tries both and keeps the one it holds.
            if (refused) this.o.keys.dropPending();
            return reject(err);
          }
          this.o.keys.confirm(key);
          // The new key holds from the next session on: start one now.
          this.restart('enrolled: new session on the new key', false);
          resolve();
        },
      });
    });
  }

  /** The frame to send now, or null when this reader has nothing due. */
  nextFrame(): Buffer | null {
    if (this.inFlight) return this.inFlight.frame; // a retry: the very same bytes
    const t = this.now();
    if (this.down && t < this.nextAttemptAt) return null;
    let out: Outgoing | null = null;
    let code: number;
    let data: Buffer = Buffer.alloc(0);
    let scb: { type: number; data?: Buffer } | null = null;
    switch (this.phase) {
      case 'id':
        code = CMD.id;
        data = Buffer.from([0]);
        break;
      case 'cap':
        code = CMD.cap;
        data = Buffer.from([0]);
        break;
      case 'chlng':
        code = CMD.chlng;
        this.rndA = SecureSession.challenge();
        data = this.rndA;
        scb = { type: SCS.chlng, data: Buffer.from([this.candidate!.indicator]) };
        break;
      case 'scrypt':
        code = CMD.scrypt;
        data = this.session!.serverCryptogram;
        scb = { type: SCS.scrypt, data: Buffer.from([this.candidate!.indicator]) };
        break;
      default:
        out = this.queue.shift() ?? null;
        if (out && this.unsupported.has(out.code)) out = this.queue.shift() ?? null;
        code = out?.code ?? CMD.poll;
        data = out?.data ?? Buffer.alloc(0);
    }
    const s = this.phase === 'poll' ? this.session : null;
    let frame: Buffer;
    if (s) {
      const enc = data.length > 0;
      frame = encodePacket({ addr: this.o.address, sqn: this.sqn, crc: this.crc, scb: { type: enc ? SCS.cmdEnc : SCS.cmdMac }, code, data: enc ? s.encrypt(data, true) : data }, (m) => s.mac(m, true));
    } else frame = encodePacket({ addr: this.o.address, sqn: this.sqn, crc: this.crc, scb, code, data });
    this.inFlight = { frame, code, sqn: this.sqn, out };
    return frame;
  }

  /** What came back for the frame last sent: a reply packet from this address, or null (no reply in time). */
  onReply(p: Packet | null): void {
    const sent = this.inFlight;
    if (!sent) return;
    this.responsive = p !== null;
    if (!p) return this.missed(sent);
    if (p.code === REPLY.busy) {
      // BUSY may carry sequence 0 whatever was sent: ask again with the same bytes.
      this.counters.busy++;
      this.o.events.trace('busy', { command: CODE_NAMES[sent.code] });
      return;
    }
    if (p.sqn !== sent.sqn) {
      if (p.sqn === 0 && sent.sqn !== 0) return this.restart('the reader answered with sequence 0: it restarted', false);
      return this.missed(sent, `sequence ${p.sqn} in reply to ${sent.sqn}`);
    }
    let data = p.data;
    if (this.session && this.phase === 'poll') {
      if (!p.scb || !p.mac) return this.secureFail(`a ${REPLY_NAMES[p.code] ?? p.code} reply came without the secure channel inside a session: refused, session restarted`);
      if (p.scb.type !== SCS.replyMac && p.scb.type !== SCS.replyEnc) {
        return this.secureFail(`a ${REPLY_NAMES[p.code] ?? p.code} reply carried a security block of type 0x${p.scb.type.toString(16)}, not a session reply's: refused, session restarted`);
      }
      if (!this.session.verify(p.macInput, p.mac, false)) {
        return this.secureFail('a reply failed its MAC check: refused, session restarted');
      }
      if (p.scb.type === SCS.replyEnc) {
        try {
          data = this.session.decrypt(p.data, false);
        } catch (e) {
          return this.secureFail(`a reply could not be decrypted (${(e as Error).message}): session restarted`);
        }
      }
    }
    this.inFlight = null;
    this.retries = 0;
    this.counters.replies++;
    this.sqn = (this.sqn % 3) + 1;
    if (p.code === REPLY.nak) return this.nak(sent, data[0] ?? 0);
    this.nakRun = 0;
    try {
      this.handle(sent, p.code, data, p);
    } catch (e) {
      if (!(e instanceof MessageError)) throw e;
      this.o.events.trace('bad reply', { error: e.message });
      sent.out?.done?.(e);
    }
  }

  private handle(sent: { code: number; out: Outgoing | null }, code: number, data: Buffer, p: Packet): void {
    switch (this.phase) {
      case 'id':
        if (code !== REPLY.pdid) throw new MessageError(`ID answered with ${REPLY_NAMES[code] ?? code}`);
        this.pdId = parsePdId(data);
        this.phase = 'cap';
        return;
      case 'cap': {
        if (code !== REPLY.pdcap) throw new MessageError(`CAP answered with ${REPLY_NAMES[code] ?? code}`);
        this.caps = parseCapabilities(data);
        if (!this.caps.text) this.unsupported.add(CMD.text);
        if (!this.caps.audible) this.unsupported.add(CMD.buz);
        if (!this.o.secure) return this.goOnline('online', false, 'plaintext (secure: false)');
        if (!this.caps.secureChannel) return this.refuse('the reader does not offer the secure channel, and this reader is configured secure: plaintext refused');
        const { key, pending } = this.o.keys.get();
        this.candidates = [
          ...(key ? [{ key, indicator: 1 as const, kind: 'enrolled' as const }] : []),
          ...(pending ? [{ key: pending, indicator: 1 as const, kind: 'pending' as const }] : []),
          { key: SCBK_DEFAULT, indicator: 0, kind: 'default' },
        ];
        this.candidate = this.candidates.shift()!;
        this.phase = 'chlng';
        return;
      }
      case 'chlng': {
        if (code !== REPLY.ccrypt) throw new MessageError(`CHLNG answered with ${REPLY_NAMES[code] ?? code}`);
        const c = this.candidate!;
        // The reply must say it used the key asked for (a reader answering a SCBK challenge on SCBK-D is refused).
        if (p.scb?.type !== SCS.ccrypt || p.scb.data[0] !== c.indicator) return this.nextCandidate(`the reader answered the ${c.kind} key challenge on another key`);
        const cc = parseCcrypt(data);
        const s = new SecureSession(c.key, this.rndA!, cc.rndB);
        if (!s.clientCryptogramMatches(cc.cryptogram)) return this.nextCandidate(`the reader does not hold the ${c.kind} key`);
        this.session = s;
        this.phase = 'scrypt';
        return;
      }
      case 'scrypt': {
        if (code !== REPLY.rmacI || data.length !== 16) throw new MessageError(`SCRYPT answered with ${REPLY_NAMES[code] ?? code}`);
        const s = this.session!;
        const expected = s.initialRmac();
        if (!expected.equals(data)) return this.secureFail('the initial R-MAC does not match: session refused');
        s.startChain(expected);
        const c = this.candidate!;
        if (c.kind === 'pending') this.o.keys.confirm(c.key);
        // The reader holds another key than a pending one: that KEYSET never landed.
        else if (this.o.keys.get().pending) this.o.keys.dropPending();
        if (c.kind === 'default') {
          const { key } = this.o.keys.get();
          if (key) this.o.events.secureFailure('the reader answers only on the default key (reset or replaced): credentials refused until it is enrolled again (doorgw osdp enroll)');
          return this.goOnline('install', false, 'on the default key: credentials refused until enrolled (doorgw osdp enroll <reader>)');
        }
        return this.goOnline('online', true, 'secure channel');
      }
      default:
        return this.polled(sent, code, data);
    }
  }

  private polled(sent: { code: number; out: Outgoing | null }, code: number, data: Buffer): void {
    switch (code) {
      case REPLY.ack:
        break;
      case REPLY.raw: {
        const r = parseRawCard(data);
        if (this.trusted) this.o.events.card({ bits: r.bits, format: r.format });
        else this.o.events.trace('card refused: reader not enrolled', { bits: r.bits.length });
        break;
      }
      case REPLY.fmt: {
        const f = parseFormattedCard(data);
        if (this.trusted) this.o.events.cardText(f.reverse ? [...f.text].reverse().join('') : f.text);
        else this.o.events.trace('card refused: reader not enrolled');
        break;
      }
      case REPLY.keypad: {
        const k = parseKeypad(data);
        if (this.trusted) this.o.events.keys(k.keys);
        break;
      }
      case REPLY.lstatr: {
        const s = parseLocalStatus(data);
        if (s.tamper !== this.tamper || s.power !== this.power) {
          this.tamper = s.tamper;
          this.power = s.power;
          this.o.events.status(s);
        }
        break;
      }
      default:
        this.o.events.trace('unexpected reply', { command: CODE_NAMES[sent.code], reply: REPLY_NAMES[code] ?? code });
    }
    sent.out?.done?.(null);
  }

  private nak(sent: { code: number; sqn: number; out: Outgoing | null }, reason: number): void {
    this.counters.naks++;
    this.nakRun++;
    const words = NAK_WORDS[reason] ?? `code ${reason}`;
    this.o.events.trace('nak', { command: CODE_NAMES[sent.code], reason: words });
    sent.out?.done?.(new Error(`the reader refused ${CODE_NAMES[sent.code]}: ${words}`), true);
    if (this.nakRun >= (this.o.nakLimit ?? 8)) return this.restart(`${this.nakRun} NAKs in a row (${words})`, true);
    if (reason === NAK.sequence) return this.restart('the reader lost the sequence', false);
    if (reason === NAK.securityConditions || reason === NAK.encryptionRequired) {
      // A reader without the key asked for NAKs the challenge: try the next key (from sequence 0).
      if (this.phase === 'chlng') return this.nextCandidate(`the reader refused the ${this.candidate?.kind} key challenge (${words})`);
      if (this.phase === 'scrypt') return this.refuse(`the reader refused the secure channel handshake (${words})`);
      return this.restart(`the reader dropped the secure channel (${words})`, false);
    }
    if (reason === NAK.check && this.o.check === 'auto' && this.crc && !this.everOnline) {
      // Readers that only know the 8-bit checksum NAK a CRC: speak theirs.
      this.crc = false;
      this.o.events.trace('falling back to the checksum');
      return this.restart('the reader NAKs CRC-16: using the checksum', false);
    }
    if (reason === NAK.unknownCommand && sent.out) {
      this.unsupported.add(sent.code);
      return;
    }
    if (this.phase !== 'poll') return this.restart(`the reader refused ${CODE_NAMES[sent.code]} (${words})`, false);
  }

  private missed(sent: { code: number }, why = 'no reply'): void {
    this.counters.timeouts++;
    this.retries++;
    if (this.retries < (this.o.offlineAfter ?? 3)) return; // the same bytes go again
    this.drop(new Error(`the reader did not answer ${CODE_NAMES[sent.code]} (${why})`));
    if (this.o.check === 'auto' && this.crc && !this.everOnline && this.phase === 'id') this.crc = false; // try the checksum next time
    else if (this.o.check === 'auto' && !this.crc && !this.everOnline) this.crc = true;
    this.nextAttemptAt = this.now() + (this.o.retryMs ?? 1000);
    if (this.state !== 'offline') this.setState('offline', why === 'no reply' ? `no reply to ${CODE_NAMES[sent.code]} after ${this.o.offlineAfter ?? 3} tries` : why);
  }

  private nextCandidate(why: string): void {
    this.o.events.trace('key candidate refused', { why });
    const next = this.candidates.shift();
    if (!next) {
      // One failed round is not proof of another key: line noise corrupts a handshake as well.
      // Refused only when a second round, from scratch, fails the same way.
      if (++this.keyMismatchRounds < 2) return this.restart(`the secure-channel handshake failed for every key (${why}); trying again: line noise, or the reader holds another key`, true);
      return this.refuse(`the reader holds a key this gateway does not have (${why}, twice in a row): secure channel refused`);
    }
    if (next.kind === 'default' && this.candidate?.kind === 'pending') this.o.events.trace('the KEYSET never landed');
    this.candidate = next;
    this.session = null;
    // A new challenge after a failed one starts from sequence 0 (readers NAK it otherwise).
    this.sqn = 0;
    this.phase = 'chlng';
  }

  /** Polling from now on: online, or in install mode (a session on the default key). */
  private goOnline(state: 'online' | 'install', secured: boolean, how: string): void {
    this.keyMismatchRounds = 0;
    this.secured = secured;
    this.phase = 'poll';
    if (state === 'online') this.everOnline = true;
    this.setState(state, how);
    this.send(CMD.lstat, Buffer.alloc(0));
  }

  /** A reply inside (or closing) the handshake that the session's keys do not vouch for. */
  private secureFail(detail: string): void {
    this.counters.macFailures++;
    this.o.events.secureFailure(detail);
    this.restart(detail, false);
  }

  private refuse(detail: string): void {
    this.responsive = false;
    this.o.events.secureFailure(detail);
    this.drop();
    this.nextAttemptAt = this.now() + Math.max(5000, this.o.retryMs ?? 1000);
    this.setState('refused', detail);
  }

  /** The bus lost its port (adapter unplugged): offline now, and from sequence 0 when it is back. */
  linkLost(why: string): void {
    this.responsive = false;
    this.drop();
    this.nextAttemptAt = 0;
    this.setState('offline', why);
  }

  /** Start over from sequence 0: identify, then the handshake. */
  private restart(detail: string, asOffline: boolean): void {
    this.counters.restarts++;
    this.restartTimes.add(performance.now());
    this.o.events.trace('link restart', { why: detail });
    this.drop();
    if (asOffline) {
      this.nextAttemptAt = this.now() + (this.o.retryMs ?? 1000);
      this.setState('offline', detail);
    } else if (this.state === 'online' || this.state === 'install') this.setState('connecting', detail);
  }

  /** Forget the link: the command in flight fails with `why`, queued ones as never sent. */
  private drop(why = new Error('the link restarted before the reader answered')): void {
    const f = this.inFlight?.out;
    this.inFlight = null;
    f?.done?.(why);
    this.session = null;
    this.secured = false;
    this.phase = 'id';
    this.sqn = 0;
    this.retries = 0;
    this.nakRun = 0;
    // Feedback for a session that ended is stale; an enrollment not yet sent fails loudly (the reader never saw it).
    for (const q of this.queue.splice(0)) q.done?.(new Error('the link restarted before the command was sent'), true);
  }

  /** Session restarts in the last minute. */
  get restartsLastMinute(): number {
    return this.restartTimes.count(performance.now());
  }

  /** Seconds in the current link state. */
  get stateForS(): number {
    return Math.round((performance.now() - this.stateSince) / 1000);
  }

  private setState(s: ReaderLinkState, detail: string): void {
    if (s === this.state) return;
    this.state = s;
    this.stateSince = performance.now();
    this.o.events.state(s, detail);
  }
}
