/**
 * `doorgw demo seed`: a throwaway key pair and three demo users, so a new user can paste real,
 * signed QR codes into `npm start` and watch the decisions. The demo private key stays in the data
 * directory (mode 0600); WeCom never gives a door a private key, so this exists only for trying.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compressedPoint, encodeQrBody, signQr } from '../domain/qr.js';

export interface DemoCodes {
  users: Record<string, unknown>[];
  codes: { label: string; expect: string; text: string }[];
}

function demoKey(dataDir: string): KeyObject {
  const file = join(dataDir, 'demo-key.pem');
  if (existsSync(file)) return createPrivateKey(readFileSync(file));
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return privateKey;
}

export function demoCodes(dataDir: string, nowS = Math.floor(Date.now() / 1000)): DemoCodes {
  const key = demoKey(dataDir);
  const pub = compressedPoint(createPublicKey(key)).toString('base64');
  const signed = (body: Buffer, k: KeyObject = key): string => signQr(body, k);
  const employee = (openvid: string, start: number, expiresIn = 600): Buffer => encodeQrBody({ type: 'employee', openvid, startTime: start, expiresIn });
  const forger = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  return {
    users: [
      { userid: 'demo-alice', name: 'Alice (employee, no rules: default allow)', user_type: 0, openvid: '18446744073709551001', public_key: pub },
      {
        userid: 'demo-bob',
        name: 'Bob (employee, weekdays 9:00-18:00)',
        user_type: 0,
        openvid: '18446744073709551002',
        public_key: pub,
        pass_rule_list: [{ id: 0, rule: '9:00-18:00 * * 1-5 *', effect_time: 1_500_000_000 }],
      },
      { userid: 'demo-vera', name: 'Vera (visitor, no rules: default deny)', user_type: 1, openvid: '18446744073709551003', public_key: pub },
    ],
    codes: [
      { label: 'Alice, valid now', expect: 'grant default_allow', text: signed(employee('18446744073709551001', nowS)) },
      { label: 'Alice, expired an hour ago', expect: 'deny expired', text: signed(employee('18446744073709551001', nowS - 4200)) },
      { label: 'Alice, forged (another key)', expect: 'deny bad_signature', text: signed(employee('18446744073709551001', nowS), forger) },
      { label: 'Bob, valid now', expect: 'grant rule_match on weekdays 9-18 (door time zone), else deny outside_schedule', text: signed(employee('18446744073709551002', nowS)) },
      { label: 'Vera, visitor code', expect: 'deny default_deny', text: signed(encodeQrBody({ type: 'visitor', openvid: '18446744073709551003', state: Buffer.from('demo') })) },
    ],
  };
}
