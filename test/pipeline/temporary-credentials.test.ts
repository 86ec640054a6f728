/**
 * Temporary credentials (issue 26): a local user (or a cloud user's local adjustment) with
 * max_uses passes that many times and is then denied `uses_exhausted` — across a restart; a
 * passage the door refuses for another reason (anti-passback) uses nothing up; setting max_uses
 * again starts a fresh count; the sponsor is named in the journal of each passage.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { credentialEvent } from '../../src/domain/events.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { tmpDir } from '../helpers/tmp.js';
import { user } from '../helpers/users.js';

const silent = createLogger({ level: 'silent', pretty: false });
const running: Gateway[] = [];
afterEach(async () => {
  for (const g of running.splice(0)) await g.stop().catch(() => undefined);
});

async function start(dataDir: string): Promise<Gateway> {
  const config = validateConfig(
    {
      data_dir: dataDir,
      policy: { debounce_ms: 0 },
      doors: [
        { id: 'front', relay: { pulse_ms: 1000 }, readers: [{ id: 'in-reader', type: 'terminal', direction: 'in' }] },
        { id: 'exit', relay: { pulse_ms: 1000 }, readers: [{ id: 'out-reader', type: 'terminal', direction: 'out' }] },
      ],
      areas: { office: { doors: ['front', 'exit'], mode: 'hard' } },
    },
    'test',
  );
  const gw = await Gateway.start({ config, log: silent, controlSocket: false, sources: [] });
  running.push(gw);
  return gw;
}
const card = (gw: Gateway, value: string, door: 'front' | 'exit' = 'front') => gw.pipeline.handle(credentialEvent(door, door === 'front' ? 'in-reader' : 'out-reader', door === 'front' ? 'in' : 'out', { type: 'card', value }))!;

describe('temporary credentials', () => {
  it('a visitor card good for two passages: the third is denied, across a restart; a refused passage uses nothing; a new max_uses is a fresh count', async () => {
    const dir = join(tmpDir(), 'data');
    let gw = await start(dir);
    await gw.api.usersAdd({ userid: 'v-1', name: 'Visitor', user_type: 'visitor', rules: ['00:00-23:59 * * * *'], cards: ['5005'], max_uses: 2, sponsor: 'alice', by: 'test' });
    const first = card(gw, '5005');
    expect([first.decision, first.detail]).toEqual(['grant', 'use 1 of 2; sponsor alice']);
    // In again without going out: anti-passback refuses it, and that takes no use.
    expect(card(gw, '5005').reason).toBe('anti_passback');
    expect(card(gw, '5005', 'exit')).toMatchObject({ decision: 'grant', detail: 'use 2 of 2; sponsor alice' });
    const third = card(gw, '5005');
    expect([third.decision, third.reason, third.detail]).toEqual(['deny', 'uses_exhausted', 'used 2 of 2 times (sponsor alice)']);
    // The count is on disk with the journal entries: after a restart the card is still used up.
    await vi.waitFor(async () => expect((await gw.api.journal({ limit: 10 })).filter((e) => e.userid === 'v-1')).toHaveLength(4));
    await gw.stop();
    running.splice(0);
    gw = await start(dir);
    expect(card(gw, '5005').reason).toBe('uses_exhausted');
    // Given again (one more passage): a fresh count.
    await gw.api.usersSet({ userid: 'v-1', max_uses: 1, by: 'test' });
    expect(card(gw, '5005')).toMatchObject({ decision: 'grant', detail: 'use 1 of 1; sponsor alice' });
    expect(card(gw, '5005', 'exit').reason).toBe('uses_exhausted');
    const shown = await gw.api.usersShow({ userid: 'v-1' });
    expect(shown?.record.local).toMatchObject({ max_uses: 1, sponsor: 'alice' });
    await expect(gw.api.usersSet({ userid: 'v-1', max_uses: 0, by: 'test' })).rejects.toThrow(/max_uses must be 1 to 100000/);
    // No limit again.
    await gw.api.usersSet({ userid: 'v-1', max_uses: null, by: 'test' });
    expect(card(gw, '5005', 'exit').decision).toBe('grant');
  });

  it('limits a cloud user through a local adjustment, and exports and imports the limit', async () => {
    const dir = join(tmpDir(), 'data');
    const seed = await Store.open(dir);
    await seed.upsertUsers([user({ userid: 'bob', cards: [7007] })]);
    await seed.close();
    const gw = await start(dir);
    await gw.api.usersSet({ userid: 'bob', max_uses: 1, by: 'test' });
    expect(card(gw, '7007').detail).toBe('use 1 of 1');
    expect(card(gw, '7007', 'exit').reason).toBe('uses_exhausted');
    const exported = await gw.api.usersExport({});
    expect(exported.find((e) => e.userid === 'bob')).toMatchObject({ kind: 'adjustment', max_uses: 1 });
  });
});
