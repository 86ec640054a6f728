/** /metrics scraped from a running gateway, parsed by the Prometheus text-format rules. */
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { healthProblems } from '../../src/control/api.js';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialEvent } from '../../src/domain/events.js';
import { createLogger } from '../../src/log.js';
import { Broker, client } from '../helpers/mosquitto.js';
import { cleanup, simRelay, startMqttGateway } from '../helpers/mqtt-gateway.js';
import { makeKey } from '../helpers/qr.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: 'silent', pretty: false });
const broker = new Broker();
beforeAll(() => broker.start());
afterAll(() => broker.stop());
const t = cleanup();

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * The text exposition format (prometheus.io/docs/instrumenting/exposition_formats): HELP and TYPE
 * lines, then samples `name{label="value",…} value`; names [a-zA-Z_:][a-zA-Z0-9_:]*, label values
 * with \\ \" \n escapes; a family's TYPE before its samples; histogram buckets cumulative with a
 * +Inf bucket equal to _count. Throws on the first violation.
 */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line))) {
      if (helps.has(m[1]!)) throw new Error(`line ${i + 1}: second HELP for ${m[1]}`);
      helps.add(m[1]!);
      continue;
    }
    if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line))) {
      if (types.has(m[1]!)) throw new Error(`line ${i + 1}: second TYPE for ${m[1]}`);
      // promtool check metrics: "non-counter metrics should not have _total suffix".
      if (m[1]!.endsWith('_total') && m[2] !== 'counter') throw new Error(`line ${i + 1}: ${m[2]} ${m[1]} ends in _total, which is for counters`);
      types.set(m[1]!, m[2]!);
      continue;
    }
    if (line.startsWith('#')) throw new Error(`line ${i + 1}: unknown comment ${line}`);
    m = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`).exec(line);
    if (!m) throw new Error(`line ${i + 1}: not a sample: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/gy;
      let lm: RegExpExecArray | null;
      let end = 0;
      while ((lm = re.exec(m[2]))) {
        labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        end = re.lastIndex;
        if (lm[3] === '') break;
      }
      if (end !== m[2].length) throw new Error(`line ${i + 1}: bad labels ${m[2]}`);
    }
    // Values are Go floats (strconv.ParseFloat): NaN and ±Inf in any case (prom-client writes "Nan").
    const raw = m[3]!;
    const v = /^[+]?inf(inity)?$/i.test(raw) ? Infinity : /^-inf(inity)?$/i.test(raw) ? -Infinity : /^nan$/i.test(raw) ? NaN : Number(raw);
    if (Number.isNaN(v) && !/^nan$/i.test(raw)) throw new Error(`line ${i + 1}: bad value ${raw}`);
    const family = [...types.keys()].find((f) => m[1] === f || (['histogram', 'summary'].includes(types.get(f)!) && [`${f}_bucket`, `${f}_sum`, `${f}_count`].includes(m[1]!)));
    if (!family) throw new Error(`line ${i + 1}: ${m[1]} has no TYPE before it`);
    samples.push({ name: m[1]!, labels, value: v });
  }
  for (const [f, type] of types) {
    if (type !== 'histogram') continue;
    const series = new Map<string, Sample[]>();
    for (const s of samples.filter((x) => x.name === `${f}_bucket`)) {
      const { le: _le, ...rest } = s.labels;
      const k = JSON.stringify(rest);
      series.set(k, [...(series.get(k) ?? []), s]);
    }
    for (const [k, buckets] of series) {
      for (let j = 1; j < buckets.length; j++) if (buckets[j]!.value < buckets[j - 1]!.value) throw new Error(`${f}${k}: buckets not cumulative`);
      const inf = buckets.find((b) => b.labels.le === '+Inf');
      if (buckets.at(-1) !== inf) throw new Error(`${f}${k}: +Inf is not the last bucket`);
      const count = samples.find((s) => s.name === `${f}_count` && JSON.stringify(s.labels) === k);
      if (!inf || inf.value !== count?.value) throw new Error(`${f}${k}: +Inf bucket ≠ _count`);
    }
  }
  return { samples, types };
}

const value = (p: ReturnType<typeof parse>, name: string, labels: Record<string, string> = {}): number | undefined =>
  p.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

describe('metrics', () => {
  it('scrape with the token only, parse by the format rules, and move with decisions, pulses and door events', async () => {
    t.gw = await startMqttGateway(broker, { log, key: makeKey(), top: { web: { enabled: true, port: 0, metrics: { token: 'scrape-token-1' } } } });
    const url = `http://127.0.0.1:${t.gw.web!.address!.port}/metrics`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const scrape = async () => {
      const r = await fetch(url, { headers: { authorization: 'Bearer scrape-token-1' } });
      expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      return parse(await r.text());
    };
    const before = await scrape();
    expect(before.types.get('doorgw_decisions_total')).toBe('counter');
    expect(before.types.get('doorgw_decision_latency_seconds')).toBe('histogram');
    for (const name of ['doorgw_door_unlocked', 'doorgw_door_open', 'doorgw_door_mode', 'doorgw_outbox_depth', 'doorgw_held_records', 'doorgw_directory_users', 'doorgw_mqtt_connected', 'nodejs_eventloop_lag_seconds', 'process_resident_memory_bytes']) expect(before.types.has(name), name).toBe(true);
    expect(value(before, 'doorgw_mqtt_connected')).toBe(1);
    expect(value(before, 'doorgw_directory_users', { layer: 'cloud' })).toBe(1);
    expect(value(before, 'doorgw_door_mode', { door: 'lobby', mode: 'normal' })).toBe(1);
    expect(value(before, 'doorgw_cloud_link_up')).toBeUndefined(); // no cloud configured

    const grants = value(before, 'doorgw_decisions_total', { door: 'lobby', decision: 'grant', reason: 'default_allow' }) ?? 0;
    t.gw.pipeline.handle(credentialEvent('lobby', 'lobby-reader', 'in', { type: 'card', value: '1001' }));
    t.gw.pipeline.handle(credentialEvent('lobby', 'lobby-reader', 'in', { type: 'card', value: '9999' }));
    t.gw.pipeline.setMode('lobby', 'lockdown', { by: 'test' });
    await until(() => simRelay(t.gw!).pulses.length === 1, 'pulse');
    await until(async () => value(await scrape(), 'doorgw_door_events_total', { door: 'lobby', type: 'mode_changed' }) === 1, 'door event counted');
    const after = await scrape();
    expect(value(after, 'doorgw_decisions_total', { door: 'lobby', decision: 'grant', reason: 'default_allow' })).toBe(grants + 1);
    expect(value(after, 'doorgw_decisions_total', { door: 'lobby', decision: 'deny', reason: 'unknown_user' })).toBe(1);
    expect(value(after, 'doorgw_decision_latency_seconds_count', { door: 'lobby' })).toBe(2);
    expect(value(after, 'doorgw_relay_activations_total', { door: 'lobby' })).toBe(1);
    expect(value(after, 'doorgw_door_mode', { door: 'lobby', mode: 'lockdown' })).toBe(1);
    expect(value(after, 'doorgw_reader_last_seen_timestamp_seconds', { reader: 'lobby-reader' })).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(value(after, 'doorgw_fingerprint_module_up')).toBeUndefined(); // no module at this door
    // A Wiegand bridge's misread frame is counted per reader.
    const bridge = await client(broker, 'lobby-reader');
    t.closers.push(() => bridge.c.endAsync());
    await bridge.c.publishAsync('doorgw/gw1/reader/lobby-reader/credential', JSON.stringify({ type: 'wiegand', bits: '1'.repeat(26) }), { qos: 1 });
    await until(async () => value(await scrape(), 'doorgw_reader_bad_frames_total', { reader: 'lobby-reader' }) === 1, 'bad frame counted');

    // The shipped Grafana dashboard and alert examples use only metrics the gateway exposes.
    const dashboard = readFileSync(new URL('../../deploy/grafana/doorgw-fleet.json', import.meta.url), 'utf8');
    const scrapeYml = readFileSync(new URL('../../deploy/prometheus/doorgw-scrape.yml', import.meta.url), 'utf8');
    const used = new Set([...`${dashboard}\n${scrapeYml}`.matchAll(/\b((?:doorgw|nodejs|process)_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, '')));
    expect([...used].filter((n) => !after.types.has(n))).toEqual([]);
    expect(used.size).toBeGreaterThan(12);
    expect(parseYaml(scrapeYml)).toEqual([expect.objectContaining({ job_name: 'doorgw', metrics_path: '/metrics', authorization: { type: 'Bearer', credentials_file: expect.any(String) } })]);
  });

  it('a console that cannot listen leaves the door working, and status says why', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as AddressInfo).port;
    try {
      t.gw = await startMqttGateway(broker, { log, key: makeKey(), top: { web: { enabled: true, port } } });
      expect(t.gw.web).toBeNull();
      expect(t.gw.webError).toMatch(/EADDRINUSE/);
      t.gw.pipeline.handle(credentialEvent('lobby', 'lobby-reader', 'in', { type: 'card', value: '1001' }));
      expect(simRelay(t.gw).pulses).toHaveLength(1);
      const st = await t.gw.api.status();
      expect(healthProblems(st, { maxLinkDownS: 600, maxOutboxAgeS: 900, maxSkewS: 30 })).toEqual([expect.stringMatching(/^web console not serving: .*EADDRINUSE/)]);
    } finally {
      taken.close();
    }
  });
});
