/**
 * Reader kinds: each turns its configuration into a credential source with a start/stop lifecycle
 * (and, for readers that have one, a feedback channel: LED, buzzer, display). The gateway asks this
 * table; a new kind (OSDP, Wiegand, …) is its module in this folder, one line here and its schema
 * keys in config/schema.ts.
 */
import type { ReaderConfig } from '../../config/schema.js';
import { openHidReader } from './hid.js';
import { openWiegandReader } from './wiegand.js';
import { openMqttReader } from './mqtt.js';
import { openOsdpReader } from './osdp.js';
import type { ReaderFactory } from './reader.js';
import { openTerminalReader } from './terminal.js';

export const READER_KINDS: { [K in ReaderConfig['type']]: ReaderFactory<K> } = {
  terminal: openTerminalReader,
  mqtt: openMqttReader,
  hid: openHidReader,
  wiegand: openWiegandReader,
  osdp: openOsdpReader,
};

/** Open a reader by its kind (the table is indexed by the same `type` the configuration narrowed on). */
export function openReader(r: ReaderConfig, ctx: Parameters<ReaderFactory>[1]): ReturnType<ReaderFactory> {
  return (READER_KINDS[r.type] as ReaderFactory)(r, ctx);
}
