import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DoorEvent } from '../../src/domain/events.js';
import { DoorStateMachine } from '../../src/pipeline/door-state.js';

let relocks = 0;
let events: DoorEvent['type'][] = [];
let m: DoorStateMachine;
beforeEach(() => {
  vi.useFakeTimers();
  relocks = 0;
  events = [];
  m = new DoorStateMachine('front', { heldOpenS: 30, prealarmS: 10, openGraceS: 3, relockOnClose: true, relock: () => relocks++, now: () => Date.now() }, 'closed');
  m.events$.subscribe((e) => events.push(e.type));
});
afterEach(() => {
  m.stop();
  vi.useRealTimers();
});

describe('door state machine', () => {
  it('a door open at start is open (no forced-open), timed for held-open from the start; a closed one is closed', () => {
    const fresh = new DoorStateMachine('side', { heldOpenS: 30, prealarmS: 10, openGraceS: 3, relockOnClose: true, relock: () => relocks++, now: () => Date.now() });
    const seen: string[] = [];
    fresh.events$.subscribe((e) => seen.push(e.type));
    fresh.startContact('open');
    expect(fresh.state$.value).toEqual({ lock: 'locked', contact: 'open', alarm: null });
    vi.advanceTimersByTime(30_000);
    expect(seen).toEqual(['contact_open', 'held_open_prealarm', 'held_open']);
    fresh.contactChanged('closed');
    expect(fresh.state$.value.alarm).toBeNull();
    fresh.startContact('open'); // only at start: the contact is known now
    expect(fresh.state$.value.contact).toBe('closed');
    fresh.stop();
    const closed = new DoorStateMachine('back', { heldOpenS: 30, prealarmS: 10, openGraceS: 3, relockOnClose: true, relock: () => undefined });
    closed.startContact('closed');
    expect(closed.state$.value.contact).toBe('closed');
    closed.stop();
  });

  it('a valid opening closes in time: no alarm, re-locks on close', () => {
    m.lockChanged(true);
    m.contactChanged('open');
    vi.advanceTimersByTime(5000);
    m.contactChanged('closed');
    expect(events).toEqual(['contact_open', 'contact_closed', 'relocked_on_close']);
    expect(relocks).toBe(1);
    vi.advanceTimersByTime(60_000);
    expect(m.state$.value).toEqual({ lock: 'unlocked', contact: 'closed', alarm: null }); // the relay reports its own re-lock
  });

  it('held open: pre-alarm, then alarm, cleared when the door closes', () => {
    m.lockChanged(true);
    m.contactChanged('open');
    m.lockChanged(false); // pulse ended, door still open
    vi.advanceTimersByTime(19_999);
    expect(events).toEqual(['contact_open']);
    vi.advanceTimersByTime(1);
    expect(m.state$.value.alarm).toBe('held_open_prealarm');
    vi.advanceTimersByTime(10_000);
    expect(m.state$.value.alarm).toBe('held_open');
    m.contactChanged('closed');
    expect(events).toEqual(['contact_open', 'held_open_prealarm', 'held_open', 'contact_closed', 'alarm_cleared']);
    expect(m.state$.value.alarm).toBeNull();
    expect(relocks).toBe(0); // already locked
  });

  it('forced open: the contact opens while the lock was never released', () => {
    m.contactChanged('open');
    expect(m.state$.value.alarm).toBe('forced_open');
    expect(events).toEqual(['contact_open', 'forced_open']);
    vi.advanceTimersByTime(60_000);
    expect(events).toEqual(['contact_open', 'forced_open']); // no held-open on top
    m.contactChanged('closed');
    expect(events.slice(2)).toEqual(['contact_closed', 'alarm_cleared']);
  });

  it('a door pushed open just after the pulse ended is within the grace period; later is forced', () => {
    m.lockChanged(true);
    vi.advanceTimersByTime(3000);
    m.lockChanged(false);
    vi.advanceTimersByTime(2999);
    m.contactChanged('open');
    expect(m.state$.value.alarm).toBeNull();
    m.contactChanged('closed');
    vi.advanceTimersByTime(10);
    m.lockChanged(true);
    m.lockChanged(false);
    vi.advanceTimersByTime(3001);
    m.contactChanged('open');
    expect(m.state$.value.alarm).toBe('forced_open');
  });

  it('an exit opening (relay released by the exit button) is valid', () => {
    m.lockChanged(true); // the exit request pulsed the relay
    m.contactChanged('open');
    expect(m.state$.value.alarm).toBeNull();
  });

  it('repeated identical contact readings are one change (bounce is filtered at the input)', () => {
    m.lockChanged(true);
    m.contactChanged('open');
    m.contactChanged('open');
    m.contactChanged('closed');
    m.contactChanged('closed');
    expect(events).toEqual(['contact_open', 'contact_closed', 'relocked_on_close']);
  });

  it('passage: the door may stand open with no held-open alarm and no re-lock on close; alarms come back after it', () => {
    m.lockChanged(true); // the passage hold
    m.contactChanged('open');
    m.setPassage(true);
    vi.advanceTimersByTime(10 * 60_000);
    expect(m.state$.value.alarm).toBeNull();
    m.contactChanged('closed');
    m.contactChanged('open');
    vi.advanceTimersByTime(10 * 60_000);
    expect(events).toEqual(['contact_open', 'contact_closed', 'contact_open']);
    expect(relocks).toBe(0);
    m.setPassage(false);
    m.contactChanged('closed');
    expect(relocks).toBe(1); // the end of passage re-locks once the door is closed
  });

  it('entering passage clears a held-open alarm', () => {
    m.lockChanged(true);
    m.contactChanged('open');
    vi.advanceTimersByTime(31_000);
    expect(m.state$.value.alarm).toBe('held_open');
    m.setPassage(true);
    expect(m.state$.value.alarm).toBeNull();
    expect(events.at(-1)).toBe('alarm_cleared');
  });

  it('a fire release clears held-open and suppresses it and forced-open, independently of passage ending', () => {
    m.lockChanged(true);
    m.contactChanged('open');
    vi.advanceTimersByTime(31_000);
    expect(m.state$.value.alarm).toBe('held_open');
    m.setFire(true);
    expect(m.state$.value.alarm).toBeNull();
    m.setPassage(true);
    m.setPassage(false); // passage ends during the fire: the fire still holds the door open
    vi.advanceTimersByTime(10 * 60_000);
    expect(m.state$.value.alarm).toBeNull();
    m.lockChanged(false); // even a lock reading locked: an opening during fire is no forced-open
    m.contactChanged('closed');
    m.contactChanged('open');
    expect(m.state$.value.alarm).toBeNull();
    m.setFire(false);
    m.contactChanged('closed');
    vi.advanceTimersByTime(4000); // past the grace after the re-lock
    m.contactChanged('open');
    expect(m.state$.value.alarm).toBe('forced_open'); // alarms are back after the release
  });
});
