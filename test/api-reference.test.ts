/** docs/api-reference.md is generated from the code (a TypeScript program: seconds, so not in test:quick). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiReference } from '../scripts/api-reference.js';

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
});
