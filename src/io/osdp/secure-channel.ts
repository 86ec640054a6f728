/**
 * OSDP Secure Channel (v2.2 annex D) with Node's own AES-128, for both ends (the control panel here,
 * the reader emulator in the tests):
 *
 *   S-ENC  = AES(SCBK, 01 82 RND.A[0..5] 00×8)      S-MAC1 = AES(SCBK, 01 01 …)   S-MAC2 = AES(SCBK, 01 02 …)
 *   client cryptogram (PD → CP, in CCRYPT) = AES(S-ENC, RND.A ‖ RND.B)
 *   server cryptogram (CP → PD, in SCRYPT) = AES(S-ENC, RND.B ‖ RND.A)
 *   initial R-MAC (PD → CP, in RMAC_I)     = AES(S-MAC2, AES(S-MAC1, server cryptogram))
 *
 * MAC: CBC over SOM … data padded with 0x80 00… only when not a whole number of blocks, S-MAC1 for all
 * blocks but the last, S-MAC2 for the last; the IV of a command is the last R-MAC, of a reply the
 * last C-MAC (the chain); 4 bytes go on the wire, all 16 are kept. Data (SCS_17/18): AES-CBC with
 * S-ENC, IV the complement of that same chain value, always padded with 0x80 then zeros — a payload
 * of 16 bytes encrypts to 32 (the padding rules differ between MAC and data; mixing them up only
 * shows against a real reader).
 */
import { createCipheriv, createDecipheriv, randomBytes, timingSafeEqual } from 'node:crypto';

/** SCBK-D, the published default key of readers in install mode ("0123456789:;<=>?"). */
export const SCBK_DEFAULT = Buffer.from('303132333435363738393a3b3c3d3e3f', 'hex');

function ecb(key: Buffer, block: Buffer): Buffer {
  const c = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
  return Buffer.concat([c.update(block), c.final()]);
}

function cbc(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const c = createCipheriv('aes-128-cbc', key, iv).setAutoPadding(false);
  return Buffer.concat([c.update(data), c.final()]);
}

const complement = (b: Buffer): Buffer => Buffer.from(b.map((x) => ~x & 0xff));

export class SecureChannelError extends Error {}

export class SecureSession {
  readonly sEnc: Buffer;
  private readonly sMac1: Buffer;
  private readonly sMac2: Buffer;
  /** The last MAC of a command (IV of the next reply's MAC) and of a reply (IV of the next command's). */
  private cMac: Buffer = Buffer.alloc(16);
  private rMac: Buffer = Buffer.alloc(16);

  constructor(
    scbk: Buffer,
    readonly rndA: Buffer,
    readonly rndB: Buffer,
  ) {
    if (scbk.length !== 16 || rndA.length !== 8 || rndB.length !== 8) throw new SecureChannelError('a secure channel needs a 16-byte key and two 8-byte randoms');
    const derive = (a: number, b: number): Buffer => ecb(scbk, Buffer.concat([Buffer.from([a, b]), rndA.subarray(0, 6), Buffer.alloc(8)]));
    this.sEnc = derive(0x01, 0x82);
    this.sMac1 = derive(0x01, 0x01);
    this.sMac2 = derive(0x01, 0x02);
  }

  static challenge(): Buffer {
    return randomBytes(8);
  }

  get clientCryptogram(): Buffer {
    return ecb(this.sEnc, Buffer.concat([this.rndA, this.rndB]));
  }

  get serverCryptogram(): Buffer {
    return ecb(this.sEnc, Buffer.concat([this.rndB, this.rndA]));
  }

  /** Does the reader's cryptogram prove it holds the same key? (constant time) */
  clientCryptogramMatches(c: Buffer): boolean {
    return c.length === 16 && timingSafeEqual(c, this.clientCryptogram);
  }

  serverCryptogramMatches(c: Buffer): boolean {
    return c.length === 16 && timingSafeEqual(c, this.serverCryptogram);
  }

  /** The initial R-MAC, which starts the chain (both ends compute it; the reader sends it). */
  initialRmac(): Buffer {
    return ecb(this.sMac2, ecb(this.sMac1, this.serverCryptogram));
  }

  startChain(rmacI: Buffer): void {
    this.rMac = Buffer.from(rmacI);
  }

  /** MAC of an outgoing packet (command when `isCmd`), advancing the chain. Returns all 16 bytes. */
  mac(input: Buffer, isCmd: boolean): Buffer {
    const padded = input.length % 16 === 0 ? input : Buffer.concat([input, Buffer.from([0x80]), Buffer.alloc(15 - (input.length % 16))]);
    let iv: Buffer = isCmd ? this.rMac : this.cMac;
    if (padded.length > 16) {
      const head = cbc(this.sMac1, iv, padded.subarray(0, padded.length - 16));
      iv = head.subarray(head.length - 16);
    }
    const out = cbc(this.sMac2, iv, padded.subarray(padded.length - 16));
    if (isCmd) this.cMac = out;
    else this.rMac = out;
    return out;
  }

  /** Check an incoming packet's 4 MAC bytes (a reply when `!isCmd`); advances the chain only when they match. */
  verify(input: Buffer, mac: Buffer, isCmd: boolean): boolean {
    const before = isCmd ? this.cMac : this.rMac;
    const full = this.mac(input, isCmd);
    if (mac.length === 4 && timingSafeEqual(full.subarray(0, 4), mac)) return true;
    if (isCmd) this.cMac = before;
    else this.rMac = before;
    return false;
  }

  encrypt(data: Buffer, isCmd: boolean): Buffer {
    const padLen = 16 - ((data.length + 1) % 16 === 0 ? 16 : (data.length + 1) % 16);
    const padded = Buffer.concat([data, Buffer.from([0x80]), Buffer.alloc(padLen)]);
    return cbc(this.sEnc, complement(isCmd ? this.rMac : this.cMac), padded);
  }

  /** Decrypt incoming data (a command's when `isCmd`) before its MAC advances the chain. */
  decrypt(data: Buffer, isCmd: boolean): Buffer {
    if (data.length === 0 || data.length % 16 !== 0) throw new SecureChannelError(`encrypted data of ${data.length} bytes is not whole AES blocks`);
    const d = createDecipheriv('aes-128-cbc', this.sEnc, complement(isCmd ? this.rMac : this.cMac)).setAutoPadding(false);
    const plain = Buffer.concat([d.update(data), d.final()]);
    let end = plain.length;
    while (end > 0 && plain[end - 1] === 0) end--;
    if (end === 0 || plain[end - 1] !== 0x80 || plain.length - end > 15) throw new SecureChannelError('decrypted data has no valid padding');
    return plain.subarray(0, end - 1);
  }
}
