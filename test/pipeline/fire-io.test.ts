/**
 * Fire release, named inputs and outputs, and linkage rules, through the real composition root on
 * the simulated relays and inputs (the character-device backend is tested in test/io/gpio-cdev.test.ts).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { SimRelay } from '../../src/io/relay.js';
import type { InputSpec } from '../../src/io/gpio/backends.js';
import { createLogger } from '../../src/log.js';
import { credentialEvent } from '../../src/domain/events.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';

const silent = createLogger({ level: 'silent', pretty: false });
const running: Gateway[] = [];
afterEach(async () => {
  for (const g of running.splice(0)) await g.stop().catch(() => undefined);
});

const HOLD = 2 ** 31 - 1;

/** A gateway whose GPIO inputs the test drives: `set('io.panel', true)`, `set('front.door_contact', false)`. */
async function rig(o: { dir?: string; io?: Record<string, unknown>; levels?: Record<string, boolean>; doors?: unknown[]; extra?: Record<string, unknown>; now?: () => number } = {}) {
  const dir = o.dir ?? join(tmpDir(), 'data');
  const inputs = new Map<string, InputSpec>();
  const config = validateConfig(
    {
      data_dir: dir,
      policy: { debounce_ms: 0 },
      interlocks: { mantrap: ['front', 'side'] },
      doors: o.doors ?? [
        { id: 'front', relay: { pulse_ms: 1000 }, inputs: { door_contact: { pin: 22 } }, alarms: { open_grace_s: 0 } },
        { id: 'back', mode: 'lockdown', relay: { lock_type: 'fail_safe' } },
        { id: 'side' },
        { id: 'lobby' },
      ],
      io: o.io ?? { inputs: { panel: { pin: 5, active_low: false } }, fire: [{ input: 'panel', doors: ['front', 'back', 'side'] }] },
      ...o.extra,
    },
    'test',
  );
  const gw = await Gateway.start({
    config,
    log: silent,
    controlSocket: false,
    ...(o.now ? { now: o.now } : {}),
    inputFactory: (spec) => {
      inputs.set(`${spec.door}.${spec.name}`, spec);
      const key = `${spec.door}.${spec.name}`;
      return Promise.resolve({ close: () => undefined, active: o.levels?.[key] ?? (spec.name === 'door_contact') });
    },
  });
  running.push(gw);
  const set = (key: string, active: boolean): void => inputs.get(key)!.onChange(active);
  const relay = (door: string) => gw.relays.get(door) as SimRelay;
  const events = async (type?: string) => (await gw.store.recentDoorEvents(200)).filter((e) => type === undefined || e.type === type).reverse();
  return { gw, set, relay, events, dir };
}

describe('fire release', () => {
  it('releases every governed door over grants, lockdown, interlock and operators; latched until reset; then modes apply again', async () => {
    const { gw, set, relay, events } = await rig();
    await gw.store.upsertUsers([user({ userid: 'a', cards: [1] })]);
    const card = (door: string) => gw.pipeline.handle(credentialEvent(door, 'r', 'in', { type: 'card', value: '1' }));
    expect(card('front')).toMatchObject({ decision: 'grant' }); // a grant in progress when the alarm comes
    expect(relay('front').pulses.map((p) => p.ms)).toEqual([1000]);

    set('io.panel', true);
    // Every governed door released at once, the fail-safe one included (the relay's released level is the lock type's).
    for (const d of ['front', 'back', 'side']) expect(relay(d).energised, d).toBe(true);
    expect(relay('front').pulses.at(-1)).toMatchObject({ ms: HOLD, extended: true });
    expect(relay('lobby').energised).toBe(false); // not governed
    // Nothing moves them now: lockdown, an operator's lock, a grant's pulse, a re-lock on close.
    expect(gw.pipeline.setMode('front', 'lockdown', { by: 'test' })).toBe(true);
    expect(gw.pipeline.relock('side')).toBe(true);
    await expect(gw.api.lock({ door: 'side', by: 'guard' })).rejects.toThrow(/door 'side' is released by a fire alarm: it stays released until the release ends/); // said, not ignored
    expect(card('front')).toMatchObject({ decision: 'deny', reason: 'lockdown' }); // decided and journaled as always
    expect(card('side')).toMatchObject({ decision: 'deny', reason: 'interlock' }); // the interlock denies; fire holds it open anyway
    set('front.door_contact', false); // people leave
    expect(gw.doors.get('front')!.state$.value).toMatchObject({ contact: 'open', alarm: null }); // no forced-open
    set('front.door_contact', true); // closes: relock_on_close would re-lock
    for (const d of ['front', 'back', 'side']) expect(relay(d).energised, d).toBe(true);
    expect(relay('front').pulses.filter((p) => p.ms !== HOLD)).toHaveLength(1); // no pulse shortened the hold
    const st = await gw.api.status();
    expect(st.io?.fire.released).toEqual(['front', 'back', 'side']);
    expect(st.doors.map((d) => [d.id, d.lock])).toEqual([['front', 'unlocked'], ['back', 'unlocked'], ['side', 'unlocked'], ['lobby', 'locked']]);

    // A reset while the panel is still in alarm is refused, per door, saying why.
    await expect(gw.api.fireReset({ by: 'guard' })).resolves.toEqual({ reset: [], refused: ['front', 'back', 'side'].map((door) => ({ door, reason: 'the fire alarm is still active (fire input panel)' })) });
    set('io.panel', false);
    expect(relay('front').energised).toBe(true); // latched
    set('io.panel', true); // a loose terminal flaps: no more journal entries, still released
    set('io.panel', false);
    expect((await gw.api.status()).io?.fire.doors[0]).toMatchObject({ door: 'front', released: true, active: [], latched: { cause: 'fire input panel' } });

    const r = await gw.api.fireReset({ by: 'guard' });
    expect(r).toEqual({ reset: ['front', 'back', 'side'], refused: [] });
    // Modes apply again: front and back in lockdown re-lock; side (normal) re-locks.
    for (const d of ['front', 'back', 'side']) expect(relay(d).energised, d).toBe(false);
    await vi.waitFor(async () => expect((await events()).filter((e) => e.type.startsWith('fire')).map((e) => [e.type, e.door])).toEqual([
      ['fire_release', 'front'], ['fire_release', 'back'], ['fire_release', 'side'],
      ['fire_cleared', 'front'], ['fire_cleared', 'back'], ['fire_cleared', 'side'],
      ['fire_reset', 'front'], ['fire_reset', 'back'], ['fire_reset', 'side'],
    ]));
    expect((await events('fire_release'))[0]!.detail).toBe('fire input panel (latched until reset)');
    expect((await events('operator_action')).map((e) => e.detail)).toEqual(['guard: fire reset: nothing reset; refused front, back, side: the fire alarm is still active (fire input panel)', 'guard: fire reset: reset front, back, side']);
  });

  it('metrics: the release per door, the inputs and the outputs', async () => {
    const { gw, set } = await rig({ extra: { web: { enabled: true, port: 0 } } });
    set('io.panel', true);
    const a = gw.web!.address!;
    const text = await (await fetch(`http://127.0.0.1:${a.port}/metrics`)).text();
    const lines = text.split('\n').filter((l) => /^doorgw_(fire_release|input_active)\{/.test(l));
    expect(lines).toEqual(['doorgw_fire_release{door="front"} 1', 'doorgw_fire_release{door="back"} 1', 'doorgw_fire_release{door="side"} 1', 'doorgw_fire_release{door="lobby"} 0', 'doorgw_input_active{input="panel",alarm="none"} 1']);
  });

  it('a passage door is held again after the reset; a door open during the release raises no held-open', async () => {
    const { gw, set, relay } = await rig({ doors: [{ id: 'front', mode: 'passage', inputs: { door_contact: { pin: 22 } } }, { id: 'side' }], io: { inputs: { panel: { pin: 5, active_low: false } }, fire: [{ input: 'panel', latch: false }] }, extra: { interlocks: {} } });
    expect(relay('front').energised).toBe(true);
    set('io.panel', true);
    expect(relay('side').energised).toBe(true); // default: every door
    set('io.panel', false); // not latched: ends with the input
    expect(relay('side').energised).toBe(false);
    expect(relay('front').energised).toBe(true); // passage holds it again
    expect(relay('front').pulses.at(-1)!.ms).toBe(HOLD);
    expect(gw.doors.get('front')!.state$.value.alarm).toBeNull();
  });

  it('a latched release outlives a restart; a panel in alarm at start releases before the first decision', async () => {
    const dir = join(tmpDir(), 'data');
    const a = await rig({ dir });
    a.set('io.panel', true);
    a.set('io.panel', false);
    await vi.waitFor(async () => expect(await a.gw.store.getMeta('door.front.fire')).toMatchObject({ cause: 'fire input panel' }));
    await a.gw.stop();
    running.splice(0);
    expect(a.relay('front').energised).toBe(true); // stopped during the release: left released, not locked
    expect(a.relay('lobby').energised).toBe(false);
    const b = await rig({ dir });
    expect(b.relay('front').energised).toBe(true);
    expect(b.relay('side').energised).toBe(true);
    expect(b.relay('lobby').energised).toBe(false);
    expect((await b.gw.api.status()).io?.fire.released).toEqual(['front', 'back', 'side']);
    expect((await b.gw.api.fireReset({ door: 'front', by: 'guard' })).reset).toEqual(['front']);
    await vi.waitFor(async () => expect(await b.gw.store.getMeta('door.front.fire')).toBeUndefined()); // null deletes
    expect(b.relay('front').energised).toBe(false);
    expect(b.relay('side').energised).toBe(true);
    await b.gw.stop();
    running.splice(0);
    // The panel reads in alarm when the gateway starts: a state, released at once.
    const c = await rig({ dir, levels: { 'io.panel': true } });
    expect(c.relay('front').energised).toBe(true);
    await vi.waitFor(async () => expect((await c.events('fire_release')).some((e) => e.door === 'front' && e.detail === 'fire input panel (active when the gateway started) (latched until reset)')).toBe(true));
    await expect(c.gw.api.fireReset({ door: 'nope' })).rejects.toThrow(/no door 'nope'/);
  });
});

describe('named inputs, outputs and linkage', () => {
  const io = {
    inputs: { tamper: { pin: 6, alarm: 'tamper', name: 'enclosure' }, bell: { pin: 16 }, panic: { pin: 12 }, mains: { pin: 13, active_low: false }, armed: { pin: 17 } },
    outputs: { siren: { driver: 'sim' }, strobe: { driver: 'sim' }, front2: { driver: 'sim', name: 'front second relay' } },
    linkage: [
      { name: 'forced-siren', on: { event: 'forced_open', door: 'front' }, do: [{ output: 'siren', pulse_s: 30 }, { alarm: 'front forced: siren on' }] },
      { name: 'bell-relay', on: { input: 'bell' }, do: [{ output: 'front2', pulse_s: 2 }] },
      { name: 'panic-strobe', on: { input: 'panic' }, do: [{ output: 'strobe', while_active: true }] },
      { name: 'mains-lost', on: { input: 'mains', state: 'inactive' }, do: [{ doors: ['back'], mode: 'passage', duration_s: 600 }] },
      { name: 'armed-deny', on: { input: 'armed' }, do: [{ deny_groups: ['cleaners'], doors: ['front'] }] },
    ],
  };

  it('a deny burst at a door is an alarm a rule can sound the siren on', async () => {
    const doors = [{ id: 'front', alarms: { deny_burst: { count: 3, within_s: 60 } } }, { id: 'side' }];
    const { gw, events } = await rig({ doors, extra: { interlocks: {} }, io: { outputs: { siren: { driver: 'sim' } }, linkage: [{ name: 'probe', on: { event: 'deny_burst' }, do: [{ output: 'siren', pulse_s: 10 }] }] } });
    const unknown = (door: string, n: number) => gw.pipeline.handle(credentialEvent(door, 'r', 'in', { type: 'card', value: String(n) }))!;
    for (const n of [91, 92]) expect(unknown('front', n).reason).toBe('unknown_user');
    for (const n of [93, 94, 95]) unknown('side', n); // another door, no burst configured
    expect((gw.io!.outputs.get('siren') as SimRelay).pulses).toHaveLength(0);
    unknown('front', 96);
    expect((gw.io!.outputs.get('siren') as SimRelay).pulses.map((p) => p.ms)).toEqual([10_000]);
    await vi.waitFor(async () => expect((await events('deny_burst')).map((e) => [e.door, e.reader, e.detail])).toEqual([['front', 'r', '3 denials within 60 s']]));
  });

  it('a rule denies a group at a door while its input is active (the alarm panel armed), and lets go with it', async () => {
    const { gw, set, events } = await rig({ io, levels: { 'io.mains': true }, extra: { interlocks: {}, groups: { cleaners: ['ana'] } } });
    await gw.store.upsertUsers([user({ userid: 'ana', cards: [7] }), user({ userid: 'li', cards: [8] })]);
    const card = (door: string, n: number) => gw.pipeline.handle(credentialEvent(door, 'r', 'in', { type: 'card', value: String(n) }))!;
    expect(card('front', 7).decision).toBe('grant');
    set('io.armed', true);
    expect(card('front', 7)).toMatchObject({ decision: 'deny', reason: 'input_deny', detail: 'denied while input armed active (rule armed-deny)' });
    expect(card('front', 8).decision).toBe('grant'); // not a cleaner
    expect(card('side', 7).decision).toBe('grant'); // another door
    set('io.armed', false);
    expect(card('front', 7).decision).toBe('grant');
    await vi.waitFor(async () => expect((await events('linkage')).map((e) => [e.door, e.detail])).toEqual([
      ['front', 'rule armed-deny on input armed active: deny cleaners at front'],
      ['front', 'rule armed-deny on input armed inactive: no longer deny cleaners at front'],
    ]));
  });
  it('an event drives a siren and raises an alarm; an input drives a second relay; a hold follows its input; each action journaled with its cause', async () => {
    const { gw, set, events } = await rig({ io, levels: { 'io.mains': true }, extra: { interlocks: { mantrap: ['front', 'side'] }, groups: { cleaners: [] } } });
    const out = (n: string) => gw.io!.outputs.get(n) as SimRelay;
    expect(out('siren').energised).toBe(false); // idle from the start

    set('front.door_contact', false); // forced
    expect(out('siren').pulses.map((p) => p.ms)).toEqual([30_000]);
    set('io.bell', true);
    expect(out('front2').pulses.map((p) => p.ms)).toEqual([2000]);
    set('io.bell', false);
    set('io.panic', true);
    expect(out('strobe').energised).toBe(true);
    set('io.panic', false);
    expect(out('strobe').energised).toBe(false);
    set('io.mains', false); // power lost
    expect(gw.pipeline.modeOf('back')).toBe('passage');
    expect(gw.pipeline.modeOf('front')).toBe('normal');

    set('io.tamper', true);
    set('io.tamper', false);
    await vi.waitFor(async () => expect((await events('linkage')).map((e) => e.detail)).toEqual([
      'rule forced-siren on forced_open at front: output siren on for 30 s',
      'rule forced-siren on forced_open at front: alarm: front forced: siren on',
      'rule bell-relay on input bell active: output front2 on for 2 s',
      'rule panic-strobe on input panic active: output strobe on while the input is active',
      'rule panic-strobe on input panic inactive: output strobe off',
      expect.stringMatching(/^rule mains-lost on input mains inactive: door back passage until \d{4}-\d\d-\d\d \d\d:\d\d/),
    ]));
    expect((await events('linkage_alarm')).map((e) => [e.door, e.detail])).toEqual([['gateway', 'front forced: siren on (rule forced-siren: forced_open at front)']]);
    expect((await events()).filter((e) => e.type.startsWith('io_alarm')).map((e) => [e.type, e.door, e.detail])).toEqual([
      ['io_alarm', 'gateway', 'enclosure (tamper)'],
      ['io_alarm_cleared', 'gateway', 'enclosure (tamper) back to normal'],
    ]);
    expect((await events('mode_changed')).map((e) => e.detail)).toEqual([expect.stringMatching(/^lockdown → passage until .* by linkage:mains-lost$/)]);
    const st = await gw.api.status();
    expect(st.io?.inputs.find((i) => i.name === 'tamper')).toEqual({ name: 'tamper', label: 'enclosure', alarm: 'tamper', active: false });
    expect(st.io?.outputs.find((i) => i.name === 'front2')).toEqual({ name: 'front2', label: 'front second relay', on: true });
  });

  it('an alarm input active at start is an alarm at start; a rule on an input active at start acts at start', async () => {
    const { gw, events } = await rig({ io, levels: { 'io.tamper': true, 'io.panic': true, 'io.mains': true }, extra: { groups: { cleaners: [] } } });
    expect((gw.io!.outputs.get('strobe') as SimRelay).energised).toBe(true);
    await vi.waitFor(async () => expect((await events('io_alarm')).map((e) => e.detail)).toEqual(['enclosure (tamper) active when the gateway started']));
  });
});

describe('lift floors', () => {
  const floors: [string, string][] = [['G', 'fg'], ['1', 'f1'], ['2', 'f2'], ['3', 'f3']];
  const lift = (extra: Record<string, unknown> = {}) => ({
    doors: [{ id: 'car', lift: { floors: floors.map(([floor, output]) => ({ floor, output })), groups: { staff: ['1', '2'], execs: ['3'] }, everyone: ['G'], enable_s: 1, ...extra } }],
    io: { inputs: { panel: { pin: 5, active_low: false } }, outputs: Object.fromEntries(floors.map(([, o]) => [o, { driver: 'sim' }])), fire: [{ input: 'panel', latch: false }] },
    extra: { interlocks: {}, groups: { staff: ['li', 'wang'], execs: ['wang'] } },
  });
  const on = (gw: Gateway) => floors.filter(([, o]) => (gw.io!.outputs.get(o) as SimRelay).energised).map(([f]) => f);

  it('a grant enables exactly the person\'s floors (groups from the configuration and from their local record) and closes them after enable_s', async () => {
    const { gw, events } = await rig(lift());
    await gw.store.upsertUsers([user({ userid: 'li', cards: [1] }), user({ userid: 'wang', cards: [2] }), user({ userid: 'zhao', cards: [3] })]);
    await gw.api.usersSet({ userid: 'zhao', groups: ['execs'], by: 'test' }); // a local record names the group
    const card = (n: number) => gw.pipeline.handle(credentialEvent('car', 'r', 'in', { type: 'card', value: String(n) }));
    expect(card(1)).toMatchObject({ decision: 'grant', userid: 'li' });
    expect(on(gw)).toEqual(['G', '1', '2']);
    await vi.waitFor(() => expect(on(gw)).toEqual([]), { timeout: 3000 }); // closed after 1 s
    expect(card(3)).toMatchObject({ decision: 'grant', userid: 'zhao' });
    expect(on(gw)).toEqual(['G', '3']);
    expect(card(2)).toMatchObject({ decision: 'grant', userid: 'wang' });
    expect(on(gw)).toEqual(['G', '1', '2', '3']);
    expect(card(9)).toMatchObject({ decision: 'deny' }); // unknown: nothing more
    await vi.waitFor(async () => expect((await events('lift_floors')).map((e) => e.detail)).toEqual(['floors G, 1, 2 enabled for 1 s: li', 'floors G, 3 enabled for 1 s: zhao', 'floors G, 1, 2, 3 enabled for 1 s: wang']));
    expect((await gw.api.status()).io?.lifts[0]!.floors.filter((f) => f.on).map((f) => [f.floor, f.why])).toEqual([['G', ['grant']], ['1', ['grant']], ['2', ['grant']], ['3', ['grant']]]);
  });

  it('free access by schedule holds floors inside the window; a fire release opens every floor until it ends', async () => {
    // 10:00 on a weekday in Shanghai: inside 8:00-18:00.
    const { gw, set, events } = await rig({ ...lift({ free_access: [{ floors: ['G', '1'], schedule: ['8:00-18:00 * * * *'] }] }), now: () => Date.parse('2026-12-02T10:00:00+08:00') });
    expect(on(gw)).toEqual(['G', '1']);
    set('io.panel', true);
    expect(on(gw)).toEqual(['G', '1', '2', '3']);
    set('io.panel', false);
    expect(on(gw)).toEqual(['G', '1']); // free access still holds its floors
    await vi.waitFor(async () => expect((await events('lift_floors')).map((e) => e.detail)).toEqual(['free access (schedule): floors G, 1', 'fire release: floors G, 1, 2, 3', 'fire release ended: floors G, 1, 2, 3']));
  });

  it('refuses a lift naming floors, outputs or groups that do not exist', () => {
    const bad = (l: Record<string, unknown>) => () => validateConfig({ data_dir: '/tmp/x', groups: { staff: [] }, io: { outputs: { fg: { driver: 'sim' } } }, doors: [{ id: 'car', lift: { floors: [{ floor: 'G', output: 'fg' }], ...l } }] }, 'test');
    expect(bad({ floors: [{ floor: 'G', output: 'nope' }] })).toThrow(/doors\[0\]\.lift\.floors\[0\]\.output: no output 'nope'/);
    expect(bad({ floors: [{ floor: 'G', output: 'fg' }, { floor: '1', output: 'fg' }] })).toThrow(/output 'fg' already enables floor 'G'/);
    expect(bad({ everyone: ['9'] })).toThrow(/lift\.everyone\[0\]: no floor '9' \(floors: G\)/);
    expect(bad({ groups: { cleaners: ['G'] } })).toThrow(/lift\.groups\.cleaners: no group 'cleaners'/);
    expect(bad({ fire: ['7'] })).toThrow(/lift\.fire\[0\]: no floor '7'/);
  });
});
