/** Test helpers: P-256 key pairs and signed WeCom QR payloads, made with Node's crypto. */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { compressedPoint, encodeQrBody, signQr } from '../../src/domain/qr.js';

export interface TestKey {
  privateKey: KeyObject;
  /** base64 compressed point, as WeCom sends `public_key`. */
  publicB64: string;
  publicUncompressedB64: string;
}

export function makeKey(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = publicKey.export({ format: 'jwk' });
  const uncompressed = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  return { privateKey, publicB64: compressedPoint(publicKey).toString('base64'), publicUncompressedB64: uncompressed.toString('base64') };
}

export function signBody(body: Buffer, key: KeyObject): Buffer {
  return sign('sha256', body, { key, dsaEncoding: 'ieee-p1363' });
}

export function employeeQr(key: KeyObject, openvid: string, startTime: number, expiresIn = 300): string {
  return signQr(encodeQrBody({ type: 'employee', openvid, startTime, expiresIn }), key);
}

export function visitorQr(key: KeyObject, openvid: string, state = Buffer.from('visit')): string {
  return signQr(encodeQrBody({ type: 'visitor', openvid, state }), key);
}

/** P-256 group order n. */
const N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

/**
 * The same code with its signature's s replaced by n−s: an equally valid signature of the same
 * body (ECDSA malleability), as an attacker who saw the code can make without any key.
 */
export function malleate(text: string): string {
  const b = Buffer.from(text, 'base64');
  const sOff = b.length - 32;
  const s = BigInt(`0x${b.subarray(sOff).toString('hex')}`);
  const flipped = Buffer.from((N - s).toString(16).padStart(64, '0'), 'hex');
  return Buffer.concat([b.subarray(0, sOff), flipped]).toString('base64');
}
