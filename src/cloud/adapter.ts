/**
 * The interface every cloud adapter implements (WeCom device protocol, Feishu, …), and what the
 * gateway hands it. Adding a cloud touches a new folder under src/cloud and the config schema.
 */
import type { BehaviorSubject, Observable } from 'rxjs';
import type { Config } from '../config/schema.js';
import type { FingerprintModule } from '../io/fingerprint.js';
import type { Logger } from '../log.js';
import type { DecisionEvent, DoorEvent } from '../domain/events.js';
import type { Store } from '../store/store.js';
import type { CloudVerdict } from '../domain/policy.js';
import type { UserRecord } from '../domain/user.js';

export interface CloudState {
  provider: string;
  /** unprovisioned: no device secret yet (run the provider's activation). */
  link: 'unprovisioned' | 'connecting' | 'online' | 'offline';
  /** Unix ms of the last change of `link`. */
  since: number;
  directory_version: number | null;
  last_full_sync: number | null;
  /** Cloud clock minus ours, seconds; null when unknown. */
  clock_skew_s: number | null;
  /** Users fetched so far by a full sync in progress. */
  sync_progress: number | null;
  last_error: string | null;
  /**
   * A standing problem that retrying will not fix (credentials refused, device secret unreadable):
   * the gateway is unhealthy until it is fixed.
   */
  credentials_problem: string | null;
  /** The corp the device is bound to (WeCom get_corp_info), once known. */
  corp_name?: string | null;
  /** Firmware the cloud offers (WeCom push_update_firmware → get_firmware_info): reported, never installed. */
  firmware_offered?: { version: string; size: number | null; md5sum: string | null; at: number } | null;
  /** WeCom: may members enrol themselves at the door (get_open_self_input, push_open_self_input). */
  self_enrolment?: { fp: boolean; fa: boolean } | null;
  /** Feishu permission groups: in force, not authorised, or why not refreshed. */
  permission_groups?: string | null;
  /** Cloud event callbacks (Feishu): how many were taken and refused, and the newest. */
  events?: { received: number; refused: number; last_type: string | null; last_at: number | null } | null;
}

/** A request the cloud sent to the gateway's web server (`POST /cloud/<provider>/<name>`). */
export interface CloudCallback {
  name: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface SyncReport {
  users: number;
  version: number | null;
  seconds: number;
}

export interface CloudContext {
  config: Config;
  store: Store;
  log: Logger;
  /** Open a door through the decision pipeline (door modes apply); null when not decided. */
  remoteOpen(req: { door: string; userid: string; oper_id: string }): DecisionEvent | null;
  /** A person scanned the door's code in the cloud's app: decided as their credential (rules, mode, policies). */
  scanOpen(req: { door: string; userid: string }): DecisionEvent | null;
  /** The fingerprint module of the door that has one, if any. */
  fingerprint: FingerprintModule | null;
  /** The gateway's door events (faults among them are reported to a cloud that takes them). */
  doorEvents?: Observable<DoorEvent>;
  /** The cloud asked for a restart: the gateway stops cleanly (relays locked) and the service manager starts it again. */
  restart?: (reason: string) => void;
}

export interface CloudAdapter {
  readonly state$: BehaviorSubject<CloudState>;
  /** Whether this cloud takes pass records (the outbox is kept only for one that does). */
  readonly uploadsRecords: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A full directory sync now. */
  syncNow(): Promise<SyncReport>;
  /** New pass records are in the outbox. */
  outboxChanged(): void;
  /** The code a door shows for scan to open (its text, and until when it is good); null when there is none now. */
  loginCode?(door: string): { text: string; made_at: number; expires_at: number } | null;
  /** A door's static scan code for printing (WeCom gen_login_qrcode): the image bytes. */
  staticCode?(door: string): Promise<Buffer>;
  /** The cloud's own access rules at a door (Feishu permission groups): a deny, or null. */
  gate?(door: string, user: UserRecord, nowMs: number, zone: string): CloudVerdict | null;
  /** A callback from the cloud (Feishu events): the HTTP answer. */
  callback?(req: CloudCallback): Promise<{ status: number; body: Record<string, unknown> }>;
}

export function initialState(provider: string, link: CloudState['link']): CloudState {
  return { provider, link, since: Date.now(), directory_version: null, last_full_sync: null, clock_skew_s: null, sync_progress: null, last_error: null, credentials_problem: null };
}
