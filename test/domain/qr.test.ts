import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeQr, encodeQrBody, importPublicKey, KeyCache, keyId, parsePublicKeyPoint, verifyQr, type QrCode } from '../../src/domain/qr.js';
import { employeeQr, makeKey, signBody, visitorQr } from '../helpers/qr.js';

const dir = mkdtempSync(join(tmpdir(), 'doorgw-qr-'));
const openssl = (...args: string[]): Buffer => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] });

/** DER ECDSA-Sig-Value → raw r‖s (the test's own small ASN.1 reader, independent of the code under test). */
function derToRaw(der: Buffer): Buffer {
  let i = 2; // SEQUENCE, length (short form: a P-256 signature is < 128 bytes)
  const int = (): Buffer => {
    if (der[i] !== 0x02) throw new Error('expected INTEGER');
    const len = der[i + 1]!;
    let v = der.subarray(i + 2, i + 2 + len);
    i += 2 + len;
    while (v.length > 32 && v[0] === 0) v = v.subarray(1);
    return Buffer.concat([Buffer.alloc(32 - v.length), v]);
  };
  return Buffer.concat([int(), int()]);
}
function rawToDer(raw: Buffer): Buffer {
  const int = (b: Buffer): Buffer => {
    let v = b;
    while (v.length > 1 && v[0] === 0 && v[1]! < 0x80) v = v.subarray(1);
    if (v[0]! >= 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const body = Buffer.concat([int(raw.subarray(0, 32)), int(raw.subarray(32))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

function mustDecode(text: string): QrCode {
  const d = decodeQr(text);
  if (!d.ok) throw new Error(`decode failed: ${d.reason} ${d.detail}`);
  return d.value;
}

describe('QR verification agrees with OpenSSL', () => {
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'k.pem');
  openssl('ec', '-in', 'k.pem', '-pubout', '-out', 'pub.pem');
  const spkiCompressed = openssl('ec', '-in', 'k.pem', '-pubout', '-conv_form', 'compressed', '-outform', 'DER');
  const spkiUncompressed = openssl('ec', '-in', 'k.pem', '-pubout', '-outform', 'DER');
  const pointC = spkiCompressed.subarray(spkiCompressed.length - 33);
  const pointU = spkiUncompressed.subarray(spkiUncompressed.length - 65);

  it('verifies an employee code signed by the openssl CLI, with compressed and uncompressed keys', () => {
    const body = encodeQrBody({ type: 'employee', openvid: '18446744073709551615', startTime: 1_700_000_000, expiresIn: 600 });
    writeFileSync(join(dir, 'body.bin'), body);
    openssl('dgst', '-sha256', '-sign', 'k.pem', '-out', 'sig.der', 'body.bin');
    const raw = derToRaw(readFileSync(join(dir, 'sig.der')));
    const code = mustDecode(Buffer.concat([body, raw]).toString('base64'));
    expect(code.openvid).toBe('18446744073709551615'); // uint64 max, exact
    for (const point of [pointC, pointU]) {
      const parsed = parsePublicKeyPoint(point.toString('base64'));
      expect(parsed.ok).toBe(true);
      const r = verifyQr(code, importPublicKey(point), { now: 1_700_000_100, skewS: 30 });
      expect(r).toMatchObject({ ok: true });
    }
  });

  it('verifies a visitor code signed by openssl and rejects it with one flipped bit', () => {
    const body = encodeQrBody({ type: 'visitor', openvid: '9007199254740993', state: Buffer.from('0123456789abcdef') });
    writeFileSync(join(dir, 'vbody.bin'), body);
    openssl('dgst', '-sha256', '-sign', 'k.pem', '-out', 'vsig.der', 'vbody.bin');
    const raw = derToRaw(readFileSync(join(dir, 'vsig.der')));
    const good = mustDecode(Buffer.concat([body, raw]).toString('base64'));
    expect(good.type).toBe('visitor');
    expect(good.openvid).toBe('9007199254740993'); // 2^53 + 1 survives
    expect(verifyQr(good, importPublicKey(pointC), { now: 0, skewS: 30 }).ok).toBe(true);
    const tampered = Buffer.concat([body, raw]);
    tampered[5]! ^= 0x01;
    expect(verifyQr(mustDecode(tampered.toString('base64')), importPublicKey(pointC), { now: 0, skewS: 30 })).toMatchObject({ ok: false, reason: 'bad_signature' });
  });

  it('produces signatures that the openssl CLI accepts (other direction)', () => {
    const key = makeKey();
    const body = encodeQrBody({ type: 'employee', openvid: '42', startTime: 1, expiresIn: 2 });
    const raw = signBody(body, key.privateKey);
    writeFileSync(join(dir, 'b2.bin'), body);
    writeFileSync(join(dir, 's2.der'), rawToDer(raw));
    writeFileSync(join(dir, 'p2.pem'), importPublicKey(Buffer.from(key.publicB64, 'base64')).export({ type: 'spki', format: 'pem' }));
    const outText = openssl('dgst', '-sha256', '-verify', 'p2.pem', '-signature', 's2.der', 'b2.bin').toString();
    expect(outText).toContain('Verified OK');
  });
});

describe('QR decoding', () => {
  const key = makeKey();

  it('decodes the employee layout big-endian', () => {
    const code = mustDecode(employeeQr(key.privateKey, '1234567890123456789', 0x01020304, 0x0506));
    expect(code).toMatchObject({ type: 'employee', openvid: '1234567890123456789', startTime: 0x01020304, expiresIn: 0x0506 });
  });

  it('accepts trailing whitespace from a scanner and missing padding', () => {
    const text = employeeQr(key.privateKey, '1', 10);
    expect(decodeQr(`${text}\r\n`).ok).toBe(true);
    expect(decodeQr(text.replace(/=+$/, '')).ok).toBe(true);
  });

  it.each([
    ['empty', '', 'malformed'],
    ['not base64', 'not base64 !!', 'malformed'],
    ['too short', 'AQ', 'malformed'],
    ['version 0', Buffer.alloc(80).toString('base64'), 'unsupported_version'],
    ['type 7', Buffer.from([1, 7, ...Buffer.alloc(78)]).toString('base64'), 'unsupported_type'],
    ['employee 72 bytes', Buffer.from([1, 0, ...Buffer.alloc(70)]).toString('base64'), 'malformed'],
    ['employee 92 bytes', Buffer.from([1, 0, ...Buffer.alloc(90)]).toString('base64'), 'malformed'],
    ['visitor state_len 17', Buffer.from([1, 1, ...Buffer.alloc(8), 17, ...Buffer.alloc(17 + 64)]).toString('base64'), 'malformed'],
    ['visitor state shorter than state_len', Buffer.from([1, 1, ...Buffer.alloc(8), 4, ...Buffer.alloc(3 + 64)]).toString('base64'), 'malformed'],
    ['100 kB of text', 'A'.repeat(100_000), 'malformed'],
  ])('denies %s as %s', (_label, text, reason) => {
    expect(decodeQr(text)).toMatchObject({ ok: false, reason });
  });

  it('names the time reasons with the skew margin on both ends', () => {
    const code = mustDecode(employeeQr(key.privateKey, '5', 1000, 60));
    const k = importPublicKey(Buffer.from(key.publicB64, 'base64'));
    expect(verifyQr(code, k, { now: 969, skewS: 30 })).toMatchObject({ ok: false, reason: 'not_yet_valid' });
    expect(verifyQr(code, k, { now: 970, skewS: 30 }).ok).toBe(true);
    expect(verifyQr(code, k, { now: 1089, skewS: 30 }).ok).toBe(true);
    expect(verifyQr(code, k, { now: 1090, skewS: 30 })).toMatchObject({ ok: false, reason: 'expired' });
    expect(verifyQr(code, k, { now: 1060, skewS: 0 })).toMatchObject({ ok: false, reason: 'expired' });
  });

  it('rejects a code signed by another key', () => {
    const other = makeKey();
    const code = mustDecode(visitorQr(other.privateKey, '7'));
    expect(verifyQr(code, importPublicKey(Buffer.from(key.publicB64, 'base64')), { now: 0, skewS: 0 })).toMatchObject({ ok: false, reason: 'bad_signature' });
  });

  it('never throws on arbitrary input and only decodes exact layouts (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b).toString('base64'))), (text) => {
        const r = decodeQr(text);
        if (r.ok) {
          const len = Buffer.from(text.trim(), 'base64').length;
          expect(r.value.type === 'employee' ? len === 80 : len === 75 + r.value.state.length).toBe(true);
        } else {
          expect(['malformed', 'unsupported_version', 'unsupported_type']).toContain(r.reason);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips any employee and visitor body (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.nat(0xffffffff), fc.nat(0xffff), fc.uint8Array({ maxLength: 16 }), (ov, st, ex, state) => {
        const sig = Buffer.alloc(64, 7);
        const e = mustDecode(Buffer.concat([encodeQrBody({ type: 'employee', openvid: ov.toString(), startTime: st, expiresIn: ex }), sig]).toString('base64'));
        expect(e).toMatchObject({ type: 'employee', openvid: ov.toString(), startTime: st, expiresIn: ex });
        const v = mustDecode(Buffer.concat([encodeQrBody({ type: 'visitor', openvid: ov.toString(), state: Buffer.from(state) }), sig]).toString('base64'));
        expect(v.type === 'visitor' && v.state.equals(Buffer.from(state))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe('public keys', () => {
  it('rejects points that are not 33/65-byte P-256 encodings', () => {
    expect(parsePublicKeyPoint('AmOVOOcprQJXEi94HPv9S')).toMatchObject({ ok: false, reason: 'bad_key' }); // the vendor sample, truncated
    expect(parsePublicKeyPoint(Buffer.alloc(33, 5).toString('base64'))).toMatchObject({ ok: false, reason: 'bad_key' });
    expect(parsePublicKeyPoint('%%%')).toMatchObject({ ok: false, reason: 'bad_key' });
  });

  it('caches imported keys and marks off-curve points as null', () => {
    const cache = new KeyCache(2);
    const k = makeKey();
    const point = Buffer.from(k.publicB64, 'base64');
    let loads = 0;
    const load = (): Buffer => (loads++, point);
    const a = cache.get(keyId(point), load);
    const b = cache.get(keyId(point), load);
    expect(a).toBe(b);
    expect(loads).toBe(1);
    const offCurve = Buffer.concat([Buffer.from([2]), Buffer.alloc(32, 0xff)]);
    expect(cache.get('bad', () => offCurve)).toBeNull();
    expect(cache.get('absent', () => undefined)).toBeUndefined();
  });
});
