/**
 * The store's side of the generation worker (generation-worker.ts): a full directory replacement
 * is encoded and written by a worker thread, so the thread that decides keeps only the network,
 * the parsing and the normalising. Measured on a 2-core machine during a 100,000-user sync: see
 * docs/benchmarks.md (bench:sync-decisions).
 *
 * The protocol is strictly one request at a time: `prepare` (read what the chunk touches, encode
 * its operations), `write` (the store calls it inside its one-write-at-a-time chain, so a failed
 * write stops every later one, the worker's and the store's alike), `close`.
 */
import { Worker } from 'node:worker_threads';
import type { NormalizedUser, Template } from '../domain/user.js';

/** A user as posted to the worker: the key as base64 (a Buffer would drag its whole pool along). */
export interface PostedUser {
  record: NormalizedUser['record'];
  key: string | null;
  templates: Template[];
}
export interface BuilderSetup {
  path: string;
  generation: number;
  nice: number;
}
export type BuilderRequest = { type: 'prepare'; users: PostedUser[] } | { type: 'write' } | { type: 'close' };
export type BuilderReply =
  | { type: 'ready' }
  | { type: 'prepared' }
  | { type: 'written'; added: number }
  | { type: 'closed' }
  | { type: 'failed'; message: string; code?: string | undefined };

/** A write the worker could not make: carries LevelDB's error code (e.g. for a full disk). */
export class BuilderError extends Error {
  constructor(
    message: string,
    readonly code?: string | undefined,
  ) {
    super(message);
    this.name = 'BuilderError';
  }
}

/** The worker ended (crashed, ran out of its heap) or broke the protocol: not a database failure. */
export class WorkerLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkerLostError';
  }
}

/**
 * The worker's heap. It holds one chunk at a time (at most 100 users or 4 MB of templates, and no
 * single user over 8 MB: see the store), far below this cap. What the store keeps from it matters:
 * a single allocation beyond a worker's limit (JSON of a huge record) is not a clean worker exit in
 * Node but a fatal error of the whole process. (Measured: a 40 MB template did exactly that with a
 * 36 MB heap.) A cap of 32 MB gave the lowest peaks in bench:sync (64 and 128 MB were no better).
 */
const RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 };
/** Niceness of the worker thread (Linux): the door's thread gets the CPU first. */
const NICE = 10;

function spawn(setup: BuilderSetup): Worker {
  // Not the gateway's own flags (a worker inherits them, and some, like --input-type, stop it from
  // starting); its heap is bounded by resourceLimits.
  const opts = { workerData: setup, resourceLimits: RESOURCE_LIMITS, execArgv: [], stdout: false, stderr: false };
  if (import.meta.url.endsWith('.ts')) {
    // Running from TypeScript source (tests, tsx): the worker registers tsx before loading it.
    const entry = new URL('./generation-worker.ts', import.meta.url).href;
    const boot = `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(entry)}); })`;
    return new Worker(boot, { ...opts, eval: true });
  }
  return new Worker(new URL('./generation-worker.js', import.meta.url), opts);
}

export class GenerationBuilder {
  private waiting: { resolve: (m: BuilderReply) => void; reject: (e: Error) => void } | null = null;
  private dead: Error | null = null;
  private closed: Promise<void> | null = null;
  /** The request in flight, settled either way (close waits for it). */
  private inFlight: Promise<unknown> = Promise.resolve();
  added = 0;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: BuilderReply) => {
      const w = this.waiting;
      this.waiting = null;
      w?.resolve(m);
    });
    const die = (e: Error): void => {
      this.dead ??= e;
      const w = this.waiting;
      this.waiting = null;
      w?.reject(e);
    };
    worker.on('error', (e) => die(new WorkerLostError(`the generation worker failed: ${e.message}`)));
    worker.on('exit', (code) => die(new WorkerLostError(`the generation worker exited (code ${code})`)));
  }

  /** Start a worker writing generation `generation` of the database at `path` (opened with multithreading). */
  static async start(path: string, generation: number): Promise<GenerationBuilder> {
    const b = new GenerationBuilder(spawn({ path, generation, nice: NICE }));
    try {
      await b.expect(null, 'ready');
    } catch (e) {
      await b.close();
      throw e;
    }
    return b;
  }

  private ask(m: BuilderRequest | null): Promise<BuilderReply> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.waiting) return Promise.reject(new WorkerLostError('generation worker: one request at a time'));
    const p = new Promise<BuilderReply>((resolve, reject) => (this.waiting = { resolve, reject }));
    this.inFlight = p.catch(() => undefined);
    try {
      if (m) this.worker.postMessage(m);
    } catch (e) {
      // Nothing was sent (e.g. a value that cannot be cloned): no answer will come.
      const w = this.waiting as GenerationBuilder['waiting'];
      this.waiting = null;
      w?.reject(e as Error);
    }
    return p;
  }

  private async expect<T extends BuilderReply['type']>(m: BuilderRequest | null, type: T): Promise<Extract<BuilderReply, { type: T }>> {
    const r = await this.ask(m);
    if (r.type === 'failed') throw new BuilderError(r.message, r.code);
    if (r.type !== type) throw new WorkerLostError(`generation worker answered ${r.type}, expected ${type}`);
    return r as Extract<BuilderReply, { type: T }>;
  }

  /** Read what these users touch and encode their operations (no write yet). */
  async prepare(users: readonly NormalizedUser[]): Promise<void> {
    const posted = users.map((u): PostedUser => ({ record: u.record, key: u.key ? u.key.toString('base64') : null, templates: u.templates }));
    await this.expect({ type: 'prepare', users: posted }, 'prepared');
  }

  /** Write the prepared chunk; the caller serialises this with its other writes. */
  async write(): Promise<void> {
    this.added = (await this.expect({ type: 'write' }, 'written')).added;
  }

  /**
   * Close the worker's database handle and end the thread. Must finish before the store closes or
   * reopens its database: the handle is shared, and LevelDB only recovers on a real reopen.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      if (!this.dead) {
        const t = setTimeout(() => void this.worker.terminate(), 5000);
        try {
          // A request still in flight is answered first (requests run in order).
          await this.inFlight;
          await this.expect({ type: 'close' }, 'closed');
        } catch {
          // A worker that cannot close is ended; classic-level's environment cleanup hook closes its handle.
        } finally {
          clearTimeout(t);
        }
      }
      await this.worker.terminate();
    })();
    return this.closed;
  }
}
