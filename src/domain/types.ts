/** Shared domain types. Pure data: no I/O, JSON-serialisable where stored. */
import type { ReplayEntry } from './replay.js';

export type UserType = 0 | 1 | 2;
export const USER_TYPE_NAMES = { 0: 'employee', 1: 'visitor', 2: 'student' } as const;
export type UserTypeName = (typeof USER_TYPE_NAMES)[UserType];

/** How a credential was presented; maps to WeCom checkin pass_method where one exists. */
/** `scan`: the person scanned the door's code in the WeCom app (scan to open): decided as that person. */
export type Method = 'qr' | 'card' | 'userid' | 'face' | 'fingerprint' | 'scan' | 'remote' | 'exit' | 'operator';
export type Direction = 'in' | 'out' | 'unknown';

/** A reader may report that the person presented it under duress (a duress finger, a duress PIN). */
export type Credential =
  | { type: 'qr'; text: string; duress?: boolean }
  /** `pin`: typed on the reader's keypad with the card (card and PIN); never logged. */
  | { type: 'card'; value: string; duress?: boolean; pin?: string }
  | { type: 'userid'; value: string; method?: 'userid' | 'face' | 'fingerprint' | 'scan'; duress?: boolean }
  | { type: 'remote'; userid: string; oper_id?: string }
  | { type: 'exit' }
  /** An authorised local operator (MQTT command) opens the door. */
  | { type: 'operator'; source: string };

/** normal: credentials decide; passage: the lock held released; lockdown: everything denied but exits. */
export const DOOR_MODES = ['normal', 'passage', 'lockdown'] as const;
export type DoorMode = (typeof DOOR_MODES)[number];

export type GrantReason = 'rule_match' | 'default_allow' | 'remote_open' | 'exit_request' | 'operator_open' | 'lockdown_override';
export type DenyReason =
  | 'malformed'
  | 'unsupported_version'
  | 'unsupported_type'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'replayed'
  | 'unknown_user'
  | 'no_key'
  | 'bad_key'
  | 'type_mismatch'
  | 'credential_conflict'
  | 'outside_schedule'
  | 'rule_not_in_force'
  | 'invalid_rules'
  | 'default_deny'
  | 'lockdown'
  /** The reader presented a kind of credential it is not configured to present. */
  | 'credential_not_allowed'
  /** The directory could not be read (database reopening after a disk failure). */
  | 'store_unavailable'
  /** The door is closed on a holiday of its calendars. */
  | 'holiday'
  /** The same person passed this door too recently (timed anti-passback). */
  | 'anti_passback'
  /** Two-person rule: the first person waits for a second (not a failure of this person). */
  | 'awaiting_second_person'
  /** Another door of this door's interlock (mantrap) is open or released. */
  | 'interlock'
  /** Blocked in the local directory (the person, or this card), or a local user disabled. */
  | 'blocked'
  /** Outside a local user's (or adjustment's) valid_from / valid_until. */
  | 'outside_validity'
  /** The local directory limits this person to other doors. */
  | 'door_not_allowed'
  /** Card and PIN: the PIN is missing (or none is set for the person). */
  | 'pin_required'
  | 'wrong_pin'
  /** The site's threat level denies this person's group (site facts). */
  | 'threat_level'
  /** A linkage rule denies this person's group while its input is active (io.linkage deny_groups). */
  | 'input_deny'
  /** A temporary credential used as many times as it was given (local directory max_uses). */
  | 'uses_exhausted'
  /** Feishu permission groups: the person is in no group of this door's device, or outside its days and hours. */
  | 'no_permission_group'
  | 'outside_permission_group';

/**
 * A person's own passage (their credential granted), as opposed to an exit request, an operator's
 * or a remote opening: what anti-passback and the two-person rule count.
 */
export function isPersonalGrant(d: Decision): d is Decision & { userid: string } {
  return d.decision === 'grant' && d.userid !== null && (d.reason === 'rule_match' || d.reason === 'default_allow' || d.reason === 'lockdown_override');
}

/** The uses of a temporary credential taken since it was given (`since`: when max_uses was set). */
export interface UseCount {
  userid: string;
  since: number;
  count: number;
}

export interface Decision {
  decision: 'grant' | 'deny';
  reason: GrantReason | DenyReason;
  userid: string | null;
  user_type: UserType | null;
  method: Method;
  door: string;
  /** Unix milliseconds at which the credential was decided. */
  at: number;
  /** Human detail for logs (never secrets, never key material). */
  detail?: string;
  /** A longer unlock than the door's pulse (extended unlock for this user). */
  pulse_ms?: number;
  /** The credential was presented under duress: decided as usual, and an alarm raised. */
  duress?: true;
  /** An accepted QR code to remember until its window ends: persisted with the journal entry. */
  replay?: ReplayEntry;
  /** A use of a temporary credential (max_uses) this grant takes: counted, and persisted with the journal entry. */
  use?: UseCount;
}
