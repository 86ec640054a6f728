/** What every reader kind provides, and what it is given. */
import type { Readable } from 'node:stream';
import type { Observable } from 'rxjs';
import type { Config, DoorConfig, ReaderConfig, ReaderOf } from '../../config/schema.js';
import type { CredentialEvent, DecisionEvent, DoorEvent } from '../../domain/events.js';
import type { DoorMode } from '../../domain/types.js';
import type { Logger } from '../../log.js';

export interface ReaderSource {
  /** Credentials presented at this reader (its door and direction filled in). */
  readonly credentials$: Observable<CredentialEvent>;
  /** Tell the person at the reader how it went (readers with LEDs, buzzers, displays). */
  feedback?(d: DecisionEvent): void;
  /** Frames the reader received but could not use (Wiegand parity, length, timing): dropped, counted. */
  badFrames?(): number;
  /** Supervised readers (OSDP): online/offline, tamper, power, secure-channel alarms of this reader. */
  readonly events$?: Observable<DoorEvent>;
  /** Supervised readers: the link as it is now, for status, metrics and Home Assistant. */
  status?(): ReaderStatus;
  /** OSDP: give the reader a fresh secure-channel key. */
  enroll?(): Promise<ReaderStatus>;
  /** The door's mode changed (a reader may show it: a red LED in lockdown). */
  modeChanged?(mode: DoorMode): void;
  close(): void | Promise<void>;
}

/** A supervised reader's link. */
export interface ReaderStatus {
  id: string;
  door: string;
  type: string;
  /** online; install: answering on the default key, awaiting enrollment; refused: secure channel refused; connecting; offline. */
  state: 'online' | 'install' | 'refused' | 'connecting' | 'offline';
  secure: boolean;
  /** Why it is in that state (last change). */
  detail: string;
  tamper: boolean | null;
  power_failure: boolean | null;
  path?: string;
  address?: number;
  check?: 'crc' | 'checksum';
  enrolled?: boolean;
  device?: { vendor: string; model: number; serial: number; firmware: string } | null;
  counters?: Record<string, number>;
  /** Seconds in the current state, and session restarts in the last minute (supervised readers). */
  state_for_s?: number;
  restarts_last_minute?: number;
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

/** Opens one kind's readers (its own configuration keys, by the schema of that kind). */
export type ReaderFactory<K extends ReaderConfig['type'] = ReaderConfig['type']> = (reader: ReaderOf<K>, ctx: ReaderContext) => Promise<ReaderSource>;

export class ReaderUnavailableError extends Error {}
