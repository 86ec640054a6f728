import type { Credential, Decision, Direction } from '../domain/types.js';

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
