/**
 * How the gateway's own inputs, outputs and fire release are reported (status, MQTT, the console,
 * metrics): in the domain, so the control layer can name it without depending on the pipeline.
 */

export interface FireDoorStatus {
  door: string;
  released: boolean;
  /** Sources active now. */
  active: { source: string; cause: string; since: number }[];
  /** Held released after the sources cleared, until reset. */
  latched: { cause: string; since: number } | null;
}

export interface FireStatus {
  /** Doors released by fire now. */
  released: string[];
  doors: FireDoorStatus[];
}

export interface LiftStatus {
  door: string;
  /** Each floor: enabled now, and what holds it (grant, free access, fire). */
  floors: { floor: string; on: boolean; why: string[] }[];
}

export interface IoStatus {
  inputs: { name: string; label: string; alarm: string; active: boolean }[];
  outputs: { name: string; label: string; on: boolean }[];
  fire: FireStatus;
  lifts: LiftStatus[];
}

export interface FireResetReport {
  reset: string[];
  refused: { door: string; reason: string }[];
}
