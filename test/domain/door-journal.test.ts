/** Signed journal batches (what the collector believes) and sequence coverage (what it asks for). */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { contiguous, cover, gaps } from '../../src/domain/coverage.js';
import { checkBatch, signBatch, MAX_BATCH_ACCEPTED_BYTES, type JournalBatch } from '../../src/domain/door-journal.js';
import type { JournalRecord } from '../../src/domain/journal-records.js';
import { keyIdOf, rawPublicKey } from '../../src/domain/site-envelope.js';

const gw1 = generateKeyPairSync('ed25519');
const gw2 = generateKeyPairSync('ed25519');
const keys = new Map([
  ['gw1', { kid: keyIdOf(gw1.publicKey), public_key: rawPublicKey(gw1.publicKey) }],
  ['gw2', { kid: keyIdOf(gw2.publicKey), public_key: rawPublicKey(gw2.publicKey) }],
]);
const decision = (seq: number, door = 'lobby'): JournalRecord => ({ seq, kind: 'decision', entry: { seq, decision: 'grant', reason: 'rule_match', userid: 'alice', user_type: 1, method: 'card', door, at: 1_760_000_000_000 + seq } });
const event = (seq: number): JournalRecord => ({ seq, kind: 'event', entry: { seq, type: 'forced_open', door: 'lobby', at: 1_760_000_000_000 + seq } });
const batch = (over: Partial<JournalBatch> = {}): JournalBatch => ({ gateway: 'gw1', at: 1, covers: [1, 3], head: 3, records: [decision(1), event(3)], ...over });
const signed = (b: JournalBatch, k = gw1) => JSON.stringify(signBatch(b, keyIdOf(k.publicKey), k.privateKey));

describe('signed journal batches', () => {
  it('believes a batch signed by its gateway\'s key, with its records', () => {
    const r = checkBatch(signed(batch()), 'gw1', keys);
    expect(r.ok && r.batch.records.map((x) => x.seq)).toEqual([1, 3]);
    expect(checkBatch(signed(batch({ covers: null, records: [] })), 'gw1', keys).ok).toBe(true);
  });

  it.each([
    ['another door\'s key', () => signed(batch(), gw2), 'gw1', 'bad_signature'],
    ['a batch of gw2 on gw1\'s topic', () => signed(batch({ gateway: 'gw2' }), gw2), 'gw1', 'wrong_gateway'],
    ['a gateway without a listed key', () => signed(batch({ gateway: 'gw9' })), 'gw9', 'unknown_key'],
    ['a changed record', () => signed(batch()).replace('"alice"', '"mallory"'), 'gw1', 'bad_signature'],
    ['no signature', () => JSON.stringify({ batch: batch() }), 'gw1', 'malformed'],
    ['not JSON', () => '{', 'gw1', 'malformed'],
    ['records out of order', () => signed(batch({ records: [event(3), decision(1)] })), 'gw1', 'malformed'],
    ['a record outside what it covers', () => signed(batch({ covers: [1, 2] })), 'gw1', 'malformed'],
    ['covers beyond the head', () => signed(batch({ head: 2 })), 'gw1', 'malformed'],
    ['records in a head-only batch', () => signed(batch({ covers: null })), 'gw1', 'malformed'],
    ['an entry whose seq is not its record\'s', () => signed(batch({ records: [{ ...decision(1), seq: 2 }] })), 'gw1', 'malformed'],
    ['a decision without its fields', () => signed(batch({ records: [{ seq: 1, kind: 'decision', entry: { seq: 1, door: 'lobby', at: 5 } as never }] })), 'gw1', 'malformed'],
    ['a huge payload', () => 'x'.repeat(MAX_BATCH_ACCEPTED_BYTES + 1), 'gw1', 'too_large'],
  ])('refuses %s', (_what, payload, topic, reason) => {
    const r = checkBatch(payload(), topic, keys);
    expect(r.ok ? 'ok' : r.reason).toBe(reason);
  });

  it('refuses records of a door that is not the gateway\'s, once its report says which are', () => {
    const b = signed(batch({ records: [decision(1, 'vault')], covers: [1, 1], head: 1 }));
    expect(checkBatch(b, 'gw1', keys).ok).toBe(true);
    const r = checkBatch(b, 'gw1', keys, new Set(['lobby', 'back']));
    expect(r.ok ? 'ok' : r.reason).toBe('wrong_gateway');
  });
});

describe('coverage', () => {
  it('merges ranges, and lists what is missing below the head', () => {
    let c = cover([], 5, 9);
    expect(gaps(c, 12)).toEqual([[1, 4], [10, 12]]);
    c = cover(c, 1, 3);
    expect(c).toEqual([[1, 3], [5, 9]]);
    expect(contiguous(c)).toBe(3);
    c = cover(c, 4, 4);
    expect(c).toEqual([[1, 9]]);
    c = cover(c, 20, 30);
    c = cover(c, 12, 14);
    expect(c).toEqual([[1, 9], [12, 14], [20, 30]]);
    expect(gaps(c, 25)).toEqual([[10, 11], [15, 19]]);
    expect(gaps(cover(c, 8, 25), 30)).toEqual([]);
    expect(contiguous(cover(c, 8, 25))).toBe(30);
    expect(gaps([], 0)).toEqual([]);
  });
});
