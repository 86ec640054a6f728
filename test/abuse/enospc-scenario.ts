/**
 * Runs inside `unshare -m` with a small tmpfs as the data directory's filesystem (see
 * enospc.test.ts): fills the disk under a running gateway for real and prints what happened as JSON.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { validateConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import type { SimRelay } from '../../src/io/relay.js';
import { createLogger } from '../../src/log.js';
import { Subject } from 'rxjs';
import { healthProblems, type Status } from '../../src/control/api.js';
import { credentialEvent, type CredentialEvent } from '../../src/domain/events.js';
import { Store } from '../../src/store/store.js';
import { fillDisk } from '../helpers/fill-disk.js';
import { user } from '../helpers/users.js';

const mnt = process.argv[2]!;
const dataDir = join(mnt, 'data');
const lines: string[] = [];
const log = createLogger({ level: 'info', pretty: false, destination: new Writable({ write(c: Buffer, _e, cb) { lines.push(c.toString()); cb(); } }) });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const config = validateConfig(
  {
    gateway_id: 'enospc',
    data_dir: dataDir,
    policy: { debounce_ms: 0 },
    storage: { reserve_mb: 8, low_space_mb: 2, check_interval_s: 1 },
    journal: { memory_max_entries: 1000 },
    doors: [{ id: 'front' }],
  },
  'scenario',
);

async function until(fn: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

const fill = (name: string): number => fillDisk(join(mnt, name));

let card = 0;
/** A reader: credentials through the pipeline's sources, as real readers deliver them. */
const reader = new Subject<CredentialEvent>();
async function present(gw: Gateway, n: number): Promise<number> {
  const relay = gw.relays.get('front') as SimRelay;
  const before = relay.pulses.length;
  for (let i = 0; i < n; i++) {
    reader.next(credentialEvent('front', 'probe', 'in', { type: 'card', value: String(1000 + (card++ % 50)) }));
    await sleep(1);
  }
  await sleep(300); // a credential may wait for a reopen (≤ 250 ms)
  return relay.pulses.length - before;
}
const alarms: string[] = [];
const start = async (): Promise<Gateway> => {
  const gw = await Gateway.start({ config, log, controlSocket: false, sources: [reader] });
  gw.pipeline.doorEvents$.subscribe((e) => alarms.push(e.type));
  return gw;
};

const out: Record<string, unknown> = {};
try {
  const seed = await Store.open(dataDir);
  await seed.upsertUsers(Array.from({ length: 50 }, (_, i) => user({ userid: `u${i}`, cards: [1000 + i] })));
  await seed.close();

  let gw = await start();
  await until(() => gw.storage!.state$.value.reserve_files === 2, 'reserve created');
  out.a_pulses = await present(gw, 200);
  await gw.journal.flush();

  // The disk fills up under the running gateway (another process's logs, say).
  out.filled = fill('filler-1') > 0;
  out.c_pulses = await present(gw, 300); // the door keeps deciding, the relay keeps moving
  await until(async () => (await gw.api.status()).storage?.writable === true && gw.journal.pending === 0, 'recovered through the run-time reserve');
  out.c_status = (await gw.api.status()).storage;
  out.c_events = (await gw.api.doorEvents({ limit: 20 })).map((e) => e.type);
  out.c_alarms = [...alarms];

  // It fills up again: no run-time reserve is left: records are held in memory, loudly.
  fill('filler-2');
  out.d_pulses = await present(gw, 100);
  await until(async () => (await gw.api.status()).storage?.writable === false, 'not writable');
  out.d_status = await gw.api.status();
  out.d_health = healthProblems(out.d_status as Status, { maxLinkDownS: 600, maxOutboxAgeS: 900, maxSkewS: 30 });
  out.d_held = gw.journal.pending;
  await gw.stop();

  // A restart on the full disk: the start reserve lets LevelDB open; decisions from the directory.
  gw = await start();
  out.f_started = true;
  out.f_pulses = await present(gw, 50);
  await sleep(300);
  out.f_status = (await gw.api.status()).storage;

  // Space comes back: the held records are written.
  rmSync(join(mnt, 'filler-1'));
  rmSync(join(mnt, 'filler-2'));
  await until(async () => (await gw.api.status()).storage?.writable === true && gw.journal.pending === 0, 'recovered after space came back');
  await until(() => gw.storage!.state$.value.reserve_files === 2, 'reserve rebuilt');
  out.g_status = (await gw.api.status()).storage;
  await gw.stop();

  const s = await Store.open(dataDir);
  const journal = await s.recentJournal(10_000);
  out.journal = journal.length;
  out.grants = journal.filter((j) => j.decision === 'grant').length;
  await s.close();
} catch (e) {
  out.error = (e as Error).stack;
}
out.log_errors = lines.filter((l) => l.includes('"level":50')).map((l) => (JSON.parse(l) as { msg: string }).msg);
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
