/**
 * One door as the gateway runs it, built from its configuration: the relay (at its idle level from
 * the start), the door state machine, the exit button and door contact, the readers (through the
 * reader registry) and the fingerprint module's matches. Everything it opened it closes.
 */
import type { Readable } from 'node:stream';
import { map, Subject, type Observable } from 'rxjs';
import { DEFAULT_READER_KINDS, DEFAULT_READER_RATE, type Config, type DoorConfig } from '../config/schema.js';
import { compileDoorPolicy, groupMembers } from '../domain/door-policy.js';
import type { AreaPolicy } from '../domain/area-passback.js';
import { parseSavedMode } from '../domain/modes.js';
import { parseRule } from '../domain/rules.js';
import { credentialEvent, type CredentialEvent, type DoorEvent } from '../domain/events.js';
import type { FingerprintModule } from '../io/fingerprint.js';
import { openInput, openRelay, type Input, type InputSpec } from '../io/gpio/backends.js';
import type { ReaderSource } from '../io/readers/reader.js';
import { openReader } from '../io/readers/registry.js';
import type { Relay } from '../io/relay.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { AccessDoor, PassageSchedule } from './access.js';
import { DoorStateMachine } from './door-state.js';
import { SafetyRelay } from './safety-relay.js';
import type { ReaderTrust } from './reader-gate.js';

export interface DoorUnitContext {
  config: Config;
  log: Logger;
  store: Store;
  terminalInput: Readable;
  /** Credentials the MQTT bridge receives for readers of type mqtt. */
  mqttCredentials: Observable<CredentialEvent>;
  /** The gateway's fingerprint module, when this door is the one it serves. */
  fingerprint: FingerprintModule | null;
  /** Contact changes and alarms of this door. */
  onDoorEvent: (e: DoorEvent) => void;
  relayFactory?: ((door: DoorConfig, log: Logger) => Relay) | undefined;
  inputFactory?: ((spec: InputSpec) => Promise<Input>) | undefined;
}

export interface DoorUnit {
  readonly id: string;
  readonly relay: Relay;
  /** The relay as the door logic drives it: a fire release holds it released over everything. */
  readonly safety: SafetyRelay;
  readonly state: DoorStateMachine;
  /** What the access pipeline needs of it (mode, zone, relay, pulse). */
  readonly access: AccessDoor;
  /** Its credential sources: readers, exit button, fingerprint module. */
  readonly sources: Observable<CredentialEvent>[];
  /** What each of its readers may present, and how fast. */
  readonly trust: [string, ReaderTrust][];
  readonly readers: ReadonlyMap<string, ReaderSource>;
  /** A restored timed mode ends then (unix ms). */
  readonly modeUntil: number | null;
  /** Stop inputs, readers and timers (the relay is closed apart, after the pipeline stops). */
  stop(): Promise<void>;
}

export async function buildDoor(d: DoorConfig, ctx: DoorUnitContext): Promise<DoorUnit> {
  const { config, log } = ctx;
  const opened: { close(): void | Promise<void> }[] = [];
  const relay = ctx.relayFactory ? ctx.relayFactory(d, log) : await openRelay(d, config, log);
  const safety = new SafetyRelay(relay);
  try {
    // A mode set at run time (MQTT, CLI) outlives a restart: a door locked down stays locked down,
    // until its timed mode ends (then back to the configured mode).
    const saved = parseSavedMode(await ctx.store.getMeta(`door.${d.id}.mode`), Date.now());
    const mode = saved?.mode ?? d.mode;
    const state = new DoorStateMachine(d.id, {
      heldOpenS: d.alarms.held_open_s,
      prealarmS: d.alarms.prealarm_s,
      openGraceS: d.alarms.open_grace_s,
      relockOnClose: d.alarms.relock_on_close,
      relock: () => safety.relock(),
    });
    opened.push({ close: () => state.stop() });
    relay.state$.subscribe((released) => state.lockChanged(released));
    state.events$.subscribe(ctx.onDoorEvent);

    const sources: Observable<CredentialEvent>[] = [];
    const makeInput = ctx.inputFactory ?? ((spec: InputSpec) => openInput(spec, config, log));
    const { exit_button: exit, door_contact: contact } = d.inputs;
    if (exit) {
      const presses = new Subject<CredentialEvent>();
      sources.push(presses);
      const button = await makeInput({ door: d.id, name: 'exit_button', pin: exit.pin, line: exit.line, activeLow: exit.active_low, debounceMs: exit.debounce_ms, onChange: (pressed) => pressed && presses.next(credentialEvent(d.id, 'exit_button', 'out', { type: 'exit' })) });
      opened.push(button);
      // Pressed at start is a state, not a press: never an opening (a stuck button would open the door at every restart).
      if (button.active) log.warn({ door: d.id }, 'exit button reads pressed at start (held, stuck, or wired with the wrong active_low?): not taken as a request to exit; the next press is');
    }
    if (contact) {
      const input = await makeInput({ door: d.id, name: 'door_contact', pin: contact.pin, line: contact.line, activeLow: contact.active_low, debounceMs: contact.debounce_ms, onChange: (closed) => state.contactChanged(closed ? 'closed' : 'open') });
      opened.push(input);
      state.startContact(input.active ? 'closed' : 'open');
    }

    const readers = new Map<string, ReaderSource>();
    const trust: [string, ReaderTrust][] = [];
    for (const r of d.readers) {
      const source = await openReader(r, { config, door: d, log, terminalInput: ctx.terminalInput, mqttCredentials: ctx.mqttCredentials });
      opened.push(source);
      readers.set(r.id, source);
      sources.push(source.credentials$);
      source.events$?.subscribe(ctx.onDoorEvent);
      const rate = r.rate_limit ?? DEFAULT_READER_RATE[r.type];
      trust.push([r.id, { accepts: r.accepts ?? DEFAULT_READER_KINDS[r.type], rate: rate && { perS: rate.per_s, burst: rate.burst } }]);
    }
    if (ctx.fingerprint) {
      sources.push(ctx.fingerprint.matches$.pipe(map((m) => credentialEvent(d.id, 'fingerprint', 'in', { type: 'userid', value: m.userid, method: 'fingerprint' }))));
      // A finger that matched nobody is decided like an unknown card: denied unknown_user, journaled.
      if (ctx.fingerprint.unmatched$) sources.push(ctx.fingerprint.unmatched$.pipe(map(() => credentialEvent(d.id, 'fingerprint', 'in', { type: 'userid', value: '', method: 'fingerprint' }))));
    }

    return {
      id: d.id,
      relay,
      safety,
      state,
      access: {
        context: { id: d.id, mode, timezone: d.timezone ?? config.timezone, policy: compileDoorPolicy(d.policy, config.groups, config.holidays) },
        relay: safety,
        pulseMs: d.relay.pulse_ms,
        baseMode: d.mode,
        ...(d.policy.passage ? { passage: passageSchedule(d.policy.passage, config.groups) } : {}),
        ...areaOf(d, config),
        ...(d.alarms.deny_burst ? { denyBurst: { count: d.alarms.deny_burst.count, withinMs: d.alarms.deny_burst.within_s * 1000 } } : {}),
        ...(d.policy.anti_passback_s !== undefined || d.policy.two_person_s !== undefined ? { sequence: { antiPassbackS: d.policy.anti_passback_s ?? null, twoPersonS: d.policy.two_person_s ?? null } } : {}),
      },
      sources,
      trust,
      readers,
      modeUntil: saved?.until ?? null,
      stop: () => closeAll(opened),
    };
  } catch (e) {
    await closeAll(opened);
    await relay.close();
    throw e;
  }
}

async function closeAll(opened: { close(): void | Promise<void> }[]): Promise<void> {
  for (const o of opened.splice(0).reverse()) await o.close();
}

/**
 * Interlocks (mantraps): each door of a group is held while another of the group is open (its
 * contact) or released (its relay). Decided at the moment of the grant, from live door state.
 */
export function wireInterlocks(groups: Readonly<Record<string, readonly string[]>>, units: readonly DoorUnit[]): void {
  const byId = new Map(units.map((u) => [u.id, u]));
  for (const members of Object.values(groups)) {
    const doors = members.map((m) => byId.get(m)).filter((u): u is DoorUnit => u !== undefined);
    for (const u of doors) {
      const others = doors.filter((o) => o !== u);
      u.access.interlockedBy = () => others.find((o) => o.relay.state$.value || o.state.state$.value.contact === 'open')?.id ?? null;
    }
  }
}


function passageSchedule(p: NonNullable<DoorConfig['policy']['passage']>, groups: Readonly<Record<string, readonly string[]>>): PassageSchedule {
  const rules = p.schedule.map((text, i) => {
    const r = parseRule(text, i);
    if (!r.ok) throw new RangeError(`passage schedule '${text}': ${r.error}`); // the schema refused it already
    return r.rule;
  });
  const fpi = p.first_person_in;
  const members = groupMembers(groups, fpi?.groups ?? []);
  return {
    rules,
    suspendOnHolidays: p.suspend_on_holidays,
    firstPersonIn: fpi ? (u) => members.has(u.userid) || (fpi.employees && u.user_type === 0) : null,
  };
}

/** The anti-passback area of a door, if it is in one. */
function areaOf(d: DoorConfig, config: Config): { area: AreaPolicy } | Record<string, never> {
  const entry = Object.entries(config.areas).find(([, a]) => a.doors.includes(d.id));
  return entry ? { area: areaPolicy(entry[0], config, d.timezone ?? config.timezone) } : {};
}

/** An area's policy, in a zone (a door's; for the area as a whole, its first door's). */
export function areaPolicy(name: string, config: Config, zone?: string): AreaPolicy {
  const a = config.areas[name]!;
  const reset = a.reset_at?.split(':').map(Number);
  const timezone = zone ?? config.doors.find((d) => d.id === a.doors[0])?.timezone ?? config.timezone;
  return { name, hard: a.mode === 'hard', timeoutS: a.timeout_s ?? null, resetMinute: reset ? reset[0]! * 60 + reset[1]! : null, timezone, site: a.site };
}
