import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkReport, signReport, type DoorReport } from '../../src/domain/door-report.js';
import { keyIdOf, rawPublicKey } from '../../src/domain/site-envelope.js';

const k = generateKeyPairSync('ed25519');
const raw = rawPublicKey(k.publicKey);
const kid = keyIdOf(k.publicKey);
const report: DoorReport = { gateway: 'gw1', doors: ['lobby'], at: 1, facts: 3, in_scope: 3, digest: 'ab', complete: true, manifest: null, levels: [] };
const keys = new Map([['gw1', { kid, public_key: raw }]]);

describe('door reports', () => {
  const cases: [string, string, string, ReadonlyMap<string, { kid: string; public_key: string }>, unknown][] = [
    ['signed by its key', JSON.stringify(signReport(report, kid, k.privateKey)), 'gw1', keys, { ok: true, signed: true }],
    ['unsigned, no keys listed: read, marked', JSON.stringify(report), 'gw1', new Map(), { ok: true, signed: false }],
    ['unsigned, keys listed', JSON.stringify(report), 'gw1', keys, { ok: false, reason: "unsigned (site.door_keys lists the doors' keys)" }],
    ['on another door\'s topic', JSON.stringify(signReport(report, kid, k.privateKey)), 'gw2', keys, { ok: false, reason: "a report for gateway 'gw1' on the topic of 'gw2'" }],
    ['a changed body', JSON.stringify({ ...signReport(report, kid, k.privateKey), report: { ...report, facts: 4 } }), 'gw1', keys, { ok: false, reason: 'bad signature' }],
    ['not JSON', '{', 'gw1', keys, { ok: false, reason: 'a door report that is not JSON' }],
    ['too large', JSON.stringify({ ...report, pad: 'x'.repeat(70_000) }), 'gw1', keys, { ok: false, reason: expect.stringMatching(/^too large/) }],
    ['no key for this gateway (others listed)', JSON.stringify(signReport({ ...report, gateway: 'gw9' }, kid, k.privateKey)), 'gw9', keys, { ok: false, reason: "no key for gateway 'gw9' in site.door_keys" }],
  ];
  for (const [what, payload, topic, ks, want] of cases) it(what, () => expect(checkReport(payload, topic, ks)).toMatchObject(want as object));
});
