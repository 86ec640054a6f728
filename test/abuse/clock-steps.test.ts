/**
 * Third outside probe, at the gateway: the wall clock steps forward and back (an operator's
 * `date -s`, NTP after an RTC-less boot) while the gateway runs and across restarts. The wall clock
 * is the gateway's `now`; the monotonic clock is real.
 */
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { credentialEvent } from '../../src/domain/events.js';
import { Gateway } from '../../src/gateway.js';
import type { SimRelay } from '../../src/io/relay.js';
import { createLogger } from '../../src/log.js';
import { employeeQr, makeKey } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';

const DAY = 86_400_000;
const key = makeKey();
const log = createLogger({ level: 'silent', pretty: false });
const running: Gateway[] = [];
afterEach(async () => {
  for (const g of running.splice(0)) await g.stop().catch(() => undefined);
});

async function start(dataDir: string, wall: { now: number }, extra: Record<string, unknown> = {}) {
  const config = validateConfig({ data_dir: dataDir, policy: { debounce_ms: 0 }, doors: [{ id: 'front', readers: [{ id: 'console', type: 'terminal', direction: 'in' }] }], ...extra }, 'test');
  const gw = await Gateway.start({ config, log, terminalInput: new PassThrough(), controlSocket: false, now: () => wall.now });
  running.push(gw);
  return gw;
}
const stop = async (gw: Gateway) => {
  running.splice(running.indexOf(gw), 1);
  await gw.stop();
};

describe('wall-clock steps at the gateway', () => {
  it('a used QR code stays refused after +1 day (with a restart and its prune) and back', async () => {
    const dir = join(tmpDir(), 'data');
    const wall = { now: Date.now() };
    let gw = await start(dir, wall);
    await gw.store.upsertUsers([user({ userid: 'emp', openvid: 7, public_key: key.publicB64 })]);
    const text = employeeQr(key.privateKey, '7', Math.floor(wall.now / 1000));
    const show = () => gw.pipeline.handle(credentialEvent('front', 'console', 'in', { type: 'qr', text }));
    expect(show()).toMatchObject({ decision: 'grant' });
    await gw.journal.flush();
    wall.now += DAY;
    await stop(gw);
    gw = await start(dir, wall); // loads and prunes the replay memory a day "later"
    expect(await gw.store.loadReplay()).toHaveLength(1);
    wall.now -= DAY;
    expect(show()).toMatchObject({ decision: 'deny', reason: 'replayed' });
    expect((gw.relays.get('front') as SimRelay).pulses).toEqual([]);
  });

  it('"newest" follows the sequence: entries written before the clock was put right do not stay on top', async () => {
    const wall = { now: Date.now() + 30 * DAY }; // a month ahead
    const gw = await start(join(tmpDir(), 'data'), wall);
    await gw.store.upsertUsers([user({ userid: 'a', cards: [1] }), user({ userid: 'b', cards: [2] })]);
    gw.pipeline.handle(credentialEvent('front', 'console', 'in', { type: 'card', value: '1' }));
    await gw.journal.flush();
    wall.now -= 30 * DAY; // NTP puts it right
    gw.pipeline.handle(credentialEvent('front', 'console', 'in', { type: 'card', value: '2' }));
    await gw.journal.flush();
    expect((await gw.api.journal({ limit: 1 })).map((e) => e.userid)).toEqual(['b']);
    expect((await gw.api.journalQuery({ limit: 1 })).entries.map((e) => (e as { userid?: string | null }).userid)).toEqual(['b']);
    const page1 = await gw.api.journalQuery({ limit: 1, order: 'desc' });
    expect((await gw.api.journalQuery({ limit: 5, after: page1.next! })).entries.map((e) => (e as { userid?: string | null }).userid)).toEqual(['a']);
    // A time range still reads by time.
    expect((await gw.api.journalQuery({ from: wall.now - DAY, to: wall.now + DAY })).entries.map((e) => (e as { userid?: string | null }).userid)).toEqual(['b']);
  });

  it('retention by age is measured on a clock that cannot jump ahead: a year forward deletes nothing', async () => {
    const dir = join(tmpDir(), 'data');
    const wall = { now: Date.now() };
    let gw = await start(dir, wall, { journal: { max_age_days: 30 } });
    await gw.store.upsertUsers([user({ userid: 'a', cards: [1] })]);
    for (let i = 0; i < 3; i++) gw.pipeline.handle(credentialEvent('front', 'console', 'in', { type: 'card', value: '1' }));
    await gw.journal.flush();
    await stop(gw);
    wall.now += 365 * DAY;
    gw = await start(dir, wall, { journal: { max_age_days: 30 } }); // prunes by age at start
    await gw.journal.flush();
    expect(await gw.store.recentJournal(10)).toHaveLength(3);
    // Older than the retention on the steady clock: deleted as before.
    await gw.store.append([{ decision: { decision: 'deny', reason: 'unknown_user', userid: null, user_type: null, method: 'card', door: 'front', at: Date.now() - 40 * DAY } }]);
    expect(await gw.store.pruneByAge(Date.now() - 30 * DAY)).toBe(1);
    expect(await gw.store.recentJournal(10)).toHaveLength(3);
  });
});
