/**
 * Composition root: builds the services in a fixed order (store → hardware → pipeline → effects →
 * control channel), starts them, and stops them in reverse. Only this file knows them all.
 */
import type { Server } from 'node:net';
import type { Readable } from 'node:stream';
import { config as rxjsConfig, Subject, type Observable } from 'rxjs';
import { DoorStateMachine } from './pipeline/door-state.js';
import { sysfsNumber } from './io/gpio/sysfs.js';
import { controlSocketPath } from './config/load.js';
import { DEFAULT_READER_KINDS, DEFAULT_READER_RATE, type Config, type DoorConfig } from './config/schema.js';
import { localApi, policyOf, type GatewayApi } from './control/api.js';
import { serveControl } from './control/socket.js';
import { generateKeyPairSync } from 'node:crypto';
import { localTime } from './domain/localtime.js';
import { decodeQr, encodeQrBody, signQr, verifyQr } from './domain/qr.js';
import { ReplayGuard } from './domain/replay.js';
import type { CloudAdapter } from './cloud/adapter.js';
import { CLOUD_ADAPTERS } from './cloud/registry.js';
import { SimFingerprint, type FingerprintModule } from './io/fingerprint.js';
import { SimRelay, type Relay } from './io/relay.js';
import { terminalReader } from './io/terminal-reader.js';
import type { Logger } from './log.js';
import { AccessPipeline, type AccessDoor } from './pipeline/access.js';
import { ALARM_EVENTS, credentialEvent, type CredentialEvent, type DoorEvent } from './domain/events.js';
import { map } from 'rxjs';
import { JournalWriter } from './pipeline/journal-writer.js';
import { releaseReserve, StorageGuard } from './store/storage-guard.js';
import { MqttBridge } from './pipeline/mqtt-bridge.js';
import type { DoorMode } from './domain/types.js';
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
  inputFactory?: (spec: InputSpec) => Promise<{ close(): void }>;
  /** Extra credential sources (tests, and the adapters of later issues). */
  sources?: Observable<CredentialEvent>[];
  /** Control socket path; false for none. */
  controlSocket?: string | false;
  /** How long to wait for a CLI that holds the database lock (it reads directly while no gateway runs). */
  storeLockWaitMs?: number;
  now?: () => number;
}

export class HardwareUnavailableError extends Error {}

export interface InputSpec {
  door: string;
  name: 'exit_button' | 'door_contact';
  pin: number;
  activeLow: boolean;
  debounceMs: number;
  /** Debounced logical level: exit button pressed / door contact closed. */
  onChange: (active: boolean) => void;
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

/** A door input on GPIO through onoff (loaded only when a door has inputs). */
async function openGpioInput(spec: InputSpec, config: Config, log: Logger): Promise<{ close(): void }> {
  const { GpioInput } = await import('./io/gpio/onoff.js');
  const number = sysfsNumber(spec.pin, { root: config.gpio.sysfs_root, chipLabel: config.gpio.chip_label, base: config.gpio.base });
  return GpioInput.open({ name: `${spec.door}.${spec.name}`, number, activeLow: spec.activeLow, debounceMs: spec.debounceMs, onChange: spec.onChange, log: log.child({ module: 'input', door: spec.door }) });
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

async function defaultRelay(door: DoorConfig, config: Config, log: Logger): Promise<Relay> {
  const rlog = log.child({ module: 'relay', door: door.id });
  if (door.relay.driver === 'sim') return new SimRelay(door.id, rlog);
  const { GpioRelay } = await import('./io/gpio/onoff.js');
  const number = sysfsNumber(door.relay.pin!, { root: config.gpio.sysfs_root, chipLabel: config.gpio.chip_label, base: config.gpio.base });
  return GpioRelay.open({ door: door.id, number, activeLow: door.relay.active_low, lockType: door.relay.lock_type, log: rlog });
}

export class Gateway {
  readonly relays = new Map<string, Relay>();
  readonly api: GatewayApi;
  /** The fingerprint module (of the first door that has one). */
  fingerprint: FingerprintModule | null = null;
  cloud: CloudAdapter | null = null;
  storage: StorageGuard | null = null;
  mqtt: MqttBridge | null = null;
  /** Door state machines by door id. */
  readonly doors = new Map<string, DoorStateMachine>();
  readonly inputs: { close(): void }[] = [];
  readonly started = Date.now();
  private server: Server | null = null;

  private constructor(
    readonly config: Config,
    readonly store: Store,
    readonly pipeline: AccessPipeline,
    readonly journal: JournalWriter,
    private readonly log: Logger,
  ) {
    this.api = localApi(
      store,
      config,
      VERSION,
      {
        since: this.started,
        cloud: () => this.cloud,
        storage: () => (this.storage ? { ...this.storage.state$.value, held_in_memory: journal.pending, dropped: journal.dropped } : null),
        modeOf: (door) => pipeline.modeOf(door),
      },
      log.child({ module: 'api' }),
    );
  }

  static async start(o: GatewayOptions): Promise<Gateway> {
    const { config, log } = o;
    // A subscriber that throws must never become an uncaught exception that kills the door.
    rxjsConfig.onUnhandledError = (err: unknown) => log.error({ err }, 'unhandled error in a subscriber');
    const store = await openStoreWaiting(config.data_dir, o.storeLockWaitMs ?? 10_000, log);
    try {
      const now = o.now ?? Date.now;
      const replay = new ReplayGuard(100_000);
      for (const [k, until] of await store.loadReplay(Math.floor(now() / 1000))) replay.restore(k, until);

      const relays = new Map<string, Relay>();
      const doors = new Map<string, AccessDoor>();
      const sources: Observable<CredentialEvent>[] = [...(o.sources ?? [])];
      let fingerprint: FingerprintModule | null = null;
      const hidReaders: { close(): void }[] = [];
      for (const d of config.doors) {
        if (d.fingerprint && !fingerprint) {
          let fp: FingerprintModule;
          if (d.fingerprint.driver === 'hid') {
            const { openTransport } = await import('./io/hid/device.js');
            const { HidFingerprint } = await import('./io/fingerprint-hid.js');
            fp = new HidFingerprint(await openTransport({ vendorId: d.fingerprint.vendor_id, productId: d.fingerprint.product_id, path: d.fingerprint.path }));
          } else fp = new SimFingerprint();
          fingerprint = fp;
          sources.push(fp.matches$.pipe(map((m) => credentialEvent(d.id, 'fingerprint', 'in', { type: 'userid', value: m.userid, method: 'fingerprint' }))));
        }
        const relay = o.relayFactory ? o.relayFactory(d, log) : await defaultRelay(d, config, log);
        relays.set(d.id, relay);
        // A mode set at run time (MQTT) outlives a restart: a door locked down stays locked down.
        const mode = (await store.getMeta<DoorMode>(`door.${d.id}.mode`)) ?? d.mode;
        doors.set(d.id, { context: { id: d.id, mode, timezone: d.timezone ?? config.timezone }, relay, pulseMs: d.relay.pulse_ms });
        for (const r of d.readers) {
          if (r.type === 'terminal') sources.push(terminalReader(o.terminalInput ?? process.stdin, d.id, r.id, r.direction));
          else if (r.type === 'mqtt') {
            if (!config.mqtt.enabled) throw new HardwareUnavailableError(`reader '${r.id}': type 'mqtt' needs mqtt.enabled: true`);
          } else {
            const { HidReader } = await import('./io/hid/device.js');
            const scans = new Subject<CredentialEvent>();
            sources.push(scans);
            hidReaders.push(
              await HidReader.open({
                name: r.id,
                selector: { vendorId: r.vendor_id, productId: r.product_id, serial: r.serial, path: r.path },
                mode: r.mode,
                layout: r.layout,
                terminator: r.terminator,
                idleMs: r.idle_ms,
                onScan: (text) => scans.next(credentialEvent(d.id, r.id, r.direction, { type: 'qr', text })),
                log: log.child({ module: 'hid', reader: r.id }),
              }),
            );
          }
        }
      }

      const readers = new Map(
        config.doors.flatMap((d) =>
          d.readers.map((r) => {
            const rate = r.rate_limit ?? DEFAULT_READER_RATE[r.type];
            return [r.id, { accepts: r.accepts ?? DEFAULT_READER_KINDS[r.type], rate: rate && { perS: rate.per_s, burst: rate.burst } }] as const;
          }),
        ),
      );
      let cloud: CloudAdapter | null = null;
      const journal = new JournalWriter(
        store,
        log.child({ module: 'journal' }),
        config.journal.max_entries,
        () => cloud?.outboxChanged(),
        () => cloud?.uploadsRecords === true,
        config.journal.memory_max_entries,
      );
      const pipeline = new AccessPipeline({
        store,
        doors,
        readers,
        journal,
        durability: config.journal.durability,
        policy: policyOf(config),
        debounceMs: config.policy.debounce_ms,
        replay,
        log: log.child({ module: 'pipeline' }),
        now,
      });
      const gw = new Gateway(config, store, pipeline, journal, log);
      relays.forEach((r, id) => gw.relays.set(id, r));
      gw.fingerprint = fingerprint;
      gw.inputs.push(...hidReaders);

      // Door events (contact, alarms, reader alarms): logged and journaled.
      const doorLog = log.child({ module: 'door' });
      const recordDoorEvent = (e: DoorEvent): void => {
        const fields = { door: e.door, event: e.type, reader: e.reader, detail: e.detail };
        if (ALARM_EVENTS.has(e.type)) doorLog.warn(fields, 'door alarm');
        else doorLog.info(fields, 'door event');
        if (!store.writable) return void doorLog.warn({ door: e.door, event: e.type }, 'door event not journaled: the database is not writable');
        store.appendDoorEvent(e).catch((err: unknown) => doorLog.error({ err, door: e.door }, 'door event not journaled'));
      };
      pipeline.doorEvents$.subscribe(recordDoorEvent);

      // Disk-full protection: reserve, free space, recovery; storage alarms on every door.
      gw.storage = new StorageGuard({
        store,
        dir: config.data_dir,
        reserveBytes: config.storage.reserve_mb * 1024 * 1024,
        lowBytes: config.storage.low_space_mb * 1024 * 1024,
        checkIntervalMs: config.storage.check_interval_s * 1000,
        log: log.child({ module: 'storage' }),
        alarm: (type, detail) => {
          for (const d of config.doors) pipeline.doorEvents$.next({ type, door: d.id, at: now(), detail });
        },
        recovered: () => journal.retryNow(),
      });
      await gw.storage.start();

      // Door state per door: lock from the relay, contact from the input, alarms.
      for (const d of config.doors) {
        const relay = relays.get(d.id)!;
        const sm = new DoorStateMachine(d.id, {
          heldOpenS: d.alarms.held_open_s,
          prealarmS: d.alarms.prealarm_s,
          openGraceS: d.alarms.open_grace_s,
          relockOnClose: d.alarms.relock_on_close,
          relock: () => relay.relock(),
        });
        relay.state$.subscribe((released) => sm.lockChanged(released));
        sm.events$.subscribe(recordDoorEvent);
        gw.doors.set(d.id, sm);
        const makeInput = o.inputFactory ?? ((spec: InputSpec) => openGpioInput(spec, config, log));
        const { exit_button: exit, door_contact: contact } = d.inputs;
        if (exit) {
          const presses = new Subject<CredentialEvent>();
          sources.push(presses);
          gw.inputs.push(await makeInput({ door: d.id, name: 'exit_button', pin: exit.pin, activeLow: exit.active_low, debounceMs: exit.debounce_ms, onChange: (pressed) => pressed && presses.next(credentialEvent(d.id, 'exit_button', 'out', { type: 'exit' })) }));
        }
        if (contact) {
          gw.inputs.push(await makeInput({ door: d.id, name: 'door_contact', pin: contact.pin, activeLow: contact.active_low, debounceMs: contact.debounce_ms, onChange: (closed) => sm.contactChanged(closed ? 'closed' : 'open') }));
        }
      }

      // Effects: each a subscriber; none can delay the relay, which was commanded before they run.
      const decisionLog = log.child({ module: 'access' });
      pipeline.addEffect('log', (d) => {
        const fields = { door: d.door, reader: d.reader, decision: d.decision, reason: d.reason, userid: d.userid, method: d.method, latency_us: Math.round(d.latency_us) };
        if (d.decision === 'grant') decisionLog.info(fields, 'access granted');
        else decisionLog.info({ ...fields, detail: d.detail }, 'access denied');
      });
      pipeline.modes$.subscribe(({ door, mode }) => {
        store.putMeta(`door.${door}.mode`, mode).catch((e: unknown) => log.error({ err: e, door }, 'door mode not persisted'));
      });
      if (config.mqtt.enabled) {
        gw.mqtt = new MqttBridge({ config, version: VERSION, store, pipeline, relays, doors: gw.doors, api: gw.api, cloud: () => gw.cloud, log, started: gw.started });
        sources.push(gw.mqtt.credentials$);
      }

      // Build each zone's formatter and import the corp keys now, so the first person at the door
      // does not pay for them.
      for (const d of doors.values()) localTime(now(), d.context.timezone);
      await store.warmKeys();
      warmUpVerify();
      pipeline.start(sources);

      const makeCloud = CLOUD_ADAPTERS[config.cloud.provider];
      cloud =
        makeCloud?.({
          config,
          store,
          log,
          fingerprint,
          remoteOpen: (r) => pipeline.handle(credentialEvent(r.door, config.cloud.provider, 'in', { type: 'remote', userid: r.userid, oper_id: r.oper_id })),
        }) ?? null;
      gw.cloud = cloud;
      await cloud?.start();
      gw.mqtt?.start(); // never waits for the broker

      if (o.controlSocket !== false) {
        const path = o.controlSocket ?? controlSocketPath(config);
        gw.server = await serveControl(path, gw.api, log.child({ module: 'control' }));
      }
      log.info(
        { gateway_id: config.gateway_id, version: VERSION, users: await store.userCount(), doors: config.doors.map((d) => d.id), data_dir: config.data_dir },
        'gateway ready',
      );
      return gw;
    } catch (e) {
      await store.close().catch(() => undefined);
      throw e;
    }
  }

  async stop(): Promise<void> {
    this.storage?.stop();
    for (const i of this.inputs) i.close();
    for (const d of this.doors.values()) d.stop();
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
