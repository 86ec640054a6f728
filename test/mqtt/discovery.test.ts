/** Home Assistant discovery against a real broker, payloads checked against HA's documented keys. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { discoveryConfigs } from '../../src/io/mqtt/discovery.js';
import { Topics } from '../../src/io/mqtt/topics.js';
import { cleanup } from '../helpers/mqtt-gateway.js';
import { Broker, client, USERS } from '../helpers/mosquitto.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import type { InputSpec } from '../../src/io/gpio/backends.js';

/**
 * The keys Home Assistant documents for MQTT discovery of each component used here
 * (home-assistant.io/integrations/<component>.mqtt), split into required and allowed.
 */
const COMMON = ['availability', 'availability_mode', 'availability_template', 'availability_topic', 'device', 'origin', 'unique_id', 'name', 'icon', 'entity_category', 'enabled_by_default', 'json_attributes_topic', 'json_attributes_template', 'qos', 'object_id', 'default_entity_id', 'encoding', 'entity_picture', 'platform'];
const SCHEMA: Record<string, { required: string[]; allowed: string[] }> = {
  lock: {
    required: ['command_topic'],
    allowed: ['command_template', 'optimistic', 'payload_lock', 'payload_unlock', 'payload_open', 'payload_reset', 'retain', 'state_topic', 'state_locked', 'state_unlocked', 'state_locking', 'state_unlocking', 'state_jammed', 'state_open', 'state_opening', 'code_format', 'value_template'],
  },
  binary_sensor: { required: ['state_topic'], allowed: ['device_class', 'expire_after', 'force_update', 'off_delay', 'payload_on', 'payload_off', 'value_template'] },
  event: { required: ['state_topic', 'event_types'], allowed: ['device_class', 'value_template'] },
  select: { required: ['command_topic', 'options'], allowed: ['command_template', 'optimistic', 'retain', 'state_topic', 'value_template'] },
  button: { required: ['command_topic'], allowed: ['command_template', 'device_class', 'payload_press', 'retain'] },
  sensor: { required: ['state_topic'], allowed: ['device_class', 'state_class', 'unit_of_measurement', 'value_template', 'expire_after', 'force_update', 'last_reset_value_template', 'suggested_display_precision', 'options'] },
};
const BINARY_SENSOR_CLASSES = ['door', 'connectivity', 'lock', 'opening', 'problem', 'safety', 'tamper'];
const DEVICE_KEYS = ['identifiers', 'connections', 'name', 'manufacturer', 'model', 'model_id', 'sw_version', 'hw_version', 'serial_number', 'configuration_url', 'suggested_area', 'via_device'];
const ORIGIN_KEYS = ['name', 'sw_version', 'support_url'];

function validate(topic: string, cfg: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const component = topic.split('/')[1]!;
  const schema = SCHEMA[component];
  if (!schema) return [`${topic}: unexpected component ${component}`];
  for (const k of schema.required) if (cfg[k] === undefined) problems.push(`${topic}: missing required ${k}`);
  for (const k of Object.keys(cfg)) if (!COMMON.includes(k) && !schema.allowed.includes(k) && !schema.required.includes(k)) problems.push(`${topic}: undocumented key ${k}`);
  for (const k of ['command_topic', 'state_topic', 'json_attributes_topic']) {
    if (cfg[k] !== undefined && (typeof cfg[k] !== 'string' || /[#+]/.test(cfg[k]))) problems.push(`${topic}: ${k} must be a topic without wildcards`);
  }
  if (typeof cfg.unique_id !== 'string' || !/^[A-Za-z0-9_-]+$/.test(cfg.unique_id)) problems.push(`${topic}: unique_id`);
  const dev = cfg.device as Record<string, unknown> | undefined;
  if (!dev || !(Array.isArray(dev.identifiers) && dev.identifiers.length > 0)) problems.push(`${topic}: device.identifiers required`);
  for (const k of Object.keys(dev ?? {})) if (!DEVICE_KEYS.includes(k)) problems.push(`${topic}: undocumented device key ${k}`);
  const origin = cfg.origin as Record<string, unknown> | undefined;
  if (typeof origin?.name !== 'string') problems.push(`${topic}: origin.name required`);
  for (const k of Object.keys(origin ?? {})) if (!ORIGIN_KEYS.includes(k)) problems.push(`${topic}: undocumented origin key ${k}`);
  const av = cfg.availability as { topic?: unknown }[] | undefined;
  if (!Array.isArray(av) || av.some((a) => typeof a.topic !== 'string')) problems.push(`${topic}: availability must be a list of {topic}`);
  if (component === 'binary_sensor' && cfg.device_class !== undefined && !BINARY_SENSOR_CLASSES.includes(cfg.device_class as string)) problems.push(`${topic}: device_class`);
  if (component === 'event' && !(Array.isArray(cfg.event_types) && cfg.event_types.every((t) => typeof t === 'string'))) problems.push(`${topic}: event_types must be strings`);
  if (cfg.entity_category !== undefined && !(typeof cfg.entity_category === 'string' && ['config', 'diagnostic'].includes(cfg.entity_category))) problems.push(`${topic}: entity_category`);
  for (const k of ['value_template', 'json_attributes_template']) {
    const t = cfg[k];
    if (t !== undefined && !(typeof t === 'string' && (t.includes('{{') || t.includes('{%')))) problems.push(`${topic}: ${k} is not a template`);
  }
  return problems;
}

const log = createLogger({ level: 'silent', pretty: false });
const broker = new Broker();
beforeAll(() => broker.start());
afterAll(() => broker.stop());
const t = cleanup();

const config = (dataDir: string, doors: string[], id = 'gw-ha') =>
  validateConfig({ gateway_id: id, data_dir: dataDir, doors: doors.map((id) => ({ id, name: `${id} door` })), mqtt: { enabled: true, url: broker.url, username: 'doorgw', password: USERS.doorgw } }, 't');

describe('Home Assistant discovery', () => {
  it('publishes retained configs that match the documented schema, with stable ids, one device and availability', async () => {
    const ha = await client(broker, 'homeassistant', ['homeassistant/+/gw-ha/+/config']);
    t.closers.push(() => ha.c.endAsync());
    t.gw = await Gateway.start({ config: config(join(tmpDir(), 'data'), ['front', 'back']), log, controlSocket: false });
    await until(() => ha.got.length === 14, 'fourteen discovery configs');
    const configs = new Map(ha.got.map((m) => [m.topic, JSON.parse(m.payload) as Record<string, unknown>]));
    // No cloud configured: no cloud link, last sync or sync button.
    expect([...configs.keys()].sort()).toEqual([
      'homeassistant/binary_sensor/gw-ha/back_contact/config',
      'homeassistant/binary_sensor/gw-ha/front_contact/config',
      'homeassistant/event/gw-ha/back_access/config',
      'homeassistant/event/gw-ha/front_access/config',
      'homeassistant/lock/gw-ha/back_lock/config',
      'homeassistant/lock/gw-ha/front_lock/config',
      'homeassistant/select/gw-ha/back_mode/config',
      'homeassistant/select/gw-ha/front_mode/config',
      'homeassistant/sensor/gw-ha/back_last_access/config',
      'homeassistant/sensor/gw-ha/directory_size/config',
      'homeassistant/sensor/gw-ha/front_last_access/config',
      'homeassistant/sensor/gw-ha/held_records/config',
      'homeassistant/sensor/gw-ha/outbox_depth/config',
      'homeassistant/sensor/gw-ha/started/config',
    ]);
    for (const [topic, cfg] of configs) expect(validate(topic, cfg)).toEqual([]);
    // With the site: a threat-level sensor per door, reading the levels of the gateway's state.
    const withSite = discoveryConfigs({ prefix: 'homeassistant', topics: new Topics('doorgw', 'gw-ha'), gatewayId: 'gw-ha', version: '1', doors: [{ id: 'front', name: 'Front' }], cloud: false, site: true });
    for (const [topic, cfg] of withSite) expect(validate(topic, cfg)).toEqual([]);
    expect(withSite.get('homeassistant/sensor/gw-ha/front_threat_level/config')).toMatchObject({ name: 'Front threat level', state_topic: 'doorgw/gw-ha/state', value_template: expect.stringContaining("value_json.levels['front']") });
    // With a cloud: the link, the age of the last sync and a sync button, to the same schema.
    const withCloud = discoveryConfigs({ prefix: 'homeassistant', topics: new Topics('doorgw', 'gw-ha'), gatewayId: 'gw-ha', version: '1', doors: [{ id: 'front' }], cloud: true });
    for (const [topic, cfg] of withCloud) expect(validate(topic, cfg)).toEqual([]);
    expect([...withCloud.keys()].filter((k) => /cloud_link|last_sync|button/.test(k))).toHaveLength(3);
    const lock = configs.get('homeassistant/lock/gw-ha/front_lock/config')!;
    expect(lock).toMatchObject({ unique_id: 'doorgw_gw-ha_front_lock', command_topic: 'doorgw/gw-ha/door/front/set', state_topic: 'doorgw/gw-ha/door/front/state', payload_open: 'OPEN', retain: false, availability: [{ topic: 'doorgw/gw-ha/availability' }] });
    expect(new Set([...configs.values()].map((c) => JSON.stringify(c.device))).size).toBe(1);
    expect(new Set([...configs.values()].map((c) => c.unique_id)).size).toBe(14);
    expect(configs.get('homeassistant/event/gw-ha/front_access/config')!.event_types).toEqual(expect.arrayContaining(['granted', 'denied', 'forced_open', 'held_open']));

    // The last-access sensor shares the event topic with contact and alarm events (no decision):
    // those must leave its state and attributes as they were, not blank them.
    const last = configs.get('homeassistant/sensor/gw-ha/front_last_access/config')!;
    expect(last.value_template).toMatch(/^\{% if value_json\.decision is defined %\}.*\{% else %\}\{\{ this\.state \}\}\{% endif %\}$/);
    expect(last.json_attributes_template).toBe('{{ (value_json if value_json.decision is defined else this.attributes) | tojson }}');

    // A retained subscriber sees them too (Home Assistant starting later).
    const late = await client(broker, 'homeassistant', ['homeassistant/lock/gw-ha/+/config']);
    t.closers.push(() => late.c.endAsync());
    await until(() => late.got.length === 2 && late.got.every((m) => m.retain), 'retained configs');
  });

  it('OSDP readers get a connectivity and a tamper sensor that match the schema and read the retained state', () => {
    const topics = new Topics('doorgw', 'gw-ha');
    const cfgs = discoveryConfigs({ prefix: 'homeassistant', topics, gatewayId: 'gw-ha', version: '1', doors: [{ id: 'front' }], cloud: false, readers: [{ id: 'front-in', door: 'Front' }] });
    const link = cfgs.get('homeassistant/binary_sensor/gw-ha/reader_front-in_link/config')!;
    const tamper = cfgs.get('homeassistant/binary_sensor/gw-ha/reader_front-in_tamper/config')!;
    expect([...cfgs].flatMap(([topic, c]) => validate(topic, c))).toEqual([]);
    expect(link).toMatchObject({ device_class: 'connectivity', entity_category: 'diagnostic', state_topic: 'doorgw/gw-ha/state', name: 'Reader front-in (Front)' });
    expect(tamper).toMatchObject({ device_class: 'tamper', state_topic: 'doorgw/gw-ha/state' });
    // The templates read the shape the gateway publishes (B/state: readers by id).
    expect(link.value_template).toContain("value_json.readers['front-in'].state == 'online'");
    expect(tamper.value_template).toContain("value_json.readers['front-in'].tamper");
  });

  it('the mode select changes the door\'s mode with the payload Home Assistant sends', async () => {
    t.gw = await Gateway.start({ config: config(join(tmpDir(), 'data'), ['front'], 'gw-ha4'), log, controlSocket: false });
    await until(() => t.gw!.mqtt!.link.connected$.value, 'connected');
    const ha = await client(broker, 'homeassistant', ['homeassistant/select/gw-ha4/front_mode/config']);
    t.closers.push(() => ha.c.endAsync());
    await until(() => ha.got.length === 1, 'select config');
    const cfg = JSON.parse(ha.got[0]!.payload) as { command_topic: string; command_template: string };
    await ha.c.publishAsync(cfg.command_topic, cfg.command_template.replace('{{ value }}', 'passage'), { qos: 1 });
    await until(() => t.gw!.pipeline.modeOf('front') === 'passage', 'passage');
  });

  it('the lock entity opens the door with the payloads Home Assistant sends', async () => {
    t.gw = await Gateway.start({ config: config(join(tmpDir(), 'data'), ['front'], 'gw-ha2'), log, controlSocket: false });
    const ha = await client(broker, 'homeassistant', ['doorgw/gw-ha2/door/front/state']);
    t.closers.push(() => ha.c.endAsync());
    await until(() => t.gw!.mqtt!.link.connected$.value, 'connected');
    await ha.c.publishAsync('doorgw/gw-ha2/door/front/set', 'UNLOCK', { qos: 1 });
    await until(() => ha.got.some((m) => (JSON.parse(m.payload) as { lock: string }).lock === 'unlocked'), 'unlocked state');
  });

  it('re-publishes when Home Assistant comes online, and removes entities of a door that is gone', async () => {
    const dataDir = join(tmpDir(), 'data');
    const ha = await client(broker, 'homeassistant', ['homeassistant/+/gw-ha3/+/config']);
    t.closers.push(() => ha.c.endAsync());
    t.gw = await Gateway.start({ config: config(dataDir, ['front', 'back'], 'gw-ha3'), log, controlSocket: false });
    await until(() => ha.got.length === 14, 'first publication');
    await ha.c.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await until(() => ha.got.length === 28, 're-publication');
    await t.gw.stop();
    t.gw = null;
    ha.got.length = 0;
    t.gw = await Gateway.start({ config: config(dataDir, ['front'], 'gw-ha3'), log, controlSocket: false });
    await until(() => ha.got.filter((m) => m.payload === '').length === 5, 'stale back-door entities cleared');
    expect(ha.got.filter((m) => m.payload === '').map((m) => m.topic).sort()).toEqual([
      'homeassistant/binary_sensor/gw-ha3/back_contact/config',
      'homeassistant/event/gw-ha3/back_access/config',
      'homeassistant/lock/gw-ha3/back_lock/config',
      'homeassistant/select/gw-ha3/back_mode/config',
      'homeassistant/sensor/gw-ha3/back_last_access/config',
    ]);
  });

  it('fire release: a safety sensor per governed door and one for the gateway, a reset button, a sensor per named input; state follows the panel', async () => {
    const inputs = new Map<string, InputSpec>();
    const cfg = validateConfig(
      {
        gateway_id: 'gw-ha5',
        data_dir: join(tmpDir(), 'data'),
        doors: [{ id: 'front' }, { id: 'back' }, { id: 'yard' }],
        io: { inputs: { panel: { pin: 5, active_low: false, alarm: 'alarm', name: 'Fire panel' }, bell: { pin: 6 } }, fire: [{ input: 'panel', doors: ['front', 'back'] }] },
        mqtt: { enabled: true, url: broker.url, username: 'doorgw', password: USERS.doorgw },
      },
      't',
    );
    const ha = await client(broker, 'homeassistant', ['homeassistant/+/gw-ha5/+/config', 'doorgw/gw-ha5/door/+/state', 'doorgw/gw-ha5/state']);
    t.closers.push(() => ha.c.endAsync());
    t.gw = await Gateway.start({ config: cfg, log, controlSocket: false, inputFactory: (spec) => (inputs.set(spec.name, spec), Promise.resolve({ active: false, close: () => undefined })) });
    const configs = () => new Map(ha.got.filter((m) => m.topic.startsWith('homeassistant/')).map((m) => [m.topic, JSON.parse(m.payload) as Record<string, unknown>]));
    await until(() => configs().has('homeassistant/binary_sensor/gw-ha5/input_bell/config'), 'io discovery');
    const c = configs();
    for (const [topic, x] of c) expect(validate(topic, x)).toEqual([]);
    expect([...c.keys()].filter((k) => /fire|input_/.test(k)).sort()).toEqual([
      'homeassistant/binary_sensor/gw-ha5/back_fire/config',
      'homeassistant/binary_sensor/gw-ha5/fire_release/config',
      'homeassistant/binary_sensor/gw-ha5/front_fire/config',
      'homeassistant/binary_sensor/gw-ha5/input_bell/config',
      'homeassistant/binary_sensor/gw-ha5/input_panel/config',
      'homeassistant/button/gw-ha5/fire_reset/config',
    ]); // yard is not governed: no fire sensor
    expect(c.get('homeassistant/binary_sensor/gw-ha5/input_panel/config')).toMatchObject({ name: 'Fire panel', device_class: 'problem' });
    expect(c.get('homeassistant/binary_sensor/gw-ha5/input_bell/config')!.device_class).toBeUndefined();
    const last = (topic: string) => JSON.parse(ha.got.filter((m) => m.topic === topic).at(-1)?.payload ?? '{}') as Record<string, unknown>;
    await until(() => t.gw!.mqtt!.link.connected$.value, 'connected');

    inputs.get('panel')!.onChange(true);
    await until(() => last('doorgw/gw-ha5/door/front/state').fire === true && last('doorgw/gw-ha5/door/front/state').lock === 'unlocked', 'front released on MQTT');
    await until(() => JSON.stringify(last('doorgw/gw-ha5/state').fire) === JSON.stringify({ released: ['front', 'back'], latched: ['front', 'back'] }), 'gateway state: fire');
    expect(last('doorgw/gw-ha5/state').inputs).toEqual({ panel: true, bell: false });
    expect(last('doorgw/gw-ha5/door/yard/state').fire).toBe(false);
    // The reset button while the panel is in alarm: refused, nothing changes.
    const button = c.get('homeassistant/button/gw-ha5/fire_reset/config') as { command_topic: string; payload_press: string };
    await ha.c.publishAsync(button.command_topic, button.payload_press, { qos: 1 });
    inputs.get('panel')!.onChange(false);
    await until(() => (last('doorgw/gw-ha5/state').inputs as Record<string, boolean>).panel === false, 'panel cleared on MQTT');
    expect(t.gw.io!.fire.released('front')).toBe(true); // latched
    await ha.c.publishAsync(button.command_topic, button.payload_press, { qos: 1 });
    await until(() => last('doorgw/gw-ha5/door/front/state').fire === false && last('doorgw/gw-ha5/door/front/state').lock === 'locked', 'reset over MQTT');
    const actions = async () => (await t.gw!.store.recentDoorEvents(50)).filter((e) => e.type === 'operator_action').map((e) => e.detail).reverse();
    await until(async () => (await actions()).length === 2, 'both resets journaled');
    expect(await actions()).toEqual([expect.stringMatching(/^mqtt.*: fire reset: nothing reset; refused front, back: the fire alarm is still active/), expect.stringMatching(/^mqtt.*: fire reset: reset front, back$/)]);
  });
});
