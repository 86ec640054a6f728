/**
 * This gateway's own Ed25519 key on the site bus (it signs the door's reports): in the data
 * directory, mode 0600, made on first use and never printed. `doorgw site door-key` shows its id
 * and public key for the site's `site.door_keys`.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyIdOf, rawPublicKey } from '../domain/site-envelope.js';

export interface DoorKey {
  privateKey: KeyObject;
  kid: string;
  /** The raw public key, base64 (as site.door_keys takes it). */
  publicKey: string;
}

export const DOOR_KEY_FILE = 'site-door-key.pem';

export function doorKey(dataDir: string): DoorKey {
  const file = join(dataDir, DOOR_KEY_FILE);
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    try {
      writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
    } catch (w) {
      if ((w as NodeJS.ErrnoException).code !== 'EEXIST') throw w;
      pem = readFileSync(file, 'utf8'); // made by another process meanwhile: that one counts
    }
  }
  const privateKey = createPrivateKey(pem);
  const pub = createPublicKey(privateKey);
  return { privateKey, kid: keyIdOf(pub), publicKey: rawPublicKey(pub) };
}
