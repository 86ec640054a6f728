/**
 * The device secret from activation: a file in the data directory, mode 0600, never logged.
 * A file rather than LevelDB so `doorgw wecom activate` can write it while the gateway runs.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DeviceSecret {
  sn: string;
  secret: string;
}

export const secretPath = (dataDir: string): string => join(dataDir, 'wecom-secret.json');

export function readSecret(dataDir: string): DeviceSecret | null {
  const p = secretPath(dataDir);
  if (!existsSync(p)) return null;
  try {
    const v = JSON.parse(readFileSync(p, 'utf8')) as Partial<DeviceSecret>;
    return typeof v.sn === 'string' && typeof v.secret === 'string' && v.secret !== '' ? { sn: v.sn, secret: v.secret } : null;
  } catch {
    return null;
  }
}

export function writeSecret(dataDir: string, s: DeviceSecret): void {
  mkdirSync(dataDir, { recursive: true });
  const p = secretPath(dataDir);
  const tmp = `${p}.tmp`;
  writeFileSync(tmp, JSON.stringify(s), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, p); // atomic: a crash never leaves half a secret
}

export function deleteSecret(dataDir: string): void {
  rmSync(secretPath(dataDir), { force: true });
}
