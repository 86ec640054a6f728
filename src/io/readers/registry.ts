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

export const READER_KINDS: Record<ReaderConfig['type'], ReaderFactory> = {
  terminal: openTerminalReader,
  mqtt: openMqttReader,
  hid: openHidReader,
  wiegand: openWiegandReader,
  osdp: openOsdpReader,
};
