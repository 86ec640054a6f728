/**
 * `doorgw status` against a running gateway without loading the configuration schema: the systemd
 * health check runs it every few seconds, and the schema (zod) is most of a CLI call's start-up.
 * Only what finding the gateway needs is read from the file (data_dir, control.socket, the skew
 * default); the gateway answers with its own, validated configuration. Anything unusual — an
 * unreadable or odd file, DOORGW_* overrides, no gateway answering — returns null, and the caller
 * takes the full path (schema, errors that name the key, the store when not running).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Status } from '../control/api.js';
import { DEFAULT_DATA_DIR, DEFAULT_QR_CLOCK_SKEW_S } from '../config/errors.js';

export async function quickStatus(configPath: string, actAs: (dataDir: string) => void): Promise<{ status: Status; skewS: number } | null> {
  if (Object.keys(process.env).some((k) => k.startsWith('DOORGW_') && k !== 'DOORGW_CONFIG' && k !== 'DOORGW_TEST_LOG')) return null;
  let tree: unknown;
  try {
    const { parse } = await import('yaml');
    tree = parse(readFileSync(configPath, 'utf8'));
  } catch {
    return null;
  }
  if (typeof tree !== 'object' || tree === null) return null;
  const t = tree as { data_dir?: unknown; control?: { socket?: unknown }; qr?: { clock_skew_s?: unknown } };
  const dataDir = t.data_dir === undefined ? DEFAULT_DATA_DIR : t.data_dir;
  const socket = t.control?.socket;
  const skew = t.qr?.clock_skew_s === undefined ? DEFAULT_QR_CLOCK_SKEW_S : t.qr.clock_skew_s;
  if (typeof dataDir !== 'string' || (socket !== undefined && typeof socket !== 'string') || typeof skew !== 'number') return null;
  actAs(dataDir);
  const { connectControl } = await import('../control/socket.js');
  const remote = await connectControl(socket ?? resolve(dataDir, 'doorgw.sock'));
  if (!remote) return null;
  try {
    return { status: await remote.status(), skewS: skew };
  } finally {
    remote.close();
  }
}
