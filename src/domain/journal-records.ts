/**
 * What a door journals, in the domain's terms (the store keeps them, the site bus carries them, the
 * collector writes them into PostgreSQL): a decision, and a door event. Both take their sequence
 * number from the one counter of the door's store, so (gateway, seq) names one record of a door.
 */
import type { Decision } from './types.js';

/** A decision as journaled. */
export interface JournalEntry extends Omit<Decision, 'replay'> {
  seq: number;
  latency_us?: number;
  reader?: string;
  direction?: string;
}

/** A door event as journaled: contact changes, alarms, reader alarms, site and fire events. */
export interface DoorEventRecord {
  type: string;
  door: string;
  at: number;
  reader?: string;
  detail?: string;
}

/** One record of a door's journal by sequence: a decision or a door event. */
export type JournalRecord = { seq: number; kind: 'decision'; entry: JournalEntry } | { seq: number; kind: 'event'; entry: DoorEventRecord & { seq: number } };
