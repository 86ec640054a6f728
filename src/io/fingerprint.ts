/**
 * Fingerprint modules. The interface is what the pipeline and the WeCom enrolment flow use; the
 * simulated module stands in until a hardware driver is configured, and lets tests script
 * success, failure and slow enrolments.
 */
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Subject } from 'rxjs';
import { createLogger, type Logger } from '../log.js';
import { Reopener } from './reopen.js';

const silentLogger = createLogger({ level: 'silent', pretty: false });

export interface EnrolResult {
  /** Template slot (WeCom fp id 0-9). */
  slot: number;
  /** Irreversible feature template (never an image), as the module produced it. */
  template: Buffer;
}

export interface FingerprintModule {
  /** Algorithm name reported to the cloud (WeCom fp_algorithm). */
  readonly algorithm: string;
  /** A finger matched a loaded template. */
  readonly matches$: Subject<{ userid: string; slot: number }>;
  /** A finger was read and matched nobody (journaled like an unknown card). */
  readonly unmatched$?: Subject<void>;
  /** Enrol a finger for `userid`; rejects when it fails or `signal` aborts. */
  enroll(userid: string, signal: AbortSignal): Promise<EnrolResult>;
  /** Load templates synced from the cloud. */
  load(userid: string, templates: { slot: number; template: Buffer }[]): Promise<void>;
  delete(userid: string): Promise<void>;
  close(): Promise<void>;
  /** Answering now (a serial module that stopped answering is not). */
  online?(): boolean;
}

export class EnrolmentError extends Error {}

/** A module in memory: enrolment succeeds after `enrolMs` unless told otherwise. */
export class SimFingerprint implements FingerprintModule {
  readonly algorithm = 'doorgw-sim-1';
  readonly matches$ = new Subject<{ userid: string; slot: number }>();
  readonly templates = new Map<string, { slot: number; template: Buffer }[]>();
  /** What the next enrolment does. */
  next: 'succeed' | 'fail' = 'succeed';
  enrolMs = 200;

  enroll(userid: string, signal: AbortSignal): Promise<EnrolResult> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new EnrolmentError('enrolment cancelled'));
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        if (this.next === 'fail') return reject(new EnrolmentError('the finger could not be read; try again'));
        const slot = (this.templates.get(userid)?.length ?? 0) % 10;
        // A stand-in feature vector: a hash, so nothing image-like is ever produced.
        const template = Buffer.concat([createHash('sha256').update(userid).digest(), randomBytes(32)]);
        const list = this.templates.get(userid) ?? [];
        list.push({ slot, template });
        this.templates.set(userid, list);
        resolve({ slot, template });
      }, this.enrolMs);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(new EnrolmentError('enrolment cancelled'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Simulate a finger on the sensor matching `userid`. */
  touch(userid: string): void {
    const t = this.templates.get(userid)?.[0];
    if (t) this.matches$.next({ userid, slot: t.slot });
  }

  load(userid: string, templates: { slot: number; template: Buffer }[]): Promise<void> {
    this.templates.set(userid, templates);
    return Promise.resolve();
  }

  delete(userid: string): Promise<void> {
    this.templates.delete(userid);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.matches$.complete();
    return Promise.resolve();
  }
}

/**
 * A serial module that may not be there yet (unplugged, unpowered, wrong password): the gateway
 * starts without it and keeps trying every `retryMs`; meanwhile it is offline (a health problem),
 * enrolment says the module is not available, and templates synced from the cloud are kept to be
 * loaded once it answers. The door's other credentials never wait for it.
 */
export class RetryingFingerprint implements FingerprintModule {
  readonly matches$ = new Subject<{ userid: string; slot: number }>();
  readonly unmatched$ = new Subject<void>();
  private inner: FingerprintModule | null = null;
  private readonly pendingLoads = new Map<string, { slot: number; template: Buffer }[] | null>();
  private readonly device: Reopener<FingerprintModule>;

  constructor(
    readonly algorithm: string,
    /** Opens the module; calls `onLost` if its port later goes away (then it is opened again). */
    opener: (onLost: (why: string) => void) => Promise<FingerprintModule>,
    private readonly log: Logger,
    retryMs = 2000,
  ) {
    this.device = new Reopener<FingerprintModule>({
      open: opener,
      attach: (m) => this.attach(m),
      detach: () => (this.inner = null),
      close: (m) => m.close(),
      log,
      what: 'fingerprint module',
      meanwhile: 'the door works without it',
      retryMs,
    });
  }

  /** Try now; resolves once the first attempt is over (either way). */
  start(): Promise<void> {
    return this.device.start();
  }

  private async attach(m: FingerprintModule): Promise<void> {
    this.inner = m;
    m.matches$.subscribe((x) => this.matches$.next(x));
    m.unmatched$?.subscribe(() => this.unmatched$.next());
    for (const [userid, templates] of this.pendingLoads) {
      await (templates ? m.load(userid, templates) : m.delete(userid)).catch((e: unknown) => this.log.warn({ err: (e as Error).message, userid }, 'held template change not applied'));
    }
    this.pendingLoads.clear();
  }

  enroll(userid: string, signal: AbortSignal): Promise<EnrolResult> {
    if (!this.inner) return Promise.reject(new EnrolmentError(`the fingerprint module is not available (${this.device.error ?? 'starting'})`));
    return this.inner.enroll(userid, signal);
  }

  load(userid: string, templates: { slot: number; template: Buffer }[]): Promise<void> {
    if (this.inner) return this.inner.load(userid, templates);
    this.pendingLoads.set(userid, templates);
    return Promise.resolve();
  }

  delete(userid: string): Promise<void> {
    if (this.inner) return this.inner.delete(userid);
    this.pendingLoads.set(userid, null);
    return Promise.resolve();
  }

  online(): boolean {
    return this.inner ? (this.inner.online?.() ?? true) : false;
  }

  async close(): Promise<void> {
    await this.device.stop();
    this.matches$.complete();
    this.unmatched$.complete();
  }
}

/** The configured module: `sim`, or `r30x` (a serial module), loaded only when configured. */
export async function openFingerprintModule(
  cfg: { driver: 'sim' | 'r30x'; path?: string | undefined; baud_rate?: number; password?: number },
  o: { dataDir: string; log: Logger } = { dataDir: '.', log: silentLogger },
): Promise<FingerprintModule> {
  if (cfg.driver === 'sim') return new SimFingerprint();
  const log = o.log.child({ module: 'fingerprint' });
  const m = new RetryingFingerprint('r30x', async (onLost) => {
    const { openSerial } = await import('./serial.js');
    const { R30xModule } = await import('./fingerprint/r30x.js');
    const link = await openSerial(cfg.path!, cfg.baud_rate ?? 57600);
    const module = await R30xModule.open({ link, password: cfg.password ?? 0, mapFile: join(o.dataDir, 'fingerprint-r30x.json'), log });
    link.lost$.subscribe((e) => onLost(e.message));
    return module;
  }, log);
  await m.start();
  return m;
}
