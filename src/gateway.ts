/**
 * Composition root: store → doors (each: relay, inputs, readers, state machine) → pipeline →
 * effects → cloud → MQTT → control channel, started in that order and stopped in reverse. Only this
 * file knows them all; what each is made of lives with it (door-unit, reader registry, cloud registry).
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { config as rxjsConfig, distinctUntilChanged, merge, skip, Subject, Subscription, type Observable } from 'rxjs';
import type { CloudAdapter } from './cloud/adapter.js';
import { CLOUD_ADAPTERS, UPLOADS_RECORDS } from './cloud/registry.js';
import { controlSocketPath } from './config/load.js';
import type { Config, DoorConfig } from './config/schema.js';
import { localApi, policyOf, type GatewayApi } from './control/api.js';
import { serveControl } from './control/socket.js';
import { ALARM_EVENTS, credentialEvent, type CredentialEvent, type DoorEvent } from './domain/events.js';
import { localStamp, localTime } from './domain/localtime.js';
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
import { Units, type Unit } from './pipeline/unit.js';
import type { MqttBridge } from './pipeline/mqtt-bridge.js';
import { GatewayIo } from './pipeline/gateway-io.js';
import type { SiteFacts } from './pipeline/site-facts.js';
import type { MusterBook } from './pipeline/muster.js';
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

/** Replay memory as persisted (the pruner's first run, at start, lets go of what has ended). */
async function loadReplayGuard(store: Store, nowMs: number, mono: MonoClock, boot: string): Promise<ReplayGuard> {
  const replay = new ReplayGuard({ limit: 100_000, mono, boot });
  const nowS = Math.floor(nowMs / 1000);
  for (const [k, v] of await store.loadReplay()) replay.restore(k, v, nowS);
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
  /** The gateway's named inputs and outputs, fire release and linkage rules. */
  io: GatewayIo | null = null;
  /** The site's facts (site.enabled). */
  site: SiteFacts | null = null;
  muster: MusterBook | null = null;
  /** The web console and metrics (web.enabled). */
  web: WebServer | null = null;
  metrics: GatewayMetrics | null = null;
  /** Why the console is not serving (null: serving, or not enabled). */
  webError: string | null = null;
  /** Every door event (contact, alarms, modes, reader and storage alarms), as journaled. */
  readonly doorEvents$ = new Subject<DoorEvent>();
  /** Someone with the right asked for a restart (the cloud): the process stops cleanly and the service manager starts it again. */
  readonly restartRequested$ = new Subject<string>();
  readonly started = Date.now();
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
    private readonly lifecycle: Units,
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
        muster: () => this.muster,
        staticCode: (door) => (this.cloud?.staticCode ? this.cloud.staticCode(door) : Promise.reject(new Error('the cloud has no static scan code (WeCom only)'))),
        setMode: (door, mode, o) => pipeline.setMode(door, mode, o),
        heldBy: (door) => pipeline.heldBy(door),
        site: () => this.site?.status() ?? null,
        io: () => this.io?.status() ?? null,
        fireReset: (doors, by) => this.io?.fire.reset(doors, by) ?? { reset: [], refused: [] },
        fireHeld: (door) => this.io?.fire.released(door) === true,
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
    const mono = o.mono ?? monotonicMs;
    const boot = o.boot ?? bootId();
    // A subscriber that throws must never become an uncaught exception that kills the door.
    rxjsConfig.onUnhandledError = (err: unknown) => log.error({ err }, 'unhandled error in a subscriber');
    const store = await openStoreWaiting(config.data_dir, o.storeLockWaitMs ?? 10_000, log);
    store.onWorkerUnavailable = (e) => log.warn({ err: e.message }, 'no generation worker (it could not start, or died in an earlier sync): this full sync runs on the main thread, and decisions may wait on it');
    // Everything from here is a unit: a start that fails stops what had started, in reverse.
    const units = new Units(log);
    units.adopt('store', () => store.close());
    try {
      // Doors: each its relay, state machine, inputs and readers.
      const fingerprint = await openGatewayFingerprint(config, log);
      if (fingerprint) units.adopt('fingerprint module', () => fingerprint.module.close());
      const mqttReaders = new Subject<CredentialEvent>();
      // Door events from the moment doors are built (a door open at start says so then): held until
      // the journal subscribes, then passed on.
      const doorEvents = new Subject<DoorEvent>();
      let early: DoorEvent[] | null = [];
      const onDoorEvent = (e: DoorEvent): void => void (early ? early.push(e) : doorEvents.next(e));
      const doors: DoorUnit[] = [];
      units.adopt('relays', async () => {
        for (const u of doors) await u.safety.close();
      });
      for (const d of config.doors) {
        const door = await buildDoor(d, {
          config,
          log,
          store,
          terminalInput: o.terminalInput ?? process.stdin,
          mqttCredentials: mqttReaders,
          fingerprint: fingerprint?.door === d.id ? fingerprint.module : null,
          onDoorEvent,
          relayFactory: o.relayFactory,
          inputFactory: o.inputFactory,
        });
        doors.push(door);
        units.adopt(`door ${d.id}`, () => door.stop());
      }
      wireInterlocks(config.interlocks, doors);

      // Pipeline: decide, record durably (journal, outbox, replay memory), then the effects.
      const replay = await loadReplayGuard(store, now(), mono, boot);
      const journal = new JournalWriter({ store, log: log.child({ module: 'journal' }), maxEntries: config.journal.max_entries, maxQueued: config.journal.memory_max_entries, keepPassRecords: UPLOADS_RECORDS[config.cloud.provider] === true });
      units.adopt('journal', () => journal.close());
      const pipeline = new AccessPipeline({
        store,
        doors: new Map(doors.map((u) => [u.id, u.access])),
        readers: new Map(doors.flatMap((u) => u.trust)),
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
      const gw: Gateway = new Gateway(config, store, pipeline, journal, doors, fingerprint?.module ?? null, log, units);
      await units.start(gw.recordingUnit(doorEvents));
      for (const e of early) doorEvents.next(e);
      early = null;
      await units.start(gw.replayPruner(replay, now, new SteadyWall(Math.min(now(), (await store.getMeta<number>('journal.retention_clock')) ?? now()), mono)));
      await units.start(gw.storageUnit(now));
      // Inputs and outputs before the first decision: a fire panel in alarm releases at once.
      const members = new Map(Object.entries(config.groups).map(([g, ids]) => [g, new Set(ids)]));
      const memberOf = (userid: string, group: string): boolean => members.get(group)?.has(userid) === true || store.directory.user(userid)?.local?.groups.includes(group) === true;
      const io = new GatewayIo({ config, log, doors, pipeline, meta: { get: (k) => store.getMeta(k), put: (k, v) => store.putMeta(k, v) }, doorEvent: (e) => pipeline.doorEvents$.next(e), inputFactory: o.inputFactory, memberOf, now });
      gw.io = io;
      await units.start({
        name: 'inputs, outputs, fire release, linkage',
        start: async () => {
          await io.open().catch(async (e: unknown) => {
            await io.close();
            throw e;
          });
          io.startLinkage(gw.doorEvents$);
          io.startLifts(pipeline.decisions$);
        },
        stop: () => io.close(),
      });

      // Musters: one begins in an area when a fire release begins at one of its doors.
      if (Object.keys(config.areas).length) {
        const { MusterBook } = await import('./pipeline/muster.js');
        const muster = new MusterBook({ config, pipeline, log: log.child({ module: 'muster' }), doorEvent: (e) => pipeline.doorEvents$.next(e), nameOf: (u) => store.directory.user(u)?.name ?? null, now: () => ({ at: now(), mono: mono(), boot }), staleness: (a) => pipeline.presenceStaleness?.(a) ?? null });
        gw.muster = muster;
        let sub: { unsubscribe(): void } | null = null;
        await units.start({
          name: 'muster',
          start: () => {
            sub = io.fire.changed$.subscribe(({ door, released }) => released && muster.onFire(door, 'fire alarm'));
            // A release latched from before this start is a fire still being handled: a muster too.
            for (const d of config.doors) if (io.fire.released(d.id)) muster.onFire(d.id, 'fire release latched from before the restart');
          },
          stop: () => sub?.unsubscribe(),
        });
      }

      // The first person at the door must not pay for first-use costs: zones, corp keys, OpenSSL.
      for (const u of doors) localTime(now(), u.access.context.timezone);
      await store.warmKeys();
      warmUpVerify();
      // Site facts before the first decision: a site block holds from the first credential.
      if (config.site.enabled) {
        const { SiteFacts } = await import('./pipeline/site-facts.js');
        const site = new SiteFacts({
          config,
          store,
          pipeline,
          log: log.child({ module: 'site' }),
          doorEvent: (e) => pipeline.doorEvents$.next(e),
          now,
          fire: (door, on, cause) => io.fire.source('site', [door], on, { latch: config.io.site_fire_latch, cause }),
          doorNow: (door) => ({ alarm: gw.doorStatus(door).alarm, fire: io.fire.released(door) }),
        });
        gw.site = site;
        // The report shows modes, alarms and fire releases: a change of one is reported soon.
        const soon = merge(pipeline.modes$, gw.doorEvents$, io.fire.changed$).subscribe(() => site.reportSoon());
        units.adopt('site report on changes', () => soon.unsubscribe());
        await units.start({ name: 'site facts', start: () => site.load(), stop: () => site.stop() });
        if (config.io.linkage.some((r) => r.do.some((a) => 'site_level' in a))) io.attachSiteLevels((level, scope, why) => site.raiseLevel(level, scope, why));
      }
      await units.start({ name: 'pipeline', start: () => pipeline.start([...(o.sources ?? []), ...doors.flatMap((u) => u.sources)]), stop: () => pipeline.stop() });

      // Cloud, then local integrations and the control channel.
      const cloud =
        (await CLOUD_ADAPTERS[config.cloud.provider]?.({
          config,
          store,
          log,
          fingerprint: gw.fingerprint,
          remoteOpen: (r) => pipeline.handle(credentialEvent(r.door, config.cloud.provider, 'in', { type: 'remote', userid: r.userid, oper_id: r.oper_id })),
          scanOpen: (r) => pipeline.handle(credentialEvent(r.door, config.cloud.provider, 'in', { type: 'userid', value: r.userid, method: 'scan' })),
          doorEvents: gw.doorEvents$,
          restart: (reason) => gw.restartRequested$.next(reason),
        })) ?? null;
      if (cloud) {
        gw.cloud = cloud;
        // The cloud's own rules at each door (Feishu permission groups), decided with everything else.
        if (cloud.gate) for (const u of doors) u.access.context.cloudGate = (user, nowMs) => cloud.gate!(u.id, user, nowMs, u.access.context.timezone);
        if (cloud.uploadsRecords !== (UPLOADS_RECORDS[config.cloud.provider] === true)) throw new Error(`cloud registry: UPLOADS_RECORDS.${config.cloud.provider} disagrees with its adapter`);
        const written = journal.written$.subscribe(() => cloud.outboxChanged()); // new records: the uploader wakes
        await units.start({ name: 'cloud', start: () => cloud.start(), stop: async () => { written.unsubscribe(); await cloud.stop(); } });
      }
      if (config.mqtt.enabled) {
        const { MqttBridge } = await import('./pipeline/mqtt-bridge.js');
        const readerEvents = merge(...doors.flatMap((u) => [...u.readers.values()].flatMap((r) => (r.events$ ? [r.events$] : []))));
        const mqtt = new MqttBridge({ config, version: VERSION, store, pipeline, relays: gw.relays, doors: gw.doors, api: gw.api, cloud: () => gw.cloud, log, started: gw.started, readerEvents, siteFacts: gw.site, io: gw.io });
        gw.mqtt = mqtt;
        const sub = mqtt.credentials$.subscribe(mqttReaders);
        await units.start({ name: 'mqtt', start: () => mqtt.start(), stop: async () => { sub.unsubscribe(); await mqtt.stop(); } }); // never waits for the broker
      }
      // The console is a convenience: if it cannot serve (port taken, certificate unreadable), the
      // door runs without it and status says why.
      if (config.web.enabled) {
        await units.start(gw.webUnit()).catch((e: unknown) => {
          gw.webError = (e as Error).message;
          log.error({ err: (e as Error).message }, 'web console not started; the door runs without it');
        });
      }
      if (o.controlSocket !== false) {
        const server = await serveControl(o.controlSocket ?? controlSocketPath(config), gw.api, log.child({ module: 'control' }));
        units.adopt('control socket', () => new Promise<void>((r) => server.close(() => r())));
      }

      log.info({ gateway_id: config.gateway_id, version: VERSION, users: await store.userCount(), doors: config.doors.map((d) => d.id), data_dir: config.data_dir }, 'gateway ready');
      return gw;
    } catch (e) {
      log.error({ err: (e as Error).message, started: units.names }, 'start failed: stopping what had started, in reverse');
      await units.stopAll();
      throw e;
    }
  }

  doorStatus(door: string): ReturnType<typeof doorStatus> {
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
  private webUnit(): Unit {
    const subs = new Subscription();
    return {
      name: 'web console',
      start: () => this.startWeb(subs),
      stop: async () => {
        subs.unsubscribe();
        await this.web?.stop();
      },
    };
  }

  private async startWeb(subs: Subscription): Promise<void> {
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
    const web = new WebServer({ config, api: this.api, store: this.store, metrics: this.metrics, log: this.log.child({ module: 'web' }), version: VERSION, loginCode: (door) => this.cloud?.loginCode?.(door) ?? null,
      cloudCallback: async (provider, req) => (this.cloud?.callback && provider === config.cloud.provider ? this.cloud.callback(req) : { status: 404, body: { error: `cloud ${provider} takes no callbacks here` } }),
    });
    await web.start(); // first: a console that cannot listen subscribes to nothing
    const m = this.metrics;
    subs.add(
      pipeline.decisions$.subscribe((d) => {
        m?.decision(d);
        web.decision(d);
      }),
    );
    subs.add(
      this.doorEvents$.subscribe((e) => {
        m?.doorEvent(e);
        web.doorEvent(e);
      }),
    );
    for (const [door, relay] of this.relays) {
      subs.add(
        relay.state$.pipe(distinctUntilChanged(), skip(1)).subscribe((released) => {
          if (released) m?.relayPulse(door);
          web.doorState(door);
        }),
      );
    }
    for (const [door, sm] of this.doors) subs.add(sm.state$.pipe(skip(1)).subscribe(() => web.doorState(door)));
    subs.add(pipeline.modes$.subscribe(({ door }) => web.doorState(door)));
    if (this.io) subs.add(this.io.fire.changed$.subscribe(({ door }) => web.doorState(door)));
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

  /**
   * Door events journaled and logged, and the effects of decisions and modes: a unit that owns its
   * subscriptions. None can delay the relay, which was commanded before they run.
   */
  private recordingUnit(doorEvents: Observable<DoorEvent>): Unit {
    const subs = new Subscription();
    return {
      name: 'journal of door events, effects',
      start: () => {
        subs.add(doorEvents.subscribe((e) => this.recordDoorEvent(e)));
        subs.add(this.pipeline.doorEvents$.subscribe((e) => this.recordDoorEvent(e)));
        this.addEffects(subs);
      },
      stop: () => subs.unsubscribe(),
    };
  }

  private addEffects(subs: Subscription): void {
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
    subs.add(this.pipeline.modes$.subscribe(({ door, mode, from, until, by, auto }) => {
      const unit = this.units.find((u) => u.id === door);
      this.doors.get(door)?.setPassage(mode === 'passage');
      for (const r of unit?.readers.values() ?? []) r.modeChanged?.(mode);
      this.store.putMeta(`door.${door}.mode`, { mode, until, auto }).catch((e: unknown) => this.log.error({ err: e, door }, 'door mode not persisted'));
      // Times an operator reads are local, with their offset (as everywhere in the journal's answers).
      const zone = unit?.access.context.timezone ?? this.config.timezone;
      const detail = `${from} → ${mode}${until !== null ? ` until ${localStamp(until, zone)}` : ''}${by ? ` by ${by}` : ''}`;
      this.pipeline.doorEvents$.next({ type: 'mode_changed', door, at: Date.now(), detail });
    }));
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
  private replayPruner(replay: ReplayGuard, now: () => number, retention: SteadyWall, ms = 60_000): Unit {
    let timer: NodeJS.Timeout | null = null;
    return {
      name: 'replay memory and retention pruner',
      start: () => {
        timer = setInterval(this.pruneTick(ms, replay, now, retention), ms);
        timer.unref();
      },
      stop: () => {
        if (timer) clearInterval(timer);
      },
    };
  }

  /** One pruning run (the first runs now). */
  private pruneTick(ms: number, replay: ReplayGuard, now: () => number, retention: SteadyWall): () => void {
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
    tick();
    return tick;
  }

  /** Disk-full protection: reserve, free space, recovery; storage alarms on every door. */
  private storageUnit(now: () => number): Unit {
    return { name: 'storage guard', start: () => this.startStorageGuard(now), stop: () => this.storage?.stop() };
  }

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

  /** Stop every unit in reverse start order, each failure contained. */
  async stop(): Promise<void> {
    await this.lifecycle.stopAll();
    this.log.info('gateway stopped');
  }
}
