/** docs/api-reference.md is generated from the code (a TypeScript program: seconds, so not in test:quick). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiReference } from '../scripts/api-reference.js';
import { parseParams, REQUESTS } from '../src/control/requests.js';

const ROOT = new URL('..', import.meta.url).pathname;

let generated: string | null = null;
const doc = (): string => (generated ??= apiReference(ROOT));

describe('docs/api-reference.md', () => {
  it('is what the code generates now (npm run api-reference after an API change)', () => {
    expect(readFileSync(join(ROOT, 'docs/api-reference.md'), 'utf8')).toBe(doc());
  }, 60_000);

  it('names every method with its role, and the MQTT request that calls it', () => {
    expect(doc()).toMatch(/^\| `fireReset` \| operator \| `fire\/reset` \| `\{ door\?: string; by\?: string; \}` \| `FireResetReport` \|/m);
    expect(doc()).toMatch(/^\| `usersBlock` \| operator \| `users\/block` \|/m);
  }, 60_000);

  it('lists every MQTT request with the parameters its schema reads', () => {
    for (const name of Object.keys(REQUESTS)) expect(doc()).toContain(`| \`${name}\` |`);
    expect(doc()).toMatch(/^\| `door\/mode` \| operator \| `setMode` \| `door`: string, `mode`: string, `duration_s\?`: integer \|$/m);
  }, 60_000);
});

describe('request parameters', () => {
  it('are parsed by each request\'s schema: the first problem is the answer, named by its key', () => {
    const mode = REQUESTS['door/mode']!.params;
    expect(parseParams(mode, { door: 'lobby', mode: 'normal', extra: 1 })).toEqual({ door: 'lobby', mode: 'normal', extra: 1 });
    expect(() => parseParams(mode, { mode: 'normal' })).toThrow('door is required (a string)');
    expect(() => parseParams(mode, { door: 'lobby', mode: 'normal', duration_s: 1.5 })).toThrow('duration_s must be a whole number');
    expect(() => parseParams(REQUESTS['users/import']!.params, { records: [], layer: 'site' })).toThrow('layer must be local or cloud');
    expect(() => parseParams(REQUESTS['outbox/requeue']!.params, { seqs: [1, 'x'] })).toThrow(/^seqs\.1: /);
    expect(() => parseParams(REQUESTS.status!.params, [])).toThrow(/expected object/);
  });
});
