import { describe, expect, it } from 'vitest';
import { healthProblems, type Status } from '../../src/control/api.js';

const NOW = 1_800_000_000_000;
const base: Status = { gateway_id: 'g', version: '1', running: true, users: 1, local_users: 0, local_adjustments: 0, generation: 1, outbox_depth: 0, outbox_oldest: null, held: 0, doors: [], uptime_s: 10, cloud: null, storage: null };
const cloud = (p: Partial<NonNullable<Status['cloud']>>): Status['cloud'] => ({ provider: 'wecom', link: 'online', since: NOW - 1000, directory_version: 1, last_full_sync: NOW - 5000, clock_skew_s: 0, sync_progress: null, last_error: null, credentials_problem: null, ...p });
const limits = { maxLinkDownS: 600, maxOutboxAgeS: 900, maxSkewS: 30 };

describe('health', () => {
  it('is healthy when linked, drained and on time, or with no cloud at all', () => {
    expect(healthProblems(base, limits, NOW)).toEqual([]);
    expect(healthProblems({ ...base, cloud: cloud({}) }, limits, NOW)).toEqual([]);
  });

  it('tolerates a short link outage, not a long one', () => {
    expect(healthProblems({ ...base, cloud: cloud({ link: 'offline', since: NOW - 300_000 }) }, limits, NOW)).toEqual([]);
    expect(healthProblems({ ...base, cloud: cloud({ link: 'offline', since: NOW - 700_000 }) }, limits, NOW)).toEqual(['cloud link offline for 700 s (limit 600 s)']);
    // not activated is unhealthy at once: retrying does not fix it
    expect(healthProblems({ ...base, cloud: cloud({ link: 'unprovisioned', since: NOW - 1000 }) }, limits, NOW)).toEqual(['cloud wecom: device not activated (doorgw wecom activate)']);
  });

  it('is unhealthy when the cloud never delivered a directory, refused the credentials, or the disk fails', () => {
    expect(healthProblems({ ...base, cloud: cloud({ link: 'online', last_full_sync: null, directory_version: null }) }, limits, NOW)).toEqual(['cloud wecom: no directory synced yet (link online)']);
    expect(healthProblems({ ...base, cloud: cloud({ link: 'offline', since: NOW - 1000, last_full_sync: null, directory_version: null, last_error: 'HTTP 502' }) }, limits, NOW)).toEqual([
      'cloud wecom: no directory synced yet (link offline, last error: HTTP 502)',
    ]);
    const refused = 'Feishu refused the app credentials (cloud.feishu.app_id/app_secret): tenant_access_token refused: code 10014';
    expect(healthProblems({ ...base, cloud: cloud({ provider: 'feishu', link: 'offline', since: NOW - 1000, credentials_problem: refused }) }, limits, NOW)).toEqual([refused]);
    const storage = { writable: false, error: 'IO error: No space left on device', free_bytes: 0, low: true, reserve_files: 0, held_in_memory: 12, dropped: 0 };
    expect(healthProblems({ ...base, storage }, limits, NOW)).toEqual([
      'database not writable (IO error: No space left on device): 12 records held in memory',
      'disk space low in the data directory: 0 MB free',
    ]);
  });

  it('flags an outbox that is not draining and a skewed clock', () => {
    const p = healthProblems({ ...base, outbox_depth: 42, outbox_oldest: NOW / 1000 - 1000, cloud: cloud({ clock_skew_s: -45 }) }, limits, NOW);
    expect(p).toEqual(['outbox not draining: oldest record 1000 s old, 42 queued (limit 900 s)', 'clock skew -45 s against the cloud (limit 30 s): QR validity depends on the clock']);
  });

  it('a supervised reader that cannot keep a session is a problem: connecting too long, or restarting often', () => {
    const reader = { id: 'r1', door: 'front', type: 'osdp', state: 'connecting' as const, secure: false, detail: 'a reply failed its MAC check', tamper: null, power_failure: null };
    expect(healthProblems({ ...base, readers: [{ ...reader, state_for_s: 5, restarts_last_minute: 1 }] }, limits, NOW)).toEqual([]);
    expect(healthProblems({ ...base, readers: [{ ...reader, state_for_s: 25, restarts_last_minute: 1 }] }, limits, NOW)).toEqual(['reader r1 cannot establish a session (connecting for 25 s): a reply failed its MAC check']);
    expect(healthProblems({ ...base, readers: [{ ...reader, state: 'online', state_for_s: 2, restarts_last_minute: 9 }] }, limits, NOW)).toEqual([
      'reader r1 restarted its session 9 times in the last minute (line noise, wiring or termination?): a reply failed its MAC check',
    ]);
  });

  it('the outbox is judged by how long its head has waited on the monotonic clock when the gateway says so', () => {
    expect(healthProblems({ ...base, outbox_depth: 1, outbox_oldest: NOW / 1000 - 90_000, outbox_waiting_s: 10 }, limits, NOW)).toEqual([]);
    expect(healthProblems({ ...base, outbox_depth: 1, outbox_oldest: NOW / 1000 + 90_000, outbox_waiting_s: 1000 }, limits, NOW)).toEqual(['outbox not draining: oldest record 1000 s old, 1 queued (limit 900 s)']);
  });
});
