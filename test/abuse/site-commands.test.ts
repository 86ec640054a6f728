/**
 * Signed site commands through a real Mosquitto with the shipped ACL (issue 23, first piece): a
 * guard's signed open opens and is journaled with the guard's name; forged, unknown-key, wrong-role,
 * replayed, expired, out-of-scope and retained envelopes are refused by name and open nothing, and a
 * flood of them is journaled boundedly. A broker account proves nothing: the operator account
 * publishes every one of them.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyIdOf, signEnvelope, type SiteEnvelope } from '../../src/domain/site-envelope.js';
import { createLogger } from '../../src/log.js';
import { Broker, client } from '../helpers/mosquitto.js';
import { cleanup, simRelay, startMqttGateway } from '../helpers/mqtt-gateway.js';
import { makeKey } from '../helpers/qr.js';
import { until } from '../helpers/wait.js';

const broker = new Broker();
const qrKey = makeKey();
beforeAll(() => broker.start());
afterAll(() => broker.stop());
const log = createLogger({ level: 'silent', pretty: false });
const t = cleanup();

const guard = generateKeyPairSync('ed25519');
const viewer = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('ed25519');
const raw = (k: KeyObject) => k.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
const site = {
  enabled: true,
  keys: [
    { kid: keyIdOf(guard.publicKey), name: 'guard-desk', public_key: raw(guard.publicKey), roles: ['guard'] },
    { kid: keyIdOf(viewer.publicKey), name: 'lobby-screen', public_key: raw(viewer.publicKey), roles: ['viewer'] },
  ],
};
let n = 0;
const open = (signer: { privateKey: KeyObject; publicKey: KeyObject }, o: Partial<SiteEnvelope> = {}): SiteEnvelope =>
  signEnvelope({ v: 1, kid: keyIdOf(signer.publicKey), iat: Date.now(), id: `open-${Date.now()}-${++n}`, kind: 'command', subject: 'open/lobby', scope: { doors: ['lobby'] }, exp: Date.now() + 10_000, body: {}, ...o }, signer.privateKey);

describe('signed site commands', () => {
  it('a signed open opens, journaled with the signer; every other kind is refused by name and opens nothing', async () => {
    const g = await startMqttGateway(broker, { log, key: qrKey, top: { site } });
    t.gw = g;
    const op = await client(broker, 'operator');
    t.closers.push(() => op.c.endAsync());
    const send = (e: unknown, retain = false) => op.c.publishAsync('doorgw-site/command', typeof e === 'string' ? e : JSON.stringify(e), { qos: 1, retain });
    const refused = async () => (await g.store.recentDoorEvents(200)).filter((e) => e.type === 'site_refused' && e.door === 'lobby').map((e) => e.detail!.split(':')[0]);

    const good = open(guard);
    await send(good);
    await until(() => simRelay(g).pulses.length === 1, 'the signed open');
    await until(async () => (await g.store.recentDoorEvents(50)).some((e) => e.type === 'operator_action' && e.detail === 'site:guard-desk: open (grant)'), 'journaled with the signer');

    await send(good); // replayed
    await send({ ...open(stranger), kid: keyIdOf(guard.publicKey) }); // forged
    await send(open(stranger)); // unknown key
    await send(open(viewer)); // a role that may not open
    await send(open(guard, { iat: Date.now() - 120_000, exp: Date.now() - 110_000 })); // expired, delivered late
    await send(open(guard, { scope: { doors: ['vault'] } })); // not this door
    await send({ ...open(guard), sig: undefined }); // unsigned
    await send(open(guard), true); // retained
    await until(async () => (await refused()).length === 8, 'eight refusals');
    expect((await refused()).sort()).toEqual(['bad_signature', 'expired', 'no_signature', 'out_of_scope', 'replayed', 'replayed', 'role_not_allowed', 'unknown_key']);
    // Sentinel: a valid open after them opens exactly once more.
    await send(open(guard));
    await until(() => simRelay(g).pulses.length === 2, 'the sentinel open');
    expect(simRelay(g).pulses).toHaveLength(2);
    await send('', true); // clear the retained one for the next gateway
  }, 30_000);

  it('a flood of bad envelopes is journaled boundedly and the door keeps opening for good ones', async () => {
    const g = await startMqttGateway(broker, { log, key: qrKey, top: { site } });
    t.gw = g;
    const op = await client(broker, 'operator');
    t.closers.push(() => op.c.endAsync());
    for (let i = 0; i < 300; i++) await op.c.publishAsync('doorgw-site/command', JSON.stringify(open(stranger)), { qos: 1 });
    await op.c.publishAsync('doorgw-site/command', JSON.stringify(open(guard)), { qos: 1 });
    await until(() => simRelay(g).pulses.length === 1, 'the good open after the flood');
    const journaled = (await g.store.recentDoorEvents(1000)).filter((e) => e.type === 'site_refused' && e.door === 'lobby' && e.detail!.startsWith('unknown_key'));
    expect(journaled.length).toBe(10); // 10 a minute per reason; the rest are counted into one summary
  }, 30_000);
});

describe('site commands over a real bridge', () => {
  it('a command published at the site broker reaches a door behind its own Mosquitto bridged as the role configures it', async () => {
    // The site broker: anonymous here (its own accounts and ACL are the site's to set).
    const dir = mkdtempSync(join(tmpdir(), 'doorgw-site-broker-'));
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    writeFileSync(join(dir, 'site.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    const siteBroker = spawn(existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto', ['-c', join(dir, 'site.conf')], { stdio: 'ignore' });
    t.closers.push(() => Promise.resolve(void siteBroker.kill('SIGKILL')));
    // The door's broker: the shipped listener plus the bridge lines mosquitto-doorgw.conf.j2 renders with the site on.
    const local = new Broker(null, `connection doorgw-gw1\naddress 127.0.0.1:${port}\nremote_clientid doorgw-bridge-gw1\nbridge_protocol_version mqttv50\ncleansession false\ntopic doorgw-site/command in 1\n`);
    await local.start();
    t.closers.push(() => local.stop());
    const g = await startMqttGateway(local, { log, key: qrKey, top: { site } });
    t.gw = g;
    const publisher = await new Promise<mqtt.MqttClient>((resolve, reject) => {
      const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, reconnectPeriod: 200 });
      c.once('connect', () => resolve(c));
      c.once('error', reject);
    });
    t.closers.push(() => publisher.endAsync());
    // Until the bridge has subscribed, a publish at the site broker reaches nobody: send fresh
    // envelopes (each its own id) until one opens.
    for (let i = 0; i < 100 && simRelay(g).pulses.length === 0; i++) {
      await publisher.publishAsync('doorgw-site/command', JSON.stringify(open(guard)), { qos: 1 });
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(simRelay(g).pulses.length).toBeGreaterThanOrEqual(1);
    await until(async () => (await g.store.recentDoorEvents(50)).some((e) => e.detail === 'site:guard-desk: open (grant)'), 'journaled with the signer');
    expect((await g.store.recentDoorEvents(200)).filter((e) => e.type === 'site_refused')).toEqual([]);
  }, 30_000);
});
