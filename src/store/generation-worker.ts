/**
 * Worker thread that writes a full directory replacement into a fresh generation (see
 * generation-builder.ts). It opens the same LevelDB as the store (classic-level's `multithreading`
 * shares one handle) and does the sync's heavy work off the thread that decides: reading the index
 * entries a user touches, encoding records, building the native write batch. Each write is only
 * started when the store says so, so writes stay one at a time across both threads.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Level } from 'level';
import type { NormalizedUser } from '../domain/user.js';
import { DirectoryWriter, generationOf, jsonSublevels, LEVEL_OPTIONS, type Json } from './directory-writer.js';
import type { BuilderReply, BuilderRequest, BuilderSetup, PostedUser } from './generation-builder.js';

const port = parentPort!;
const { path, generation, nice } = workerData as BuilderSetup;

// The door's thread must win the CPU: on a 2-core controller a sync competing on equal terms
// shows up as decision latency. Linux applies setpriority to one thread when given its id.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (nice > 0 && Number.isInteger(tid)) setPriority(tid, nice);
} catch {
  // Not Linux, or not permitted: run at the process's priority.
}

const db = new Level<string, Json>(path, LEVEL_OPTIONS);
const writer = new DirectoryWriter(generationOf(generation, jsonSublevels(db)));
interface Chained {
  put(key: string, value: unknown, o: { sublevel: unknown }): void;
  del(key: string, o: { sublevel: unknown }): void;
  write(o?: object): Promise<void>;
  close(): Promise<void>;
}
let prepared: Chained | null = null;

const reply = (m: BuilderReply): void => port.postMessage(m);

function revive(u: PostedUser): NormalizedUser {
  return { record: u.record, key: u.key === null ? null : Buffer.from(u.key, 'base64'), templates: u.templates };
}

/** Encode a chunk's operations into a native batch now, so the write itself is quick. */
async function prepare(users: PostedUser[]): Promise<void> {
  for (const u of users) await writer.put(revive(u));
  const b = (db as unknown as { batch(): Chained }).batch();
  for (const op of writer.ops.splice(0)) {
    if (op.type === 'put') b.put(op.key, op.value, { sublevel: op.sublevel });
    else b.del(op.key, { sublevel: op.sublevel });
  }
  prepared = b;
}

async function handle(m: BuilderRequest): Promise<void> {
  try {
    switch (m.type) {
      case 'prepare':
        await prepare(m.users);
        reply({ type: 'prepared' });
        return;
      case 'write': {
        const b = prepared;
        prepared = null;
        if (b) await b.write();
        // The next chunk reads what this one wrote; the overlay only bridged the unwritten batch.
        writer.resetOverlay();
        reply({ type: 'written', added: writer.added });
        return;
      }
      case 'close':
        await prepared?.close();
        await db.close();
        reply({ type: 'closed' });
        port.close();
        return;
    }
  } catch (e) {
    const err = e as Error & { code?: string; cause?: { code?: string } };
    reply({ type: 'failed', message: err.message, code: err.code ?? err.cause?.code });
  }
}

await db.open();
let chain = Promise.resolve();
port.on('message', (m: BuilderRequest) => {
  // One request at a time, in order: a chunk's reads must see the chunk before it written.
  chain = chain.then(() => handle(m));
});
reply({ type: 'ready' });
