/**
 * The OSDP byte layer against frames captured from real buses (public issue threads and the SIA
 * conformance tool's README: an HID reader's PDID and PDCAP, a conformance POLL/ACK, a 75-bit RAW
 * card, a reply split across reads, a NAK), the decoder against garbage and truncation, and the
 * secure channel's formulas and padding rules.
 */
import { createCipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CMD, encodeKeypad, encodeLed, encodeRawCard, encodeText, parseCapabilities, parseKeypad, parseLed, parsePdId, parseRawCard, parseText, REPLY } from '../../src/io/osdp/messages.js';
import { checksum, crc16, encodePacket, PacketDecoder, SCS } from '../../src/io/osdp/packet.js';
import { SCBK_DEFAULT, SecureSession } from '../../src/io/osdp/secure-channel.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('OSDP packets', () => {
  it('CRC-16 is CCITT from 0x1D0F (check value of "123456789" 0xE5CC)', () => {
    expect(crc16(Buffer.from('123456789'))).toBe(0xe5cc);
  });

  it('encodes commands byte for byte as real control panels send them', () => {
    expect(encodePacket({ addr: 0, sqn: 0, crc: true, code: CMD.id, data: Buffer.from([0]) })).toEqual(hex('53 00 09 00 04 61 00 c0 66'));
    expect(encodePacket({ addr: 0, sqn: 1, crc: true, code: CMD.cap, data: Buffer.from([0]) })).toEqual(hex('53 00 09 00 05 62 00 a3 04'));
    expect(encodePacket({ addr: 0, sqn: 2, crc: true, code: CMD.poll })).toEqual(hex('53 00 08 00 06 60 89 cc'));
    expect(encodePacket({ addr: 0, reply: true, sqn: 2, crc: true, code: REPLY.ack })).toEqual(hex('53 80 08 00 06 40 3b ca'));
  });

  it("decodes an HID reader's PDID and PDCAP", () => {
    const d = new PacketDecoder();
    const [id] = d.push(hex('ff 53 80 14 00 04 45 16 42 68 00 0c 4c 8f bc f4 02 0a 02 c6 4c'), 0);
    expect(id).toMatchObject({ addr: 0, reply: true, sqn: 0, crc: true, code: REPLY.pdid });
    expect(parsePdId(id!.data)).toEqual({ vendor: '164268', model: 0, version: 12, serial: 0xf4bc8f4c, firmware: '2.10.2' });
    const [cap] = d.push(hex('ff 53 80 23 00 05 46 01 01 06 02 01 01 03 00 00 04 00 00 05 00 00 06 00 00 07 00 00 08 01 00 09 01 01 19 13'), 1);
    const c = parseCapabilities(cap!.data);
    expect(c).toMatchObject({ crc: true, secureChannel: true, text: null, audible: false });
    expect(c.raw.get(1)).toEqual([1, 6]);
    expect(d.dropped).toEqual({ garbage: 0, check: 0, length: 0, truncated: 0 }); // the 0xFF mark is not garbage
  });

  it('decodes a 75-bit raw card and a reply split across two reads', () => {
    const d = new PacketDecoder();
    // The conformance tool's example (its `sign` helper appends the CRC): LEN 0x16 counts the CRC.
    const body = hex('53 80 16 00 07 50 00 00 4b 00 09 a4 49 4a a3 27 4c d5 2b c0');
    const crc = Buffer.alloc(2);
    crc.writeUInt16LE(crc16(body));
    const [raw] = d.push(Buffer.concat([body, crc]), 0);
    const r = parseRawCard(raw!.data);
    expect(r.bits).toHaveLength(75);
    expect(r.bits.startsWith('00001001101001000100')).toBe(true);
    expect(d.push(hex('ff 53 98 08 00 05 40 1f'), 10)).toEqual([]);
    const [ack] = d.push(hex('99'), 12);
    expect(ack).toMatchObject({ addr: 0x18, sqn: 1, code: REPLY.ack });
    const [nak] = d.push(hex('ff 53 98 09 00 06 41 01 81 dd'), 20);
    expect(nak).toMatchObject({ code: REPLY.nak, data: Buffer.from([1]) });
  });

  it('finds packets after garbage, bad checks and impossible lengths, counting what it dropped', () => {
    const d = new PacketDecoder();
    const good = encodePacket({ addr: 3, reply: true, sqn: 1, crc: true, code: REPLY.ack });
    const badCrc = Buffer.from(good);
    badCrc[badCrc.length - 1]! ^= 1;
    const out = d.push(Buffer.concat([hex('00 12 53 00 ff ff'), badCrc, hex('53 01 02'), good]), 0);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ addr: 3, code: REPLY.ack });
    expect(d.dropped.check).toBe(1);
    expect(d.dropped.length).toBeGreaterThan(0);
  });

  it('drops a frame whose bytes stopped when a whole new frame follows, and decodes the new one', () => {
    const d = new PacketDecoder(20);
    const f = encodePacket({ addr: 1, reply: true, sqn: 2, crc: true, code: REPLY.raw, data: encodeRawCard('1'.repeat(26)) });
    expect(d.push(f.subarray(0, 9), 0)).toEqual([]);
    const out = d.push(Buffer.concat([Buffer.from([0xff]), f]), 100);
    expect(out).toHaveLength(1);
    expect(d.dropped.truncated).toBe(1);
  });

  it('keeps a frame whose rest arrives late (a busy event loop reads late what the kernel got on time)', () => {
    const d = new PacketDecoder(20);
    const f = encodePacket({ addr: 1, reply: true, sqn: 2, crc: true, code: REPLY.raw, data: encodeRawCard('1'.repeat(26)) });
    expect(d.push(f.subarray(0, 5), 0)).toEqual([]);
    expect(d.push(f.subarray(5), 250)).toHaveLength(1);
    expect(d.dropped).toEqual({ garbage: 0, check: 0, length: 0, truncated: 0 });
  });

  it('checksum packets: the byte sum of the whole frame is zero', () => {
    const f = encodePacket({ addr: 5, sqn: 3, crc: false, code: CMD.poll });
    expect(f).toHaveLength(7);
    expect([...f].reduce((a, b) => a + b, 0) & 0xff).toBe(0);
    expect(checksum(f, 0, 6)).toBe(f[6]);
    expect(new PacketDecoder().push(f, 0)[0]).toMatchObject({ addr: 5, crc: false, code: CMD.poll });
  });

  it('refuses to build a packet over the size limit', () => {
    expect(() => encodePacket({ addr: 0, sqn: 1, crc: true, code: CMD.text, data: Buffer.alloc(2000) })).toThrow(/limit/);
  });
});

describe('OSDP messages', () => {
  it('LED records carry temporary and permanent states in 100 ms units', () => {
    const b = encodeLed({ temporary: { on: 'green', onMs: 1000, ms: 2000 }, permanent: { on: 'red' } });
    expect(b).toHaveLength(14);
    const [r] = parseLed(b);
    expect(r!.state.temporary).toEqual({ on: 2, off: 0, onMs: 1000, offMs: 0, ms: 2000 });
    expect(r!.state.permanent).toMatchObject({ on: 1 });
  });

  it('keypad: the spec codes for * (0x7F) and # (0x0D), and ASCII from readers that send it', () => {
    expect(parseKeypad(encodeKeypad('12*#')).keys).toEqual(['1', '2', '*', '#']);
    expect(parseKeypad(Buffer.from([0, 2, 0x2a, 0x23])).keys).toEqual(['*', '#']);
    expect(() => parseKeypad(Buffer.from([0, 1, 0x41]))).toThrow(/not a key/);
    expect(() => parseKeypad(Buffer.from([0, 5, 0x31]))).toThrow(/announced/);
  });

  it('text is ASCII only, at most 32 characters', () => {
    const t = parseText(encodeText({ text: 'Zugang gewährt — bitte eintreten, danke', seconds: 3 }));
    expect(t.text).toBe('Zugang gew?hrt ? bitte eintreten');
    expect(t).toMatchObject({ command: 3, seconds: 3 });
  });

  it('raw card bits round-trip and a length that lies is refused', () => {
    const bits = '10110011100011110000101011';
    expect(parseRawCard(encodeRawCard(bits)).bits).toBe(bits);
    expect(() => parseRawCard(Buffer.from([0, 1, 26, 0, 1, 2]))).toThrow(/RAW/);
  });
});

describe('OSDP secure channel', () => {
  const aes = (k: Buffer, b: Buffer): Buffer => createCipheriv('aes-128-ecb', k, null).setAutoPadding(false).update(b);
  const rndA = hex('0102030405060708');
  const rndB = hex('1112131415161718');

  it('derives the session keys and cryptograms as the spec writes them', () => {
    const s = new SecureSession(SCBK_DEFAULT, rndA, rndB);
    const sEnc = aes(SCBK_DEFAULT, hex('0182 010203040506 0000000000000000'));
    const sMac1 = aes(SCBK_DEFAULT, hex('0101 010203040506 0000000000000000'));
    const sMac2 = aes(SCBK_DEFAULT, hex('0102 010203040506 0000000000000000'));
    expect(s.sEnc).toEqual(sEnc);
    expect(s.clientCryptogram).toEqual(aes(sEnc, Buffer.concat([rndA, rndB])));
    expect(s.serverCryptogram).toEqual(aes(sEnc, Buffer.concat([rndB, rndA])));
    expect(s.initialRmac()).toEqual(aes(sMac2, aes(sMac1, s.serverCryptogram)));
    expect(s.clientCryptogramMatches(s.clientCryptogram)).toBe(true);
    expect(new SecureSession(Buffer.alloc(16, 7), rndA, rndB).clientCryptogramMatches(s.clientCryptogram)).toBe(false);
  });

  it('pads data always (16 bytes encrypt to 32) but MAC input only when not whole blocks', () => {
    const cp = new SecureSession(SCBK_DEFAULT, rndA, rndB);
    const pd = new SecureSession(SCBK_DEFAULT, rndA, rndB);
    cp.startChain(cp.initialRmac());
    pd.startChain(pd.initialRmac());
    expect(cp.encrypt(Buffer.alloc(16, 1), true)).toHaveLength(32);
    expect(cp.encrypt(Buffer.alloc(15, 1), true)).toHaveLength(16);
    // A 16-byte MAC input is one block, no padding: MAC = AES(S-MAC2, block XOR R-MAC_I).
    const block = hex('53000e000d1560aabbccddeeff001122');
    const sMac2 = aes(SCBK_DEFAULT, hex('0102 010203040506 0000000000000000'));
    const expected = aes(sMac2, Buffer.from(block.map((x, i) => x ^ cp.initialRmac()[i]!)));
    expect(cp.mac(block, true)).toEqual(expected);
    expect(pd.verify(block, expected.subarray(0, 4), true)).toBe(true);
  });

  it('both ends agree over a chain of commands and replies; a changed byte fails and leaves the chain as it was', () => {
    const cp = new SecureSession(SCBK_DEFAULT, rndA, rndB);
    const pd = new SecureSession(SCBK_DEFAULT, rndA, rndB);
    cp.startChain(cp.initialRmac());
    pd.startChain(pd.initialRmac());
    for (let i = 0; i < 5; i++) {
      const data = Buffer.from(`led ${i} ${'x'.repeat(i * 7)}`);
      const cmd = encodePacket({ addr: 1, sqn: (i % 3) + 1, crc: true, scb: { type: SCS.cmdEnc }, code: CMD.led, data: cp.encrypt(data, true) }, (m) => cp.mac(m, true));
      const [p] = new PacketDecoder().push(cmd, 0);
      expect(pd.decrypt(p!.data, true)).toEqual(data);
      const forged = Buffer.from(p!.macInput);
      forged[6]! ^= 1;
      expect(pd.verify(forged, p!.mac!, true)).toBe(false);
      expect(pd.verify(p!.macInput, p!.mac!, true)).toBe(true);
      const reply = encodePacket({ addr: 1, reply: true, sqn: p!.sqn, crc: true, scb: { type: SCS.replyMac }, code: REPLY.ack }, (m) => pd.mac(m, false));
      const [r] = new PacketDecoder().push(reply, 0);
      expect(cp.verify(r!.macInput, r!.mac!, false)).toBe(true);
    }
    // A replayed earlier reply does not verify against the advanced chain.
    const old = encodePacket({ addr: 1, reply: true, sqn: 1, crc: true, scb: { type: SCS.replyMac }, code: REPLY.ack }, () => Buffer.alloc(16));
    const [o] = new PacketDecoder().push(old, 0);
    expect(cp.verify(o!.macInput, o!.mac!, false)).toBe(false);
  });

  it('refuses data whose padding is wrong', () => {
    const s = new SecureSession(SCBK_DEFAULT, rndA, rndB);
    expect(() => s.decrypt(Buffer.alloc(15), false)).toThrow(/blocks/);
    expect(() => s.decrypt(Buffer.alloc(16), false)).toThrow(/padding/);
  });
});
