/** What every reader kind provides, and what it is given. */
import type { Readable } from 'node:stream';
import type { Observable } from 'rxjs';
import type { Config, DoorConfig, ReaderConfig } from '../../config/schema.js';
import type { CredentialEvent, DecisionEvent } from '../../domain/events.js';
import type { Logger } from '../../log.js';

export interface ReaderSource {
  /** Credentials presented at this reader (its door and direction filled in). */
  readonly credentials$: Observable<CredentialEvent>;
  /** Tell the person at the reader how it went (readers with LEDs, buzzers, displays). */
  feedback?(d: DecisionEvent): void;
  /** Frames the reader received but could not use (Wiegand parity, length, timing): dropped, counted. */
  badFrames?(): number;
  close(): void | Promise<void>;
}

export interface ReaderContext {
  config: Config;
  door: DoorConfig;
  log: Logger;
  /** Where `terminal` readers read lines. */
  terminalInput: Readable;
  /** Credentials the MQTT bridge received on reader topics (all readers; each kind filters its own). */
  mqttCredentials: Observable<CredentialEvent>;
}

export type ReaderFactory = (reader: ReaderConfig, ctx: ReaderContext) => Promise<ReaderSource>;

export class ReaderUnavailableError extends Error {}
