/**
 * Home Assistant MQTT discovery: per door a lock (with open), a door-contact binary_sensor, an event
 * entity for access decisions, a sensor for the last decision and a select for the door's mode; per gateway a cloud-link
 * binary_sensor. Retained configs under `<prefix>/<component>/<gateway>/<object>/config` with
 * stable unique_ids, one device, origin and availability.
 */
import { DOOR_MODES } from '../../domain/types.js';
import type { Topics } from './topics.js';

/** Event types on `…/door/<door>/event`: decisions, then door events from the contact. */
export const ACCESS_EVENT_TYPES = ['granted', 'denied', 'contact_open', 'contact_closed', 'forced_open', 'held_open_prealarm', 'held_open', 'alarm_cleared', 'relocked_on_close', 'reader_claim_refused', 'reader_flood', 'storage_failure', 'storage_recovered', 'disk_low', 'disk_ok', 'duress', 'mode_changed', 'anti_passback_violation', 'reader_offline', 'reader_online', 'reader_tamper', 'reader_tamper_cleared', 'reader_power_failure', 'reader_power_restored', 'reader_secure_channel_failure', 'reader_enrolled', 'fire_release', 'fire_cleared', 'fire_reset', 'linkage', 'threat_level'] as const;

export interface DiscoveryInput {
  prefix: string;
  topics: Topics;
  gatewayId: string;
  version: string;
  doors: { id: string; name?: string | undefined }[];
  /** A cloud provider is configured: without one there is no cloud link or sync to show. */
  cloud: boolean;
  /** Supervised (OSDP) readers: each a connectivity and a tamper sensor. */
  readers?: { id: string; door: string }[];
  /** Doors a fire source governs (io.fire, the site's fire level): each a safety sensor; a reset button. */
  fireDoors?: string[];
  /** The site is on: a threat-level sensor per door. */
  site?: boolean;
  /** Named inputs (io.inputs): each a binary sensor of the kind its alarm says. */
  inputs?: { name: string; label: string; alarm: string }[];
}

/** Home Assistant's binary-sensor class for a named input's alarm kind (ON = the input active). */
const INPUT_CLASS: Record<string, string | undefined> = { tamper: 'tamper', ups_battery: 'problem', power_fail: 'problem', panic: 'safety', alarm: 'problem', none: undefined };

/** Discovery topic → config payload. */
export function discoveryConfigs(o: DiscoveryInput): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  const node = o.gatewayId.replace(/[^A-Za-z0-9_-]/g, '_');
  const device = { identifiers: [`doorgw_${node}`], name: `doorgw ${o.gatewayId}`, manufacturer: 'doorgw', model: 'Door gateway', sw_version: o.version };
  const origin = { name: 'doorgw', sw_version: o.version };
  const availability = [{ topic: o.topics.availability(), payload_available: 'online', payload_not_available: 'offline' }];
  const common = { device, origin, availability };
  const add = (component: string, object: string, cfg: Record<string, unknown>): void => {
    out.set(`${o.prefix}/${component}/${node}/${object}/config`, { ...cfg, unique_id: `doorgw_${node}_${object}`, ...common });
  };
  for (const d of o.doors) {
    const name = d.name ?? d.id;
    add('lock', `${d.id}_lock`, {
      name: `${name} lock`,
      command_topic: o.topics.doorSet(d.id),
      payload_lock: 'LOCK',
      payload_unlock: 'UNLOCK',
      payload_open: 'OPEN',
      state_topic: o.topics.doorState(d.id),
      value_template: "{{ 'UNLOCKED' if value_json.lock == 'unlocked' else 'LOCKED' }}",
      state_locked: 'LOCKED',
      state_unlocked: 'UNLOCKED',
      retain: false,
    });
    add('binary_sensor', `${d.id}_contact`, {
      name: `${name} contact`,
      device_class: 'door',
      state_topic: o.topics.doorState(d.id),
      value_template: "{% if value_json.contact == 'open' %}ON{% elif value_json.contact == 'closed' %}OFF{% else %}None{% endif %}",
      payload_on: 'ON',
      payload_off: 'OFF',
    });
    add('event', `${d.id}_access`, {
      name: `${name} access`,
      state_topic: o.topics.doorEvent(d.id),
      event_types: [...ACCESS_EVENT_TYPES],
    });
    // The door's mode; choosing one sends the same command an operator would (journaled as by mqtt).
    add('select', `${d.id}_mode`, {
      name: `${name} mode`,
      command_topic: o.topics.doorSet(d.id),
      command_template: '{"command":"mode","mode":"{{ value }}"}',
      state_topic: o.topics.doorState(d.id),
      value_template: '{{ value_json.mode }}',
      options: [...DOOR_MODES],
      icon: 'mdi:door',
      retain: false,
    });
    add('sensor', `${d.id}_last_access`, {
      name: `${name} last access`,
      state_topic: o.topics.doorEvent(d.id),
      // The event topic also carries contact and alarm events, which have no decision: keep the last access.
      value_template: "{% if value_json.decision is defined %}{{ value_json.decision }} {{ value_json.reason }}{{ (' ' ~ value_json.userid) if value_json.userid else '' }}{% else %}{{ this.state }}{% endif %}",
      json_attributes_topic: o.topics.doorEvent(d.id),
      json_attributes_template: '{{ (value_json if value_json.decision is defined else this.attributes) | tojson }}',
      icon: 'mdi:door-closed-lock',
    });
  }
  // Diagnostics of the gateway, from its retained state.
  const diag = (object: string, name: string, template: string, extra: Record<string, unknown> = {}): void =>
    add('sensor', object, { name, state_topic: o.topics.state(), value_template: template, entity_category: 'diagnostic', ...extra });
  diag('outbox_depth', 'Outbox depth', '{{ value_json.outbox_depth }}', { state_class: 'measurement', icon: 'mdi:tray-full' });
  diag('held_records', 'Held pass records', '{{ value_json.held }}', { state_class: 'measurement', icon: 'mdi:tray-alert' });
  diag('directory_size', 'Directory size', '{{ value_json.users }}', { state_class: 'measurement', unit_of_measurement: 'people', icon: 'mdi:account-group' });
  diag('started', 'Started', '{{ value_json.started }}', { device_class: 'timestamp' });
  for (const r of o.readers ?? []) {
    const field = (f: string): string => `value_json.readers is defined and value_json.readers['${r.id}'] is defined and value_json.readers['${r.id}'].${f}`;
    add('binary_sensor', `reader_${r.id}_link`, {
      name: `Reader ${r.id} (${r.door})`,
      device_class: 'connectivity',
      entity_category: 'diagnostic',
      state_topic: o.topics.state(),
      value_template: `{{ 'ON' if ${field("state == 'online'")} else 'OFF' }}`,
      json_attributes_topic: o.topics.state(),
      json_attributes_template: `{{ (value_json.readers['${r.id}'] if value_json.readers is defined and value_json.readers['${r.id}'] is defined else {}) | tojson }}`,
      payload_on: 'ON',
      payload_off: 'OFF',
    });
    add('binary_sensor', `reader_${r.id}_tamper`, {
      name: `Reader ${r.id} tamper`,
      device_class: 'tamper',
      entity_category: 'diagnostic',
      state_topic: o.topics.state(),
      value_template: `{{ 'ON' if ${field('tamper')} else 'OFF' }}`,
      payload_on: 'ON',
      payload_off: 'OFF',
    });
  }
  if (o.site) {
    for (const d of o.doors) {
      add('sensor', `${d.id}_threat_level`, {
        name: `${d.name ?? d.id} threat level`,
        state_topic: o.topics.state(),
        value_template: `{{ value_json.levels['${d.id}'] if value_json.levels is defined and value_json.levels['${d.id}'] else 'none' }}`,
        icon: 'mdi:shield-alert',
      });
    }
  }
  for (const door of o.fireDoors ?? []) {
    const name = o.doors.find((d) => d.id === door)?.name ?? door;
    add('binary_sensor', `${door}_fire`, {
      name: `${name} fire release`,
      device_class: 'safety',
      state_topic: o.topics.doorState(door),
      value_template: "{{ 'ON' if value_json.fire else 'OFF' }}",
      payload_on: 'ON',
      payload_off: 'OFF',
    });
  }
  if (o.fireDoors?.length) {
    add('binary_sensor', 'fire_release', {
      name: 'Fire release',
      device_class: 'safety',
      state_topic: o.topics.state(),
      value_template: "{{ 'ON' if value_json.fire is defined and value_json.fire.released | length > 0 else 'OFF' }}",
      json_attributes_topic: o.topics.state(),
      json_attributes_template: '{{ (value_json.fire if value_json.fire is defined else {}) | tojson }}',
      payload_on: 'ON',
      payload_off: 'OFF',
    });
    // Refused by the gateway while the alarm is active (the reply says so); journaled as by mqtt.
    add('button', 'fire_reset', { name: 'Reset fire release', command_topic: o.topics.request('fire/reset'), payload_press: '{}', entity_category: 'config', icon: 'mdi:fire-alert', retain: false });
  }
  for (const i of o.inputs ?? []) {
    const cls = INPUT_CLASS[i.alarm];
    add('binary_sensor', `input_${i.name}`, {
      name: i.label,
      ...(cls ? { device_class: cls } : {}),
      state_topic: o.topics.state(),
      value_template: `{{ 'ON' if value_json.inputs is defined and value_json.inputs['${i.name}'] else 'OFF' }}`,
      payload_on: 'ON',
      payload_off: 'OFF',
    });
  }
  if (o.cloud) {
    add('binary_sensor', 'cloud_link', {
      name: 'Cloud link',
      device_class: 'connectivity',
      entity_category: 'diagnostic',
      state_topic: o.topics.state(),
      value_template: "{{ 'ON' if value_json.cloud and value_json.cloud.link == 'online' else 'OFF' }}",
      payload_on: 'ON',
      payload_off: 'OFF',
    });
    // A timestamp: Home Assistant shows its age ("12 minutes ago").
    diag('last_sync', 'Last full sync', "{{ value_json.cloud.last_full_sync if value_json.cloud and value_json.cloud.last_full_sync else None }}", { device_class: 'timestamp' });
    add('button', 'sync', { name: 'Sync directory', command_topic: o.topics.request('sync'), payload_press: '{}', entity_category: 'config', icon: 'mdi:cloud-sync', retain: false });
  }
  return out;
}
