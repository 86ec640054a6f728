/**
 * WeCom device-protocol frames (protocols.md §1): requests `{cmd, headers: {req_id}, body}`,
 * responses `{headers: {req_id}, errcode, errmsg, body}`, pushes `{cmd: "push_…", headers, body}`.
 * openvid values are uint64 and travel as bare JSON numbers: parse and print them losslessly.
 */
import { createHash } from 'node:crypto';
import { parseJsonKeepingIds } from '../../domain/json.js';

export interface Frame {
  cmd?: string;
  headers: { req_id: string };
  errcode?: number;
  errmsg?: string;
  body?: Record<string, unknown>;
}

export class FrameError extends Error {}

/** Error codes seen in vendor firmware (protocols.md §1, unverified): keep them in one place. */
export const ERR = {
  ALREADY_REGISTERED: 600002,
  BAD_ACTIVATION: 600003,
  NOT_AUTHORISED: 600004,
  NOT_REGISTERED: 600014,
  NOT_ACTIVATED: 600016,
  NOT_LOGGED_IN: 600020,
  ALREADY_ACTIVATED: 600053,
  ALREADY_SUBSCRIBED: 600054,
  /** register: already registered (a keep-alive) — go on to active (protocols.md §9.4). */
  REGISTERED_KEEPALIVE: 600012,
  /** subscribe_corp: already subscribed — logged in. */
  SUBSCRIBED_ALREADY: 600045,
} as const;

/**
 * A frame without `headers` carrying one of these (protocols.md §9.4): the cloud lost this device's
 * session — not an answer to anything; log in again on a new connection.
 */
export const SESSION_LOST_CODES: ReadonlySet<number> = new Set([ERR.NOT_REGISTERED, ERR.NOT_ACTIVATED, ERR.NOT_LOGGED_IN]);

/** The errcode of a frame that has no headers (a session-level error), or null. */
export function headerlessErrcode(text: string): number | null {
  try {
    const v = JSON.parse(text) as { headers?: unknown; errcode?: unknown };
    return v && typeof v === 'object' && v.headers === undefined && typeof v.errcode === 'number' ? v.errcode : null;
  } catch {
    return null;
  }
}

/** The cloud no longer wants this device: erase the directory and return to provisioning. */
export const UNBOUND_CODES: ReadonlySet<number> = new Set([ERR.NOT_AUTHORISED, ERR.NOT_REGISTERED]);

const MAX_FRAME = 32 * 1024 * 1024;

export function parseFrame(text: string): Frame {
  if (text.length > MAX_FRAME) throw new FrameError(`frame of ${text.length} bytes exceeds ${MAX_FRAME}`);
  let v: unknown;
  try {
    v = parseJsonKeepingIds(text);
  } catch (e) {
    throw new FrameError(`frame is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FrameError('frame is not a JSON object');
  const f = v as Record<string, unknown>;
  const headers = f.headers as Record<string, unknown> | undefined;
  if (typeof headers?.req_id !== 'string' || headers.req_id === '') throw new FrameError('frame has no headers.req_id');
  if (f.cmd !== undefined && typeof f.cmd !== 'string') throw new FrameError('frame cmd is not a string');
  if (f.errcode !== undefined && typeof f.errcode !== 'number') throw new FrameError('frame errcode is not a number');
  if (f.body !== undefined && (typeof f.body !== 'object' || f.body === null || Array.isArray(f.body))) throw new FrameError('frame body is not an object');
  const frame: Frame = { headers: { req_id: headers.req_id } };
  if (typeof f.cmd === 'string') frame.cmd = f.cmd;
  if (typeof f.errcode === 'number') frame.errcode = f.errcode;
  if (typeof f.errmsg === 'string') frame.errmsg = f.errmsg;
  if (f.body) frame.body = f.body as Record<string, unknown>;
  return frame;
}

/**
 * A binary frame (protocols.md §9.2): `format_version` in 4 bytes, then each field after its 4-byte
 * length, little-endian. Device → cloud `upload_log` carries cmd, req_id and data; the cloud's
 * replies (gen_login_qrcode) req_id and data.
 */
export function encodeBinaryFrame(version: number, fields: readonly Buffer[]): Buffer {
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  return Buffer.concat([u32(version), ...fields.flatMap((f) => [u32(f.length), f])]);
}

/** The version and `count` fields of a binary frame, and how many bytes follow them; throws when a length runs past the end. */
export function decodeBinaryFrame(b: Buffer, count: number): { version: number; fields: Buffer[]; trailing: number } {
  let o = 0;
  const u32 = (): number => {
    if (o + 4 > b.length) throw new FrameError('a length beyond the frame');
    const v = b.readUInt32LE(o);
    o += 4;
    return v;
  };
  const version = u32();
  const fields: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const n = u32();
    if (n > b.length - o) throw new FrameError('a length beyond the frame');
    fields.push(b.subarray(o, o + n));
    o += n;
  }
  return { version, fields, trailing: b.length - o };
}

/** JSON with `openvid` decimal strings written as bare numbers, as the vendor sends them. */
export function stringifyFrame(frame: Frame): string {
  return JSON.stringify(frame).replace(/"openvid":"(\d{1,20})"/g, '"openvid":$1');
}

/** A response that carried a non-zero errcode. */
export class WecomError extends Error {
  constructor(
    readonly cmd: string,
    readonly errcode: number,
    readonly errmsg: string,
  ) {
    super(`${cmd} failed: errcode ${errcode} ${errmsg}`);
    this.name = 'WecomError';
  }
}

/**
 * The dynamic login code a door shows for scan to open (protocols.md §10.1): a URL whose signature
 * is SHA-1 over the sorted values sn, SecretNo, timestamp, nonce, `dynamic_login` and state. The
 * cloud refuses it 1800 s after `timestamp`; doors make a new one every 15 min.
 */
export function dynamicLoginUrl(sn: string, secretNo: string, timestamp: number, nonce: string, state: string): string {
  const signature = createHash('sha1').update([sn, secretNo, String(timestamp), nonce, 'dynamic_login', state].sort().join('')).digest('hex');
  const q = new URLSearchParams({ sn, timestamp: String(timestamp), nonce, signature, type: 'dynamic_login', state });
  return `https://open.work.weixin.qq.com/connect/hardware?${q.toString()}`;
}

/** `register` signature: SHA-1 over the sorted concatenation of sn, SecretNo, timestamp, nonce and "register". */
export function registerSignature(sn: string, secretNo: string, timestamp: number, nonce: string): string {
  return createHash('sha1').update([sn, secretNo, String(timestamp), nonce, 'register'].sort().join('')).digest('hex');
}
