/**
 * The decision: identify the person behind a credential and authorise them at this door now.
 * Pure apart from the synchronous directory reads behind `Directory`; deny by default.
 */
import type { KeyObject } from 'node:crypto';
import { inPolicyList, isHoliday, NO_POLICY, type DoorPolicy } from './door-policy.js';
import { localRestriction } from './local-directory.js';
import { decodeQr, qrReplayKey, replayUntil, verifyQr } from './qr.js';
import { ruleMatches } from './rules.js';
import type { ReplayGuard } from './replay.js';
import type { UserRecord } from './user.js';
import { USER_TYPE_NAMES, type Credential, type Decision, type DenyReason, type DoorMode, type GrantReason, type Method } from './types.js';

/** Synchronous reads of the cached directory. `null` from an index means two users claim it. */
export interface Directory {
  user(userid: string): UserRecord | undefined;
  useridByOpenvid(openvid: string): string | null | undefined;
  useridByCard(card: string): string | null | undefined;
  /** The imported key; null when stored bytes are not a valid key; undefined when absent. */
  publicKey(keyId: string): KeyObject | null | undefined;
  /** Passages of a temporary credential counted since `since` (its max_uses was set then). */
  usesOf?(userid: string, since: number): number;
  /** A site user's passages at the site's other doors (their signed counts, site-uses.ts). */
  siteUsesOf?(userid: string, since: number): number;
}

export interface PolicyOptions {
  default_allow: { employee: boolean; visitor: boolean; student: boolean };
  replay_protection: boolean;
  /** Allowed clock skew (s) around an employee code's validity window. */
  qr_skew_s: number;
}

export interface DoorContext {
  id: string;
  mode: DoorMode;
  timezone: string;
  /** Holidays, lockdown override, extended unlock (none by default). */
  policy?: DoorPolicy;
  /** The site's threat level in force here (site facts), if any. */
  level?: DoorLevel | null;
  /** Groups denied while a linkage rule's input is active, by rule (io.linkage `deny_groups`). */
  denies?: ReadonlyMap<string, InputDeny>;
  /**
   * The cloud's own access rules at this door (Feishu permission groups): a deny; an allow (the group
   * is the person's rule, so it grants `rule_match`); or null where the cloud has no rules here.
   */
  cloudGate?: ((user: UserRecord, nowMs: number) => CloudVerdict | null) | null;
}

export type CloudVerdict = { allow: false; reason: DenyReason; detail: string } | { allow: true; detail: string };

/** Who a linkage rule denies while its input is active. */
export interface InputDeny {
  users: ReadonlySet<string>;
  groups: ReadonlySet<string>;
  /** For the decision's detail: `input alarm_armed active (rule armed-deny)`. */
  why: string;
}

/** What a threat level does to decisions at a door (its mode is the door's mode while it holds). */
export interface DoorLevel {
  name: string;
  /** Members (configured groups' userids) and group names denied `threat_level`. */
  denyUsers: ReadonlySet<string>;
  denyGroups: ReadonlySet<string>;
  /** Members and group names that pass a lockdown the level imposes. */
  overrideUsers: ReadonlySet<string>;
  overrideGroups: ReadonlySet<string>;
}

export function methodOf(c: Credential): Method {
  switch (c.type) {
    case 'qr': return 'qr';
    case 'card': return 'card';
    case 'userid': return c.method ?? 'userid';
    case 'remote': return 'remote';
    case 'exit': return 'exit';
    case 'operator': return 'operator';
  }
}

/** Authorise a known user at `nowMs`: rules if any, else the user type's default. */
export function authorizeUser(
  user: UserRecord,
  nowMs: number,
  timezone: string,
  policy: PolicyOptions,
): { grant: boolean; reason: GrantReason | DenyReason } {
  if (user.rules.length === 0) {
    // A list of only invalid rules must never fall back to the permissive "no rules" default.
    if (user.invalid_rules.length > 0) return { grant: false, reason: 'invalid_rules' };
    const allowed = policy.default_allow[USER_TYPE_NAMES[user.user_type]];
    return allowed ? { grant: true, reason: 'default_allow' } : { grant: false, reason: 'default_deny' };
  }
  let inForce = false;
  for (const rule of user.rules) {
    if (nowMs < rule.effect_time * 1000) continue;
    inForce = true;
    if (ruleMatches(rule, nowMs, timezone)) return { grant: true, reason: 'rule_match' };
  }
  return { grant: false, reason: inForce ? 'outside_schedule' : 'rule_not_in_force' };
}

export interface DecideInput {
  credential: Credential;
  door: DoorContext;
  nowMs: number;
  directory: Directory;
  policy: PolicyOptions;
  replay?: ReplayGuard | undefined;
}

export function decide(input: DecideInput): Decision {
  const { credential: cred, door, nowMs, directory: dir, policy } = input;
  const method = methodOf(cred);
  const out = (
    decision: 'grant' | 'deny',
    reason: GrantReason | DenyReason,
    user: UserRecord | null,
    detail?: string,
  ): Decision => {
    const d: Decision = { decision, reason, userid: user?.userid ?? null, user_type: user?.user_type ?? null, method, door: door.id, at: nowMs };
    if (detail !== undefined) d.detail = detail;
    // A duress report never changes the decision (nothing at the door may differ); it raises an alarm.
    if ('duress' in cred && cred.duress === true) d.duress = true;
    return d;
  };

  /** An identified (and, for QR, verified) user: the door's mode and policy, then the user's rules. */
  const admit = (user: UserRecord): Decision => {
    const p = door.policy ?? NO_POLICY;
    const groups = user.local?.groups;
    const f = user.local;
    // This door's own passages (what it counts on), and the whole site's for a site user.
    const ownUses = f?.max_uses != null ? (dir.usesOf?.(user.userid, f.uses_since ?? 0) ?? 0) : 0;
    const used = ownUses + (f?.max_uses != null && user.source === 'site' ? (dir.siteUsesOf?.(user.userid, f.uses_since ?? 0) ?? 0) : 0);
    const limited = user.local || p.cardAndPin || (cred.type === 'card' && cred.pin !== undefined) ? localRestriction(user, cred, door.id, nowMs, p.cardAndPin, door.timezone, used) : null;
    let d: Decision;
    const level = door.level;
    const gated = !limited && user.source === 'feishu' ? (door.cloudGate?.(user, nowMs) ?? null) : null;
    if (limited) {
      d = out('deny', limited.reason, user, limited.detail);
    } else if (gated && !gated.allow) {
      d = out('deny', gated.reason, user, gated.detail);
    } else if (level && inPolicyList(level.denyUsers, level.denyGroups, user.userid, groups)) {
      d = out('deny', 'threat_level', user, `denied while the site is at threat level ${level.name}`);
    } else if (door.denies?.size && [...door.denies.values()].some((x) => inPolicyList(x.users, x.groups, user.userid, groups))) {
      const x = [...door.denies.values()].find((y) => inPolicyList(y.users, y.groups, user.userid, groups))!;
      d = out('deny', 'input_deny', user, `denied while ${x.why}`);
    } else if (door.mode === 'lockdown') {
      const override = inPolicyList(p.lockdownOverride, p.lockdownOverrideGroups, user.userid, groups) || (level !== undefined && level !== null && inPolicyList(level.overrideUsers, level.overrideGroups, user.userid, groups));
      d = override ? out('grant', 'lockdown_override', user, 'passes during lockdown') : out('deny', 'lockdown', user, level ? `door is in lockdown (threat level ${level.name})` : 'door is in lockdown');
    } else if (p.closedOnHolidays && isHoliday(p, nowMs, door.timezone) && !inPolicyList(p.holidayExempt, p.holidayExemptGroups, user.userid, groups)) {
      d = out('deny', 'holiday', user, 'door closed on holidays');
    } else if (gated?.allow) {
      d = out('grant', 'rule_match', user, gated.detail); // the permission group is the rule
    } else {
      const a = authorizeUser(user, nowMs, door.timezone, policy);
      d = out(a.grant ? 'grant' : 'deny', a.reason, user);
    }
    if (d.decision === 'grant') {
      const ext = p.extendedUnlock && inPolicyList(p.extendedUnlock.users, p.extendedUnlock.groups, user.userid, groups) ? p.extendedUnlock.pulseMs : null;
      const own = user.local?.extended_unlock_ms ?? null;
      if (ext !== null || own !== null) d.pulse_ms = Math.max(ext ?? 0, own ?? 0);
      // A temporary credential: this passage is one of its uses (counted if the door really opens).
      const notes: string[] = [];
      if (f?.max_uses != null) {
        d.use = { userid: user.userid, since: f.uses_since ?? 0, count: ownUses + 1 };
        notes.push(`use ${used + 1} of ${f.max_uses}`);
      }
      if (f?.sponsor) notes.push(`sponsor ${f.sponsor}`);
      if (notes.length) d.detail = d.detail ? `${d.detail}; ${notes.join('; ')}` : notes.join('; ');
    }
    return d;
  };

  if (cred.type === 'exit') return out('grant', 'exit_request', null);
  if (cred.type === 'operator') {
    if (door.mode === 'lockdown') return out('deny', 'lockdown', null, 'door is in lockdown');
    return out('grant', 'operator_open', null, `opened by ${cred.source}`);
  }
  if (cred.type === 'remote') {
    const d = out(door.mode === 'lockdown' ? 'deny' : 'grant', door.mode === 'lockdown' ? 'lockdown' : 'remote_open', dir.user(cred.userid) ?? null);
    d.userid = cred.userid;
    if (door.mode === 'lockdown') d.detail = 'door is in lockdown';
    return d;
  }

  // Identify first, so every deny after identification (lockdown included) names the person.
  if (cred.type === 'card' || cred.type === 'userid') {
    const uid = cred.type === 'card' ? dir.useridByCard(cred.value) : cred.value;
    if (uid === null) return out('deny', 'credential_conflict', null, 'card is assigned to more than one user');
    const user = uid === undefined ? undefined : dir.user(uid);
    if (!user) return out('deny', 'unknown_user', null);
    return admit(user);
  }

  // QR: decode, find the user by openvid, verify with their key, refuse replays, then authorise.
  const decoded = decodeQr(cred.text);
  if (!decoded.ok) return out('deny', decoded.reason, null, decoded.detail);
  const code = decoded.value;
  const uid = dir.useridByOpenvid(code.openvid);
  if (uid === null) return out('deny', 'credential_conflict', null, `openvid ${code.openvid} belongs to more than one user`);
  const user = uid === undefined ? undefined : dir.user(uid);
  if (!user) return out('deny', 'unknown_user', null, `openvid ${code.openvid}`);
  if ((code.type === 'visitor') !== (user.user_type === 1)) {
    return out('deny', 'type_mismatch', user, `${code.type} code for a ${USER_TYPE_NAMES[user.user_type]}`);
  }
  if (!user.key_id) return out('deny', 'no_key', user);
  const key = dir.publicKey(user.key_id);
  if (key === undefined) return out('deny', 'no_key', user);
  if (key === null) return out('deny', 'bad_key', user);
  const nowS = Math.floor(nowMs / 1000);
  const verified = verifyQr(code, key, { now: nowS, skewS: policy.qr_skew_s });
  if (!verified.ok) return out('deny', verified.reason, user, verified.detail);
  const until = replayUntil(code, policy.qr_skew_s);
  const replayKey = until !== null && policy.replay_protection && input.replay ? qrReplayKey(code) : null;
  if (replayKey !== null && input.replay!.isReplay(replayKey, nowS)) return out('deny', 'replayed', user);
  // Remembered only when it opens: a code refused (lockdown, holiday, schedule) is not used up.
  const d = admit(user);
  if (d.decision === 'grant' && replayKey !== null) {
    // Persisted with the journal entry, in the same synced write.
    d.replay = input.replay!.remember(replayKey, until!, nowS);
  }
  return d;
}
