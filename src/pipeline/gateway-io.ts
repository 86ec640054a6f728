/**
 * The gateway's own inputs and outputs (io.*): named inputs (fire panel, enclosure tamper, UPS,
 * power, panic, doorbell…) and outputs (siren, strobe, auxiliary relays), the fire release they
 * drive, and linkage rules (domain/linkage.ts) carried out here, each action journaled with its
 * cause. Opened before the first decision: outputs at idle, a latched fire release restored, then
 * inputs — whose level at start is a state (a fire panel already in alarm releases at once).
 */
import { Subject, Subscription, type Observable } from 'rxjs';
import type { Config } from '../config/schema.js';
import { groupMembers } from '../domain/door-policy.js';
import { GATEWAY_DOOR, linkageSteps, type Happening, type LinkStep } from '../domain/linkage.js';
import type { DoorEvent } from '../domain/events.js';
import { localStamp } from '../domain/localtime.js';
import { openInput, openOutput, type Input, type InputSpec } from '../io/gpio/backends.js';
import { HOLD_MS, type Relay } from '../io/relay.js';
import type { Logger } from '../log.js';
import type { AccessPipeline } from './access.js';
import type { DoorUnit } from './door-unit.js';
import type { IoStatus } from '../domain/io-status.js';
import { FireRelease } from './fire-release.js';
import { LiftFloors, liftPolicy } from './lift.js';
import type { DecisionEvent } from '../domain/events.js';

/** Linkage journal entries per rule per minute; beyond, counted and summed up (a flapping input cannot flood the journal). */
const JOURNAL_PER_MIN = 20;

export interface GatewayIoContext {
  config: Config;
  log: Logger;
  doors: readonly DoorUnit[];
  pipeline: AccessPipeline;
  meta: { get(key: string): Promise<unknown>; put(key: string, value: { cause: string; since: number } | null): Promise<void> };
  /** Journal and log a door event (a gateway-wide one carries door `gateway`). */
  doorEvent: (e: DoorEvent) => void;
  inputFactory?: ((spec: InputSpec) => Promise<Input>) | undefined;
  /** Whether a person is in a group (configured lists, or their local or site record): lift floors. */
  memberOf: (userid: string, group: string) => boolean;
  now?: () => number;
}

export class GatewayIo {
  readonly fire: FireRelease;
  /** A named input changed (debounced, logical level). */
  readonly inputs$ = new Subject<{ name: string; active: boolean }>();
  readonly outputs = new Map<string, Relay>();
  /** Lift cars by door id. */
  readonly lifts = new Map<string, LiftFloors>();
  private readonly inputs = new Map<string, Input>();
  private readonly levels = new Map<string, boolean>();
  private readonly subs = new Subscription();
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly journaled = new Map<string, { minute: number; n: number; dropped: number }>();

  constructor(private readonly c: GatewayIoContext) {
    this.now = c.now ?? Date.now;
    this.log = c.log.child({ module: 'io' });
    this.fire = new FireRelease({
      doors: new Map(c.doors.map((u) => [u.id, { safety: u.safety, state: u.state }])),
      meta: c.meta,
      doorEvent: c.doorEvent,
      reapply: (door) => c.pipeline.reassertMode(door),
      log: this.log,
      now: this.now,
    });
  }

  /** Outputs at idle, the latched fire release restored, then inputs (each read at once). */
  async open(): Promise<void> {
    const { config } = this.c;
    for (const [name, o] of Object.entries(config.io.outputs)) this.outputs.set(name, await openOutput(name, o, config, this.c.log));
    for (const d of config.doors) {
      if (!d.lift) continue;
      const outputs = new Map(d.lift.floors.map(({ floor, output }) => [floor, this.outputs.get(output)!]));
      this.lifts.set(d.id, new LiftFloors({ door: d.id, policy: liftPolicy(d.lift, d.timezone ?? config.timezone), outputs, enableMs: d.lift.enable_s * 1000, memberOf: this.c.memberOf, doorEvent: this.c.doorEvent, log: this.log, now: this.now }));
    }
    // A fire release of a car opens its fire floors (restored latches included).
    this.subs.add(this.fire.changed$.subscribe(({ door, released }) => this.lifts.get(door)?.fire(released)));
    await this.fire.restore();
    const make = this.c.inputFactory ?? ((spec: InputSpec) => openInput(spec, config, this.c.log));
    for (const [name, i] of Object.entries(config.io.inputs)) {
      // A digital input sees two levels: only a cut wire that reads as the alarm is supervised.
      const supervised = (!i.active_low && i.bias === 'pull-up') || (i.active_low && i.bias === 'pull-down');
      if (config.io.fire.some((f) => f.input === name) && !supervised) this.log.warn({ input: name, active_low: i.active_low, bias: i.bias }, 'fire input not supervised: a cut wire would read as no alarm. Wire the panel\'s normally-closed contact to ground with active_low: false and bias: pull-up (docs/hardware.md)');
      const input = await make({ door: 'io', name, pin: i.pin, line: i.line, activeLow: i.active_low, debounceMs: i.debounce_ms, bias: i.bias === 'as-is' ? undefined : i.bias, onChange: (active) => this.changed(name, active, false) });
      this.inputs.set(name, input);
      this.levels.set(name, false);
      this.changed(name, input.active, true);
    }
  }

  /** Lift cars follow grants at their readers, and their free-access schedules. */
  startLifts(decisions$: Observable<DecisionEvent>): void {
    if (!this.lifts.size) return;
    this.subs.add(decisions$.subscribe((d) => d.decision === 'grant' && this.lifts.get(d.door)?.granted(d)));
    for (const l of this.lifts.values()) l.start();
  }

  /** Linkage rules from now on: on named inputs and on every journaled door event. */
  startLinkage(doorEvents$: Observable<DoorEvent>): void {
    if (!this.c.config.io.linkage.length) return;
    this.subs.add(this.inputs$.subscribe(({ name, active }) => this.link({ kind: 'input', name, active })));
    this.subs.add(doorEvents$.subscribe((e) => e.type !== 'linkage' && this.link({ kind: 'event', type: e.type, door: e.door })));
    // Inputs already active at start are a state: their rules act now.
    for (const [name, active] of this.levels) if (active) this.link({ kind: 'input', name, active: true });
  }

  private changed(name: string, active: boolean, atStart: boolean): void {
    if (!atStart && this.levels.get(name) === active) return;
    this.levels.set(name, active);
    const cfg = this.c.config.io;
    // Fire first: the relays move before anything is logged.
    for (const f of cfg.fire) {
      if (f.input !== name) continue;
      if (atStart && !active) continue;
      this.fire.source(`input:${name}`, f.doors ?? this.c.doors.map((u) => u.id), active, { latch: f.latch, cause: active ? `fire input ${name}${atStart ? ' (active when the gateway started)' : ''}` : `fire input ${name} back to normal` });
    }
    const i = cfg.inputs[name]!;
    if (i.alarm !== 'none' && (active || !atStart)) {
      const what = `${i.name ?? name} (${i.alarm})`;
      this.c.doorEvent({ type: active ? 'io_alarm' : 'io_alarm_cleared', door: GATEWAY_DOOR, at: this.now(), detail: active ? `${what}${atStart ? ' active when the gateway started' : ''}` : `${what} back to normal` });
    }
    if (!atStart) {
      this.log.info({ input: name, active }, 'input changed');
      this.inputs$.next({ name, active });
    }
  }

  /** Carry out the steps of one happening, each journaled with its rule and cause. */
  private link(h: Happening): void {
    const doors = this.c.doors.map((u) => u.id);
    const steps = linkageSteps(this.c.config.io.linkage, h, this.now(), doors);
    for (const s of steps) {
      try {
        this.carryOut(s);
      } catch (err) {
        this.log.error({ err, rule: s.rule }, 'linkage action failed');
      }
      this.journal(s);
    }
  }

  private carryOut(s: LinkStep): void {
    const c = s.command;
    if (c.kind === 'pulse') this.outputs.get(c.output)?.pulse(c.ms);
    else if (c.kind === 'hold') {
      const out = this.outputs.get(c.output);
      if (c.on) out?.pulse(HOLD_MS);
      else out?.relock();
    } else if (c.kind === 'mode') {
      if (!this.c.pipeline.setMode(c.door, c.mode, { untilMs: c.untilMs, by: `linkage:${s.rule}` })) this.log.warn({ rule: s.rule, door: c.door, mode: c.mode, held_by: this.c.pipeline.heldBy(c.door) }, 'linkage: door mode not changed (a threat level holds the door)');
    } else if (c.kind === 'deny') {
      const users = groupMembers(this.c.config.groups, c.groups);
      this.c.pipeline.setDeny(c.door, s.rule, c.on ? { users, groups: new Set(c.groups), why: `${s.cause} (rule ${s.rule})` } : null);
    } else if (c.kind === 'site_level') {
      // Site facts come up after the inputs: a panic input active at start raises once they are loaded.
      if (this.raiseLevel) this.raiseLevel(c.level, c.scope, `${s.cause} (rule ${s.rule})`);
      else this.pendingLevels.push({ level: c.level, scope: c.scope, why: `${s.cause} (rule ${s.rule})` });
    } else this.c.doorEvent({ type: 'linkage_alarm', door: GATEWAY_DOOR, at: this.now(), detail: `${c.text} (rule ${s.rule}: ${s.cause})` });
  }

  private journal(s: LinkStep): void {
    const minute = Math.floor(this.now() / 60_000);
    let j = this.journaled.get(s.rule);
    if (!j || j.minute !== minute) {
      if (j?.dropped) this.c.doorEvent({ type: 'linkage', door: GATEWAY_DOOR, at: this.now(), detail: `rule ${s.rule}: ${j.dropped} more actions in the last minute not journaled one by one` });
      this.journaled.set(s.rule, (j = { minute, n: 0, dropped: 0 }));
    }
    if (j.n++ >= JOURNAL_PER_MIN) return void j.dropped++;
    const c = s.command;
    const zone = this.c.config.timezone;
    const what = c.kind === 'pulse' ? `output ${c.output} on for ${c.ms / 1000} s` : c.kind === 'hold' ? `output ${c.output} ${c.on ? 'on while the input is active' : 'off'}` : c.kind === 'mode' ? `door ${c.door} ${c.mode}${c.untilMs !== undefined ? ` until ${localStamp(c.untilMs, zone)}` : ''}` : c.kind === 'deny' ? `${c.on ? 'deny' : 'no longer deny'} ${c.groups.join(', ')} at ${c.door}` : c.kind === 'site_level' ? `site threat level ${c.level} (${c.scope})` : `alarm: ${c.text}`;
    this.c.doorEvent({ type: 'linkage', door: c.kind === 'mode' || c.kind === 'deny' ? c.door : GATEWAY_DOOR, at: this.now(), detail: `rule ${s.rule} on ${s.cause}: ${what}` });
  }

  private raiseLevel: ((level: string, scope: string, why: string) => void) | null = null;
  private pendingLevels: { level: string; scope: string; why: string }[] = [];

  /** The site's threat levels can be raised now (site facts loaded): what rules asked for meanwhile goes first. */
  attachSiteLevels(raise: (level: string, scope: string, why: string) => void): void {
    this.raiseLevel = raise;
    for (const p of this.pendingLevels.splice(0)) raise(p.level, p.scope, p.why);
  }

  /** A named input's level now (undefined: no such input). */
  inputActive(name: string): boolean | undefined {
    return this.levels.get(name);
  }

  status(): IoStatus {
    const { inputs, outputs } = this.c.config.io;
    return {
      inputs: Object.entries(inputs).map(([name, i]) => ({ name, label: i.name ?? name, alarm: i.alarm, active: this.levels.get(name) ?? false })),
      outputs: Object.entries(outputs).map(([name, o]) => ({ name, label: o.name ?? name, on: this.outputs.get(name)?.state$.value ?? false })),
      fire: this.fire.status(),
      lifts: [...this.lifts.values()].map((l) => l.status()),
    };
  }

  async close(): Promise<void> {
    this.subs.unsubscribe();
    for (const l of this.lifts.values()) l.stop();
    for (const i of this.inputs.values()) i.close();
    for (const o of this.outputs.values()) await o.close();
    this.fire.stop();
    this.inputs$.complete();
  }
}
