/**
 * Reader kind `osdp`: an OSDP reader on an RS-485 bus. Readers configured with the same `path` share
 * one bus (one serial port, one poll loop), whichever doors they serve; a missing or unplugged
 * adapter makes them offline, never the gateway fail. Card data (raw bits through
 * the card-format module, or formatted numbers) and keypad keys become credentials; tamper, power,
 * the link and secure-channel trouble become door events; decisions come back as LED, beeps and
 * text after the relay has moved.
 */
import { Subject } from 'rxjs';
import type { ReaderOf } from '../../config/schema.js';
import type { CredentialEvent, DecisionEvent, DoorEvent, DoorEventType } from '../../domain/events.js';
import type { DoorMode } from '../../domain/types.js';
import type { Logger } from '../../log.js';
import { OsdpBus } from '../osdp/bus.js';
import { OsdpDevice, type ReaderLinkState } from '../osdp/device.js';
import { OsdpKeyFile } from '../osdp/keys.js';
import { CMD, encodeBuzzer, encodeLed, encodeText } from '../osdp/messages.js';
import { Reopener } from '../reopen.js';
import { openSerial, type SerialLink } from '../serial.js';
import type { ReaderFactory, ReaderStatus } from './reader.js';
import { WiegandFrames } from './wiegand-frames.js';

interface SharedBus {
  bus: OsdpBus;
  port: Reopener<SerialLink>;
  users: number;
}

/** Open buses by serial path (one per RS-485 adapter). */
const buses = new Map<string, SharedBus>();

/** How often a missing or unplugged adapter is looked for again. */
const REOPEN_MS = 2000;

/**
 * The bus on `r.path`, shared by every reader configured on it. The port is opened in the
 * background and opened again whenever it goes away (a USB adapter unplugged, not yet there at
 * boot): the gateway never waits for it, its readers are offline meanwhile.
 */
function acquireBus(r: ReaderOf<'osdp'>, parent: Logger): SharedBus {
  const path = r.path!;
  let shared = buses.get(path);
  if (!shared) {
    const log = parent.child({ module: 'osdp', path });
    const bus = new OsdpBus({ baud: r.baud_rate, pollIntervalMs: r.poll_interval_ms, onStray: (pk) => log.debug({ address: pk.addr }, 'osdp reply from an address not asked (late or misaddressed): dropped') });
    const port = new Reopener<SerialLink>({
      open: async (lost) => {
        const l = await openSerial(path, r.baud_rate);
        l.lost$.subscribe((e) => lost(e.message));
        return l;
      },
      attach: (l) => bus.attach(l),
      detach: (_l, why) => bus.detach(why),
      close: (l) => l.close(),
      log,
      what: 'RS-485 port',
      meanwhile: 'its readers are offline',
      retryMs: REOPEN_MS,
    });
    bus.start();
    void port.start();
    shared = { bus, port, users: 0 };
    buses.set(path, shared);
  }
  shared.users++;
  return shared;
}

async function releaseBus(path: string, shared: SharedBus): Promise<void> {
  if (--shared.users > 0) return;
  buses.delete(path);
  await shared.bus.stop();
  await shared.port.stop();
}

/** Alarms of the same kind and detail from one reader, at most once a minute. */
const REPEAT_MS = 60_000;

export const openOsdpReader: ReaderFactory<'osdp'> = (r, ctx) => {
  const { config, door } = ctx;
  const log = ctx.log.child({ module: 'osdp', reader: r.id, address: r.address });
  const keyFile = new OsdpKeyFile(config.data_dir);
  if (keyFile.tighten()) log.warn({ file: keyFile.path }, 'the OSDP key file was readable by others: set to 0600');
  // A reader once enrolled is never talked to in plaintext again, whatever the configuration says
  // (a `secure: false` edited in later would be a silent downgrade): forget its key first.
  const enrolled = keyFile.enrolled(r.id).enrolled;
  const secure = r.secure || enrolled;
  if (!r.secure && enrolled) log.warn(`reader is configured secure: false but has an enrolled key: the secure channel stays on (doorgw osdp forget ${r.id} to drop the key)`);
  const out = new Subject<CredentialEvent>();
  const events$ = new Subject<DoorEvent>();
  let detail = 'not polled yet';
  const emit = (type: DoorEventType, detail?: string): void => events$.next({ type, door: door.id, at: Date.now(), reader: r.id, ...(detail !== undefined ? { detail } : {}) });
  const lastAlarm = new Map<string, number>();
  const alarm = (type: DoorEventType, text: string): void => {
    const k = `${type}|${text}`;
    const now = Date.now();
    if ((lastAlarm.get(k) ?? -Infinity) > now - REPEAT_MS) return;
    lastAlarm.set(k, now);
    emit(type, text);
  };
  const frames = WiegandFrames.forReader(r, door, (e) => out.next(e), (error, bits) => log.warn({ bits, error }, 'osdp card data dropped'));

  let wasUp = false;
  let offlineRaised = false;
  let wasTampered = false;
  let wasPowerFail = false;
  let refusedCards = 0;
  let mode: DoorMode = door.mode;
  const device: OsdpDevice = new OsdpDevice({
    address: r.address,
    secure,
    check: r.check,
    keys: keyFile.ring(r.id),
    events: {
      card: ({ bits }) => frames.frame(bits),
      cardText: (text) => (/^\d{1,20}$/.test(text) ? frames.card(BigInt(text).toString()) : frames.badFrame(`formatted card data '${text.slice(0, 24)}' is not a card number`, text.length * 8)),
      keys: (keys) => keys.forEach((k) => frames.key(k)),
      status: ({ tamper, power }) => {
        if (tamper) alarm('reader_tamper', 'the reader reports tamper (opened or removed from the wall)');
        else if (wasTampered) emit('reader_tamper_cleared');
        if (power) alarm('reader_power_failure', 'the reader reports a power failure');
        else if (wasPowerFail) emit('reader_power_restored');
        wasTampered = tamper;
        wasPowerFail = power;
      },
      state: (s: ReaderLinkState, why: string) => {
        detail = why;
        if (s === 'online') {
          log.info({ secure: device.secured, check: device.checkMode, device: device.pdId }, `osdp reader online (${why})`);
          if (wasUp === false && offlineRaised) emit('reader_online', why);
          offlineRaised = false;
          wasUp = true;
          showMode();
        } else if (s === 'install') {
          log.warn(`osdp reader answers on the default key: card reads are refused until it is enrolled (doorgw osdp enroll ${r.id})`);
          wasUp = false;
        } else if (s === 'offline') {
          log.warn({ why }, 'osdp reader offline');
          if (wasUp || !offlineRaised) {
            offlineRaised = true;
            emit('reader_offline', why);
          }
          wasUp = false;
        } else if (s === 'refused') {
          log.error({ why }, 'osdp reader refused');
          wasUp = false;
        } else log.info({ why }, 'osdp reader reconnecting');
      },
      secureFailure: (why) => {
        log.error({ why }, 'osdp secure channel failure');
        alarm('reader_secure_channel_failure', why);
      },
      trace: (what, fields) => {
        if (what.startsWith('card refused')) {
          refusedCards++;
          log.warn({ ...fields, refused: refusedCards }, `osdp ${what}`);
        } else log.debug(fields ?? {}, `osdp ${what}`);
      },
    },
  });
  const showMode = (): void => {
    device.send(CMD.led, encodeLed({ permanent: { on: r.feedback.idle_led[mode] } }));
  };

  const shared = acquireBus(r, ctx.log);
  shared.bus.add(device);
  /** Why the port is not open, while it is not. */
  const portProblem = (): string | null => (shared.port.error ? `serial port ${r.path}: ${shared.port.error}` : null);
  log.info({ path: r.path, baud: r.baud_rate, secure, enrolled }, 'osdp reader configured');
  // A reader that never answers is an alarm too (after a grace for the bus to come up).
  const firstCheck = setTimeout(() => {
    if (!wasUp && !offlineRaised && device.state !== 'install') {
      offlineRaised = true;
      emit('reader_offline', portProblem() ?? (device.state === 'refused' ? detail : 'no answer since start'));
    }
  }, 10_000);
  firstCheck.unref();

  const status = (): ReaderStatus => ({
    id: r.id,
    door: door.id,
    type: 'osdp',
    state: device.state,
    secure: device.secured,
    detail: (device.state === 'offline' && portProblem()) || detail,
    tamper: device.tamper,
    power_failure: device.power,
    path: r.path!,
    address: r.address,
    check: device.checkMode,
    enrolled: keyFile.enrolled(r.id).enrolled,
    device: device.pdId,
    state_for_s: device.stateForS,
    restarts_last_minute: device.restartsLastMinute,
    counters: { ...device.counters, bus_garbage: shared.bus.dropped.garbage, bus_bad_check: shared.bus.dropped.check, bus_truncated: shared.bus.dropped.truncated, bus_stray: shared.bus.stray },
  });

  const signal = (s: ReaderOf<'osdp'>['feedback']['grant']): void => {
    device.send(CMD.led, encodeLed({ temporary: { on: s.led, onMs: s.led_ms, ms: s.led_ms } }));
    if (s.beep_ms > 0 && s.beeps > 0) device.send(CMD.buz, encodeBuzzer({ onMs: s.beep_ms, offMs: s.beeps > 1 ? 200 : 0, count: s.beeps }));
    if (s.text && device.caps?.text) device.send(CMD.text, encodeText({ text: s.text, seconds: Math.max(1, Math.round(s.led_ms / 1000)) }));
    shared.bus.kick();
  };

  return Promise.resolve({
    credentials$: out,
    events$,
    // Called by the pipeline after the relay command: the reader shows what already happened.
    feedback: (d: DecisionEvent) => {
      if (device.state !== 'online') return;
      signal(d.decision === 'grant' ? r.feedback.grant : r.feedback.deny);
    },
    modeChanged: (m: DoorMode) => {
      mode = m;
      if (device.state === 'online') {
        showMode();
        shared.bus.kick();
      }
    },
    badFrames: () => frames.bad,
    status,
    enroll: async () => {
      if (!secure) throw new Error(`reader '${r.id}' is configured secure: false; set secure: true to enroll it`);
      await device.enroll();
      log.info('osdp reader enrolled with a new key');
      emit('reader_enrolled');
      // Wait for the session on the new key, so the caller learns whether it took.
      const until = Date.now() + 5000;
      while (Date.now() < until && !(device.state === 'online' && device.secured)) await new Promise((res) => setTimeout(res, 50));
      return status();
    },
    close: async () => {
      clearTimeout(firstCheck);
      frames.close();
      shared.bus.remove(device);
      await releaseBus(r.path!, shared);
      out.complete();
      events$.complete();
    },
  });
};
