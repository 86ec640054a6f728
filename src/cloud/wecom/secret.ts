/**
 * The device secret from activation: a file in the data directory, mode 0600, never logged.
 * A file rather than LevelDB so `doorgw wecom activate` can write it while the gateway runs.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DeviceSecret {
  sn: string;
  secret: string;
}

export const secretPath = (dataDir: string): string => join(dataDir, 'wecom-secret.json');

/** The secret file exists but cannot be used: an error to fix, not "not activated". */
export class SecretUnreadableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretUnreadableError';
  }
}

/** The stored secret; null when the device was never activated. Throws when the file is there but unusable. */
export function readSecret(dataDir: string): DeviceSecret | null {
  const p = secretPath(dataDir);
  if (!existsSync(p)) return null;
  let text: string;
  try {
    text = readFileSync(p, 'utf8');
  } catch (e) {
    const st = statSync(p);
    const uid = process.getuid?.();
    throw new SecretUnreadableError(
      `cannot read the device secret ${p} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; owner uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}, this process uid ${uid ?? '?'}): give it to the service user, e.g. chown doorgw: ${p}`,
    );
  }
  let v: Partial<DeviceSecret>;
  try {
    v = JSON.parse(text) as Partial<DeviceSecret>;
  } catch {
    throw new SecretUnreadableError(`the device secret ${p} is not valid JSON: activate again with doorgw wecom activate --force`);
  }
  if (typeof v.sn !== 'string' || typeof v.secret !== 'string' || v.secret === '') throw new SecretUnreadableError(`the device secret ${p} has no sn/secret: activate again with doorgw wecom activate --force`);
  return { sn: v.sn, secret: v.secret };
}

export function writeSecret(dataDir: string, s: DeviceSecret): void {
  mkdirSync(dataDir, { recursive: true });
  const p = secretPath(dataDir);
  const tmp = `${p}.tmp`;
  writeFileSync(tmp, JSON.stringify(s), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  // Written by root (sudo doorgw wecom activate), it must still belong to whoever owns the data
  // directory: the service user must be able to read it.
  const dir = statSync(dataDir);
  if (process.getuid?.() === 0 && (dir.uid !== 0 || dir.gid !== 0)) chownSync(tmp, dir.uid, dir.gid);
  renameSync(tmp, p); // atomic: a crash never leaves half a secret
}

export function deleteSecret(dataDir: string): void {
  rmSync(secretPath(dataDir), { force: true });
}
