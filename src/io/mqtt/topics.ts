/**
 * The MQTT API in one place: every topic under the base `<base_topic>/<gateway_id>` and every
 * payload, typed. Published topics are checked for wildcards here.
 */
import type { DoorMode } from '../../domain/types.js';

export class Topics {
  readonly base: string;
  constructor(baseTopic: string, gatewayId: string) {
    this.base = `${baseTopic}/${gatewayId}`;
  }
  availability = (): string => `${this.base}/availability`;
  state = (): string => `${this.base}/state`;
  doorState = (door: string): string => `${this.base}/door/${door}/state`;
  doorEvent = (door: string): string => `${this.base}/door/${door}/event`;
  doorSet = (door: string): string => `${this.base}/door/${door}/set`;
  readerCredential = (reader: string): string => `${this.base}/reader/${reader}/credential`;
  request = (name: string): string => `${this.base}/request/${name}`;
  /** A response topic of an account: `<base>/response/<account>/<anything>` (the ACL lets only that account read it). */
  isResponseTopic = (t: string): boolean => {
    if (!t.startsWith(`${this.base}/response/`)) return false;
    const rest = t.slice(this.base.length + '/response/'.length).split('/');
    return rest.length >= 2 && rest.every(Boolean) && !/[#+]/.test(t) && !t.includes(String.fromCharCode(0));
  };

  /** Subscriptions: commands, requests, reader credentials. */
  subscriptions = (): string[] => [`${this.base}/door/+/set`, `${this.base}/request/#`, `${this.base}/reader/+/credential`];

  /** Classify an incoming topic; null when it is not ours. */
  parse(topic: string): { kind: 'set'; door: string } | { kind: 'request'; name: string } | { kind: 'credential'; reader: string } | null {
    if (!topic.startsWith(`${this.base}/`)) return null;
    const rest = topic.slice(this.base.length + 1).split('/');
    if (rest[0] === 'door' && rest.length === 3 && rest[2] === 'set' && rest[1]) return { kind: 'set', door: rest[1] };
    if (rest[0] === 'reader' && rest.length === 3 && rest[2] === 'credential' && rest[1]) return { kind: 'credential', reader: rest[1] };
    if (rest[0] === 'request' && rest.length >= 2 && rest.slice(1).every(Boolean)) return { kind: 'request', name: rest.slice(1).join('/') };
    return null;
  }
}

export function assertPublishable(topic: string): void {
  if (/[#+]/.test(topic) || topic.includes(String.fromCharCode(0)) || topic === '' || topic.includes('//')) throw new Error(`refusing to publish to '${topic}': wildcards or empty levels`);
}

/** `…/availability` (retained; `offline` is the last will). */
export type Availability = 'online' | 'offline';

/** `…/state` (retained). */
export interface GatewayStatePayload {
  gateway_id: string;
  version: string;
  users: number;
  outbox_depth: number;
  held: number;
  uptime_s: number;
  local_users: number;
  /** When the gateway started (ISO-8601): Home Assistant shows the uptime from it. */
  started: string;
  cloud: { provider: string; link: 'unprovisioned' | 'connecting' | 'online' | 'offline'; directory_version: number | null; clock_skew_s: number | null; last_error: string | null; last_full_sync: string | null } | null;
  /** The data directory's disk: writable, free space (null: not known yet). */
  storage?: { writable: boolean; free_bytes: number | null; held_in_memory: number } | null;
  /** Supervised (OSDP) readers by id: their link, security, tamper and power. */
  readers?: Record<string, { door: string; state: string; secure: boolean; tamper: boolean | null; power_failure: boolean | null }>;
  /** Fire release: the doors released now, and per door its sources and latch (when io.fire or the site is configured). */
  fire?: { released: string[]; latched: string[] };
  /** The site's threat level in force at each door (null: none), when the site is on. */
  levels?: Record<string, string | null>;
  /** Named inputs (active or not) and outputs (on or not), by name. */
  inputs?: Record<string, boolean>;
  outputs?: Record<string, boolean>;
}

/** `…/door/<door>/state` (retained). */
export interface DoorStatePayload {
  door: string;
  lock: 'locked' | 'unlocked';
  /** The door contact; `unknown` when no contact input is wired. */
  contact: 'open' | 'closed' | 'unknown';
  mode: DoorMode;
  /** forced_open, held_open_prealarm, held_open, or null. */
  alarm: string | null;
  /** Released by a fire alarm now (whatever the mode says). */
  fire?: boolean;
}

/** `…/door/<door>/event` (not retained). */
export interface DoorEventPayload {
  /** Home Assistant event entity type. */
  event_type: 'granted' | 'denied';
  decision: 'grant' | 'deny';
  reason: string;
  door: string;
  reader: string;
  direction: string;
  method: string;
  latency_us: number;
  /** ISO-8601. */
  at: string;
  userid?: string | null;
  user_type?: number | null;
  name?: string | null;
}

/** `…/reader/<reader>/credential` (from local readers). */
export interface ReaderCredentialPayload {
  type: 'card' | 'qr' | 'userid' | 'face' | 'fingerprint' | 'wiegand';
  value: string | number;
  /** The reader's duress signal (a duress PIN or finger): decided as usual, an alarm raised. */
  duress?: boolean;
  /** Typed on the reader's keypad with a card (card and PIN). Never logged. */
  pin?: string;
}

/** `…/door/<door>/set`: a string, or JSON `{command, mode?}`. */
export type DoorCommand = { command: 'open' } | { command: 'lock' } | { command: 'mode'; mode: DoorMode; duration_s?: number };

/** `…/response/<name>`. */
export interface ResponsePayload {
  status: 'ok' | 'error';
  data?: unknown;
  error?: string;
  /** With an error: invalid, not_found, conflict, unavailable, forbidden, internal, or too_large (the reply would exceed the broker's packet limit). */
  code?: string;
  transaction?: unknown;
}

/** Parse a door command; null with a reason when it is not one. */
export function parseDoorCommand(payload: string): { ok: true; cmd: DoorCommand } | { ok: false; error: string } {
  const t = payload.trim();
  const word = t.toUpperCase();
  if (word === 'OPEN' || word === 'UNLOCK') return { ok: true, cmd: { command: 'open' } };
  if (word === 'LOCK') return { ok: true, cmd: { command: 'lock' } };
  if (word === 'LOCKDOWN' || word === 'NORMAL' || word === 'PASSAGE') return { ok: true, cmd: { command: 'mode', mode: word.toLowerCase() as DoorMode } };
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return { ok: false, error: `unknown command '${t.slice(0, 40)}' (OPEN, UNLOCK, LOCK, LOCKDOWN, PASSAGE, NORMAL or JSON {"command": …})` };
  }
  const o = v as { command?: unknown; mode?: unknown; duration_s?: unknown };
  if (o?.command === 'open' || o?.command === 'lock') return { ok: true, cmd: { command: o.command } };
  if (o?.command === 'mode' && (o.mode === 'lockdown' || o.mode === 'normal' || o.mode === 'passage')) {
    if (o.duration_s === undefined) return { ok: true, cmd: { command: 'mode', mode: o.mode } };
    if (typeof o.duration_s !== 'number' || !Number.isInteger(o.duration_s) || o.duration_s < 1 || o.duration_s > 30 * 86_400) return { ok: false, error: 'duration_s must be whole seconds, 1 to 2592000 (30 days)' };
    return { ok: true, cmd: { command: 'mode', mode: o.mode, duration_s: o.duration_s } };
  }
  return { ok: false, error: 'JSON command must be {"command":"open"|"lock"} or {"command":"mode","mode":"normal"|"passage"|"lockdown","duration_s"?: n}' };
}

/** Parse a reader credential; null with a reason when it is not one. */
export function parseReaderCredential(payload: string): { ok: true; cred: ReaderCredentialPayload } | { ok: false; error: string } {
  if (payload.length > 4096) return { ok: false, error: 'payload larger than 4 KiB' };
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return { ok: false, error: 'payload is not JSON' };
  }
  const o = v as { type?: unknown; value?: unknown; bits?: unknown };
  if (o?.type === 'wiegand') {
    // Raw frames from a Wiegand bridge: cards (decoded by the reader's card_format) and key bursts.
    if (typeof o.bits !== 'string' || !/^[01]{4,128}$/.test(o.bits)) return { ok: false, error: 'wiegand bits must be a string of 4 to 128 0s and 1s' };
    return { ok: true, cred: { type: 'wiegand', value: o.bits } };
  }
  if (!['card', 'qr', 'userid', 'face', 'fingerprint'].includes(String(o?.type))) return { ok: false, error: 'type must be card, qr, userid, face, fingerprint or wiegand' };
  if (!((typeof o.value === 'string' && o.value.length > 0) || (typeof o.value === 'number' && Number.isSafeInteger(o.value)))) {
    return { ok: false, error: 'value must be a non-empty string or an integer' };
  }
  const duress = (o as { duress?: unknown }).duress;
  if (duress !== undefined && typeof duress !== 'boolean') return { ok: false, error: 'duress must be true or false' };
  const pin = (o as { pin?: unknown }).pin;
  if (pin !== undefined && (o.type !== 'card' || typeof pin !== 'string' || !/^\d{1,12}$/.test(pin))) return { ok: false, error: 'pin must be a string of up to 12 digits, with a card' };
  return { ok: true, cred: { type: o.type as ReaderCredentialPayload['type'], value: o.value, ...(duress ? { duress: true } : {}), ...(pin !== undefined ? { pin } : {}) } };
}
