/**
 * Musters at a gateway (issue 24): a muster of an area begins when a fire release begins at one of
 * its doors (or an operator starts one), lists who is inside (domain/muster.ts, from the presence
 * the doors decide from — for a site area, every gateway's), and records who is marked safe, each
 * mark journaled with the operator. The list is always at hand: `doorgw muster`, the MQTT request,
 * the API; a muster only adds the "since" and the safe marks.
 *
 * Safe marks are this gateway's: a guard marks people safe at the door (or console) they stand at.
 */
import type { Config } from '../config/schema.js';
import type { AreaPolicy } from '../domain/area-passback.js';
import type { Stamp } from '../domain/clock.js';
import type { DoorEvent } from '../domain/events.js';
import { musterList, type MusterActions, type MusterArea, type MusterReport } from '../domain/muster.js';
import type { Logger } from '../log.js';
import type { AccessPipeline } from './access.js';
import { areaPolicy } from './door-unit.js';

interface Session {
  at: number;
  by: string;
  cause: string;
  safe: Map<string, { by: string; at: number }>;
}

export class MusterBook implements MusterActions {
  private readonly policies: Map<string, AreaPolicy>;
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly o: {
      config: Config;
      pipeline: AccessPipeline;
      log: Logger;
      doorEvent: (e: DoorEvent) => void;
      nameOf: (userid: string) => string | null;
      now: () => Required<Stamp>;
      staleness?: (area: string) => number | null;
    },
  ) {
    this.policies = new Map(Object.keys(o.config.areas).map((name) => [name, areaPolicy(name, o.config)]));
  }

  private check(area: string): AreaPolicy {
    const p = this.policies.get(area);
    if (!p) throw new Error(`no area '${area}' (areas: ${[...this.policies.keys()].join(', ') || 'none'})`);
    return p;
  }

  /** A fire release began at a door: a muster of each area it is in, unless one is on. */
  onFire(door: string, cause: string): void {
    for (const [name, a] of Object.entries(this.o.config.areas)) if (a.doors.includes(door) && !this.sessions.has(name)) this.start(name, 'fire release', cause);
  }

  start(area: string, by: string, cause = 'started by an operator'): MusterArea {
    this.check(area);
    const at = this.o.now().at;
    this.sessions.set(area, { at, by, cause, safe: new Map() });
    const r = this.area(area);
    this.journal(area, 'muster_started', `${r.inside.length} inside area '${area}' (${by}: ${cause})`);
    this.o.log.warn({ area, inside: r.inside.length, by, cause }, 'muster started');
    return r;
  }

  end(area: string, by: string): boolean {
    this.check(area);
    const s = this.sessions.get(area);
    if (!s) return false;
    this.sessions.delete(area);
    this.journal(area, 'muster_ended', `area '${area}' by ${by}; ${s.safe.size} marked safe`);
    return true;
  }

  /** Mark a person safe (journaled with who did). A person not inside is refused: the list is what is accounted for. */
  markSafe(area: string, userid: string, by: string): { marked: boolean; reason?: string } {
    this.check(area);
    const s = this.sessions.get(area);
    if (!s) return { marked: false, reason: `no muster of area '${area}' is on (doorgw muster start --area ${area})` };
    if (!this.area(area).inside.some((p) => p.userid === userid)) return { marked: false, reason: `${userid} is not inside area '${area}'` };
    s.safe.set(userid, { by, at: this.o.now().at });
    this.journal(area, 'muster_safe', `${userid} safe (area '${area}', marked by ${by})`);
    return { marked: true };
  }

  area(name: string): MusterArea {
    const policy = this.check(name);
    const s = this.sessions.get(name);
    const inside = musterList(this.o.pipeline.presenceIn(name), policy, this.o.now(), s?.safe ?? new Map(), this.o.nameOf);
    const safe = inside.filter((p) => p.safe).length;
    return { area: name, site: policy.site === true, stale_s: policy.site ? (this.o.staleness?.(name) ?? null) : null, started: s ? { at: s.at, by: s.by, cause: s.cause } : null, inside, safe, unaccounted: inside.length - safe };
  }

  report(area?: string): MusterReport {
    if (area !== undefined) this.check(area);
    return { at: this.o.now().at, areas: (area !== undefined ? [area] : [...this.policies.keys()]).map((a) => this.area(a)) };
  }

  private journal(area: string, type: 'muster_started' | 'muster_ended' | 'muster_safe', detail: string): void {
    const door = this.o.config.areas[area]!.doors[0]!;
    this.o.doorEvent({ type, door, at: this.o.now().at, detail });
  }
}
