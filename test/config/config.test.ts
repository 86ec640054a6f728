import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { applyEnvOverrides, loadConfig, validateConfig } from '../../src/config/load.js';
import { createLogger, redactSecrets, secretValues } from '../../src/log.js';
import { tmpDir } from '../helpers/tmp.js';

function file(yaml: string): string {
  const p = join(tmpDir(), 'c.yaml');
  writeFileSync(p, yaml);
  return p;
}
const MIN = 'doors:\n  - id: front\n';

function problems(yaml: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    loadConfig(file(yaml), env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected the config to be refused');
}

describe('configuration', () => {
  it('fills every default from the schema', () => {
    const { config } = loadConfig(file(MIN), {});
    expect(config).toMatchObject({
      version: 1,
      timezone: 'Asia/Shanghai',
      policy: { default_allow: { employee: true, visitor: false, student: true }, replay_protection: true, debounce_ms: 1500 },
      qr: { clock_skew_s: 30 },
      mqtt: { enabled: false, url: 'mqtt://localhost:1883' },
      cloud: { provider: 'none' },
      doors: [{ id: 'front', mode: 'normal', relay: { driver: 'sim', pulse_ms: 3000, lock_type: 'fail_secure', active_low: false }, readers: [] }],
    });
    expect(config.data_dir.startsWith('/')).toBe(true);
    expect(config.gateway_id).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it('applies DOORGW_ environment overrides with typed values and array indexes', () => {
    const { config, envApplied } = loadConfig(file(MIN), {
      DOORGW_DATA_DIR: '/var/lib/doorgw',
      DOORGW_MQTT__URL: 'mqtts://broker:8883',
      DOORGW_MQTT__PASSWORD: '123456',
      DOORGW_DOORS__0__RELAY__PULSE_MS: '5000',
      DOORGW_POLICY__REPLAY_PROTECTION: 'false',
      OTHER: 'x',
    });
    expect(config.data_dir).toBe('/var/lib/doorgw');
    expect(config.mqtt.url).toBe('mqtts://broker:8883');
    expect(config.mqtt.password).toBe('123456'); // a numeric-looking secret stays a string
    expect(config.doors[0]!.relay.pulse_ms).toBe(5000);
    expect(config.policy.replay_protection).toBe(false);
    expect(envApplied).toHaveLength(5);
  });

  it('refuses prototype-polluting env segments without touching anything', () => {
    const tree: Record<string, unknown> = {};
    expect(() => applyEnvOverrides(tree, { DOORGW___PROTO____X: '1', DOORGW_A____PROTO__: '1' })).toThrow(ConfigError);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    expect(tree).toEqual({});
  });

  it('types env values by the schema, not by their look', () => {
    const { config } = loadConfig(file(`${MIN}mqtt: { enabled: true }\n`), {
      DOORGW_MQTT__PASSWORD: '12345678901234567890123',
      DOORGW_MQTT__USERNAME: '1e3',
      DOORGW_CLOUD__PROVIDER: 'none',
      DOORGW_GATEWAY_ID: '007',
      DOORGW_MQTT__CLIENT_ID: 'true',
      DOORGW_MQTT__PROTOCOL_VERSION: '4',
      DOORGW_LOG__PRETTY: 'false',
      DOORGW_MQTT__EVENT_USER_FIELDS: '["userid"]',
    });
    expect(config.mqtt.password).toBe('12345678901234567890123'); // not 1.2345678901234568e22
    expect(config.mqtt.username).toBe('1e3'); // not 1000
    expect(config.gateway_id).toBe('007');
    expect(config.mqtt.client_id).toBe('true');
    expect(config.mqtt.protocol_version).toBe(4);
    expect(config.log.pretty).toBe(false);
    expect(config.mqtt.event_user_fields).toEqual(['userid']);
    // a number key takes only a plain decimal: 1234e567 is not Infinity but an error naming the key
    expect(problems(MIN, { DOORGW_QR__CLOCK_SKEW_S: '1234e567' })).toEqual(['qr.clock_skew_s: Invalid input: expected number, received string']);
  });

  it('checks door policies against the groups and holiday calendars they name', () => {
    const yaml = `groups: { security: [guard] }\nholidays: { cn: ['2026-10-01..2026-10-07', '2026-02-30'] }\ndoors:\n  - id: front\n    policy: { holidays: [cn, us], lockdown_override_groups: [security, staff], extended_unlock: { groups: [wheel], pulse_ms: 9000 } }\n`;
    expect(problems(yaml)).toEqual([
      'holidays.cn[1]: give YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD (a date that exists, a range of at most a year)',
      "doors[0].policy.holidays[1]: no holiday calendar 'us' (holidays: cn)",
      "doors[0].policy.lockdown_override_groups[1]: no group 'staff' (groups: security)",
      "doors[0].policy.extended_unlock.groups[0]: no group 'wheel' (groups: security)",
    ]);
    const fixed = yaml.replace(", '2026-02-30'", '').replace('[cn, us]', '[cn]').replace('[security, staff]', '[security]').replace('[wheel]', '[security]');
    expect(loadConfig(file(fixed), {}).config.doors[0]!.policy).toEqual({ holidays: ['cn'], closed_on_holidays: false, card_and_pin: false, holiday_exempt_groups: [], lockdown_override_groups: ['security'], extended_unlock: { groups: ['security'], pulse_ms: 9000 } });
  });

  it('names an unknown DOORGW_ variable', () => {
    expect(problems(MIN, { DOORGW_MQTT__PASSWROD: 'x', DOORGW_DOORS__0__RELAIS__PIN: '4' })).toEqual([
      'DOORGW_MQTT__PASSWROD: no configuration key mqtt.passwrod (variables starting DOORGW_ are configuration overrides)',
      'DOORGW_DOORS__0__RELAIS__PIN: no configuration key doors[0].relais.pin (variables starting DOORGW_ are configuration overrides)',
    ]);
  });

  it('refuses an mqtt reader when MQTT is off (it would never be heard)', () => {
    expect(problems(`doors:\n  - id: front\n    readers: [{ id: card-1, type: mqtt }]\n`)).toEqual(["doors[0].readers[0].type: reader 'card-1' is an mqtt reader, but mqtt.enabled is false"]);
  });

  it('refuses readers named like the broker accounts or the gateway\'s own sources', () => {
    for (const name of ['doorgw', 'operator', 'admin', 'homeassistant', 'Operator', 'exit_button', 'fingerprint']) {
      expect(problems(`mqtt: { enabled: true }\ndoors:\n  - id: front\n    readers: [{ id: ${name}, type: mqtt }]\n`)).toEqual([
        'doors[0].readers[0].id: must not be one of the broker accounts or the gateway\'s own source names (doorgw, operator, admin, homeassistant, exit_button, fingerprint, mqtt, wecom, feishu): a reader logs in under its id',
      ]);
    }
  });

  it.each([
    ['a wrong type', 'doors:\n  - id: front\n    relay: { pulse_ms: "long" }\n', 'doors[0].relay.pulse_ms: Invalid input: expected number, received string'],
    ['an unknown key', `${MIN}colour: red\n`, '(root): Unrecognized key: "colour"'],
    ['a typo inside a door', 'doors:\n  - id: front\n    relais: {}\n', 'doors[0]: Unrecognized key: "relais"'],
    ['no doors', 'timezone: UTC\n', 'doors: Invalid input: expected array, received undefined'],
    ['a bad time zone', `${MIN}timezone: Asia/Shangai\n`, 'timezone: not a known IANA time zone (e.g. Asia/Shanghai)'],
    ['a gpio relay without a pin', 'doors:\n  - id: front\n    relay: { driver: gpio }\n', 'doors[0].relay.pin: a gpio relay needs a pin (or a line name)'],
    ['duplicate door ids', 'doors:\n  - id: a\n  - id: a\n', "doors[1].id: duplicate door id 'a'"],
    ['a bad door id', 'doors:\n  - id: "front door"\n', 'doors[0].id: must be 1-64 letters, digits, _ or -'],
    ['a pulse too short', 'doors:\n  - id: front\n    relay: { pulse_ms: 5 }\n', 'doors[0].relay.pulse_ms: Too small: expected number to be >=100'],
  ])('refuses %s, naming the key path', (_l, yaml, problem) => {
    expect(problems(yaml)).toContain(problem);
  });

  it('names env-overridden keys in errors too', () => {
    expect(problems(MIN, { DOORGW_QR__CLOCK_SKEW_S: 'soon' })).toContain('qr.clock_skew_s: Invalid input: expected number, received string');
  });

  it('explains unreadable files and invalid YAML', () => {
    expect(() => loadConfig('/nonexistent/doorgw.yaml', {})).toThrow(/cannot read the file/);
    expect(problems('doors: [\n')[0]).toMatch(/^not valid YAML/);
    expect(problems('- a\n- b\n')).toEqual(['(root): must be a mapping of keys']);
  });

  it('OSDP readers: a path is required; readers on one bus share a speed and poll cycle and have distinct addresses', () => {
    const bus = '/dev/ttyUSB0';
    expect(problems('doors:\n  - id: a\n    readers: [{ id: r1, type: osdp }]\n').join()).toMatch(/an osdp reader needs path/);
    const p = problems(
      `doors:\n  - id: a\n    readers:\n      - { id: r1, type: osdp, path: ${bus}, address: 1 }\n      - { id: r2, type: osdp, path: ${bus}, address: 1 }\n  - id: b\n    readers:\n      - { id: r3, type: osdp, path: ${bus}, address: 2, baud_rate: 115200, poll_interval_ms: 50 }\n`,
    );
    expect(p).toEqual([
      "doors[0].readers[1].address: reader 'r1' already has address 1 on /dev/ttyUSB0",
      'doors[1].readers[0].baud_rate: readers on /dev/ttyUSB0 must share one baud_rate (9600)',
      'doors[1].readers[0].poll_interval_ms: readers on /dev/ttyUSB0 must share one poll_interval_ms (30)',
    ]);
    expect(problems('doors:\n  - id: a\n    readers: [{ id: r1, type: osdp, path: /dev/x, address: 127, baud_rate: 4800 }]\n')).toHaveLength(2);
    // Separate buses may differ.
    expect(() => loadConfig(file('doors:\n  - id: a\n    readers: [{ id: r1, type: osdp, path: /dev/x, baud_rate: 115200 }, { id: r2, type: osdp, path: /dev/y }]\n'), {})).not.toThrow();
  });

  it('ships valid configuration files', () => {
    for (const f of ['config/doorgw.yaml', 'config/example-door.yaml', 'config/example-feishu.yaml', 'config/example-osdp.yaml']) expect(() => loadConfig(f, {})).not.toThrow();
  });
});

describe('logging', () => {
  it('writes JSON lines and redacts secrets wherever they appear', () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb(); } });
    const log = createLogger({ level: 'info', pretty: false, destination: sink }).child({ module: 'test' });
    log.info({ mqtt: { password: 'hunter2', url: 'mqtt://x' }, secret: 's3cret', cloud: { wecom: { secret: 'deep' } } }, 'hello');
    const rec = JSON.parse(lines[0]!);
    expect(rec).toMatchObject({ msg: 'hello', module: 'test', mqtt: { password: '[redacted]', url: 'mqtt://x' }, secret: '[redacted]' });
    expect(lines.join('')).not.toMatch(/hunter2|s3cret|deep/);
  });

  it('scrubs secrets by value and URL userinfo from every line, whatever the key', () => {
    const config = { mqtt: { url: 'mqtt://doorgw:pa%24%24word@broker:1883', password: 'hunter2-long' }, cloud: { feishu: { app_secret: 'fs-"quoted"-secret' } } };
    const secrets = secretValues(config);
    expect(secrets.sort()).toEqual(['fs-"quoted"-secret', 'hunter2-long', 'pa$$word'].sort());
    for (const pretty of [false, true]) {
      const lines: string[] = [];
      const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb(); } });
      const log = createLogger({ level: 'info', pretty, destination: sink, secrets });
      log.info({ url: config.mqtt.url }, 'mqtt connected');
      log.warn({ err: 'login failed for hunter2-long' }, 'error text carrying a secret');
      log.info({ note: 'fs-"quoted"-secret' }, 'escaped in JSON');
      log.info('plain pa$$word in a message');
      const text = lines.join('');
      expect(text).not.toMatch(/hunter2|pa%24%24word|pa\$\$word|quoted/);
      expect(text).toContain('mqtt://[redacted]@broker:1883');
    }
    expect(JSON.stringify(redactSecrets(config))).not.toMatch(/hunter2|pa%24|quoted/);
  });
});

describe('site keys', () => {
  it('refuse a key id that is not its public key\'s, and a public key that is not 32 bytes', () => {
    const base = { doors: [{ id: 'front' }] };
    const key = { kid: 'a832b374a7bfe68229292295778bee96', name: 'desk', public_key: 'SUtwl3knq5xXOnDPxdGCsFWTM1qj2rc3mBU9ilw0AwU=', roles: ['guard'] };
    expect(() => validateConfig({ ...base, site: { enabled: true, keys: [key] } }, 't')).not.toThrow();
    expect(() => validateConfig({ ...base, site: { enabled: true, keys: [{ ...key, kid: '0'.repeat(32) }] } }, 't')).toThrow(/site\.keys\[0\]\.kid: is not this public key's id \(a832b374a7bfe68229292295778bee96\)/);
    expect(() => validateConfig({ ...base, site: { enabled: true, keys: [{ ...key, public_key: 'AAAA' }] } }, 't')).toThrow(/site\.keys\[0\]\.public_key: an Ed25519 public key is 32 bytes/);
  });

  it('a reader takes its own kind\'s keys only: a key of another kind is refused, saying whose it is not', () => {
    const bad = (r: Record<string, unknown>) => () => validateConfig({ data_dir: '/tmp/x', doors: [{ id: 'a', readers: [r] }] }, 't');
    expect(bad({ id: 'scanner', type: 'hid', d0: 5 })).toThrow(/doors\[0\]\.readers\[0\]: Unrecognized key: "d0" \(not a key of a hid reader\)/);
    expect(bad({ id: 'bus', type: 'osdp', path: '/dev/ttyUSB0', layout: 'de' })).toThrow(/Unrecognized key: "layout" \(not a key of a osdp reader\)/);
    expect(bad({ id: 'wg', type: 'wiegand', d0: 5, d1: 6, baud_rate: 9600 })).toThrow(/"baud_rate" \(not a key of a wiegand reader\)/);
    expect(bad({ id: 'x', type: 'retina' })).toThrow(/doors\[0\]\.readers\[0\]\.type: Invalid discriminator value/);
    const ok = validateConfig({ data_dir: '/tmp/x', doors: [{ id: 'a', readers: [{ id: 'scanner', type: 'hid', vendor_id: 0x0581 }, { id: 'wg', type: 'wiegand', d0: 5, d1: 6 }] }] }, 't');
    expect(ok.doors[0]!.readers.map((r) => [r.type, 'mode' in r ? r.mode : null, 'bias' in r ? r.bias : null])).toEqual([['hid', 'keyboard', null], ['wiegand', null, 'pull-up']]);
  });

  it('every GPIO line is used once, whoever uses it', () => {
    const cfg = (extra: Record<string, unknown>) => () => validateConfig({ data_dir: '/tmp/x', doors: [{ id: 'a', relay: { driver: 'gpio', pin: 17 }, inputs: { exit_button: { pin: 27 } } }], ...extra }, 't');
    expect(cfg({ io: { outputs: { siren: { pin: 17 } } } })).toThrow(/io\.outputs\.siren: pin 17 is already door 'a' relay/);
    expect(cfg({ io: { inputs: { panel: { pin: 27 } } } })).toThrow(/io\.inputs\.panel: pin 27 is already door 'a' exit_button/);
    expect(cfg({ io: { inputs: { panel: { line: 'GPIO5' } }, outputs: { strobe: { line: 'GPIO5' } } } })).toThrow(/io\.outputs\.strobe: line GPIO5 is already input 'panel'/);
    expect(cfg({ io: { outputs: { sim: { driver: 'sim' } }, inputs: { panel: { pin: 5 } } } })).not.toThrow();
  });
});

