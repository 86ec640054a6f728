import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { applyEnvOverrides, ConfigError, loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
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

  it('ignores prototype-polluting env segments', () => {
    const tree: Record<string, unknown> = {};
    applyEnvOverrides(tree, { DOORGW___PROTO____X: '1', DOORGW_A____PROTO__: '1' });
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it.each([
    ['a wrong type', 'doors:\n  - id: front\n    relay: { pulse_ms: "long" }\n', 'doors[0].relay.pulse_ms: Invalid input: expected number, received string'],
    ['an unknown key', `${MIN}colour: red\n`, '(root): Unrecognized key: "colour"'],
    ['a typo inside a door', 'doors:\n  - id: front\n    relais: {}\n', 'doors[0]: Unrecognized key: "relais"'],
    ['no doors', 'timezone: UTC\n', 'doors: Invalid input: expected array, received undefined'],
    ['a bad time zone', `${MIN}timezone: Asia/Shangai\n`, 'timezone: not a known IANA time zone (e.g. Asia/Shanghai)'],
    ['a gpio relay without a pin', 'doors:\n  - id: front\n    relay: { driver: gpio }\n', 'doors[0].relay.pin: a gpio relay needs a pin'],
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

  it('ships valid configuration files', () => {
    for (const f of ['config/doorgw.yaml', 'config/example-door.yaml', 'config/example-feishu.yaml']) expect(() => loadConfig(f, {})).not.toThrow();
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
});
