/**
 * ENOSPC for real: a gateway whose data directory sits on a 24 MB tmpfs in a private mount
 * namespace (unshare -m), filled up while it decides (scenario in enospc-scenario.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../..', import.meta.url).pathname;
const probe = spawnSync('unshare', ['-m', 'true']);
const namespaces = probe.status === 0;
if (!namespaces) {
  process.stderr.write(`\n*** ENOSPC test NOT RUN: no private mount namespace here (unshare -m: ${probe.stderr?.toString().trim() || probe.error?.message}). Run the tests as root on Linux. ***\n\n`);
}

/** Run a scenario (test/abuse/<file>) with its data directory on a tmpfs of `size`; its JSON result. */
function onSmallDisk(file: string, size: string): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'enospc-'));
  const mnt = join(dir, 'mnt');
  const script = join(dir, 'run.sh');
  writeFileSync(script, `set -e\nmkdir -p '${mnt}'\nmount -t tmpfs -o size=${size} tmpfs '${mnt}'\ncd '${ROOT}'\nexec '${process.execPath}' --import tsx test/abuse/${file} '${mnt}'\n`);
  const r = spawnSync('unshare', ['-m', 'bash', script], { encoding: 'utf8', timeout: 90_000 });
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
}

describe.skipIf(!namespaces)('a full disk under a running gateway', () => {
  it('keeps deciding, tells the operator, loses nothing accepted before the disk filled, and starts again on a full disk', () => {
    const out = onSmallDisk('enospc-scenario.ts', '24m');
    expect(out.error, String(out.error)).toBeUndefined();
    // Every credential decided and every grant pulsed, before, while and after the disk filled.
    expect([out.a_pulses, out.c_pulses, out.d_pulses, out.f_pulses]).toEqual([200, 300, 100, 50]);
    // First fill: the write failed, the run-time reserve was released, the store reopened and the
    // held records were written; the operator saw both alarms.
    expect(out.c_alarms).toEqual(['storage_failure', 'storage_recovered']);
    expect(out.c_status).toMatchObject({ writable: true, held_in_memory: 0, dropped: 0, reserve_files: 1 });
    // Second fill with no run-time reserve left: records in memory, status unhealthy, loudly.
    expect(out.d_health).toEqual([expect.stringMatching(/^database not writable \(IO error: .*No space left on device\): \d+ records held in memory$/), 'disk space low in the data directory: 0 MB free']);
    expect(out.d_held).toBeGreaterThan(0);
    // Restart on the full disk: the start reserve let the database open; the door decides.
    expect(out.f_started).toBe(true);
    expect(out.f_status).toMatchObject({ writable: true });
    // Space back: the reserve is rebuilt.
    expect(out.g_status).toMatchObject({ writable: true, held_in_memory: 0, reserve_files: 2, low: false });
    // Nothing accepted before the disk filled is lost (no checksum-mismatch drop at reopen); what was
    // held in memory at the stop during the second fill is the stated loss.
    expect(out.journal).toBe(200 + 300 + (100 - (out.d_held as number)) + 50);
    expect(out.grants).toBe(out.journal);
    expect(out.log_errors).toContain('stopping with journal entries that could not be written (disk full or failing)');
  }, 120_000);
});

describe.skipIf(!namespaces)('a full disk under a full sync (the generation worker)', () => {
  it('stops every write at the worker\'s failure, keeps the previous directory and every journaled decision, and syncs again when space returns', () => {
    const out = onSmallDisk('enospc-sync-scenario.ts', '16m');
    expect(out.error, String(out.error)).toBeUndefined();
    // The worker's write hit the full disk: the store stopped writing (the one alarm), the sync failed.
    expect(out.sync_error).toMatchObject({ name: 'BuilderError', message: expect.stringMatching(/No space left on device/) });
    expect(out.failures).toEqual([expect.stringMatching(/No space left on device/)]);
    expect(out.writable_after).toBe(false);
    // Decisions after that were refused (held by the journal writer in the gateway), never appended
    // behind the partial record; the previous directory kept deciding.
    expect(out.refused).toBeGreaterThan(0);
    expect([out.users_during, out.old_user_during]).toEqual([20, 'old3']);
    // After reopen: every decision that was journaled is there, the previous directory is intact.
    expect(out.writable_reopened).toBe(true);
    expect(out.users_reopened).toBe(20);
    expect(out.journal_reopened).toBe(out.journaled);
    expect(out.resync).toBe(500);
    expect([out.users_final, out.new_user_final, out.templates_final, out.journal_final]).toEqual([500, 'new7', 2, out.journaled]);
  }, 120_000);
});
