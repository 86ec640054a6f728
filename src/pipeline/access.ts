/**
 * Credential sources → decide → effects. Decisions for one door are serialised (concatMap) so two
 * reads never race its relay; doors run independently. The relay is commanded synchronously right
 * after the decision; journal, outbox, log and subscribers follow and can never delay it.
 */
import { Subject, Subscription, concatMap, from, groupBy, merge, mergeMap, of, type Observable } from 'rxjs';
import { applySequence, newSequenceState, type SequencePolicy, type SequenceState } from '../domain/door-sequence.js';
import { denyBurst, NO_BURST, type DenyBurstState } from '../domain/deny-burst.js';
import { applyAreaPassback, type AreaPolicy, type Presence, type PresenceMap } from '../domain/area-passback.js';
import { isHoliday } from '../domain/door-policy.js';
import { decide, methodOf, type DoorContext, type DoorLevel, type InputDeny, type PolicyOptions } from '../domain/policy.js';
import { ruleMatches, type CompiledRule } from '../domain/rules.js';
import type { Decision, DoorMode } from '../domain/types.js';
import type { ReplayGuard } from '../domain/replay.js';
import { localStamp } from '../domain/localtime.js';
import { monotonicMs, type MonoClock, type Stamp } from '../domain/clock.js';
import { HOLD_MS, type Relay } from '../io/relay.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { Debouncer, readKey } from './debounce.js';
import type { CredentialEvent, DecisionEvent, DoorEvent } from '../domain/events.js';
import { ReaderGate, type ReaderTrust } from './reader-gate.js';


export interface ModeChange {
  door: string;
  mode: DoorMode;
  from: DoorMode;
  /** A timed manual mode ends then (unix ms). */
  until: number | null;
  /** Who changed it (mqtt, cli, timer, schedule). */
  by: string | null;
  /** Set by the schedule or a timer, not by hand: not restored after a restart (the schedule decides again). */
  auto: boolean;
}

/** Longest a credential waits for the database to reopen after a disk failure. */
const REOPEN_WAIT_MS = 250;

export interface AccessDoor {
  context: DoorContext;
  relay: Relay;
  pulseMs: number;
  /** Anti-passback and two-person rule (off when absent). */
  sequence?: SequencePolicy;
  /** The mode it returns to when a timed manual mode ends (its configured mode). */
  baseMode?: DoorMode;
  /** Interlock: the door of its group that is open or released now, if any (absent: no interlock). */
  interlockedBy?: () => string | null;
  /** Passage on a schedule (absent: none). */
  passage?: PassageSchedule;
  /** The anti-passback area the door belongs to (absent: none). */
  area?: AreaPolicy;
  /** Denials that raise deny_burst (absent: off). */
  denyBurst?: { count: number; withinMs: number };
}

export interface PassageSchedule {
  rules: readonly CompiledRule[];
  suspendOnHolidays: boolean;
  /** First-person-in: who may start the passage by being granted inside the window (null: off). */
  firstPersonIn: ((u: { userid: string; user_type: number | null }) => boolean) | null;
}

interface ScheduleState {
  inWindow: boolean;
  /** First-person-in happened in this window. */
  started: boolean;
  /** A manual mode without an end wins until the schedule next changes. */
  manual: boolean;
}

/** A presence change at this gateway in a site area: in, out, or forgiven (none). */
export interface SitePresenceChange {
  area: string;
  userid: string;
  where: 'in' | 'out' | 'none';
  at: number;
  /** The door passed (null: an operator forgave). */
  door: string | null;
}

export interface AccessPipelineOptions {
  store: Store;
  doors: ReadonlyMap<string, AccessDoor>;
  policy: PolicyOptions;
  debounceMs: number;
  replay: ReplayGuard;
  /** The durable record of every decision (journal, outbox, replay memory). */
  journal?: { enqueue(d: DecisionEvent): void; enqueueDurable(d: DecisionEvent): Promise<void> };
  /** batched: relay first, record one group commit later. strict: a grant's record first. */
  durability?: 'batched' | 'strict';
  /** Area presence as persisted (anti-passback), and where to persist changes. */
  presence?: Map<string, PresenceMap>;
  onPresence?: (area: string, userid: string, p: Presence | null) => void;
  /** Configured readers: what each may present and how fast. Other sources are the gateway's own. */
  readers?: ReadonlyMap<string, ReaderTrust>;
  log: Logger;
  /** Wall clock in ms (tests move it). */
  now?: () => number;
  /**
   * Monotonic clock in ms, and this boot's id: what measures "how long ago" (debounce, rate limits,
   * anti-passback windows, presence age), so that a step of the wall clock changes none of them.
   */
  mono?: MonoClock;
  boot?: string;
}

export class AccessPipeline {
  /** Every decision, after the relay was commanded. */
  readonly decisions$ = new Subject<DecisionEvent>();
  /** Reader alarms raised while deciding (a claim a reader may not make, a flood). */
  readonly doorEvents$ = new Subject<DoorEvent>();
  readonly gate: ReaderGate;
  private readonly debouncer: Debouncer;
  private readonly now: () => number;
  private readonly mono: MonoClock;
  private readonly boot: string;
  private readonly subs = new Subscription();

  constructor(private readonly o: AccessPipelineOptions) {
    this.debouncer = new Debouncer(o.debounceMs);
    this.now = o.now ?? Date.now;
    this.mono = o.mono ?? monotonicMs;
    this.boot = o.boot ?? '';
    this.gate = new ReaderGate(o.readers ?? new Map());
    this.presence = o.presence ?? new Map<string, PresenceMap>();
  }

  /** Merge the sources and start deciding (and following passage schedules). */
  start(sources: Observable<CredentialEvent>[]): void {
    this.tickSchedules();
    this.scheduleNextTick();
    this.subs.add(
      merge(...sources)
        .pipe(
          groupBy((e) => e.door),
          mergeMap((perDoor) => perDoor.pipe(concatMap((e) => this.whenStoreReadable(e)))),
        )
        .subscribe({ error: (e: unknown) => this.o.log.error({ err: e }, 'credential source failed') }),
    );
  }

  /**
   * Decide now, unless the store is being reopened after a disk failure: then wait for it, but
   * never longer than REOPEN_WAIT_MS (a credential decided meanwhile is denied store_unavailable).
   */
  private whenStoreReadable(e: CredentialEvent): Observable<DecisionEvent | null> {
    const reopening = this.o.store.reopenInProgress;
    if (!reopening) return of(this.handle(e));
    const waited = new Promise<void>((r) => setTimeout(r, REOPEN_WAIT_MS));
    return from(Promise.race([reopening.catch(() => undefined), waited]).then(() => this.handle(e)));
  }

  /**
   * Decide one event and command the relay. Returns null for a debounced repeat or an unknown door.
   * Never throws: an unexpected error is a deny.
   */
  handle(e: CredentialEvent): DecisionEvent | null {
    const door = this.o.doors.get(e.door);
    if (!door) {
      this.o.log.warn({ door: e.door, reader: e.reader }, 'credential for an unknown door ignored');
      return null;
    }
    const nowMs = this.now();
    const monoMs = this.mono();
    const gate = this.gate.admit(e, monoMs);
    if (gate.floodEnded) this.o.log.warn({ door: e.door, reader: e.reader, dropped: gate.floodEnded }, 'reader flood ended');
    if (gate.verdict === 'flood') {
      if (gate.firstDrop) {
        this.o.log.warn({ door: e.door, reader: e.reader }, 'reader exceeds its rate limit; dropping its credentials until it slows down');
        this.doorEvents$.next({ type: 'reader_flood', door: e.door, at: nowMs, reader: e.reader, detail: 'credentials beyond the rate limit are dropped' });
      }
      return null;
    }
    if (this.debouncer.isRepeat(readKey(e.door, e.credential), monoMs)) {
      this.o.log.debug({ door: e.door, reader: e.reader }, 'repeated read within the debounce window ignored');
      return null;
    }
    let d: Decision;
    try {
      if (gate.verdict === 'not_allowed') {
        // Not identified: the reader's claim is exactly what is not trusted.
        d = { decision: 'deny' as const, reason: 'credential_not_allowed' as const, userid: null, user_type: null, method: methodOf(e.credential), door: e.door, at: nowMs, detail: gate.detail! };
        this.doorEvents$.next({ type: 'reader_claim_refused', door: e.door, at: nowMs, reader: e.reader, detail: gate.detail! });
      } else {
        d = decide({ credential: e.credential, door: door.context, nowMs, directory: this.o.store.directory, policy: this.o.policy, replay: this.o.replay });
        if (door.sequence) d = applySequence(d, door.sequence, this.sequenceOf(e.door), monoMs);
      }
      // An interlock holds every opening, exits and operators included: two doors of a mantrap never stand open together.
      const blocker = d.decision === 'grant' ? door.interlockedBy?.() : null;
      if (blocker) d = { ...d, decision: 'deny', reason: 'interlock', detail: `door '${blocker}' of the interlock is open or released` };
      // Last: presence is recorded only for a passage that really happens.
      if (door.area) d = this.areaPassback(door.area, d, e, { at: nowMs, mono: monoMs, boot: this.boot });
      if (d.decision === 'deny' && d.replay) {
        // Accepted, but the door did not open after all (anti-passback, a second person, interlock): not used up.
        this.o.replay.forget(d.replay.key);
        delete d.replay;
      }
      // A temporary credential's use counts only for a passage that happens; counted before the next decision.
      if (d.use && d.decision === 'grant') this.o.store.noteUse(d.use);
      else delete d.use;
    } catch (err) {
      const unavailable = !this.o.store.isOpen;
      this.o.log.error({ err, door: e.door }, unavailable ? 'directory unavailable (database reopening); denying' : 'decision failed; denying');
      d = { decision: 'deny' as const, reason: unavailable ? ('store_unavailable' as const) : ('malformed' as const), userid: null, user_type: null, method: methodOf(e.credential), door: e.door, at: nowMs, detail: unavailable ? 'database reopening after a disk failure' : 'internal error' };
    }
    const pulse = (): void => {
      try {
        door.relay.pulse(d.pulse_ms ?? door.pulseMs);
      } catch (err) {
        this.o.log.error({ err, door: e.door }, 'relay command failed');
      }
    };
    const journal = this.o.journal;
    if (d.duress) {
      this.o.log.warn({ door: e.door, reader: e.reader, userid: d.userid }, 'duress reported');
      this.doorEvents$.next({ type: 'duress', door: e.door, at: nowMs, reader: e.reader, detail: `credential presented under duress${d.userid ? ` by ${d.userid}` : ''}` });
    }
    // Strict: the grant's record and replay memory reach the disk before the relay moves — while the
    // disk can be written. When it cannot (full, failing), waiting would keep the door shut for
    // everyone: the door goes on as in batched mode, the record waits in memory, status is unhealthy.
    if (d.decision === 'grant' && journal && this.o.durability === 'strict' && door.context.mode !== 'passage' && this.o.store.writable) {
      const ev: DecisionEvent = { ...d, reader: e.reader, direction: e.direction, latency_us: 0 };
      void journal.enqueueDurable(ev).then(() => {
        pulse();
        ev.latency_us = Number(process.hrtime.bigint() - e.hr) / 1000;
        this.decisions$.next(ev);
      });
      return ev;
    }
    // In passage the lock is already held released: a pulse would end the hold when it runs out.
    if (d.decision === 'grant' && door.context.mode !== 'passage') pulse();
    this.maybeFirstPersonIn(e.door, door, d);
    if (d.decision === 'deny' && door.denyBurst) this.countDenial(e, door.denyBurst, monoMs, nowMs);
    const ev: DecisionEvent = { ...d, reader: e.reader, direction: e.direction, latency_us: Number(process.hrtime.bigint() - e.hr) / 1000 };
    try {
      journal?.enqueue(ev);
    } catch (err) {
      this.o.log.error({ err, door: e.door }, 'journal enqueue failed');
    }
    this.decisions$.next(ev);
    return ev;
  }

  /**
   * Run `fn` for every decision. The effect owns its errors: one that throws is logged and the
   * next decision still reaches it; nothing it does can reach the relay, which was already commanded.
   */
  addEffect(name: string, fn: (d: DecisionEvent) => void): void {
    this.subs.add(
      this.decisions$.subscribe((d) => {
        try {
          fn(d);
        } catch (err) {
          this.o.log.error({ err, effect: name, door: d.door }, 'decision effect failed');
        }
      }),
    );
  }

  private readonly bursts = new Map<string, DenyBurstState>();
  private countDenial(e: CredentialEvent, o: { count: number; withinMs: number }, monoMs: number, nowMs: number): void {
    const r = denyBurst(this.bursts.get(e.door) ?? NO_BURST, monoMs, o);
    this.bursts.set(e.door, r.state);
    if (r.alarm) this.doorEvents$.next({ type: 'deny_burst', door: e.door, at: nowMs, reader: e.reader, detail: `${o.count} denials within ${o.withinMs / 1000} s` });
  }

  private readonly sequences = new Map<string, SequenceState>();
  private sequenceOf(door: string): SequenceState {
    let s = this.sequences.get(door);
    if (!s) this.sequences.set(door, (s = newSequenceState()));
    return s;
  }

  /** Door modes, current and on change (a change is a decision-relevant state). */
  readonly modes$ = new Subject<ModeChange>();
  private readonly modeTimers = new Map<string, { until: number; timer: NodeJS.Timeout }>();

  modeOf(door: string): DoorMode | undefined {
    return this.o.doors.get(door)?.context.mode;
  }

  private readonly presence: Map<string, PresenceMap>;
  /** Presence changes made at this gateway's doors in site areas (the site shares them). */
  readonly sitePresence$ = new Subject<SitePresenceChange>();
  /** Seconds since a site area's peers were last heard, when that is too long (null: current). */
  presenceStaleness: ((area: string) => number | null) | null = null;

  private areaMap(name: string): PresenceMap {
    let map = this.presence.get(name);
    if (!map) this.presence.set(name, (map = new Map<string, Presence>()));
    return map;
  }

  private areaPassback(area: AreaPolicy, d: Decision, e: CredentialEvent, now: Required<Stamp>): Decision {
    const map = this.areaMap(area.name);
    const stale = area.site ? (this.presenceStaleness?.(area.name) ?? null) : null;
    const r = applyAreaPassback(d, e.direction, area, map, now, stale);
    if (r.violation) this.doorEvents$.next({ type: 'anti_passback_violation', door: e.door, at: now.at, reader: e.reader, detail: `${d.userid ?? '?'} already ${e.direction} area '${area.name}'${area.hard && stale === null ? ' (denied)' : ' (let through: soft)'}` });
    if (r.record && r.decision.decision === 'grant' && d.userid) {
      r.record.door = e.door;
      map.set(d.userid, r.record);
      this.o.onPresence?.(area.name, d.userid, r.record);
      if (area.site) this.sitePresence$.next({ area: area.name, userid: d.userid, where: r.record.where, at: now.at, door: e.door });
    }
    return r.decision;
  }

  /** Forgive a person's anti-passback in one area (or all): their next passage is allowed either way. */
  forgive(userid: string, area?: string): number {
    let n = 0;
    for (const [name, map] of this.presence) {
      if (area !== undefined && name !== area) continue;
      if (map.delete(userid)) {
        n++;
        this.o.onPresence?.(name, userid, null);
        this.sitePresence$.next({ area: name, userid, where: 'none', at: this.now(), door: null });
      }
    }
    return n;
  }

  /** A person's presence in an area as this door holds it (undefined: unknown). */
  presenceOf(area: string, userid: string): Presence | undefined {
    return this.presence.get(area)?.get(userid);
  }

  /** A transition another gateway of a site area made (verified, and newer than what is held). */
  applySitePresence(area: string, userid: string, where: 'in' | 'out' | 'none', at: number, door: string, gateway: string): void {
    const map = this.areaMap(area);
    const p = where === 'none' ? null : { where, at, door, gateway }; // another machine's clock: aged on the wall clock
    if (p) map.set(userid, p);
    else map.delete(userid);
    this.o.onPresence?.(area, userid, p);
  }

  /** Everyone's presence in an area as this door holds it (the muster reads it). */
  presenceIn(area: string): ReadonlyMap<string, Presence> {
    return this.areaMap(area);
  }

  /** Why the door is in its mode: timed, manual, schedule (window open, or waiting for the first person), configured. */
  modeWhy(door: string): string {
    const d = this.o.doors.get(door);
    if (!d) return 'unknown door';
    const timed = this.modeTimers.get(door);
    if (timed) return `manual until ${localStamp(timed.until, d.context.timezone)}`;
    const st = this.schedules.get(door);
    if (st?.manual) return 'manual until the schedule next changes';
    if (st?.inWindow && d.passage?.firstPersonIn && !st.started) return 'passage window open, waiting for the first person';
    if (st?.inWindow) return 'passage window';
    return d.context.mode === (d.baseMode ?? 'normal') ? 'configured' : 'manual';
  }

  /** When a timed manual mode of the door ends (unix ms), if one is set. */
  modeUntil(door: string): number | null {
    return this.modeTimers.get(door)?.until ?? null;
  }

  /**
   * Change a door's mode at run time; the next decision sees it. Entering lockdown re-locks;
   * passage holds the lock released; leaving passage re-locks. With `untilMs` the door returns to
   * its configured mode then (a manual mode wins until it expires or is changed).
   */
  setMode(door: string, mode: DoorMode, o: { untilMs?: number | undefined; by?: string; auto?: boolean; hold?: boolean } = {}): boolean {
    const d = this.o.doors.get(door);
    if (!d) return false;
    // A threat level holds the door: schedules, timers and operators wait until it lets go.
    if (this.holds.has(door) && !o.hold) return false;
    const sched = this.schedules.get(door);
    if (sched) sched.manual = !o.auto && o.untilMs === undefined;
    const prev = this.modeTimers.get(door);
    if (prev) clearTimeout(prev.timer);
    this.modeTimers.delete(door);
    if (o.untilMs !== undefined) {
      const timer = setTimeout(() => {
        this.modeTimers.delete(door);
        this.setMode(door, this.scheduledMode(door), { by: 'timer', auto: true });
      }, Math.max(0, Math.min(o.untilMs - this.now(), 2 ** 31 - 1)));
      timer.unref();
      this.modeTimers.set(door, { until: o.untilMs, timer });
    }
    const from = d.context.mode;
    if (from === mode && prev?.until === o.untilMs) return true;
    d.context.mode = mode;
    if (mode === 'lockdown' || (from === 'passage' && mode !== 'passage')) d.relay.relock();
    if (mode === 'passage') d.relay.pulse(HOLD_MS); // renewed by any mode change
    this.o.log.warn({ door, mode, from, until: o.untilMs ?? null, by: o.by ?? null }, 'door mode changed');
    this.modes$.next({ door, mode, from, until: o.untilMs ?? null, by: o.by ?? null, auto: o.auto === true });
    return true;
  }

  /**
   * A linkage rule's deny at a door: these groups are denied `input_deny` from the next decision
   * on (null: the rule lets go).
   */
  setDeny(door: string, rule: string, deny: InputDeny | null): void {
    const d = this.o.doors.get(door);
    if (!d) return;
    const m = new Map(d.context.denies ?? []);
    if (deny) m.set(rule, deny);
    else m.delete(rule);
    d.context.denies = m;
  }

  /** Doors a threat level holds in a mode, and who set the level. */
  private readonly holds = new Map<string, string>();

  /** Who holds the door in its mode (a threat level), or null. */
  heldBy(door: string): string | null {
    return this.holds.get(door) ?? null;
  }

  /**
   * The site's threat level at a door: its decision rules now, and the mode it imposes (null: the
   * door's own). When a level lets go, the door takes `release` (what it would be without it).
   */
  applyLevel(door: string, level: DoorLevel | null, mode: DoorMode | null, by: string, release: DoorMode): void {
    const d = this.o.doors.get(door);
    if (!d) return;
    d.context.level = level;
    if (mode !== null) {
      this.holds.set(door, by);
      this.setMode(door, mode, { by, hold: true });
    } else if (this.holds.delete(door)) {
      this.setMode(door, release, { by, auto: true });
    }
  }

  private readonly schedules = new Map<string, ScheduleState>();
  private scheduleTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  /**
   * Passage windows and holidays change only on a minute of the wall clock: look again just after
   * the next one (a 15 s poll once switched up to 15 s late). Never more than a minute away, so a
   * wall-clock step is caught up within a minute.
   */
  private scheduleNextTick(): void {
    if (this.stopped) return;
    const now = this.now();
    const wait = Math.min(60_000, 60_000 - (now % 60_000) + 5);
    this.scheduleTimer = setTimeout(() => {
      this.tickSchedules();
      this.scheduleNextTick();
    }, wait);
    this.scheduleTimer.unref();
  }

  /** The mode the door's schedule wants now: passage inside a window (once started, with first-person-in), else its configured mode. */
  scheduledMode(door: string): DoorMode {
    const d = this.o.doors.get(door);
    const st = this.schedules.get(door);
    const base = d?.baseMode ?? 'normal';
    if (!d?.passage || !st) return base;
    return st.inWindow && (!d.passage.firstPersonIn || st.started) ? 'passage' : base;
  }

  private inPassageWindow(d: AccessDoor, nowMs: number): boolean {
    const p = d.passage!;
    const tz = d.context.timezone;
    if (p.suspendOnHolidays && d.context.policy && isHoliday(d.context.policy, nowMs, tz)) return false;
    return p.rules.some((r) => ruleMatches(r, nowMs, tz));
  }

  /**
   * Follow passage schedules: at a window's start or end the door takes the scheduled mode, unless a
   * timed manual mode is running; a manual mode without an end gives way at the schedule's next change.
   */
  tickSchedules(): void {
    const nowMs = this.now();
    for (const [id, d] of this.o.doors) {
      if (!d.passage) continue;
      const inWindow = this.inPassageWindow(d, nowMs);
      let st = this.schedules.get(id);
      if (!st) {
        // At start: a mode other than the configured one was set by hand (a scheduled one is not
        // restored): it stands until the schedule next changes.
        this.schedules.set(id, (st = { inWindow, started: false, manual: d.context.mode !== (d.baseMode ?? 'normal') }));
        const want = this.scheduledMode(id);
        if (!st.manual && !this.modeTimers.has(id) && want !== d.context.mode) this.setMode(id, want, { by: 'schedule', auto: true });
        continue;
      }
      if (inWindow !== st.inWindow) {
        st.inWindow = inWindow;
        st.started = false;
        st.manual = false;
        if (this.modeTimers.has(id)) continue;
        const want = this.scheduledMode(id);
        if (want !== d.context.mode) this.setMode(id, want, { by: inWindow ? 'schedule (window starts)' : 'schedule (window ends)', auto: true });
      }
    }
  }

  /** First-person-in: the first grant to an allowed person inside the window starts the passage. */
  private maybeFirstPersonIn(id: string, d: AccessDoor, dec: Decision): void {
    const fpi = d.passage?.firstPersonIn;
    const st = this.schedules.get(id);
    if (!fpi || !st?.inWindow || st.started || st.manual || this.modeTimers.has(id) || dec.decision !== 'grant' || dec.userid === null) return;
    if (!fpi({ userid: dec.userid, user_type: dec.user_type })) return;
    st.started = true;
    this.setMode(id, 'passage', { by: `first person in: ${dec.userid}`, auto: true });
  }

  /** Put every door in passage into it (at start: a persisted or configured passage holds the lock). */
  holdPassageDoors(): void {
    for (const d of this.o.doors.values()) if (d.context.mode === 'passage') d.relay.pulse(HOLD_MS);
  }

  /** The door's mode applied to its relay again (after a safety release let go: passage holds it again). */
  reassertMode(door: string): void {
    const d = this.o.doors.get(door);
    if (d?.context.mode === 'passage') d.relay.pulse(HOLD_MS);
  }

  /** Re-lock a door now (ends a pulse in progress). */
  relock(door: string): boolean {
    const d = this.o.doors.get(door);
    d?.relay.relock();
    return d !== undefined;
  }

  stop(): void {
    this.stopped = true;
    if (this.scheduleTimer) clearTimeout(this.scheduleTimer);
    for (const t of this.modeTimers.values()) clearTimeout(t.timer);
    this.modes$.complete();
    this.doorEvents$.complete();
    this.subs.unsubscribe();
    this.decisions$.complete();
  }
}
