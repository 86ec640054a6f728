/**
 * The events every layer shares: a credential presented at a door, the decision on it, and door
 * events (contact, alarms, reader and storage alarms). In the domain so that sources (io, cloud)
 * and consumers (pipeline, mqtt, web) depend on it, never on each other.
 */
import type { Credential, Decision, Direction } from './types.js';

/** A credential presented at a door, from any source. */
export interface CredentialEvent {
  door: string;
  reader: string;
  direction: Direction;
  credential: Credential;
  /** process.hrtime.bigint() when the source produced the event: decision latency starts here. */
  hr: bigint;
}

/** A decision with where it came from and how long it took to reach the relay. */
export interface DecisionEvent extends Decision {
  reader: string;
  direction: Direction;
  /** Microseconds from the source event to the relay command. */
  latency_us: number;
}

export function credentialEvent(door: string, reader: string, direction: Direction, credential: Credential): CredentialEvent {
  return { door, reader, direction, credential, hr: process.hrtime.bigint() };
}

export type DoorEventType =
  | 'contact_open'
  | 'contact_closed'
  | 'forced_open'
  | 'held_open_prealarm'
  | 'held_open'
  | 'alarm_cleared'
  | 'relocked_on_close'
  /** A reader presented a credential kind it may not (e.g. a card reader asserting a face match). */
  | 'reader_claim_refused'
  /** A reader sends faster than its rate limit; the excess is dropped. */
  | 'reader_flood'
  /** The gateway's database cannot be written (disk full, I/O error); records are held in memory. */
  | 'storage_failure'
  | 'storage_recovered'
  /** Free space in the data directory is below the configured mark. */
  | 'disk_low'
  | 'disk_ok'
  /** A credential was presented under duress (the door behaved as usual). */
  | 'duress'
  /** The door's mode changed (who, and until when, in the detail). */
  | 'mode_changed'
  /** Soft area anti-passback: let through, but the person was already in (or out). */
  | 'anti_passback_violation'
  /** A supervised (OSDP) reader stopped answering, or answers again. */
  | 'reader_offline'
  | 'reader_online'
  /** The reader reports being opened or taken off the wall, and back. */
  | 'reader_tamper'
  | 'reader_tamper_cleared'
  | 'reader_power_failure'
  | 'reader_power_restored'
  /** Wrong key, failed MAC, a reader that offers no secure channel or answers only on the default key. */
  | 'reader_secure_channel_failure'
  /** The reader was given a new secure-channel key. */
  | 'reader_enrolled'
  /** A site message was refused (no or bad signature, unknown key, role, scope, expired, replayed…): the reason in the detail. */
  | 'site_refused'
  /** Site facts this door took (a block, a site user, a door mode …), summed up per second. */
  | 'site_changed'
  /** The site's threat level in force at this door changed. */
  | 'threat_level'
  /** A fire alarm released the door (fire wins over every mode and policy); its source in the detail. */
  | 'fire_release'
  /** The fire source cleared; the door stays released until an operator resets (latched). */
  | 'fire_cleared'
  /** The fire release ended (reset, or the alarm cleared when not latched): the door's mode applies again. */
  | 'fire_reset'
  /** A named input configured as an alarm (enclosure tamper, UPS on battery, power failure, panic…) went active, and back. */
  | 'io_alarm'
  | 'io_alarm_cleared'
  /** A linkage rule acted (which rule, on what, doing what, in the detail). */
  | 'linkage'
  /** An alarm a linkage rule raised. */
  | 'linkage_alarm'
  /** `alarms.deny_burst`: that many denials at the door within the window (someone trying cards). */
  | 'deny_burst'
  /** A lift car's floors enabled (for whom, which, how long) or put on or off free access. */
  | 'lift_floors'
  /** A muster began in an area (by whom or what: a fire release starts one), how many inside; ended. */
  | 'muster_started'
  | 'muster_ended'
  /** A person marked safe during a muster (by whom). */
  | 'muster_safe';

/** Door events a linkage rule may be `on` (the ones a rule raises included: chains are checked for loops). */
export const LINKABLE_EVENTS = ['forced_open', 'held_open', 'held_open_prealarm', 'alarm_cleared', 'contact_open', 'contact_closed', 'duress', 'reader_claim_refused', 'reader_flood', 'storage_failure', 'storage_recovered', 'disk_low', 'anti_passback_violation', 'reader_offline', 'reader_online', 'reader_tamper', 'reader_tamper_cleared', 'reader_power_failure', 'reader_power_restored', 'reader_secure_channel_failure', 'site_refused', 'threat_level', 'mode_changed', 'fire_release', 'fire_reset', 'io_alarm', 'io_alarm_cleared', 'linkage_alarm', 'deny_burst'] as const satisfies readonly DoorEventType[];

/** Door events that are alarms (logged as warnings, shown as such). */
export const ALARM_EVENTS: ReadonlySet<DoorEventType> = new Set(['forced_open', 'held_open', 'held_open_prealarm', 'reader_claim_refused', 'reader_flood', 'storage_failure', 'disk_low', 'duress', 'anti_passback_violation', 'reader_offline', 'reader_tamper', 'reader_power_failure', 'reader_secure_channel_failure', 'site_refused', 'fire_release', 'io_alarm', 'linkage_alarm', 'deny_burst']);

export interface DoorEvent {
  type: DoorEventType;
  door: string;
  /** Date.now(). */
  at: number;
  /** The reader concerned, for reader events. */
  reader?: string;
  detail?: string;
}
