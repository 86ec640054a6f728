/**
 * Composition root: store → doors (each: relay, inputs, readers, state machine) → pipeline →
 * effects → cloud → MQTT → control channel, started in that order and stopped in reverse. Only this
 * file knows them all; what each is made of lives with it (door-unit, reader registry, cloud registry).
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import type { Readable } from 'node:stream';
import { config as rxjsConfig, distinctUntilChanged, merge, skip, Subject, type Observable } from 'rxjs';
import type { CloudAdapter } from './cloud/adapter.js';
import { CLOUD_ADAPTERS } from './cloud/registry.js';
import { controlSocketPath } from './config/load.js';
import type { Config, DoorConfig } from './config/schema.js';
import { localApi, policyOf, type GatewayApi } from './control/api.js';
import { serveControl } from './control/socket.js';
import { ALARM_EVENTS, credentialEvent, type CredentialEvent, type DoorEvent } from './domain/events.js';
import { localTime } from './domain/localtime.js';
import { decodeQr, encodeQrBody, signQr, verifyQr } from './domain/qr.js';
import { ReplayGuard } from './domain/replay.js';
import { HeadAge, monotonicMs, SteadyWall, type MonoClock } from './domain/clock.js';
import { openFingerprintModule, type FingerprintModule } from './io/fingerprint.js';
import type { Input, InputSpec } from './io/gpio/backends.js';
import type { Relay } from './io/relay.js';
import type { Logger } from './log.js';
import { AccessPipeline } from './pipeline/access.js';
import { doorStatus, type DoorStateMachine } from './pipeline/door-state.js';
import { buildDoor, wireInterlocks, type DoorUnit } from './pipeline/door-unit.js';
import { JournalWriter } from './pipeline/journal-writer.js';
import type { MqttBridge } from './pipeline/mqtt-bridge.js';
import type { GatewayMetrics } from './web/metrics.js';
import type { WebServer } from './web/server.js';
import { releaseReserve, StorageGuard } from './store/storage-guard.js';
import { Store, StoreLockedError } from './store/store.js';
import { VERSION } from './version.js';

export interface GatewayOptions {
  config: Config;
  log: Logger;
  /** Where `terminal` readers read scans; process.stdin by default. */
  terminalInput?: Readable;
  /** Build the relay of a door; the configured driver by default. */
  relayFactory?: (door: DoorConfig, log: Logger) => Relay;
  /** Build a GPIO input; onoff by default (tests pass simulated inputs). */
  inputFactory?: (spec: InputSpec) => Promise<Input>;
  /** Extra credential sources (tests, and the adapters of later issues). */
  sources?: Observable<CredentialEvent>[];
  /** Control socket path; false for none. */
  controlSocket?: string | false;
  /** How long to wait for a CLI that holds the database lock (it reads directly while no gateway runs). */
  storeLockWaitMs?: number;
  /** The wall clock (unix ms). */
  now?: () => number;
  /** The monotonic clock (ms): what measures how long ago, whatever the wall clock does. */
  mono?: MonoClock;
  /** This boot's id (tests: to play a reboot). */
  boot?: string;
}

/**
 * Open the store, waiting while another process holds LevelDB's lock: a `doorgw` command reads the
 * store directly when no gateway answers on the control socket, and one that ran just before the
 * gateway started must not make the start fail. A lock held longer than `waitMs` is an error.
 */
async function openStoreWaiting(dir: string, waitMs: number, log: Logger): Promise<Store> {
  const deadline = Date.now() + waitMs;
  for (let warned = false; ; ) {
    try {
      return await Store.open(dir);
    } catch (e) {
      // A full disk can keep LevelDB from recovering its log at open: the reserve is for this.
      if (!(e instanceof StoreLockedError) && (await releaseReserve(dir, true))) {
        log.error({ err: (e as Error).message, data_dir: dir }, 'database did not open; released the reserve file and trying again (is the disk full?)');
        continue;
      }
      if (!(e instanceof StoreLockedError) || Date.now() >= deadline) throw e;
      if (!warned) log.warn({ data_dir: dir }, 'database held by another process (a doorgw command?); waiting for it');
      warned = true;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/**
 * Decode and verify one throwaway QR code so OpenSSL's and the JIT's first-use costs happen at
 * start, not on the first person at the door. Touches neither the store nor the relay.
 */
function warmUpVerify(): void {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const body = encodeQrBody({ type: 'employee', openvid: '0', startTime: 0, expiresIn: 0 });
  const code = decodeQr(signQr(body, privateKey));
  if (code.ok) verifyQr(code.value, publicKey, { now: 0, skewS: 0 });
}

/** The gateway's fingerprint module: the first door that configures one gets it. */
async function openGatewayFingerprint(config: Config, log: Logger): Promise<{ module: FingerprintModule; door: string } | null> {
  const d = config.doors.find((x) => x.fingerprint);
  return d?.fingerprint ? { module: await openFingerprintModule(d.fingerprint, { dataDir: config.data_dir, log }), door: d.id } : null;
}

/**
 * This boot's id: monotonic readings persisted by an earlier process of the same boot stay
 * comparable. Unreadable (not Linux): a random one, so nothing is taken as of this boot.
 */
function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return randomUUID();
  }
}

/** Replay memory as persisted: the codes accepted before this start whose window has not ended. */
async function loadReplayGuard(store: Store, nowMs: number, mono: MonoClock, boot: string): Promise<ReplayGuard> {
  const replay = new ReplayGuard({ limit: 100_000, mono, boot });
  const nowS = Math.floor(nowMs / 1000);
  for (const [k, v] of await store.loadReplay()) replay.restore(k, v, nowS);
  // Best effort: on a full disk the start must go on; ended entries are ignored anyway.
  await store.deleteReplay(replay.prune(nowS)).catch(() => undefined);
  return replay;
}

export class Gateway {
  readonly relays: ReadonlyMap<string, Relay>;
  /** Door state machines by door id. */
  readonly doors: ReadonlyMap<string, DoorStateMachine>;
  readonly api: GatewayApi;
  cloud: CloudAdapter | null = null;
  storage: StorageGuard | null = null;
  mqtt: MqttBridge | null = null;
  /** The web console and metrics (web.enabled). */
  web: WebServer | null = null;
  metrics: GatewayMetrics | null = null;
  /** Why the console is not serving (null: serving, or not enabled). */
  webError: string | null = null;
  /** Every door event (contact, alarms, modes, reader and storage alarms), as journaled. */
  readonly doorEvents$ = new Subject<DoorEvent>();
  readonly started = Date.now();
  private server: Server | null = null;
  private replayTimer: NodeJS.Timeout | null = null;
  private readonly outboxHead = new HeadAge(monotonicMs);
  private readonly doorLog: Logger;

  private constructor(
    readonly config: Config,
    readonly store: Store,
    readonly pipeline: AccessPipeline,
    readonly journal: JournalWriter,
    private readonly units: readonly DoorUnit[],
    /** The fingerprint module (of the first door that has one). */
    readonly fingerprint: FingerprintModule | null,
    private readonly log: Logger,
  ) {
    this.relays = new Map(units.map((u) => [u.id, u.relay]));
    this.doors = new Map(units.map((u) => [u.id, u.state]));
    this.doorLog = log.child({ module: 'door' });
    this.api = localApi(
      store,
      config,
      VERSION,
      {
        since: this.started,
        cloud: () => this.cloud,
        outboxWaitingMs: (seq, wallAgeMs) => this.outboxHead.ageMs(seq, wallAgeMs),
        mqtt: () => (this.mqtt ? { connected: this.mqtt.link.connected$.value, down_s: this.mqtt.link.downS, readers: this.mqtt.readerIds, oversized: this.mqtt.link.oversized } : null),
        storage: () => (this.storage ? { ...this.storage.state$.value, held_in_memory: journal.pending, dropped: journal.dropped } : null),
        modeOf: (door) => pipeline.modeOf(door),
        modeUntil: (door) => pipeline.modeUntil(door),
        modeWhy: (door) => pipeline.modeWhy(door),
        forgive: (userid, area) => pipeline.forgive(userid, area),
        setMode: (door, mode, o) => pipeline.setMode(door, mode, o),
        open: (door, by) => pipeline.handle(credentialEvent(door, 'operator', 'unknown', { type: 'operator', source: by })),
        lock: (door) => pipeline.relock(door),
        accountChanged: (name) => this.web?.accountChanged(name),
        webError: () => this.webError,
        fingerprintOnline: () => this.fingerprintOnline(),
        readers: () => this.units.flatMap((u) => [...u.readers.values()].flatMap((r) => (r.status ? [r.status()] : []))),
        enrollReader: (id) => this.units.map((u) => u.readers.get(id)).find((r) => r?.enroll !== undefined)?.enroll?.(),
        doorState: (door) => {
          const { lock, contact, alarm } = this.doorStatus(door);
          return { lock, contact, alarm };
        },
      },
      log.child({ module: 'api' }),
    );
  }

  static async start(o: GatewayOptions): Promise<Gateway> {
    const { config, log } = o;
    const now = o.now ?? Date.now;
    // A subscriber that throws must never become an uncaught exception that kills the door.
    rxjsConfig.onUnhandledError = (err: unknown) => log.error({ err }, 'unhandled error in a subscriber');
    const store = await openStoreWaiting(config.data_dir, o.storeLockWaitMs ?? 10_000, log);
    store.onWorkerUnavailable = (e) => log.warn({ err: e.message }, 'no generation worker (it could not start, or died in an earlier sync): this full sync runs on the main thread, and decisions may wait on it');
    const units: DoorUnit[] = [];
    let fingerprint: { module: FingerprintModule; door: string } | null = null;
    try {
      // Doors: each its relay, state machine, inputs and readers.
      fingerprint = await openGatewayFingerprint(config, log);
      const mqttReaders = new Subject<CredentialEvent>();
      const doorEvents = new Subject<DoorEvent>();
      for (const d of config.doors) {
        units.push(
          await buildDoor(d, {
            config,
            log,
            store,
            terminalInput: o.terminalInput ?? process.stdin,
            mqttCredentials: mqttReaders,
            fingerprint: fingerprint?.door === d.id ? fingerprint.module : null,
            onDoorEvent: (e) => doorEvents.next(e),
            relayFactory: o.relayFactory,
            inputFactory: o.inputFactory,
          }),
        );
      }

      wireInterlocks(config.interlocks, units);

      // Pipeline: decide, record durably (journal, outbox, replay memory), then the effects.
      const mono = o.mono ?? monotonicMs;
      const boot = o.boot ?? bootId();
      const replay = await loadReplayGuard(store, now(), mono, boot);
      let cloud: CloudAdapter | null = null;
      const journal = new JournalWriter(store, log.child({ module: 'journal' }), config.journal.max_entries, () => cloud?.outboxChanged(), () => cloud?.uploadsRecords === true, config.journal.memory_max_entries);
      const pipeline = new AccessPipeline({
        store,
        doors: new Map(units.map((u) => [u.id, u.access])),
        readers: new Map(units.flatMap((u) => u.trust)),
        journal,
        durability: config.journal.durability,
        policy: policyOf(config),
        debounceMs: config.policy.debounce_ms,
        replay,
        presence: await store.loadPresence(),
        onPresence: (area, userid, p) => {
          if (store.writable) store.putPresence(area, userid, p).catch((e: unknown) => log.warn({ err: e, area }, 'presence not persisted'));
        },
        log: log.child({ module: 'pipeline' }),
        now,
        mono,
        boot,
      });
      const gw = new Gateway(config, store, pipeline, journal, units, fingerprint?.module ?? null, log);
      doorEvents.subscribe((e) => gw.recordDoorEvent(e));
      pipeline.doorEvents$.subscribe((e) => gw.recordDoorEvent(e));
      gw.addEffects();
      gw.pruneReplayEvery(60_000, replay, now, new SteadyWall(Math.min(now(), (await store.getMeta<number>('journal.retention_clock')) ?? now()), mono));
      await gw.startStorageGuard(now);
      if (config.mqtt.enabled) {
        const { MqttBridge } = await import('./pipeline/mqtt-bridge.js');
        const readerEvents = merge(...units.flatMap((u) => [...u.readers.values()].flatMap((r) => (r.events$ ? [r.events$] : []))));
        gw.mqtt = new MqttBridge({ config, version: VERSION, store, pipeline, relays: gw.relays, doors: gw.doors, api: gw.api, cloud: () => gw.cloud, log, started: gw.started, readerEvents });
        gw.mqtt.credentials$.subscribe(mqttReaders);
      }

      // The first person at the door must not pay for first-use costs: zones, corp keys, OpenSSL.
      for (const u of units) localTime(now(), u.access.context.timezone);
      await store.warmKeys();
      warmUpVerify();
      pipeline.start([...(o.sources ?? []), ...units.flatMap((u) => u.sources)]);

      // Cloud, then local integrations and the control channel.
      cloud =
        (await CLOUD_ADAPTERS[config.cloud.provider]?.({
          config,
          store,
          log,
          fingerprint: gw.fingerprint,
          remoteOpen: (r) => pipeline.handle(credentialEvent(r.door, config.cloud.provider, 'in', { type: 'remote', userid: r.userid, oper_id: r.oper_id })),
        })) ?? null;
      gw.cloud = cloud;
      await cloud?.start();
      gw.mqtt?.start(); // never waits for the broker
      // The console is a convenience: if it cannot serve (port taken, certificate unreadable), the
      // door runs without it and status says why.
      if (config.web.enabled) {
        await gw.startWeb().catch((e: unknown) => {
          gw.webError = (e as Error).message;
          log.error({ err: (e as Error).message }, 'web console not started; the door runs without it');
        });
      }
      if (o.controlSocket !== false) gw.server = await serveControl(o.controlSocket ?? controlSocketPath(config), gw.api, log.child({ module: 'control' }));

      log.info({ gateway_id: config.gateway_id, version: VERSION, users: await store.userCount(), doors: config.doors.map((d) => d.id), data_dir: config.data_dir }, 'gateway ready');
      return gw;
    } catch (e) {
      for (const u of units) {
        await u.stop().catch(() => undefined);
        await u.relay.close().catch(() => undefined);
      }
      await fingerprint?.module.close().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw e;
    }
  }

  private doorStatus(door: string): ReturnType<typeof doorStatus> {
    return doorStatus(this.relays.get(door), this.doors.get(door), this.pipeline.modeOf(door));
  }

  /** The fingerprint module answering (null: none; a module that cannot tell counts as answering). */
  private fingerprintOnline(): boolean | null {
    return this.fingerprint ? (this.fingerprint.online?.() ?? true) : null;
  }

  /**
   * The console and metrics: subscribers of decisions, door events and relay changes (after the
   * relay has moved), and an HTTP server that serves between decisions.
   */
  private async startWeb(): Promise<void> {
    const { config, pipeline } = this;
    const [{ WebServer }, { GatewayMetrics }] = await Promise.all([import('./web/server.js'), import('./web/metrics.js')]);
    if (config.web.metrics.enabled) {
      this.metrics = new GatewayMetrics({
        status: () => this.api.status(),
        doorState: (door) => this.doorStatus(door),
        mqttConnected: () => (this.mqtt ? this.mqtt.link.connected$.value : null),
        fingerprintOnline: () => this.fingerprintOnline(),
        badFrames: () => {
          const m = new Map<string, number>(this.mqtt?.badFrames ?? []);
          for (const u of this.units) for (const [id, r] of u.readers) if (r.badFrames) m.set(id, r.badFrames());
          return m;
        },
        doors: config.doors.map((d) => d.id),
        started: this.started,
      });
    }
    const web = new WebServer({ config, api: this.api, store: this.store, metrics: this.metrics, log: this.log.child({ module: 'web' }), version: VERSION });
    await web.start(); // first: a console that cannot listen subscribes to nothing
    const m = this.metrics;
    pipeline.decisions$.subscribe((d) => {
      m?.decision(d);
      web.decision(d);
    });
    this.doorEvents$.subscribe((e) => {
      m?.doorEvent(e);
      web.doorEvent(e);
    });
    for (const [door, relay] of this.relays) {
      relay.state$.pipe(distinctUntilChanged(), skip(1)).subscribe((released) => {
        if (released) m?.relayPulse(door);
        web.doorState(door);
      });
    }
    for (const [door, sm] of this.doors) sm.state$.pipe(skip(1)).subscribe(() => web.doorState(door));
    pipeline.modes$.subscribe(({ door }) => web.doorState(door));
    this.web = web;
  }

  /** Door events (contact, alarms, reader and storage alarms): logged and journaled. */
  private recordDoorEvent(e: DoorEvent): void {
    this.doorEvents$.next(e);
    const fields = { door: e.door, event: e.type, reader: e.reader, detail: e.detail };
    if (ALARM_EVENTS.has(e.type)) this.doorLog.warn(fields, 'door alarm');
    else this.doorLog.info(fields, 'door event');
    if (!this.store.writable) return void this.doorLog.warn({ door: e.door, event: e.type }, 'door event not journaled: the database is not writable');
    this.store.appendDoorEvent(e).catch((err: unknown) => this.doorLog.error({ err, door: e.door }, 'door event not journaled'));
  }

  /** Effects: each a subscriber; none can delay the relay, which was commanded before they run. */
  private addEffects(): void {
    const decisionLog = this.log.child({ module: 'access' });
    this.pipeline.addEffect('log', (d) => {
      const fields = { door: d.door, reader: d.reader, decision: d.decision, reason: d.reason, userid: d.userid, method: d.method, latency_us: Math.round(d.latency_us) };
      if (d.decision === 'grant') decisionLog.info(fields, 'access granted');
      else decisionLog.info({ ...fields, detail: d.detail }, 'access denied');
    });
    // Readers that can show the result (LED, buzzer, display) are told.
    const feedback = new Map(this.units.flatMap((u) => [...u.readers].filter(([, r]) => r.feedback !== undefined).map(([id, r]) => [id, r] as const)));
    if (feedback.size) this.pipeline.addEffect('reader feedback', (d) => feedback.get(d.reader)?.feedback?.(d));
    // Modes: persisted (with when a timed one ends), journaled with who changed them, and passage
    // tells the door state machine not to raise held-open.
    this.pipeline.modes$.subscribe(({ door, mode, from, until, by, auto }) => {
      this.doors.get(door)?.setPassage(mode === 'passage');
      for (const r of this.units.find((u) => u.id === door)?.readers.values() ?? []) r.modeChanged?.(mode);
      this.store.putMeta(`door.${door}.mode`, { mode, until, auto }).catch((e: unknown) => this.log.error({ err: e, door }, 'door mode not persisted'));
      const detail = `${from} → ${mode}${until !== null ? ` until ${new Date(until).toISOString()}` : ''}${by ? ` by ${by}` : ''}`;
      this.pipeline.doorEvents$.next({ type: 'mode_changed', door, at: Date.now(), detail });
    });
    for (const u of this.units) {
      for (const r of u.readers.values()) r.modeChanged?.(u.access.context.mode);
      if (u.access.context.mode === 'passage') u.state.setPassage(true);
      if (u.modeUntil !== null) this.pipeline.setMode(u.id, u.access.context.mode, { untilMs: u.modeUntil, by: 'restart' });
    }
    this.pipeline.holdPassageDoors();
  }

  /**
   * Forget accepted QR codes once their validity has ended, in memory and on disk (every run);
   * drop journal entries and door events past `journal.max_age_days` (at start, then hourly).
   */
  private pruneReplayEvery(ms: number, replay: ReplayGuard, now: () => number, retention: SteadyWall): void {
    let runs = 0;
    const perHour = Math.max(1, Math.round(3_600_000 / ms));
    const tick = (): void => {
      const nowS = Math.floor(now() / 1000);
      const gone = replay.prune(nowS);
      if (!this.store.writable) return;
      // Entries not deleted now (a write failure) are restored and pruned again at the next start.
      if (gone.length) this.store.deleteReplay(gone).catch((e: unknown) => this.log.warn({ err: e }, 'replay memory not pruned on disk'));
      const days = this.config.journal.max_age_days;
      if (days !== null && runs++ % perHour === 0) {
        // Age on a clock that cannot run ahead of real time: a wall clock stepped a year forward
        // must not delete the journal. Trusted again when the cloud confirms the time.
        const skew = this.cloud?.state$.value.clock_skew_s;
        if (skew !== null && skew !== undefined && Math.abs(skew) <= this.config.qr.clock_skew_s) retention.trust(now());
        const steady = retention.now(now());
        this.store.putMeta('journal.retention_clock', steady).catch(() => undefined);
        this.store
          .pruneByAge(steady - days * 86_400_000)
          .then((n) => n && this.log.info({ deleted: n, max_age_days: days }, 'journal entries past their retention deleted'))
          .catch((e: unknown) => this.log.warn({ err: e }, 'journal not pruned by age'));
      }
    };
    this.replayTimer = setInterval(tick, ms);
    this.replayTimer.unref();
    tick();
  }

  /** Disk-full protection: reserve, free space, recovery; storage alarms on every door. */
  private async startStorageGuard(now: () => number): Promise<void> {
    const { config, pipeline, journal } = this;
    this.storage = new StorageGuard({
      store: this.store,
      dir: config.data_dir,
      reserveBytes: config.storage.reserve_mb * 1024 * 1024,
      lowBytes: config.storage.low_space_mb * 1024 * 1024,
      checkIntervalMs: config.storage.check_interval_s * 1000,
      log: this.log.child({ module: 'storage' }),
      alarm: (type, detail) => {
        for (const d of config.doors) pipeline.doorEvents$.next({ type, door: d.id, at: now(), detail });
      },
      recovered: () => journal.retryNow(),
    });
    await this.storage.start();
  }

  async stop(): Promise<void> {
    if (this.replayTimer) clearInterval(this.replayTimer);
    this.storage?.stop();
    for (const u of this.units) await u.stop();
    await this.web?.stop();
    await this.mqtt?.stop();
    await this.cloud?.stop();
    this.pipeline.stop();
    await this.journal.close();
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
    for (const r of this.relays.values()) await r.close();
    await this.fingerprint?.close();
    await this.store.close();
    this.log.info('gateway stopped');
  }
}
