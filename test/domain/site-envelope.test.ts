import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, ed25519PublicKey, keyIdOf, newerFact, signEnvelope, verifyEnvelope, MAX_ENVELOPE_BYTES, type FactStamp, type SiteEnvelope, type VerifyContext } from '../../src/domain/site-envelope.js';

const NOW = Date.parse('2026-12-02T10:00:00+08:00');
const pair = () => generateKeyPairSync('ed25519');
const guard = pair();
const admin = pair();
const stranger = pair();
const kid = (k: { publicKey: KeyObject }) => keyIdOf(k.publicKey);

function ctx(o: Partial<VerifyContext> = {}, held = new Map<string, FactStamp>(), seen = new Set<string>()): VerifyContext {
  return {
    nowMs: NOW,
    gateway: 'gw-lobby',
    doors: ['lobby'],
    areas: ['building-a'],
    keys: new Map([
      [kid(guard), { key: guard.publicKey, name: 'guard-desk', roles: new Set(['guard']) }],
      [kid(admin), { key: admin.publicKey, name: 'it-admin', roles: new Set(['admin']) }],
    ]),
    permissions: { open: ['guard', 'admin'], threat_level: ['guard', 'admin'], block: ['guard', 'admin'], user: ['admin'] },
    seen: (id) => seen.has(id),
    versionOf: (s) => held.get(s),
    ...o,
  };
}

let n = 0;
const command = (signer: { privateKey: KeyObject; publicKey: KeyObject }, o: Partial<SiteEnvelope> = {}): SiteEnvelope =>
  signEnvelope({ v: 1, kid: kid(signer), iat: NOW, id: `cmd-${String(++n).padStart(6, '0')}`, kind: 'command', subject: 'open/lobby', scope: { doors: ['lobby'] }, exp: NOW + 10_000, body: {}, ...o }, signer.privateKey);
const fact = (signer: { privateKey: KeyObject; publicKey: KeyObject }, o: Partial<SiteEnvelope> = {}): SiteEnvelope =>
  signEnvelope({ v: 1, kid: kid(signer), iat: NOW, id: `fact-${String(++n).padStart(6, '0')}`, kind: 'fact', subject: 'user/cleaner-li', scope: { site: true }, version: 3, body: { cards: ['900'] }, ...o }, signer.privateKey);
const check = (e: unknown, c = ctx()) => verifyEnvelope(typeof e === 'string' ? e : JSON.stringify(e), c);

describe('site envelopes', () => {
  it('accept a signed command in scope and in time, naming its signer; a fact from a key whose role may state it', () => {
    expect(check(command(guard))).toMatchObject({ ok: true, signer: { name: 'guard-desk' }, envelope: { subject: 'open/lobby' } });
    expect(check(fact(admin))).toMatchObject({ ok: true, signer: { name: 'it-admin' } });
    // Scope by area and by gateway id.
    expect(check(command(guard, { scope: { areas: ['building-a'] } })).ok).toBe(true);
    expect(check(command(guard, { scope: { doors: ['gw-lobby'] } })).ok).toBe(true);
    // A re-serialisation on the way (other key order, spaces) changes nothing: what is signed is canonical.
    const e = command(guard);
    const reordered = `{ "sig": ${JSON.stringify(e.sig)}, "body": {}, "scope": {"doors":["lobby"]}, ${Object.entries(e).filter(([k]) => !['sig', 'body', 'scope'].includes(k)).map(([k, v]) => `"${k}": ${JSON.stringify(v)}`).join(', ')} }`;
    expect(check(reordered).ok).toBe(true);
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: null }], u: undefined })).toBe('{"a":[{"c":null,"d":2}],"b":1}');
  });

  it.each([
    ['not JSON', () => '{nope', 'malformed'],
    ['not an envelope', () => ({ v: 2 }), 'malformed'],
    ['a command living longer than a minute', () => command(guard, { exp: NOW + 120_000 }), 'malformed'],
    ['no signature', () => ({ ...command(guard), sig: undefined }), 'no_signature'],
    ['an unknown key', () => command(stranger), 'unknown_key'],
    ['a forged signature (another key claiming a trusted id)', () => ({ ...command(stranger), kid: kid(guard) }), 'bad_signature'],
    ['a body changed after signing', () => ({ ...command(guard), body: { extra: 1 } }), 'bad_signature'],
    ['a scope widened after signing', () => ({ ...command(guard, { scope: { doors: ['vault'] } }), scope: { site: true } }), 'bad_signature'],
    ['a role that may not do this (a guard changing the directory)', () => fact(guard), 'role_not_allowed'],
    ['a scope that does not include this door', () => command(guard, { scope: { doors: ['vault'] } }), 'out_of_scope'],
    ['an expired command delivered late', () => command(guard, { iat: NOW - 70_000, exp: NOW - 60_000 }), 'expired'],
    ['a statement from the future', () => command(guard, { iat: NOW + 3_600_000, exp: NOW + 3_610_000 }), 'not_yet_valid'],
  ])('refuse %s, by name', (_l, make, reason) => {
    expect(check(make())).toMatchObject({ ok: false, reason });
  });

  it('refuse a replayed id, an older version of a fact held, and an oversized envelope before parsing it', () => {
    const e = command(guard);
    expect(check(e, ctx({}, new Map(), new Set([e.id])))).toMatchObject({ ok: false, reason: 'replayed' });
    const f = fact(admin, { version: 3 });
    expect(check(f, ctx({}, new Map([['user/cleaner-li', { version: 4, iat: NOW - 1000, id: 'x' }]])))).toMatchObject({ ok: false, reason: 'older_version' });
    expect(check(f, ctx({}, new Map([['user/cleaner-li', { version: 2, iat: NOW + 5000, id: 'x' }]])))).toMatchObject({ ok: true });
    expect(check('x'.repeat(MAX_ENVELOPE_BYTES + 1))).toMatchObject({ ok: false, reason: 'too_large' });
  });

  it('two operators making the same version at once resolve the same way whatever order they arrive in', () => {
    const a = { version: 5, iat: NOW, id: 'aaaa-1111' };
    const b = { version: 5, iat: NOW, id: 'bbbb-2222' };
    expect([newerFact(a, b), newerFact(b, a)]).toEqual([false, true]);
    expect(newerFact({ ...a, iat: NOW + 1 }, b)).toBe(true);
    expect(newerFact({ ...a, version: 6 }, { ...b, iat: NOW + 99 })).toBe(true);
  });

  it('read a configured raw public key and name it by its id', () => {
    const raw = guard.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
    const k = ed25519PublicKey(raw);
    expect(keyIdOf(k)).toBe(kid(guard));
    expect(() => ed25519PublicKey('AAAA')).toThrow(/32 bytes/);
  });
});
