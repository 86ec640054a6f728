/**
 * A threat level raised by a door's input (issue 23, item 5: a panic button) through a real
 * Mosquitto with the shipped site ACL: the input's linkage rule signs the level with the door's
 * own key; every door that lists that key with `may_raise` takes it, journaled with the door and
 * the input; the same key cannot lower or delete a level or state anything else; an operator's
 * newer version ends it; a panic input already active when the gateway starts raises it again.
 */
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SiteTool } from '../../src/cli/site-tool.js';
import { keyIdOf, rawPublicKey, signEnvelope } from '../../src/domain/site-envelope.js';
import { Gateway } from '../../src/gateway.js';
import { doorKey } from '../../src/io/door-key.js';
import type { InputSpec } from '../../src/io/gpio/backends.js';
import { ToolClient } from '../../src/io/mqtt/client.js';
import { createLogger } from '../../src/log.js';
import { type Broker, siteBroker } from '../helpers/mosquitto.js';
import { mqttConfig } from '../helpers/mqtt-gateway.js';
import { tmpDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: 'silent', pretty: false });
const ACCOUNTS = { gw1: 'p1', gw2: 'p2', 'site-operator': 'op' } as const;
const admin = generateKeyPairSync('ed25519');
let broker: Broker;
const closers: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  broker = siteBroker(ACCOUNTS);
  await broker.start();
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await broker.stop();
});

const dirs = { gw1: join(tmpDir(), 'gw1'), gw2: join(tmpDir(), 'gw2') };
const siteConfig = () => ({
  enabled: true,
  keys: [{ kid: keyIdOf(admin.publicKey), name: 'site-admin', public_key: rawPublicKey(admin.publicKey), roles: ['admin'] }],
  door_keys: (['gw1', 'gw2'] as const).map((g) => ({ gateway: g, kid: doorKey(dirs[g]).kid, public_key: doorKey(dirs[g]).publicKey, ...(g === 'gw1' ? { may_raise: ['lockdown'] } : {}) })),
  levels: [{ name: 'normal' }, { name: 'elevated' }, { name: 'lockdown', mode: 'lockdown' }],
});
const panicIo = { inputs: { panic: { pin: 5, alarm: 'panic' } }, linkage: [{ name: 'panic-lockdown', on: { input: 'panic' }, do: [{ site_level: 'lockdown' }] }] };

async function start(id: 'gw1' | 'gw2', o: { panicAtStart?: boolean } = {}) {
  const inputs = new Map<string, InputSpec['onChange']>();
  const config = mqttConfig(broker, dirs[id], { url: broker.url, username: id, password: ACCOUNTS[id] }, undefined, { gateway_id: id, site: siteConfig(), ...(id === 'gw1' ? { io: panicIo } : {}) });
  const g = await Gateway.start({
    config,
    log,
    controlSocket: false,
    inputFactory: (spec) => {
      inputs.set(spec.name, spec.onChange);
      return Promise.resolve({ active: spec.name === 'panic' && o.panicAtStart === true, close: () => undefined });
    },
  });
  closers.push(() => g.stop());
  await until(() => g.mqtt!.link.connected$.value, 'connected');
  return { g, press: (on: boolean) => inputs.get('panic')!(on) };
}

describe('a threat level raised by a door\'s input', () => {
  it('a panic input locks down the site; the door\'s key may raise only that; an operator ends it; active at start raises it again', async () => {
    const a = await start('gw1');
    const b = await start('gw2');
    a.press(true);
    for (const g of [a.g, b.g]) await until(() => g.pipeline.modeOf('lobby') === 'lockdown', `lockdown at ${g.config.gateway_id}`);
    const events = await until(async () => {
      const e = (await b.g.store.recentDoorEvents(50)).find((x) => x.type === 'threat_level' && x.door === 'lobby' && x.detail?.startsWith('lockdown'));
      return e ?? null;
    }, 'journaled at gw2');
    expect(events.detail).toBe('lockdown (site) set by door:gw1: input panic active (rule panic-lockdown); door lockdown');
    // The door's key lowers nothing and states nothing else: refused at gw2, by name.
    const k1 = doorKey(dirs.gw1);
    const c = await mqtt.connectAsync(broker.url, { username: 'site-operator', password: ACCOUNTS['site-operator'], protocolVersion: 5, clientId: 'forger' });
    closers.push(() => c.endAsync());
    const held = b.g.site!.status();
    const forge = (subject: string, body: unknown, version: number) => signEnvelope({ v: 1, kid: k1.kid, iat: Date.now(), id: `forge-${subject.replace(/\W/g, '')}-${version}`, kind: 'fact', subject, scope: { site: true }, version, body }, k1.privateKey);
    await c.publishAsync('doorgw-site/fact/threat_level/site', JSON.stringify(forge('threat_level/site', { level: 'normal' }, 99)), { qos: 1 });
    await c.publishAsync('doorgw-site/fact/block/card:1001', JSON.stringify(forge('block/card:1001', {}, 1)), { qos: 1 });
    await until(() => (b.g.site!.refusals.counts.role_not_allowed ?? 0) >= 2, 'both refused');
    expect(b.g.pipeline.modeOf('lobby')).toBe('lockdown');
    expect(b.g.site!.status().facts).toBe(held.facts);
    // The operator's newer version ends it everywhere.
    const tc = await ToolClient.connect({ url: broker.url, username: 'site-operator', password: ACCOUNTS['site-operator'], clientId: 'site-operator' });
    closers.push(() => tc.end());
    const op = new SiteTool(tc, mqttConfig(broker, join(tmpDir(), 'tool'), {}, undefined, { site: siteConfig() }), { privateKey: admin.privateKey, kid: keyIdOf(admin.publicKey) });
    await op.state('threat_level/site', { site: true }, { level: 'normal' });
    for (const g of [a.g, b.g]) await until(() => g.pipeline.modeOf('lobby') === 'normal', `normal at ${g.config.gateway_id}`);
    // gw1 starts again with the panic button still pressed: a state, so the level is raised again.
    a.press(false);
    await a.g.stop();
    const again = await start('gw1', { panicAtStart: true });
    for (const g of [again.g, b.g]) await until(() => g.pipeline.modeOf('lobby') === 'lockdown', `lockdown again at ${g.config.gateway_id}`);
  }, 30_000);

  it('a rule that raises a level the door\'s key may not raise is refused when the configuration is read', () => {
    const site = { ...siteConfig(), door_keys: siteConfig().door_keys.map((k) => ({ ...k, may_raise: [] })) };
    expect(() => mqttConfig(broker, dirs.gw1, {}, undefined, { gateway_id: 'gw1', site, io: panicIo })).toThrow(/this gateway's entry in site.door_keys must allow it: may_raise: \[lockdown\]/);
    expect(() => mqttConfig(broker, dirs.gw1, {}, undefined, { gateway_id: 'gw1', site: siteConfig(), io: { ...panicIo, linkage: [{ name: 'x', on: { input: 'panic' }, do: [{ site_level: 'lockdown', scope: 'mars' }] }] } })).toThrow(/scope 'mars' is neither site nor an area/);
  });
});
