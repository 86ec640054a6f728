/**
 * Runs inside `unshare -m` with a small tmpfs as the data directory's filesystem (see
 * enospc.test.ts): the disk fills while the generation worker writes a full sync and the journal
 * is being appended. Prints what happened as JSON.
 */
import { rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import type { NormalizedUser } from '../../src/domain/user.js';
import { Store } from '../../src/store/store.js';
import { fillDisk } from '../helpers/fill-disk.js';
import { user } from '../helpers/users.js';

const mnt = process.argv[2]!;
const dataDir = join(mnt, 'data');
const filler = join(mnt, 'filler');
const out: Record<string, unknown> = {};
const template = Buffer.alloc(1024, 7).toString('base64');
const users = (n: number, prefix: string, fp = false): NormalizedUser[] =>
  Array.from({ length: n }, (_, i) => user({ userid: `${prefix}${i}`, cards: [i + (fp ? 100_000 : 0)], fp: fp ? [{ id: 0, data: template }, { id: 1, data: template }] : [] }));
/** As a cloud listing arrives: a page at a time. */
async function* listing(list: readonly NormalizedUser[]): AsyncGenerator<NormalizedUser> {
  for (let i = 0; i < list.length; i++) {
    if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    yield list[i]!;
  }
}
const decision = (at: number) => ({ decision: 'grant' as const, reason: 'default_allow' as const, userid: 'old1', user_type: 0 as const, method: 'card' as const, door: 'front', at });

try {
  const s = await Store.open(dataDir);
  const failures: string[] = [];
  s.onWriteFailure = (e) => failures.push(e.message);
  await s.replaceDirectory(users(20, 'old'));
  // The disk fills, leaving room for a few small writes but not for the sync.
  fillDisk(filler);
  truncateSync(filler, statSync(filler).size - 512 * 1024);
  // Decisions keep being journaled while the worker writes.
  let journaled = 0;
  let refused = 0;
  let stop = false;
  const decisions = (async () => {
    for (let at = 1; !stop; at++) {
      await s.append([{ decision: decision(at) }]).then(() => journaled++, (e: Error) => (refused += e.name === 'StoreUnwritableError' ? 1 : 0));
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const sync = await s.replaceDirectory(listing(users(3000, 'new', true))).then(
    () => null,
    (e: Error) => e,
  );
  await new Promise((r) => setTimeout(r, 50));
  stop = true;
  await decisions;
  out.sync_error = sync ? { name: sync.name, message: sync.message } : null;
  out.failures = failures;
  out.writable_after = s.writable;
  out.users_during = await s.userCount();
  out.old_user_during = s.directory.useridByCard('3');
  out.refused = refused;
  // Space comes back: recover the log, check what landed, sync again.
  rmSync(filler);
  await s.reopen();
  out.writable_reopened = s.writable;
  out.users_reopened = await s.userCount();
  out.journal_reopened = (await s.recentJournal(10_000)).length;
  out.journaled = journaled;
  out.resync = await s.replaceDirectory(listing(users(500, 'new', true)));
  await s.close();
  const again = await Store.open(dataDir);
  out.users_final = await again.userCount();
  out.new_user_final = again.directory.useridByCard('100007');
  out.templates_final = (await again.templatesOf('new7')).length;
  out.journal_final = (await again.recentJournal(10_000)).length;
  await again.close();
} catch (e) {
  out.error = (e as Error).stack;
}
process.stdout.write(`${JSON.stringify(out)}\n`);
