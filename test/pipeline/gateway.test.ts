import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { localApi } from '../../src/control/api.js';
import { Gateway } from '../../src/gateway.js';
import { Store, StoreLockedError } from '../../src/store/store.js';
import { SimRelay } from '../../src/io/relay.js';
import { createLogger } from '../../src/log.js';
import { credentialEvent, type CredentialEvent, type DecisionEvent } from '../../src/domain/events.js';
import { employeeQr, makeKey, malleate } from '../helpers/qr.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';

const key = makeKey();
const silent = createLogger({ level: 'silent', pretty: false });
const running: Gateway[] = [];
afterEach(async () => {
  for (const g of running.splice(0)) await g.stop().catch(() => undefined);
});

function configFor(dataDir: string, extra: Record<string, unknown> = {}) {
  return validateConfig(
    {
      data_dir: dataDir,
      doors: [
        { id: 'front', relay: { pulse_ms: 1000 }, readers: [{ id: 'console', type: 'terminal', direction: 'in' }] },
        { id: 'back', relay: { pulse_ms: 1000 }, readers: [] },
      ],
      ...extra,
    },
    'test',
  );
}

async function startGateway(dataDir: string, o: { input?: PassThrough; sources?: Subject<CredentialEvent>[]; extra?: Record<string, unknown> } = {}) {
  const gw = await Gateway.start({
    config: configFor(dataDir, o.extra),
    log: silent,
    terminalInput: o.input ?? new PassThrough(),
    sources: o.sources ?? [],
    controlSocket: false,
  });
  running.push(gw);
  return gw;
}

const relay = (gw: Gateway, door: string): SimRelay => gw.relays.get(door) as SimRelay;

function nextDecisions(gw: Gateway, n: number): Promise<DecisionEvent[]> {
  return new Promise((resolve) => {
    const got: DecisionEvent[] = [];
    const sub = gw.pipeline.decisions$.subscribe((d) => {
      got.push(d);
      if (got.length === n) {
        sub.unsubscribe();
        resolve(got);
      }
    });
  });
}

describe('gateway pipeline', () => {
  it('decides terminal scans, pulses the relay for grants only, and journals every decision durably', async () => {
    const dir = join(tmpDir(), 'data');
    const input = new PassThrough();
    const gw = await startGateway(dir, { input });
    await gw.store.upsertUsers([user({ userid: 'emp', openvid: 7, public_key: key.publicB64, cards: [42] })]);
    const decided = nextDecisions(gw, 3);
    input.write(`${employeeQr(key.privateKey, '7', Math.floor(Date.now() / 1000))}\n`);
    input.write('card:999\n');
    input.write('exit\n');
    const ds = await decided;
    expect(ds.map((d) => [d.decision, d.reason, d.method])).toEqual([
      ['grant', 'default_allow', 'qr'],
      ['deny', 'unknown_user', 'card'],
      ['grant', 'exit_request', 'exit'],
    ]);
    expect(ds[0]).toMatchObject({ userid: 'emp', door: 'front', reader: 'console', direction: 'in' });
    expect(ds[0]!.latency_us).toBeGreaterThan(0);
    const pulses = relay(gw, 'front').pulses;
    expect(pulses.map((p) => [p.ms, p.extended])).toEqual([[1000, false], [1000, true]]); // the exit extended the QR pulse
    expect(relay(gw, 'back').pulses).toEqual([]);

    await gw.journal.flush();
    const journal = await gw.store.recentJournal(10);
    expect(journal.map((j) => j.reason)).toEqual(['exit_request', 'unknown_user', 'default_allow']);
    expect(await gw.store.outboxDepth()).toBe(0); // no cloud takes pass records: the journal has them
  });

  it('treats a repeated read within the debounce window as one read, not a replay', async () => {
    const gw = await startGateway(join(tmpDir(), 'data'));
    await gw.store.upsertUsers([user({ userid: 'emp', openvid: 7, public_key: key.publicB64 })]);
    const text = employeeQr(key.privateKey, '7', Math.floor(Date.now() / 1000));
    const ev = () => credentialEvent('front', 'console', 'in', { type: 'qr', text });
    expect(gw.pipeline.handle(ev())).toMatchObject({ decision: 'grant' });
    expect(gw.pipeline.handle(ev())).toBeNull();
    expect(relay(gw, 'front').pulses).toHaveLength(1);
  });

  it('has one source of truth for door modes: status and check see a mode set at run time, running or not', async () => {
    const dir = join(tmpDir(), 'data');
    const gw = await startGateway(dir);
    await gw.store.upsertUsers([user({ userid: 'a', cards: [1] })]);
    gw.pipeline.setMode('front', 'lockdown');
    expect((await gw.api.status()).doors).toEqual([
      { id: 'front', name: 'front', mode: 'lockdown', until: null, why: 'manual', lock: 'locked', contact: 'unknown', alarm: null },
      { id: 'back', name: 'back', mode: 'normal', until: null, why: 'configured', lock: 'locked', contact: 'unknown', alarm: null },
    ]);
    expect(await gw.api.check({ card: '1' })).toMatchObject({ decision: 'deny', reason: 'lockdown', userid: 'a' });
    expect(await gw.api.check({ card: '1', door: 'back' })).toMatchObject({ decision: 'grant' });
    await vi.waitFor(async () => expect(await gw.store.getMeta('door.front.mode')).toMatchObject({ mode: 'lockdown' })); // persisted after the change
    await gw.stop();
    running.splice(0);
    // The gateway stopped: the CLI reads the store directly and still sees the persisted mode.
    const store = await Store.open(dir);
    const offline = localApi(store, configFor(dir), 'test');
    expect((await offline.status()).doors[0]).toEqual({ id: 'front', name: 'front', mode: 'lockdown', until: null });
    expect(await offline.check({ card: '1' })).toMatchObject({ reason: 'lockdown' });
    await store.close();
  });

  it('remembers accepted QR codes across a restart', async () => {
    const dir = join(tmpDir(), 'data');
    let gw = await startGateway(dir, { extra: { policy: { debounce_ms: 0 } } });
    await gw.store.upsertUsers([user({ userid: 'emp', openvid: 7, public_key: key.publicB64 })]);
    const text = employeeQr(key.privateKey, '7', Math.floor(Date.now() / 1000));
    expect(gw.pipeline.handle(credentialEvent('front', 'console', 'in', { type: 'qr', text }))?.decision).toBe('grant');
    await gw.journal.flush(); // the replay memory is in the journal entry's synced write
    expect((await gw.store.loadReplay()).map(([k]) => k)).toEqual([Buffer.from(text, 'base64').subarray(0, 16).toString('base64')]);
    expect(JSON.stringify(await gw.store.recentJournal(1))).not.toContain('replay');
    await gw.stop();
    running.splice(0);
    gw = await startGateway(dir, { extra: { policy: { debounce_ms: 0 } } });
    expect(gw.pipeline.handle(credentialEvent('front', 'console', 'in', { type: 'qr', text }))).toMatchObject({ decision: 'deny', reason: 'replayed' });
    expect(gw.pipeline.handle(credentialEvent('front', 'console', 'in', { type: 'qr', text: malleate(text) }))).toMatchObject({ decision: 'deny', reason: 'replayed' });
    expect(relay(gw, 'front').pulses).toEqual([]);
  });

  it('serialises per door but keeps doors independent, and merges extra sources', async () => {
    const src = new Subject<CredentialEvent>();
    const gw = await startGateway(join(tmpDir(), 'data'), { sources: [src] });
    await gw.store.upsertUsers([user({ userid: 'a', cards: [1] }), user({ userid: 'b', cards: [2] })]);
    const decided = nextDecisions(gw, 3);
    src.next(credentialEvent('back', 'r', 'out', { type: 'card', value: '1' }));
    src.next(credentialEvent('front', 'r', 'in', { type: 'card', value: '2' }));
    src.next(credentialEvent('nowhere', 'r', 'in', { type: 'card', value: '2' })); // unknown door: ignored
    src.next(credentialEvent('back', 'r', 'out', { type: 'card', value: '2' }));
    const ds = await decided;
    expect(ds.map((d) => `${d.door}:${d.userid}`)).toEqual(['back:a', 'front:b', 'back:b']);
    expect(relay(gw, 'back').pulses).toHaveLength(2);
    expect(relay(gw, 'front').pulses).toHaveLength(1);
    await gw.journal.flush();
    expect((await gw.store.recentJournal()).reverse().map((p) => [p.door, p.direction])).toEqual([['back', 'out'], ['front', 'in'], ['back', 'out']]);
  });

  it('pulses the relay even when an effect throws or the disk fails, and loses no journal entry', async () => {
    const gw = await startGateway(join(tmpDir(), 'data'));
    await gw.store.upsertUsers([user({ userid: 'a', cards: [1] })]);
    gw.pipeline.addEffect('broken', () => {
      throw new Error('broken effect');
    });
    gw.pipeline.decisions$.subscribe(() => {
      throw new Error('broken raw subscriber'); // caught by the rxjs safety net, not an uncaught exception
    });
    const append = vi.spyOn(gw.store, 'append').mockRejectedValueOnce(new Error('EIO: disk hiccup'));
    const d = gw.pipeline.handle(credentialEvent('front', 'r', 'in', { type: 'card', value: '1' }));
    expect(d?.decision).toBe('grant');
    expect(relay(gw, 'front').energised).toBe(true);
    await vi.waitFor(async () => expect(await gw.store.recentJournal()).toHaveLength(1), { timeout: 3000 });
    expect(append).toHaveBeenCalledTimes(2);
    expect((await gw.store.recentJournal()).map((j) => j.userid)).toEqual(['a']);
  });

  it('denies, with the credential\'s method, when a decision throws, and does not pulse', async () => {
    const gw = await startGateway(join(tmpDir(), 'data'));
    vi.spyOn(gw.store.directory, 'useridByCard').mockImplementation(() => {
      throw new Error('corrupt record');
    });
    expect(gw.pipeline.handle(credentialEvent('front', 'r', 'in', { type: 'card', value: '1' }))).toMatchObject({ decision: 'deny', reason: 'malformed', method: 'card', detail: 'internal error' });
    expect(relay(gw, 'front').pulses).toEqual([]);
  });

  it('wires the exit button and door contact: exits open, forced openings alarm, door closes re-lock', async () => {
    const inputs = new Map<string, (active: boolean) => void>();
    const gw = await Gateway.start({
      config: validateConfig(
        { data_dir: join(tmpDir(), 'data'), policy: { debounce_ms: 0 }, doors: [{ id: 'front', relay: { pulse_ms: 5000 }, alarms: { open_grace_s: 0 }, inputs: { exit_button: { pin: 27 }, door_contact: { pin: 22 } } }] },
        'test',
      ),
      log: silent,
      controlSocket: false,
      inputFactory: (spec) => {
        inputs.set(spec.name, spec.onChange);
        return Promise.resolve({ close: () => undefined, active: spec.name === 'door_contact' }); // closed, not pressed
      },
    });
    running.push(gw);
    const door = gw.doors.get('front')!;
    expect(door.state$.value.contact).toBe('closed'); // read at start
    inputs.get('exit_button')!(true); // pressed
    inputs.get('exit_button')!(false);
    await vi.waitFor(() => expect(relay(gw, 'front').energised).toBe(true));
    inputs.get('door_contact')!(false); // the person walks out
    expect(door.state$.value).toMatchObject({ lock: 'unlocked', contact: 'open', alarm: null });
    inputs.get('door_contact')!(true); // closes: re-lock at once
    expect(relay(gw, 'front').energised).toBe(false);
    inputs.get('door_contact')!(false); // forced
    expect(door.state$.value.alarm).toBe('forced_open');
    await gw.journal.flush();
    expect((await gw.store.recentJournal()).map((j) => [j.reason, j.reader])).toEqual([['exit_request', 'exit_button']]);
    await vi.waitFor(async () => expect((await gw.store.recentDoorEvents()).map((e) => e.type)).toEqual(['forced_open', 'contact_open', 'relocked_on_close', 'contact_closed', 'contact_open']));
  });

  it('waits for a command that holds the database briefly, and fails clearly if it is held too long', async () => {
    const dir = join(tmpDir(), 'data');
    const cli = await Store.open(dir); // a doorgw command reading the store directly
    const starting = Gateway.start({ config: configFor(dir), log: silent, terminalInput: new PassThrough(), controlSocket: false });
    await new Promise((r) => setTimeout(r, 400));
    await cli.close();
    const gw = await starting;
    running.push(gw);
    expect(gw.pipeline.handle(credentialEvent('front', 'r', 'in', { type: 'exit' }))?.decision).toBe('grant');
    const other = join(tmpDir(), 'data');
    const held = await Store.open(other);
    await expect(Gateway.start({ config: configFor(other), log: silent, controlSocket: false, storeLockWaitMs: 300 })).rejects.toBeInstanceOf(StoreLockedError);
    await held.close();
  });

  it('refuses to start with hardware this version does not drive, and releases the database', async () => {
    const dir = join(tmpDir(), 'data');
    const config = validateConfig({ data_dir: dir, doors: [{ id: 'x', relay: { driver: 'gpio', pin: 17 } }] }, 'test');
    // gpio with no sysfs tree here (tests point gpio.sysfs_root at an empty place): a clear error, not a crash
    const noGpio = validateConfig({ data_dir: dir, gpio: { sysfs_root: '/nonexistent/gpio' }, doors: [{ id: 'x', relay: { driver: 'gpio', pin: 17 } }] }, 'test');
    void config;
    await expect(Gateway.start({ config: noGpio, log: silent, controlSocket: false })).rejects.toThrow(/sysfs GPIO is not available/);
    const ok = await startGateway(dir); // the lock was released
    expect(ok.config.doors[0]!.id).toBe('front');
  });
});

describe('interlock (mantrap)', () => {
  it('holds a door while another of its interlock is released or open, exits included, and frees it when that one closes', async () => {
    const dir = join(tmpDir(), 'data');
    const contacts = new Map<string, (closed: boolean) => void>();
    const src = new Subject<CredentialEvent>();
    const config = validateConfig(
      {
        data_dir: dir,
        policy: { debounce_ms: 0 },
        interlocks: { mantrap: ['outer', 'inner'] },
        doors: [
          { id: 'outer', relay: { pulse_ms: 300 }, inputs: { door_contact: { pin: 5 } } },
          { id: 'inner', relay: { pulse_ms: 300 }, inputs: { door_contact: { pin: 6 } } },
        ],
      },
      'test',
    );
    const gw = await Gateway.start({
      config,
      log: silent,
      sources: [src],
      controlSocket: false,
      inputFactory: (spec) => {
        contacts.set(spec.door, spec.onChange);
        return Promise.resolve({ close: () => undefined, active: true });
      },
    });
    running.push(gw);
    await gw.store.upsertUsers([user({ userid: 'a', cards: [1] })]);
    contacts.get('outer')!(true);
    contacts.get('inner')!(true);
    const card = (door: string) => gw.pipeline.handle(credentialEvent(door, 'r', 'in', { type: 'card', value: '1' }));
    expect(card('outer')).toMatchObject({ decision: 'grant' }); // outer released
    expect(card('inner')).toMatchObject({ decision: 'deny', reason: 'interlock', userid: 'a', detail: "door 'outer' of the interlock is open or released" });
    expect(gw.pipeline.handle(credentialEvent('inner', 'exit_button', 'out', { type: 'exit' }))).toMatchObject({ decision: 'deny', reason: 'interlock' });
    contacts.get('outer')!(false); // the person walks in: outer open (pulse ends on its own; open keeps the hold)
    await vi.waitFor(() => expect(relay(gw, 'outer').energised).toBe(false)); // the pulse has ended
    expect(card('inner')).toMatchObject({ reason: 'interlock' });
    contacts.get('outer')!(true); // outer closed again
    expect(card('inner')).toMatchObject({ decision: 'grant' });
    expect(relay(gw, 'inner').pulses).toHaveLength(1);
    expect(relay(gw, 'outer').pulses).toHaveLength(1);
  });

  it('a door standing open when the gateway starts is open at once: its interlock partner holds, no forced-open', async () => {
    const config = validateConfig(
      {
        data_dir: join(tmpDir(), 'data'),
        policy: { debounce_ms: 0 },
        interlocks: { mantrap: ['outer', 'inner'] },
        doors: [
          { id: 'outer', inputs: { door_contact: { pin: 5 } } },
          { id: 'inner', inputs: { door_contact: { pin: 6 } } },
        ],
      },
      'test',
    );
    const contacts = new Map<string, (closed: boolean) => void>();
    const gw = await Gateway.start({
      config,
      log: silent,
      controlSocket: false,
      inputFactory: (spec) => {
        contacts.set(spec.door, spec.onChange);
        return Promise.resolve({ close: () => undefined, active: spec.door !== 'outer' }); // outer reads open
      },
    });
    running.push(gw);
    await gw.store.upsertUsers([user({ userid: 'a', cards: [1] })]);
    expect(gw.doors.get('outer')!.state$.value).toMatchObject({ contact: 'open', alarm: null });
    expect(gw.pipeline.handle(credentialEvent('inner', 'r', 'in', { type: 'card', value: '1' }))).toMatchObject({ decision: 'deny', reason: 'interlock' });
    contacts.get('outer')!(true);
    expect(gw.pipeline.handle(credentialEvent('inner', 'r', 'in', { type: 'card', value: '1' }))).toMatchObject({ decision: 'grant' });
    await vi.waitFor(async () => expect((await gw.store.recentDoorEvents()).map((e) => [e.type, e.detail]).reverse()).toEqual([['contact_open', 'open when the gateway started'], ['contact_closed', undefined]]));
  });

  it('refuses interlocks naming unknown doors or a door twice', () => {
    expect(() => validateConfig({ interlocks: { a: ['x', 'y'], b: ['x', 'z'] }, doors: [{ id: 'x' }, { id: 'y' }] }, 't')).toThrow(/interlocks\.b\[0\]: door 'x' is already in interlock 'a'[\s\S]*interlocks\.b\[1\]: no door 'z'/);
  });
});

describe('door modes', () => {
  it('passage holds the lock released without pulsing on grants; leaving it re-locks', async () => {
    const gw = await startGateway(join(tmpDir(), 'data'), { extra: { policy: { debounce_ms: 0 } } });
    await gw.store.upsertUsers([user({ userid: 'a', cards: [1] })]);
    expect(await gw.api.setMode({ door: 'front', mode: 'passage' })).toMatchObject({ door: 'front', mode: 'passage', until: null });
    expect(relay(gw, 'front').energised).toBe(true);
    expect(gw.pipeline.handle(credentialEvent('front', 'console', 'in', { type: 'card', value: '1' }))).toMatchObject({ decision: 'grant' });
    expect(relay(gw, 'front').pulses).toHaveLength(1); // the hold only: a pulse would end it when it ran out
    await gw.api.setMode({ door: 'front', mode: 'normal' });
    expect(relay(gw, 'front').energised).toBe(false);
    await gw.api.setMode({ door: 'front', mode: 'lockdown' });
    await expect(gw.api.setMode({ door: 'nope', mode: 'normal' })).rejects.toThrow(/no door 'nope'/);
  });

  it('a timed mode returns to the configured mode when it ends, is journaled with who set it, and survives a restart', async () => {
    const dir = join(tmpDir(), 'data');
    let gw = await startGateway(dir);
    await gw.api.setMode({ door: 'front', mode: 'lockdown', duration_s: 1, by: 'test' });
    expect((await gw.api.status()).doors[0]).toMatchObject({ id: 'front', mode: 'lockdown', until: expect.any(Number) });
    await vi.waitFor(() => expect(gw.pipeline.modeOf('front')).toBe('normal'), { timeout: 3000 });
    // The door event is journaled after the change (a write): waited for, not assumed.
    await vi.waitFor(async () => {
      const events = (await gw.api.doorEvents({ limit: 10 })).filter((e) => e.type === 'mode_changed').map((e) => e.detail);
      expect(events).toEqual([expect.stringMatching(/^lockdown → normal by timer$/), expect.stringMatching(/^normal → lockdown until .* by test$/)]);
    });
    // a timed lockdown set just before a restart is still in force after it, and still ends
    await gw.api.setMode({ door: 'front', mode: 'lockdown', duration_s: 2, by: 'test' });
    await vi.waitFor(async () => expect(await gw.store.getMeta('door.front.mode')).toMatchObject({ mode: 'lockdown', until: expect.any(Number) }));
    await gw.stop();
    running.splice(0);
    gw = await startGateway(dir);
    expect(gw.pipeline.modeOf('front')).toBe('lockdown');
    await vi.waitFor(() => expect(gw.pipeline.modeOf('front')).toBe('normal'), { timeout: 4000 });
  });
});

describe('passage on a schedule', () => {
  const at = (iso: string) => Date.parse(iso);
  async function start(dir: string, clock: { t: number }, passage: Record<string, unknown>) {
    const gw = await Gateway.start({
      config: validateConfig(
        {
          data_dir: dir,
          policy: { debounce_ms: 0 },
          groups: { staff: ['boss'] },
          holidays: { cn: ['2026-10-01'] },
          doors: [{ id: 'lobby', relay: { pulse_ms: 1000 }, policy: { holidays: ['cn'], passage: { schedule: ['8:00-18:00 * * 1-5 *'], ...passage } } }],
        },
        'test',
      ),
      log: silent,
      controlSocket: false,
      now: () => clock.t,
    });
    running.push(gw);
    return gw;
  }
  const card = (gw: Gateway, value: string) => gw.pipeline.handle(credentialEvent('lobby', 'r', 'in', { type: 'card', value }));

  it('a window opens on its minute, not up to 15 s later: the next change is looked at just after the next minute', async () => {
    const clock = { t: at('2026-11-02T07:59:59.800+08:00') }; // a Monday, 200 ms before the window
    const gw = await start(join(tmpDir(), 'data'), clock, {});
    expect(gw.pipeline.modeOf('lobby')).toBe('normal');
    clock.t = at('2026-11-02T08:00:00.000+08:00');
    await vi.waitFor(() => expect(gw.pipeline.modeOf('lobby')).toBe('passage'), { timeout: 1500 });
  });

  it('first-person-in: the window opens the door only once an allowed person is granted in it, and closes it at its end', async () => {
    const clock = { t: at('2026-11-02T07:59:00+08:00') }; // a Monday
    const gw = await start(join(tmpDir(), 'data'), clock, { first_person_in: { groups: ['staff'] } });
    await gw.store.upsertUsers([user({ userid: 'boss', cards: [1] }), user({ userid: 'guest', cards: [2] })]);
    expect(gw.pipeline.modeOf('lobby')).toBe('normal');
    clock.t = at('2026-11-02T08:00:00+08:00');
    gw.pipeline.tickSchedules();
    expect(gw.pipeline.modeOf('lobby')).toBe('normal'); // window open, nobody allowed has come yet
    expect((await gw.api.status()).doors[0]).toMatchObject({ mode: 'normal', why: 'passage window open, waiting for the first person' });
    card(gw, '2');
    expect(gw.pipeline.modeOf('lobby')).toBe('normal'); // not allowed to start it
    card(gw, '1');
    expect(gw.pipeline.modeOf('lobby')).toBe('passage');
    expect(relay(gw, 'lobby').energised).toBe(true);
    clock.t = at('2026-11-02T18:01:00+08:00'); // 18:00 itself is inside 8:00-18:00, as in pass rules
    gw.pipeline.tickSchedules();
    expect(gw.pipeline.modeOf('lobby')).toBe('normal');
    expect(relay(gw, 'lobby').energised).toBe(false);
    await vi.waitFor(async () => {
      const modes = (await gw.api.doorEvents({ limit: 10 })).filter((e) => e.type === 'mode_changed').map((e) => e.detail);
      expect(modes).toEqual(['passage → normal by schedule (window ends)', 'normal → passage by first person in: boss']);
    });
  });

  it('no passage on a holiday; without first-person-in the window opens by itself; a manual mode stands until the schedule changes', async () => {
    const clock = { t: at('2026-10-01T10:00:00+08:00') }; // a Thursday, a holiday
    const dir = join(tmpDir(), 'data');
    let gw = await start(dir, clock, {});
    expect(gw.pipeline.modeOf('lobby')).toBe('normal');
    clock.t = at('2026-10-02T10:00:00+08:00');
    gw.pipeline.tickSchedules();
    expect(gw.pipeline.modeOf('lobby')).toBe('passage');
    await gw.api.setMode({ door: 'lobby', mode: 'lockdown' }); // by hand, no end
    clock.t = at('2026-10-02T12:00:00+08:00');
    gw.pipeline.tickSchedules();
    expect(gw.pipeline.modeOf('lobby')).toBe('lockdown');
    clock.t = at('2026-10-02T18:01:00+08:00');
    gw.pipeline.tickSchedules();
    expect(gw.pipeline.modeOf('lobby')).toBe('normal'); // the manual mode gave way at the window's end
    // A passage the schedule set is not restored after a restart outside its window.
    clock.t = at('2026-10-05T10:00:00+08:00');
    gw.pipeline.tickSchedules();
    expect(gw.pipeline.modeOf('lobby')).toBe('passage');
    await vi.waitFor(async () => expect(await gw.store.getMeta('door.lobby.mode')).toMatchObject({ mode: 'passage', auto: true }));
    await gw.stop();
    running.splice(0);
    clock.t = at('2026-10-05T19:00:00+08:00');
    gw = await start(dir, clock, {});
    expect(gw.pipeline.modeOf('lobby')).toBe('normal');
    expect(relay(gw, 'lobby').energised).toBe(false);
  });
});

describe('area anti-passback at the gateway', () => {
  it('denies a card passed back in, keeps presence through a restart, and an operator can forgive', async () => {
    const dir = join(tmpDir(), 'data');
    const src = new Subject<CredentialEvent>();
    const config = validateConfig(
      {
        data_dir: dir,
        policy: { debounce_ms: 0 },
        areas: { office: { doors: ['front', 'back'] } },
        doors: [{ id: 'front', relay: { pulse_ms: 1000 } }, { id: 'back', relay: { pulse_ms: 1000 } }],
      },
      'test',
    );
    let gw = await Gateway.start({ config, log: silent, sources: [src], controlSocket: false });
    running.push(gw);
    await gw.store.upsertUsers([user({ userid: 'a', cards: [1] })]);
    const pass = (g: Gateway, door: string, dir: 'in' | 'out') => g.pipeline.handle(credentialEvent(door, `${door}-${dir}`, dir, { type: 'card', value: '1' }));
    expect(pass(gw, 'front', 'in')).toMatchObject({ decision: 'grant' });
    expect(pass(gw, 'back', 'in')).toMatchObject({ decision: 'deny', reason: 'anti_passback', userid: 'a' }); // any door of the area
    await vi.waitFor(async () => expect([...((await gw.store.loadPresence()).values())].some((m) => m.has('a'))).toBe(true)); // persisted
    await gw.stop();
    running.splice(0);
    gw = await Gateway.start({ config, log: silent, sources: [src], controlSocket: false });
    running.push(gw);
    expect(pass(gw, 'front', 'in')).toMatchObject({ reason: 'anti_passback' }); // presence survived the restart
    expect(await gw.api.forgive({ userid: 'a' })).toEqual({ forgiven: 1 });
    expect(pass(gw, 'front', 'in')).toMatchObject({ decision: 'grant' });
    await expect(gw.api.forgive({ userid: 'a', area: 'nope' })).rejects.toThrow(/no area 'nope'/);
    expect(relay(gw, 'front').pulses).toHaveLength(1);
  });
});

describe('passage schedule edges', () => {
  it('a timed manual lockdown that ends inside a passage window hands the door back to passage; windows follow DST', async () => {
    const clock = { t: Date.parse('2026-03-09T10:00:00-04:00') }; // Monday after the US spring-forward
    const gw = await Gateway.start({
      config: validateConfig({ data_dir: join(tmpDir(), 'data'), timezone: 'America/New_York', doors: [{ id: 'lobby', policy: { passage: { schedule: ['8:00-18:00 * * * *'] } } }] }, 'test'),
      log: silent,
      controlSocket: false,
      now: () => clock.t,
    });
    running.push(gw);
    expect(gw.pipeline.modeOf('lobby')).toBe('passage');
    gw.pipeline.setMode('lobby', 'lockdown', { untilMs: clock.t + 200, by: 'test' });
    expect(gw.pipeline.modeOf('lobby')).toBe('lockdown');
    clock.t += 300;
    await vi.waitFor(() => expect(gw.pipeline.modeOf('lobby')).toBe('passage'), { timeout: 2000 });
    // The day of the change: 07:59 and 08:00 local (EDT since 02:00) are the edges, not UTC's.
    clock.t = Date.parse('2026-03-08T07:59:00-04:00');
    gw.pipeline.tickSchedules();
    expect(gw.pipeline.modeOf('lobby')).toBe('normal');
    clock.t = Date.parse('2026-03-08T08:00:00-04:00');
    gw.pipeline.tickSchedules();
    expect(gw.pipeline.modeOf('lobby')).toBe('passage');
  });
});

describe('strict durability on a failing disk', () => {
  it('still opens the door when the write fails, keeping the record queued', async () => {
    const gw = await startGateway(join(tmpDir(), 'data'), { extra: { policy: { debounce_ms: 0 }, journal: { durability: 'strict' } } });
    await gw.store.upsertUsers([user({ userid: 'a', cards: [1] })]);
    const append = vi.spyOn(gw.store, 'append').mockRejectedValue(new Error('IO error: No space left on device'));
    gw.pipeline.handle(credentialEvent('front', 'console', 'in', { type: 'card', value: '1' }));
    await vi.waitFor(() => expect(relay(gw, 'front').pulses).toHaveLength(1));
    expect(gw.journal.pending).toBe(1);
    append.mockRestore();
    gw.journal.retryNow();
    await vi.waitFor(() => expect(gw.journal.pending).toBe(0));
  });
});
