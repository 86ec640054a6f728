/**
 * The WeCom emulator's state in a directory (`doorgw wecom emulator --state-dir`), so a developer or
 * operator can stop and start it and keep the same directory, corp keys (codes signed before still
 * verify), device secrets and versions — and count what it received: every checkin record it is
 * sent, resends included, is appended to `received.jsonl` as it arrives.
 *
 *   state.json       users, versions, devices, the corp keys' private halves (PEM): mode 0600
 *   received.jsonl   one line per checkin record received: {at, userid, timestamp, pass_type, pass_method, duplicate}
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import type { CloudUser, WecomEmulator } from './emulator.js';

interface Saved {
  version: 1;
  perm_version: number;
  visitor_version: number;
  users: CloudUser[];
  devices: { sn: string; secretNo: string; registered: boolean; bound: boolean; secret: string | null }[];
  /** public_key (base64 point) → private key PEM. */
  keys: Record<string, string>;
}

export function loadEmulatorState(dir: string, emu: WecomEmulator): Map<string, KeyObject> | null {
  const file = join(dir, 'state.json');
  if (!existsSync(file)) return null;
  const s = JSON.parse(readFileSync(file, 'utf8')) as Saved;
  if (s.version !== 1) throw new Error(`${file}: state version ${String(s.version)}; this doorgw reads version 1`);
  emu.seed(s.users);
  emu.permVersion = s.perm_version;
  emu.visitorVersion = s.visitor_version;
  for (const d of s.devices) emu.devices.set(d.sn, { ...d });
  return new Map(Object.entries(s.keys).map(([pub, pem]) => [pub, createPrivateKey(pem)]));
}

export function saveEmulatorState(dir: string, emu: WecomEmulator, keys: ReadonlyMap<string, KeyObject>): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const s: Saved = {
    version: 1,
    perm_version: emu.permVersion,
    visitor_version: emu.visitorVersion,
    users: [...emu.users.values()],
    devices: [...emu.devices.values()].map((d) => ({ ...d })),
    keys: Object.fromEntries([...keys].map(([pub, k]) => [pub, k.export({ type: 'pkcs8', format: 'pem' }).toString()])),
  };
  const file = join(dir, 'state.json');
  writeFileSync(`${file}.tmp`, JSON.stringify(s), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** Append every checkin record the emulator receives to `received.jsonl`. */
export function recordReceived(dir: string, emu: WecomEmulator): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'received.jsonl');
  emu.onCheckin = (r, duplicate) => appendFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), ...r, duplicate })}\n`);
}
