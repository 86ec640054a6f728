import { describe, expect, it } from 'vitest';
import { FIRE_IDLE, fireReset, fireSource, isReleased, parseSavedLatch, type FireDoorState } from '../../src/domain/fire.js';
import { linkageLoop, linkageSteps, type LinkRule } from '../../src/domain/linkage.js';
import { validateConfig } from '../../src/config/load.js';
import { denyBurst, NO_BURST, type DenyBurstState } from '../../src/domain/deny-burst.js';

describe('fire release reducer', () => {
  const on = (s: FireDoorState, key: string, latch = true, at = 1000) => fireSource(s, key, true, { latch, at, cause: key });
  const off = (s: FireDoorState, key: string) => fireSource(s, key, false, { latch: true, at: 2000, cause: key });

  it('latched: released while active and after it clears, until a reset that is refused while active', () => {
    let s = on(FIRE_IDLE, 'input:panel');
    expect(isReleased(s)).toBe(true);
    expect(fireReset(s)).toEqual({ ok: false, reason: 'the fire alarm is still active (input:panel)' });
    s = off(s, 'input:panel');
    expect(isReleased(s)).toBe(true);
    expect(s.latched).toEqual({ cause: 'input:panel', since: 1000 });
    const r = fireReset(s);
    expect(r).toMatchObject({ ok: true, wasReleased: true });
    expect(r.ok && isReleased(r.state)).toBe(false);
  });

  it('not latched: ends when the last source clears; the first cause of a latch is kept', () => {
    let s = on(FIRE_IDLE, 'input:a', false);
    s = on(s, 'site', false);
    s = off(s, 'input:a');
    expect(isReleased(s)).toBe(true); // the site level still holds
    s = off(s, 'site');
    expect(isReleased(s)).toBe(false);
    let l = on(FIRE_IDLE, 'input:a', true, 5);
    l = on(l, 'site', true, 9);
    expect(l.latched).toEqual({ cause: 'input:a', since: 5 });
    // Repeats change nothing (the same object back: nothing to journal).
    expect(on(l, 'site')).toBe(l);
    expect(off(FIRE_IDLE, 'site')).toBe(FIRE_IDLE);
    expect(fireReset(FIRE_IDLE)).toMatchObject({ ok: true, wasReleased: false });
  });

  it('reads back only a well-formed persisted latch', () => {
    expect(parseSavedLatch({ cause: 'fire input panel', since: 7 })).toEqual({ cause: 'fire input panel', since: 7 });
    for (const bad of [null, undefined, 'x', { cause: 1, since: 2 }, { cause: 'a', since: 'b' }, { cause: 'a', since: Infinity }]) expect(parseSavedLatch(bad)).toBeNull();
  });
});

describe('linkage rules', () => {
  const rules: LinkRule[] = [
    { name: 'forced-siren', on: { event: 'forced_open', door: 'front' }, do: [{ output: 'siren', pulse_s: 30 }, { alarm: 'front forced' }, { doors: ['back'], mode: 'lockdown', duration_s: 600 }] },
    { name: 'panic-strobe', on: { input: 'panic', state: 'active' }, do: [{ output: 'strobe', while_active: true }, { output: 'siren', pulse_s: 5 }] },
    { name: 'mains-lost', on: { input: 'mains', state: 'inactive' }, do: [{ mode: 'passage' }] },
    { name: 'any-tamper', on: { event: 'reader_tamper' }, do: [{ alarm: 'reader opened' }] },
    { name: 'armed-deny', on: { input: 'armed', state: 'active' }, do: [{ deny_groups: ['cleaners'], doors: ['back'] }] },
  ];
  const doors = ['front', 'back'];
  const cases: { what: string; h: Parameters<typeof linkageSteps>[1]; want: unknown[] }[] = [
    {
      what: 'one event, several actions, in order (time is an input)',
      h: { kind: 'event', type: 'forced_open', door: 'front' },
      want: [
        { rule: 'forced-siren', cause: 'forced_open at front', command: { kind: 'pulse', output: 'siren', ms: 30_000 } },
        { rule: 'forced-siren', cause: 'forced_open at front', command: { kind: 'alarm', text: 'front forced' } },
        { rule: 'forced-siren', cause: 'forced_open at front', command: { kind: 'mode', door: 'back', mode: 'lockdown', untilMs: 1_000 + 600_000 } },
      ],
    },
    { what: 'the same event at another door: nothing', h: { kind: 'event', type: 'forced_open', door: 'back' }, want: [] },
    { what: 'a rule without a door takes every door', h: { kind: 'event', type: 'reader_tamper', door: 'back' }, want: [{ rule: 'any-tamper', cause: 'reader_tamper at back', command: { kind: 'alarm', text: 'reader opened' } }] },
    {
      what: 'an input goes active: the hold follows it, the pulse fires',
      h: { kind: 'input', name: 'panic', active: true },
      want: [
        { rule: 'panic-strobe', cause: 'input panic active', command: { kind: 'hold', output: 'strobe', on: true } },
        { rule: 'panic-strobe', cause: 'input panic active', command: { kind: 'pulse', output: 'siren', ms: 5000 } },
      ],
    },
    { what: 'it goes inactive: the hold lets go, nothing fires', h: { kind: 'input', name: 'panic', active: false }, want: [{ rule: 'panic-strobe', cause: 'input panic inactive', command: { kind: 'hold', output: 'strobe', on: false } }] },
    {
      what: 'a rule on an input going inactive, with no door list: every door, no end',
      h: { kind: 'input', name: 'mains', active: false },
      want: [
        { rule: 'mains-lost', cause: 'input mains inactive', command: { kind: 'mode', door: 'front', mode: 'passage', untilMs: undefined } },
        { rule: 'mains-lost', cause: 'input mains inactive', command: { kind: 'mode', door: 'back', mode: 'passage', untilMs: undefined } },
      ],
    },
    { what: 'mains back: nothing', h: { kind: 'input', name: 'mains', active: true }, want: [] },
    { what: 'a deny follows its input: on', h: { kind: 'input', name: 'armed', active: true }, want: [{ rule: 'armed-deny', cause: 'input armed active', command: { kind: 'deny', door: 'back', groups: ['cleaners'], on: true } }] },
    { what: 'and off', h: { kind: 'input', name: 'armed', active: false }, want: [{ rule: 'armed-deny', cause: 'input armed inactive', command: { kind: 'deny', door: 'back', groups: ['cleaners'], on: false } }] },
  ];
  for (const c of cases) it(c.what, () => expect(linkageSteps(rules, c.h, 1_000, doors)).toEqual(c.want));

  it('finds a chain that would trigger itself, and passes one that ends', () => {
    expect(linkageLoop(rules, doors)).toBeNull();
    const loop: LinkRule[] = [
      { name: 'a', on: { event: 'linkage_alarm' }, do: [{ doors: ['front'], mode: 'lockdown' }] },
      { name: 'b', on: { event: 'mode_changed', door: 'front' }, do: [{ alarm: 'front mode changed' }] },
    ];
    expect(linkageLoop(loop, doors)).toEqual(['a', 'b', 'a']);
    expect(linkageLoop([{ name: 'self', on: { event: 'linkage_alarm' }, do: [{ alarm: 'again' }] }], doors)).toEqual(['self', 'self']);
    // A mode change at the other door does not reach b: no loop.
    expect(linkageLoop([{ ...loop[0]!, do: [{ doors: ['back'], mode: 'lockdown' }] }, loop[1]!], doors)).toBeNull();
  });

  it('the configuration refuses a looping rule set, and names unknown inputs, outputs and doors', () => {
    const base = { data_dir: '/tmp/x', doors: [{ id: 'front' }, { id: 'back' }] };
    expect(() =>
      validateConfig({ ...base, io: { linkage: [{ name: 'a', on: { event: 'linkage_alarm' }, do: [{ doors: ['front'], mode: 'lockdown' }] }, { name: 'b', on: { event: 'mode_changed', door: 'front' }, do: [{ alarm: 'x' }] }] } }, 'test'),
    ).toThrow(/io\.linkage: linkage rules would trigger themselves: a → b → a/);
    expect(() => validateConfig({ ...base, io: { fire: [{ input: 'panel' }] } }, 'test')).toThrow(/io\.fire\[0\]\.input: no input 'panel'/);
    expect(() => validateConfig({ ...base, io: { inputs: { p: { pin: 5 } }, linkage: [{ name: 'x', on: { input: 'p' }, do: [{ output: 'siren', pulse_s: 3 }] }] } }, 'test')).toThrow(/io\.linkage\[0\]\.do\[0\]\.output: no output 'siren'/);
    expect(() => validateConfig({ ...base, io: { outputs: { s: { driver: 'sim' } }, linkage: [{ name: 'x', on: { event: 'forced_open' }, do: [{ output: 's', while_active: true }] }] } }, 'test')).toThrow(/while_active follows an input/);
    expect(() => validateConfig({ ...base, io: { fire: [{ input: 'p', doors: ['side'] }], inputs: { p: { pin: 5 } } } }, 'test')).toThrow(/io\.fire\[0\]\.doors\[0\]: no door 'side'/);
    expect(() => validateConfig({ ...base, io: { linkage: [{ name: 'x', on: { event: 'forced_open' }, do: [{ deny_groups: ['g'] }] }] } }, 'test')).toThrow(/deny_groups holds while an input is active[\s\S]*no group 'g'/);
    expect(() => validateConfig({ ...base, io: { linkage: [{ name: 'x', on: { event: 'no_such_event' }, do: [{ alarm: 'x' }] }] } }, 'test')).toThrow(/io\.linkage\[0\]\.on/);
    const ok = validateConfig({ ...base, io: { inputs: { panel: { pin: 5, active_low: false } }, fire: [{ input: 'panel' }] } }, 'test');
    expect(ok.io.fire).toEqual([{ input: 'panel', latch: true }]);
  });
});

describe('deny burst', () => {
  it('three denials within 10 s raise one alarm; more in the same burst none; a quiet window ends it', () => {
    const o = { count: 3, withinMs: 10_000 };
    let s: DenyBurstState = NO_BURST;
    const at = (t: number) => {
      const r = denyBurst(s, t, o);
      s = r.state;
      return r.alarm;
    };
    expect([at(0), at(4000), at(9000)]).toEqual([false, false, true]);
    expect([at(12_000), at(15_000)]).toEqual([false, false]); // the same burst goes on
    expect(at(30_000)).toBe(false); // quiet for a window: over, and this denial starts a new count
    expect([at(31_000), at(32_000)]).toEqual([false, true]);
    // Spread out: never.
    s = NO_BURST;
    expect([at(0), at(6000), at(12_000), at(18_000)]).toEqual([false, false, false, false]);
  });
});

